"""The pure routing core: `choose(features, candidates, ledger, health, policy, now)`.

No I/O, no clock reads, deterministic: the same inputs give the same `RoutePlan`.
Filters (capabilities, context window, allow/deny, region, blocked pools, open
circuits and bad keys, budgets, cost cap, price known), then scores and orders
the survivors by the policy (see `router.policies`), with a reason for every
candidate. Per-card data (capabilities, per-token USD rates) is computed once
and cached, so a call costs a few microseconds per candidate.
The filter helpers live in `router.filters`; ordering and the summary are here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from router.cards import Candidates, CardInfo, card_info, globs, prepare
from router.filters import (
    NO_KEYS,
    budget_headroom,
    hhmmss,
    no_health,
    resolve_pinned,
    specific_budget,
    static_pass,
    unavailable,
    usable_keys,
    why_blocked,
)
from router.health import Health
from router.plan import BELOW_FLOOR, PlanStep, Reason, RoutePlan, _dropped_reason
from router.policies import Policy
from router.quota.view import LedgerView
from router.tasks import Features, QualityPredictor
from router.tokens import REASONING_MULTIPLIER

__all__ = ["Candidates", "PlanStep", "Reason", "RoutePlan", "choose", "card_info", "prepare"]

_REASONING_TASKS = frozenset({"math", "reasoning", "code"})
_ZERO = Decimal(0)
_BELOW = BELOW_FLOOR


def choose(
    features: Features,
    candidates: Sequence[Any],
    ledger: LedgerView,
    health: Mapping[str, Health],
    policy: Policy,
    now: datetime,
    *,
    keys: Mapping[str, Sequence[str]] | None = None,
    scope: Mapping[str, Any] | None = None,
    predictor: QualityPredictor | None = None,
    text: str = "",
    fx: Any = None,
    _floor_fallback: bool = False,
) -> RoutePlan:
    """Order the candidate models for this request. Pure and deterministic.

    `fx` is the catalog's FX rates (None = bundled defaults).
    `keys` maps provider -> API key ids (the deployments to spread over; None = the
    caller has no key information, one deployment per model). `scope` carries the
    caller's key id/user/tags for budgets.
    """
    rule_label: str | None = None
    restrict = None
    for i, rule in enumerate(policy.rules):
        if rule.matches(features):
            rule_label = rule.label(i)
            restrict = globs(rule.models) if rule.models else None
            policy = rule.effective(policy)
            break
    pname = policy.name
    task = features.task
    needs = features.needs
    tokens = features.total_tokens
    max_out = features.max_output_tokens
    in_tok, out_tok = max(0, features.input_tokens), max(0, features.expected_output_tokens)
    din, dout = Decimal(in_tok), Decimal(out_tok)
    # thinking models bill hidden reasoning tokens on code/math/reasoning (unless capped by max_tokens)
    think_tok = round(out_tok * REASONING_MULTIPLIER) if task in _REASONING_TASKS and max_out is None else out_tok
    dthink = Decimal(think_tok)
    allow = globs(policy.allow) if policy.allow else None
    deny = globs(policy.deny) if policy.deny else None
    regions = policy.regions
    meta_region = features.metadata.get("region") if features.metadata else None
    if meta_region:
        regions = frozenset([meta_region]) if isinstance(meta_region, str) else frozenset(meta_region)
    cap = policy.max_cost_usd
    common_h, common_id, by_model, by_provider = budget_headroom(ledger, features, scope)
    has_specific = bool(by_model or by_provider)
    model_pools = ledger.model_pools
    pool_globs = getattr(ledger, "pool_globs", None)
    all_pools = ledger.pools
    pinned = resolve_pinned(policy.pinned, candidates) if pname == "pinned" and policy.pinned else None
    floor = policy.floor(task) if pname != "cascade" else policy.cascade_floor
    chinese = features.chinese
    free_only = policy.free_only
    has_health = bool(health)
    hget = health.get if has_health else no_health
    predicted: Mapping[str, float] | None = None
    if predictor is not None:
        predicted = predictor.predict(features, text, [c.id for c in candidates]) or None

    kept: list[tuple[CardInfo, Decimal, bool, str | None, float, list[str | None], float]] = []
    prepared = isinstance(candidates, Candidates) and candidates.fx is fx
    infos: Sequence[CardInfo] = candidates.infos if prepared else [card_info(c, fx) for c in candidates]  # type: ignore[attr-defined]
    is_pinned = pname == "pinned"
    use_floor = pname in _FLOORED and not _floor_fallback
    skeys: list[tuple[Any, ...]] = []
    mode = 3 if _floor_fallback else _MODES.get(pname, 3)
    weight = policy.cost_weight * 1000.0  # balanced: quality points per USD per 1,000 requests
    minute = now.replace(second=0, microsecond=0)
    # Filters that depend only on the request's kind (not its size, the ledger or health)
    # are memoised per prepared candidate set: capabilities, pin, rule, allow/deny,
    # region, task quality and the floor cut.
    static = None
    skey = (id(policy), task, needs, chinese, regions, rule_label, use_floor, pinned)
    # (a region from the request's metadata is the client's string: memoised only when short)
    cacheable = prepared and predicted is None and (not meta_region or sum(len(str(r)) for r in regions) <= 64)
    cache = candidates.static_cache if cacheable else None  # type: ignore[attr-defined]
    if cache is not None:
        hit = cache.get(skey)
        if hit is not None and hit[0] is policy:
            static = hit[1]
    if static is None:
        static = static_pass(infos, is_pinned, pinned, restrict, rule_label, needs, allow, deny, regions,
                              predicted, task, chinese, policy.chinese_bonus, use_floor, floor)
        if cache is not None:
            if len(cache) > 512:
                cache.clear()
            cache[skey] = (policy, static)
    survivors, static_dropped, below = static
    reasons: list[Any] = list(static_dropped)
    for info, q in survivors:
        mid = info.id
        # a max_tokens above the model's max output is clamped to it (router.executor), never a reason to drop
        need = in_tok + info.max_out if max_out and info.max_out and max_out > info.max_out else tokens
        if info.ctx and need > info.ctx:
            reasons.append((mid, "context window %d < %d tokens needed", (info.ctx, need)))
            continue
        pool_id = None
        free = False
        pids = model_pools.get(mid)
        if pids is None and pool_globs:
            pids = tuple(p.pool_id for p in ledger.pools_for(mid))
        if pids:
            blocked = None
            for pid in pids:
                p = all_pools.get(pid)
                if p is None:
                    continue
                usable = p.usable(now, need)
                if not usable and p.on_exhaust == "block":
                    blocked = p
                    break
                if usable and p.free and not free:
                    free, pool_id = True, p.pool_id
            if blocked is not None:
                reasons.append((mid, "pool %s unavailable (%s)", (blocked.pool_id, why_blocked(blocked, now))))
                continue
        if free_only and not free:
            reasons.append((mid, "no free capacity (free-only)"))
            continue
        if info.max_out and (think_tok if info.thinks else out_tok) > info.max_out:
            dmo = Decimal(info.max_out)  # never more output than the model can give
        else:
            dmo = dthink if info.thinks else dout
        if free:
            cost = _ZERO
        elif info.rate_in is not None:  # rates are >= 0 (checked once per card) and so are the counts
            cost = din * info.rate_in + dmo * info.rate_out
        else:
            c = info.slow_cost(din, dmo, in_tok, now, minute)
            if c is None:  # a price in a currency without an FX rate
                reasons.append((mid, "no FX rate for %s -> USD (set fx.rates in config)", (info.price.currency,)))
                continue
            if c < _ZERO:  # a negative estimate would "fit" every cap and budget
                raise AssertionError(f"negative expected cost {c} for {mid}")
            cost = c
        if cap is not None and cost > cap:
            reasons.append((mid, "expected cost $%s > cap $%s", (_fmt(cost), cap), cost))
            continue
        if common_h is not None and common_h < cost:
            reasons.append((mid, "budget %s headroom $%s < expected $%s",
                                  (common_id, _fmt(common_h), _fmt(cost)), cost))
            continue
        if has_specific:
            sb = specific_budget(mid, info.provider, by_model, by_provider)
            if sb is not None and sb[0] < cost:
                reasons.append((mid, "budget %s headroom $%s < expected $%s",
                                      (sb[1], _fmt(sb[0]), _fmt(cost)), cost))
                continue
        # deployments (API keys) that are usable now
        if keys is None:
            h = hget(mid) if has_health else None
            if h is not None and not h.available(now):
                reasons.append(unavailable(mid, h, now))
                continue
            kh = hget(info.provider) if has_health else None
            if kh is not None and kh.bad and kh.blocked(now):
                reasons.append((mid, "key %s marked bad (%s)", (info.provider, kh.bad_reason)))
                continue
            deps: Sequence[str | None] = NO_KEYS
            lat = h.latency_ewma_ms if h is not None and h.latency_ewma_ms is not None else 0.0
        else:
            pkeys = keys.get(info.provider)
            if not pkeys:
                reasons.append((mid, "no API key configured for %s", (info.provider,)))
                continue
            if len(pkeys) == 1:  # the common case, inline
                k0 = pkeys[0]
                kh = hget(k0)
                if kh is not None and kh.bad and kh.blocked(now):
                    reasons.append((mid, "key %s marked bad (%s)", (k0, kh.bad_reason)))
                    continue
                dh = hget(mid + "@" + k0)
                if dh is not None and not dh.available(now):
                    reasons.append(unavailable(mid, dh, now))
                    continue
                deps = pkeys
                lat = dh.latency_ewma_ms if dh is not None and dh.latency_ewma_ms is not None else 0.0
            else:
                deps, lat, why = usable_keys(mid, pkeys, hget, now)
                if not deps:
                    reasons.append((mid, why))
                    continue
        kept.append((info, cost, free, pool_id, q, deps, lat))
        # the policy's sort key, built inline (cheaper than a key function per item)
        if mode == 0:
            skeys.append((0, -q, lat, mid) if free else (1, cost, -q, lat, mid))
        elif mode == 1:
            skeys.append((cost, -q, lat, mid))
        elif mode == 2:
            skeys.append((-(q - weight * float(cost)), cost, lat, mid))
        else:
            skeys.append((-q, cost, lat, mid))

    if not kept and below:  # nothing meets the floor: rank the rest, best first
        return choose(features, candidates, ledger, health, policy, now, keys=keys, scope=scope,
                      predictor=predictor, text=text, fx=fx, _floor_fallback=True)
    late = [(k, "quality %.2f < floor %.2f for %s", (k[4], floor, task)) for k in below]
    margin = policy.quality_margin
    qbest = None
    if margin is not None and use_floor and len(kept) > 1:
        # relative floor: within `margin` of the best candidate that survived every filter
        qbest = max(k[4] for k in kept)
        rel = qbest - margin
        if pname != "cascade" and rel > floor:  # cascade: applies to the escalation steps only
            floor = rel
            keep = [i for i, k in enumerate(kept) if k[4] >= rel - 1e-12]
            if len(keep) < len(kept):
                late += [(k, "quality %.2f < best %.2f - margin %.2f", (k[4], qbest, margin))
                         for k in kept if k[4] < rel - 1e-12]
                kept = [kept[i] for i in keep]
                skeys = [skeys[i] for i in keep]
    n = len(kept)
    if n > 1 and pname == "cascade" and not _floor_fallback:
        # the cheapest first (O(n)), then escalation by quality among models meeting the task floor
        i0 = min(range(n), key=skeys.__getitem__)
        full_floor = policy.floor(task)
        if qbest is not None:
            full_floor = max(full_floor, qbest - margin)
        esc = [(-k[4], skeys[i][0], k[6], k[0].id, i) for i, k in enumerate(kept) if i != i0 and k[4] >= full_floor]
        esc.sort()
        late += [(k, "quality %.2f < floor %.2f to escalate to", (k[4], full_floor))
                 for i, k in enumerate(kept) if i != i0 and k[4] < full_floor]
        kept = [kept[i0]] + [kept[e[4]] for e in esc]
    elif n > 1:
        order = sorted(range(n), key=skeys.__getitem__)
        kept = [kept[i] for i in order]
    return _order(kept, reasons, policy, floor, features, rule_label, now, late, _floor_fallback)


_FLOORED = frozenset({"free-first", "cheapest", "balanced", "cascade"})
_MODES = {"free-first": 0, "cheapest": 1, "cascade": 1, "balanced": 2, "best": 3, "pinned": 3}


def _order(kept: list[Any], reasons: list[Reason], policy: Policy, floor: float, features: Features,
           rule_label: str | None, now: datetime, late: list[Any], below_floor_fallback: bool) -> RoutePlan:
    pname = policy.name
    steps: list[PlanStep] = []
    limit = max(1, policy.max_attempts)
    for info, cost, free, pool_id, q, deps, _lat in kept:
        for k in deps:
            steps.append(PlanStep(info.card, k, cost, free, pool_id, q))
            if len(steps) >= limit:
                break
        if len(steps) >= limit:
            break
    summary = _summary(pname, kept, reasons, floor, features, rule_label, below_floor_fallback)
    return RoutePlan(steps, reasons, policy, summary, features, rule_label,
                     kept=kept, late=late, kept_msg=_BELOW if below_floor_fallback else _KEPT[pname], floor=floor)


_KEPT = {
    "free-first": "rank %d: paid, cheapest meeting the floor",
    "cheapest": "rank %d: cheapest meeting the floor",
    "best": "rank %d: highest quality within the cap",
    "balanced": "rank %d: best quality - weight x cost",
    "cascade": "rank %d: cascade step",
    "pinned": "rank %d: pinned",
}


def _summary(pname: str, kept: list[Any], reasons: list[Reason], floor: float, f: Features,
             rule_label: str | None, below: bool) -> str:
    pre = f"{pname}" + (f" [{rule_label}]" if rule_label else "")
    if not kept:
        reasons = [_dropped_reason(t) for t in reasons]
    if not kept and pname == "pinned":
        own = [r for r in reasons if r._msg != "not the pinned model"]
        return f"{pre}: {own[0].model_id} cannot take the request: {own[0].reason}" if own else (
            f"{pre}: the pinned model is not among the candidates")
    if not kept:
        groups: dict[str, list[Reason]] = {}
        for r in reasons:
            if not r.kept:
                groups.setdefault(r._msg, []).append(r)
        parts = sorted(groups.values(), key=lambda g: -len(g))
        detail = "; ".join(f"{g[0].model_id}: {g[0].reason}" + (f" (+{len(g) - 1} similar)" if len(g) > 1 else "")
                           for g in parts[:4]) or "no candidates"
        return f"{pre}: no model fits the request ({detail})"
    info, cost, free, pool_id, q, _deps, _lat = kept[0]
    what = f"free pool {pool_id}" if free else f"expected ${_fmt(cost)}"
    floor_txt = f" (below floor {floor:.2f}: nothing meets it)" if below else (
        f" >= floor {floor:.2f}" if pname in ("free-first", "cheapest", "balanced", "cascade") else "")
    return f"{pre}: {info.id} for {f.task}, {what}, quality {q:.2f}{floor_txt}"


def _fmt(d: Decimal) -> str:
    if d == 0:
        return "0"
    return f"{d:.6f}".rstrip("0").rstrip(".") if d >= Decimal("0.000001") else f"{d:.2E}"
