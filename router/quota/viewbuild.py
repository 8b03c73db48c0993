"""Build the read-only `LedgerView` from one batched read of the store."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from router.quota.records import from_nano
from router.quota.store import HOLD_SUFFIX
from router.quota.view import BudgetView, LedgerView, PoolView
from router.quota.windows import from_ts, to_ts

if TYPE_CHECKING:
    from router.quota.ledger import Ledger

__all__ = ["build_view", "pool_rows"]


def _globs(p: Any) -> tuple[str, ...]:
    return tuple(p.spec.models) if p.spec.models else (f"{p.spec.provider}:*",)


async def build_view(ledger: "Ledger", now: datetime, models: Iterable[str] = ()) -> LedgerView:
    ts = to_ts(now)
    await ledger.store.sweep(ts)
    keys: list[str] = []
    idx: dict[str, int] = {}

    def want(k: str) -> None:
        if k not in idx:
            idx[k] = len(keys)
            keys.append(k)

    model_set = set(ledger.known_models) | set(models)
    for p in list(ledger.pools.values()) + list(ledger.templates):
        spec = getattr(p, "spec", p)
        model_set.update(m for m in spec.models if not any(c in m for c in "*?["))
    for m in model_set:
        ledger.pools_for(m)  # instantiates per-model pools
    spans: dict[tuple[str, int, str], list[str]] = {}
    for p in ledger.pools.values():
        want(p.key("x"))
        for w in p.wins:
            s = w.window.slot(ts)
            for metric, lim in (("r", w.requests), ("t", w.tokens)):
                if lim is not None:
                    ks = [f"w|{p.id}|{w.index}|{metric}|{k}" for k in s.span]
                    spans[(p.id, w.index, metric)] = ks
                    for k in ks:
                        want(k)
        if p.grant_unit is not None:
            want(p.key("g"))
        if p.credit_limit is not None:
            want(p.key("k"))
    bkeys = []
    for b in ledger.budgets:
        k = f"b|{b.spec.id}|{'all' if b.window is None else b.window.slot(ts).charge}"
        bkeys.append(k)
        want(k)
        want(k + HOLD_SUFFIX)
    for m in model_set:
        want(f"cd|{m}")
        want(f"xm|{m}")
    vals = await ledger.store.read(keys, ts)

    def val(k: str) -> int:
        return vals[idx[k]]

    def until(k: str) -> datetime | None:
        v = val(k)
        return from_ts(v / 1000) if v and v / 1000 > ts else None

    pools: dict[str, PoolView] = {}
    for p in ledger.pools.values():
        rem_r: int | None = None
        rem_t: int | None = None
        rem_usd = None
        resets: list[float] = []
        blocked_until: list[float] = []
        for w in p.wins:
            s = w.window.slot(ts)
            for metric, lim in (("r", w.requests), ("t", w.tokens)):
                if lim is None:
                    continue
                ks = spans[(p.id, w.index, metric)]
                used = sum(val(k) for k in ks)
                rem = max(0, lim - used)
                if metric == "r":
                    rem_r = rem if rem_r is None else min(rem_r, rem)
                else:
                    rem_t = rem if rem_t is None else min(rem_t, rem)
                if w.window.mode == "calendar":
                    nxt = s.resets_at
                else:  # rolling: capacity returns when the oldest non-empty bucket drops out
                    first = next((k for k in ks if val(k)), None)
                    nxt = w.window.bucket_drop_time(k.rsplit("|", 1)[1]) if (k := first) else s.resets_at
                resets.append(nxt)
                if rem == 0 or (metric == "r" and rem < 1):
                    blocked_until.append(nxt)
        if p.grant_unit == "tokens":
            g = max(0, p.grant_limit - val(p.key("g")))
            rem_t = g if rem_t is None else min(rem_t, g)
        elif p.grant_unit == "usd":
            rem_usd = from_nano(max(0, p.grant_limit - val(p.key("g"))))
        if p.credit_limit is not None:
            rem_usd = from_nano(p.credit_limit - val(p.key("k")))
        if p.grant_expires is not None and ts >= p.grant_expires:
            rem_t, rem_usd = (0 if p.grant_unit == "tokens" else rem_t), (0 if p.grant_unit == "usd" else rem_usd)
        reset_ts = max(blocked_until) if blocked_until else (min(resets) if resets else None)
        pools[p.id] = PoolView(
            pool_id=p.id, kind=p.spec.kind, free=p.free_call, on_exhaust=p.spec.on_exhaust,
            remaining_requests=rem_r, remaining_tokens=rem_t, remaining_usd=rem_usd,
            resets_at=from_ts(reset_ts) if reset_ts is not None else None,
            exhausted_until=until(p.key("x")),
        )
    model_pools: dict[str, tuple[str, ...]] = {}
    for m in sorted(model_set):
        ids = [p.id for p in ledger.pools_for(m)]
        cd, xm = until(f"cd|{m}"), until(f"xm|{m}")
        obs = ledger.observed.get(m)
        if cd or xm or obs:
            sid = f"model:{m}"
            pools[sid] = PoolView(
                pool_id=sid, kind="rate", free=False, on_exhaust="block",
                remaining_requests=obs[0] if obs and obs[0] else None,
                remaining_tokens=obs[1] if obs and obs[1] else None,
                exhausted_until=xm, cooldown_until=cd,
            )
            ids.append(sid)
        model_pools[m] = tuple(ids)
    budgets = []
    for b, k in zip(ledger.budgets, bkeys):
        total, held = val(k), max(0, val(k + HOLD_SUFFIX))
        budgets.append(BudgetView(
            budget_id=b.spec.id, scope=b.spec.view_scope, match=b.spec.match, period=b.spec.period,  # type: ignore[arg-type]
            limit_usd=b.spec.limit_usd, spent_usd=from_nano(total - held), reserved_usd=from_nano(held),
            hard=b.spec.hard, resets_at=from_ts(b.window.slot(ts).resets_at) if b.window else None,
        ))
    return LedgerView(pools=pools, model_pools=model_pools, budgets=tuple(budgets),
                      pool_globs={p.id: _globs(p) for p in ledger.pools.values()})


async def pool_rows(ledger: "Ledger", now: datetime) -> list[dict[str, Any]]:
    """Per pool and limit: used/limit and the next reset (unix time) with the
    vendor's time zone (for `quotaroute quota`)."""
    ts = to_ts(now)
    view = await build_view(ledger, now)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], list[str], int | None]] = []
    for p in ledger.pools.values():
        pv = view.pools[p.id]
        base = {"pool": p.id, "kind": p.spec.kind, "free": p.free_call, "on_exhaust": p.spec.on_exhaust,
                "applies_to": list(_globs(p)), "source": p.spec.source, "as_of": p.spec.as_of,
                "exhausted_until": pv.exhausted_until.isoformat() if pv.exhausted_until else None}
        for w in p.wins:
            s = w.window.slot(ts)
            for metric, lim in (("r", w.requests), ("t", w.tokens)):
                if lim is None:
                    continue
                row = {**base, "window": f"{w.window.per} ({w.window.mode})",
                       "metric": "requests" if metric == "r" else f"{w.count} tokens", "limit": lim,
                       "tz": w.window.tz, "resets_at": s.resets_at}
                pending.append((row, [f"w|{p.id}|{w.index}|{metric}|{k}" for k in s.span], None))
        if p.grant_unit is not None:
            row = {**base, "window": "grant", "metric": p.grant_unit, "limit": p.grant_limit,
                   "tz": "UTC", "resets_at": p.grant_expires}
            pending.append((row, [p.key("g")], None))
        if p.credit_limit is not None:
            row = {**base, "window": "credit", "metric": "usd", "limit": p.credit_limit, "tz": "UTC", "resets_at": None}
            pending.append((row, [p.key("k")], None))
    flat = [k for _, ks, _ in pending for k in ks]
    vals = await ledger.store.read(flat, ts)
    i = 0
    for row, ks, _ in pending:
        used = sum(vals[i : i + len(ks)])
        i += len(ks)
        if row["metric"] == "usd":
            row["limit"], used = from_nano(row["limit"]), from_nano(used)
        row["used"] = used
        rows.append(row)
    return rows
