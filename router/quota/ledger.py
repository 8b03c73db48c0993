"""The free-quota and budget ledger: reserve -> commit | release (| expire).

`reserve()` atomically checks and holds capacity on every pool that applies to the
model (requests, tokens, grants, credit) and on every budget, BEFORE the upstream
call; `commit()` replaces the holds with the actual usage and returns what is
billed; an unsettled reservation expires after `ttl_s` and is then charged at
what it reserved (its call may have reached the vendor before a crash), never
released to zero; a late commit corrects it to the actual usage. Pools that block when empty must all fit; among the pools that fall back
to paid (a grant on a paid account) the first with room is used, else the call
is paid. Money is Decimal in the API and integer nano-USD in the stores.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from router.errors import BudgetExceeded, PoolUnavailable
from router.quota.records import (
    FAR,
    Reservation,
    Settlement,
    _Budget,
    _Pool,
    _Win,
    from_nano,
    to_nano,
)
from router.quota import learning, viewbuild
from router.quota.spec import BudgetSpec, PoolSpec
from router.quota.store import Adjust, Check, Store
from router.quota.view import LedgerView
from router.quota.windows import Window, from_ts, to_ts
from router.types import RateLimitSnapshot, Usage

__all__ = ["Ledger"]

log = logging.getLogger("quotaroute.ledger")


class Ledger:
    def __init__(
        self,
        store: Store,
        pools: Iterable[PoolSpec] = (),
        budgets: Iterable[BudgetSpec] = (),
        *,
        default_ttl_s: float = 300.0,
        default_exhaust_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.default_ttl_s = default_ttl_s
        self.default_exhaust_s = default_exhaust_s
        self.pools: dict[str, _Pool] = {}
        self.templates: list[PoolSpec] = []  # per_model pools, instantiated per model on first use
        for p in pools:
            if not p.enabled:
                continue
            if p.per_model:
                self.templates.append(p)
            else:
                self.pools[p.id] = self._compile(p)
        self.budgets = [
            _Budget(b, None if b.period == "total" else Window(b.period, "calendar", b.tz), to_nano(b.limit_usd))
            for b in budgets
        ]
        self._by_model: dict[str, list[_Pool]] = {}
        self._has_soft = any(not b.spec.hard for b in self.budgets)
        self.known_models: set[str] = set()
        self._rid_prefix = uuid.uuid4().hex[:16] + "-"  # unique per ledger instance (replica/process)
        self._seq = 0
        self._plans: dict[tuple[str, Any], tuple[list[_Pool], list[_Pool], _Pool | None]] = {}
        self._budget_cache: dict[tuple[Any, ...], list[_Budget]] = {}
        self.observed: dict[str, tuple[int | None, int | None, float]] = {}

    def add_budgets(self, specs: Iterable[BudgetSpec]) -> None:
        """Register more budgets (e.g. the proxy's per-key budgets at start-up); a spec
        whose id is already registered replaces it."""
        specs = list(specs)
        ids = {b.id for b in specs}
        self.budgets = [b for b in self.budgets if b.spec.id not in ids] + [
            _Budget(b, None if b.period == "total" else Window(b.period, "calendar", b.tz), to_nano(b.limit_usd))
            for b in specs
        ]
        self._has_soft = any(not b.spec.hard for b in self.budgets)
        self._budget_cache.clear()

    async def raise_budget(self, budget_id: str, spent_usd: Decimal, now: datetime) -> None:
        """Make a budget's spend this period at least `spent_usd` (seeding from a spend log)."""
        ts = to_ts(now)
        for b in self.budgets:
            if b.spec.id == budget_id and spent_usd > 0:
                suffix = "all" if b.window is None else b.window.slot(ts).charge
                exp = ts + FAR if b.window is None else b.window.slot(ts).expire_at
                await self.store.raise_to(f"b|{budget_id}|{suffix}", to_nano(spent_usd), exp, ts)

    @staticmethod
    def _compile(p: PoolSpec) -> _Pool:
        wins = [_Win(i, Window(w.per, w.mode, w.tz), w.requests, w.tokens, w.count, p.id) for i, w in enumerate(p.limits)]
        cp = _Pool(spec=p, id=p.id, wins=wins, block=p.on_exhaust == "block", free_call=p.free or p.grant is not None)
        if p.grant is not None:
            cp.grant_unit = "tokens" if p.grant.tokens is not None else "usd"
            cp.grant_limit = p.grant.tokens if p.grant.tokens is not None else to_nano(p.grant.usd, ROUND_HALF_EVEN)  # type: ignore[arg-type]
            cp.grant_expires = p.grant.expires.timestamp() if p.grant.expires else None
        if p.credit_usd is not None:
            cp.credit_limit = to_nano(p.credit_usd, ROUND_HALF_EVEN)
            cp.free_call = False
        return cp

    def pools_for(self, model_id: str) -> list[_Pool]:
        ps = self._by_model.get(model_id)
        if ps is None:
            ps = [p for p in self.pools.values() if p.spec.applies_to(model_id) and not p.spec.per_model]
            for t in self.templates:
                if t.applies_to(model_id):
                    inst = self._compile(t.model_copy(update={"id": f"{t.id}@{model_id}", "models": (model_id,)}))
                    self.pools[inst.id] = inst
                    ps.append(inst)
            self._by_model[model_id] = ps
        return ps

    def track(self, model_ids: Iterable[str]) -> None:
        """Models the view should always describe (e.g. the router's candidates)."""
        self.known_models.update(model_ids)

    # ------------------------------------------------------------------ reserve
    def _pool_checks(self, p: _Pool, ts: float, tokens: int, t_in: int, t_out: int, cost: int,
                     checks: list[Check], meta: list[tuple[str, Any]]) -> None:
        # flags hold their end time in ms: "used + 0 > now_ms" means still flagged
        checks.append(Check((p.key("x"),), p.key("x"), 0, int(ts * 1000), ts + 1))
        meta.append(("flag", p))
        for w in p.wins:
            s, r_span, r_charge, t_span, t_charge = w.keys(ts)
            if w.requests is not None:
                checks.append(Check(r_span, r_charge, 1, w.requests, s.expire_at))
                meta.append(("req", (p, w)))
            if w.tokens is not None:
                amt = tokens if w.count == "total" else (t_in if w.count == "input" else t_out)
                checks.append(Check(t_span, t_charge, amt, w.tokens, s.expire_at))
                meta.append(("tok", (p, w)))
        if p.grant_unit is not None:
            amt = tokens if p.grant_unit == "tokens" else cost
            exp = p.grant_expires or ts + FAR
            checks.append(Check((p.key("g"),), p.key("g"), amt, p.grant_limit, exp))
            meta.append(("grant", p))
        if p.credit_limit is not None:
            checks.append(Check((p.key("k"),), p.key("k"), cost, p.credit_limit, ts + FAR))
            meta.append(("credit", p))

    async def reserve(
        self,
        model_id: str,
        *,
        provider: str | None = None,
        tokens: int = 0,
        cost_usd: Decimal = Decimal(0),
        scope: dict[str, Any] | None = None,
        now: datetime,
        ttl_s: float | None = None,
        input_tokens: int | None = None,
    ) -> Reservation:
        """Hold capacity for one call of `tokens` (input + expected output) tokens
        costing about `cost_usd` at list price. Raises BudgetExceeded (hard budget)
        or PoolUnavailable (a block-on-exhaust pool is empty/cooling down)."""
        ts = to_ts(now)
        scope = scope or {}
        provider = provider or model_id.split(":", 1)[0]
        self.known_models.add(model_id)
        t_in = input_tokens if input_tokens is not None else tokens
        t_out = tokens - input_tokens if input_tokens is not None else tokens
        ukey = scope.get("upstream_key")
        plan = self._plans.get((model_id, ukey))
        if plan is None:
            pools = [p for p in self.pools_for(model_id) if p.spec.key is None or ukey is None or p.spec.key == ukey]
            block = [p for p in pools if p.block]
            plan = self._plans[(model_id, ukey)] = (
                block, [p for p in pools if not p.block and p.free_call], next((p for p in block if p.free_call), None))
        block, optional, free_block = plan
        if optional:
            optional = [p for p in optional if p.grant_expires is None or ts < p.grant_expires]
        cost = to_nano(cost_usd)
        bkey = (model_id, provider, scope.get("key"), scope.get("user"), scope.get("team"), tuple(map(str, scope.get("tags") or ())))
        budgets = self._budget_cache.get(bkey)
        if budgets is None:
            budgets = [b for b in self.budgets if b.spec.applies(model_id, provider, scope)]
            if len(self._budget_cache) > 10000:
                self._budget_cache.clear()
            if len(str(bkey)) <= 1024:  # user and tags are the client's strings: only short keys are memoised
                self._budget_cache[bkey] = budgets
        expires = ts + (ttl_s if ttl_s is not None else self.default_ttl_s)
        self._seq += 1
        rid = f"{self._rid_prefix}{self._seq:x}"
        candidates: list[_Pool | None] = [*optional, None]
        for cand in candidates:
            free = free_block or cand
            call_cost = 0 if free is not None and free.grant_unit != "usd" else cost
            checks: list[Check] = []
            meta: list[tuple[str, Any]] = []
            for k in (f"cd|{model_id}", f"xm|{model_id}"):
                checks.append(Check((k,), k, 0, int(ts * 1000), ts + 1))
                meta.append(("mflag", k))
            for p in block:
                self._pool_checks(p, ts, tokens, t_in, t_out, call_cost, checks, meta)
            if cand is not None:
                self._pool_checks(cand, ts, tokens, t_in, t_out, cost, checks, meta)
            budget_cost = 0 if free is not None else cost
            for b in budgets:
                suffix = "all" if b.window is None else b.window.slot(ts).charge
                k = f"b|{b.spec.id}|{suffix}"
                exp = ts + FAR if b.window is None else b.window.slot(ts).expire_at
                checks.append(Check((k,), k, budget_cost, b.limit if b.spec.hard else None, exp, hold=True))
                meta.append(("budget", b))
            acq = await self.store.acquire(rid, checks, expires, ts)
            if acq.ok:
                soft = tuple(b.spec.id for (kind, b), tot in zip(meta, acq.totals)
                             if kind == "budget" and not b.spec.hard and tot > b.limit) if self._has_soft else ()
                for bid in soft:
                    log.warning("ledger: soft budget %s exceeded by a call to %s (reserved %s USD)", bid, model_id, cost_usd)
                return Reservation(
                    id=rid, model_id=model_id, provider=provider, tokens=tokens, cost_usd=Decimal(cost_usd),
                    free_pool=free.id if free is not None else None,
                    pools=tuple(p.id for p in block) + ((cand.id,) if cand is not None else ()),
                    budgets=tuple(b.spec.id for b in budgets), expires_at=from_ts(expires),
                    soft_exceeded=soft, _checks=checks, _meta=meta,
                )
            kind, obj = meta[acq.failed]
            if cand is not None and kind != "mflag" and (obj is cand or (isinstance(obj, tuple) and obj[0] is cand)):
                continue  # this optional pool has no room: try the next one, then paid
            self._raise_denied(model_id, kind, obj, checks[acq.failed], acq.totals[-1], cost_usd, ts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_denied(self, model_id: str, kind: str, obj: Any, check: Check, used: int,
                      cost_usd: Decimal, ts: float) -> None:
        if kind == "budget":
            b: _Budget = obj
            raise BudgetExceeded(
                f"budget {b.spec.id!r} ({b.spec.scope} {b.spec.match}, per {b.spec.period}) would be exceeded: "
                f"spent+reserved {from_nano(used)} + {cost_usd} > limit {b.spec.limit_usd} USD",
                budget_id=b.spec.id, limit_usd=b.spec.limit_usd, spent_usd=from_nano(used),
            )
        if kind == "mflag":
            what = "cooling down (rate limited)" if obj.startswith("cd|") else "marked exhausted"
            raise PoolUnavailable(f"{model_id} is {what} until {from_ts(used / 1000).isoformat()}",
                                  pool_id=obj, model_id=model_id, reason="cooldown" if obj.startswith("cd|") else "exhausted",
                                  resets_at=from_ts(used / 1000))
        if kind == "flag":
            p = obj
            raise PoolUnavailable(f"pool {p.id!r} is exhausted until {from_ts(used / 1000).isoformat()}",
                                  pool_id=p.id, model_id=model_id, reason="exhausted", resets_at=from_ts(used / 1000))
        p, w = obj if isinstance(obj, tuple) else (obj, None)
        resets = from_ts(w.window.slot(ts).resets_at) if w is not None else None
        what = {"req": "requests", "tok": "tokens", "grant": "grant", "credit": "credit balance"}[kind]
        raise PoolUnavailable(
            f"pool {p.id!r} has no room for this call on {model_id}: {what} used {used} of {check.limit}"
            + (f" (per {w.window.per}, resets {resets.isoformat()})" if resets else ""),
            pool_id=p.id, model_id=model_id, reason=what, resets_at=resets,
        )

    # ------------------------------------------------------------------- settle
    async def commit(self, res: Reservation, usage: Usage, cost_usd: Decimal, now: datetime) -> Settlement:
        """Record the actual usage; returns what is billed (list price minus any
        free coverage; a grant covering part of the call bills the rest pro rata)."""
        if res.settled:
            raise ValueError(f"reservation {res.id} is already settled")
        res.settled = True
        ts = to_ts(now)
        cost_usd = Decimal(cost_usd)
        total = usage.total_tokens
        pool = self.pools.get(res.free_pool) if res.free_pool else None
        billed, free_tokens, free_usd = cost_usd, 0, Decimal(0)
        live = True
        done: set[int] = set()
        if pool is not None and pool.grant_unit is not None:
            gi = next(i for i, (k, o) in enumerate(res._meta) if k == "grant" and o is pool)
            ch = res._checks[gi]
            actual = total if pool.grant_unit == "tokens" else to_nano(cost_usd)
            live, (applied,) = await self.store.settle(
                res.id, [Adjust(ch.charge, actual, ch.expire_at, clamp=pool.grant_limit, span=ch.span)], ts, final=False)
            done.add(gi)
            if pool.grant_unit == "tokens":
                free_tokens = applied
                billed = cost_usd * (total - applied) / total if total else Decimal(0)
            else:
                free_usd = min(cost_usd, from_nano(applied))
                billed = cost_usd - free_usd
                free_tokens = int(total * free_usd / cost_usd) if cost_usd else total
        elif pool is not None:
            billed, free_tokens, free_usd = Decimal(0), total, cost_usd
        billed_nano = to_nano(billed, ROUND_HALF_EVEN)
        adjusts = []
        for i, ((kind, obj), ch) in enumerate(zip(res._meta, res._checks)):
            if i in done or kind in ("flag", "mflag"):
                continue
            if kind == "req":
                actual = 1
            elif kind == "tok":
                c = obj[1].count
                actual = total if c == "total" else (usage.input_tokens if c == "input" else usage.output_tokens)
            elif kind in ("credit", "budget"):
                actual = billed_nano
            else:  # an optional grant pool that is not the one used
                actual = 0
            adjusts.append(Adjust(ch.charge, actual, ch.expire_at))
        live2, _ = await self.store.settle(res.id, adjusts, ts, final=True)
        if not (live and live2):
            log.warning("ledger: reservation %s for %s had expired before commit (charged at its reserved amounts); "
                        "corrected to the actual usage", res.id, res.model_id)
        return Settlement(res.free_pool if (free_tokens or billed == 0) else None, billed, free_tokens, free_usd, live and live2)

    async def release(self, res: Reservation, now: datetime | None = None) -> bool:
        """Give back everything a reservation holds (the call was not made / failed unbilled)."""
        if res.settled:
            return False
        res.settled = True
        ts = to_ts(now) if now is not None else time.time()
        return await self.store.release(res.id, ts)

    # ----------------------------------------------------------------- learning
    async def observe(self, model_id: str, snapshot: RateLimitSnapshot, now: datetime) -> None:
        """Rate-limit headers: raise our usage counters to what the vendor reports."""
        await learning.observe(self, model_id, snapshot, now)

    async def mark_exhausted(self, model_id: str, now: datetime, until: datetime | None = None,
                             *, pool_id: str | None = None) -> datetime:
        """A QuotaExhausted error: the model's free pools (or the model itself) are
        empty until `until` (default: the pool's next reset)."""
        return await learning.mark_exhausted(self, model_id, now, until, pool_id=pool_id)

    async def cooldown(self, model_id: str, seconds: float, now: datetime) -> datetime:
        """A RateLimited error: keep this model out of rotation for `seconds`."""
        ts = to_ts(now)
        self.known_models.add(model_id)
        end = ts + max(0.0, float(seconds))
        await self.store.raise_to(f"cd|{model_id}", int(end * 1000), end, ts)
        return from_ts(end)

    async def view(self, now: datetime, models: Iterable[str] = ()) -> LedgerView:
        return await viewbuild.build_view(self, now, models)

    async def aclose(self) -> None:
        await self.store.aclose()
