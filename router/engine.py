"""The pure routing core: `choose(features, candidates, ledger, health, policy, now)`.

No I/O, no clock reads, deterministic: the same inputs give the same `RoutePlan`.
Filters (capabilities, context window, allow/deny, region, blocked pools, open
circuits and bad keys, budgets, cost cap, price known), then scores and orders
the survivors by the policy (see `router.policies`), with a reason for every
candidate. Per-card data (capabilities, per-token USD rates) is computed once
and cached, so a call costs a few microseconds per candidate.

`choose()` reads as its steps: `_match_rule` (the first matching rule adjusts the
policy), `_static_filters` (memoised per request kind), `_admit` (the per-request
filters, pricing each survivor as a `router.plan.Candidate`), `_rank` (the policy's
order, quality floors) and `_plan` (the steps and the summary). The filter helpers
live in `router.filters`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from router.cards import Candidates, CardInfo, card_info, globs
from router.filters import (
    NO_KEYS,
    budget_headroom,
    no_health,
    resolve_pinned,
    specific_budget,
    static_pass,
    unavailable,
    usable_keys,
    why_blocked,
)
from router.health import Health
from router.plan import BELOW_FLOOR, Candidate, PlanStep, Reason, RoutePlan, _dropped_reason
from router.policies import Policy
from router.quota.view import LedgerView
from router.tasks import Features, QualityPredictor
from router.tokens import REASONING_MULTIPLIER

__all__ = ["choose"]

_REASONING_TASKS = frozenset({"math", "reasoning", "code"})
_ZERO = Decimal(0)
_BELOW = BELOW_FLOOR
_FLOORED = frozenset({"free-first", "cheapest", "balanced", "cascade"})
_MODES = {"free-first": 0, "cheapest": 1, "cascade": 1, "balanced": 2, "best": 3, "pinned": 3}
_RANK_KEY = attrgetter("rank_key")
_new = object.__new__
_Budgets = tuple[Decimal | None, str, dict[str, list[Any]], dict[str, list[Any]]]
_Static = tuple[list[tuple[CardInfo, float]], list[tuple[Any, ...]], list[Candidate]]


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

    Steps: the first matching rule adjusts the policy; the static filters (what depends
    only on the request's kind, memoised); the per-request filters (size, pools, cost,
    budgets, health), which price the survivors as `Candidate`s; the policy's ranking;
    the plan.
    """
    policy, rule_label, restrict = _match_rule(policy, features)
    task = features.task
    floor = policy.floor(task) if policy.name != "cascade" else policy.cascade_floor
    use_floor = policy.name in _FLOORED and not _floor_fallback
    predicted: Mapping[str, float] | None = None
    if predictor is not None:
        predicted = predictor.predict(features, text, [c.id for c in candidates]) or None
    survivors, dropped, below = _static_filters(candidates, fx, features, policy, rule_label, restrict, predicted,
                                                use_floor, floor)
    reasons: list[Any] = list(dropped)
    mode = 3 if _floor_fallback else _MODES.get(policy.name, 3)
    kept = _admit(survivors, features, policy, ledger, health, now, keys, scope, mode, reasons)
    if not kept and below:  # nothing meets the floor: rank the rest, best first
        return choose(features, candidates, ledger, health, policy, now, keys=keys, scope=scope,
                      predictor=predictor, text=text, fx=fx, _floor_fallback=True)
    kept, late, floor = _rank(kept, below, policy, task, floor, use_floor, _floor_fallback)
    return _plan(kept, reasons, policy, floor, features, rule_label, late, _floor_fallback)


def _match_rule(policy: Policy, features: Features) -> tuple[Policy, str | None, Any]:
    """(the policy as the first matching rule adjusts it, the rule's label, its model globs)."""
    for i, rule in enumerate(policy.rules):
        if rule.matches(features):
            return rule.effective(policy), rule.label(i), globs(rule.models) if rule.models else None
    return policy, None, None


def _static_filters(candidates: Sequence[Any], fx: Any, features: Features, policy: Policy, rule_label: str | None,
                    restrict: Any, predicted: Mapping[str, float] | None, use_floor: bool, floor: float) -> _Static:
    """(survivors as (card info, quality), dropped reasons, below-floor candidates) from the
    filters that depend only on the request's kind, not its size, the ledger or health:
    pin, rule, capabilities, allow/deny, region, known price, task quality and the floor.
    Memoised per prepared candidate set."""
    regions = policy.regions
    meta_region = features.metadata.get("region") if features.metadata else None
    if meta_region:
        regions = frozenset([meta_region]) if isinstance(meta_region, str) else frozenset(meta_region)
    is_pinned = policy.name == "pinned" and policy.pinned is not None  # (None: the candidates are a chain's)
    pinned = resolve_pinned(policy.pinned, candidates) if is_pinned and policy.pinned else None
    cache: dict[Any, Any] | None = None
    infos: Sequence[CardInfo]
    if isinstance(candidates, Candidates) and candidates.fx is fx:
        infos = candidates.infos
        # (a region from the request's metadata is the client's string: memoised only when short)
        if predicted is None and (not meta_region or sum(len(str(r)) for r in regions) <= 64):
            cache = candidates.static_cache
    else:
        infos = [card_info(c, fx) for c in candidates]
    skey = (id(policy), features.task, features.needs, features.chinese, regions, rule_label, use_floor, pinned)
    if cache is not None:
        hit = cache.get(skey)
        if hit is not None and hit[0] is policy:
            memo: _Static = hit[1]
            return memo
    allow = globs(policy.allow) if policy.allow else None
    deny = globs(policy.deny) if policy.deny else None
    static = static_pass(infos, is_pinned, pinned, restrict, rule_label, features.needs, allow, deny, regions,
                         predicted, features.task, features.chinese, policy.chinese_bonus, use_floor, floor)
    if cache is not None:
        if len(cache) > 512:
            cache.clear()
        cache[skey] = (policy, static)
    return static


def _admit(survivors: list[tuple[CardInfo, float]], features: Features, policy: Policy, ledger: LedgerView,
           health: Mapping[str, Health], now: datetime, keys: Mapping[str, Sequence[str]] | None,
           scope: Mapping[str, Any] | None, mode: int, reasons: list[Any]) -> list[Candidate]:
    """The filters that depend on this request's size, the ledger and health: context
    window, blocked pools, free-only, expected cost against the cap and hard budgets,
    usable deployments. Survivors come back priced, with the policy's sort key; the
    others add their reason to `reasons`. The hot loop: per-candidate work stays inline."""
    tokens, max_out = features.total_tokens, features.max_output_tokens
    in_tok, out_tok = max(0, features.input_tokens), max(0, features.expected_output_tokens)
    # thinking models bill hidden reasoning tokens on code/math/reasoning (unless capped by max_tokens)
    think_tok = round(out_tok * REASONING_MULTIPLIER) if features.task in _REASONING_TASKS and max_out is None \
        else out_tok
    din, dout, dthink = Decimal(in_tok), Decimal(out_tok), Decimal(think_tok)
    cap = policy.max_cost_usd
    common_h, common_id, by_model, by_provider = budget_headroom(ledger, features, scope)
    # (None: no hard budget applies, nothing to check per candidate)
    budgets = (common_h, common_id, by_model, by_provider) if common_h is not None or by_model or by_provider \
        else None
    model_pools, pool_globs = ledger.model_pools, getattr(ledger, "pool_globs", None)
    free_only = policy.free_only
    has_health = bool(health)
    hget = health.get if has_health else no_health
    weight = policy.cost_weight * 1000.0  # balanced: quality points per USD per 1,000 requests
    minute = now.replace(second=0, microsecond=0)
    kept: list[Candidate] = []
    keep, new, zero = kept.append, _new, _ZERO  # (locals: this loop runs per model per request)
    for info, q in survivors:
        mid = info.id
        # a max_tokens above the model's max output is clamped to it (router.executor), never a reason to drop
        need = in_tok + info.max_out if max_out and info.max_out and max_out > info.max_out else tokens
        if info.ctx and need > info.ctx:
            reasons.append((mid, "context window %d < %d tokens needed", (info.ctx, need)))
            continue
        pids = model_pools.get(mid)
        if pids is None and pool_globs:
            pids = tuple(p.pool_id for p in ledger.pools_for(mid))
        free, pool_id = False, None
        if pids:
            blocked, free, pool_id = _pools(pids, ledger.pools, now, need)
            if blocked is not None:
                reasons.append((mid, "pool %s unavailable (%s)", (blocked.pool_id, why_blocked(blocked, now))))
                continue
        if free_only and not free:
            reasons.append((mid, "no free capacity (free-only)"))
            continue
        # expected cost: never more output than the model can give
        dmo = Decimal(info.max_out) if info.max_out and (think_tok if info.thinks else out_tok) > info.max_out \
            else dthink if info.thinks else dout
        if free:
            cost = zero
        elif info.rate_in is not None:  # rates are >= 0 (checked once per card) and so are the counts
            cost = din * info.rate_in + dmo * info.rate_out
        else:  # tiers, time-of-day rates or another currency
            c = info.slow_cost(din, dmo, in_tok, now, minute)
            if c is None:  # a price in a currency without an FX rate
                reasons.append((mid, "no FX rate for %s -> USD (set fx.rates in config)", (info.price.currency,)))
                continue
            if c < _ZERO:  # a negative estimate would "fit" every cap and budget
                raise AssertionError(f"negative expected cost {c} for {mid}")
            cost = c
        if cap is not None and cost > cap:
            reasons.append((mid, "expected cost $%s > cap $%s", (_fmt(cost), _fmt(cap)), cost))
            continue
        if budgets is not None:
            over = _over_budget(cost, mid, info.provider, budgets)
            if over is not None:
                reasons.append((mid, "budget %s headroom $%s < expected $%s", (over[1], _fmt(over[0]), _fmt(cost)),
                                cost))
                continue
        if keys is None and not has_health:  # the common case, inline: one deployment, nothing known
            deps: Sequence[str | None] = NO_KEYS
            lat = 0.0
        else:
            deps, lat, why = _deployments(mid, info.provider, keys, hget, now)
            if why is not None:
                reasons.append(why)
                continue
        # the policy's sort key, smallest first (built inline: cheaper than a key function per item)
        if mode == 0:  # free first (by quality), then the cheapest
            rank_key: tuple[Any, ...] = (0, -q, lat, mid) if free else (1, cost, -q, lat, mid)
        elif mode == 1:  # cheapest, cascade
            rank_key = (cost, -q, lat, mid)
        elif mode == 2:  # balanced: quality - weight x cost
            rank_key = (-(q - weight * float(cost)), cost, lat, mid)
        else:  # best, pinned, below-floor fallback
            rank_key = (-q, cost, lat, mid)
        # a Candidate built without calling the class, one slot at a time (the cheapest way: this
        # runs per model per request; a test checks every field is set)
        k = new(Candidate)
        k.info = info
        k.cost = cost
        k.free = free
        k.pool_id = pool_id
        k.quality = q
        k.deployments = deps
        k.latency_ms = lat
        k.rank_key = rank_key
        keep(k)
    return kept


def _over_budget(cost: Decimal, mid: str, provider: str, budgets: _Budgets) -> tuple[Decimal, str] | None:
    """(headroom, budget id) of the hard budget the expected cost does not fit, else None:
    the budgets every candidate shares first, then those of this model or provider."""
    common_h, common_id, by_model, by_provider = budgets
    if common_h is not None and common_h < cost:
        return common_h, common_id
    if by_model or by_provider:
        sb = specific_budget(mid, provider, by_model, by_provider)
        if sb is not None and sb[0] < cost:
            return sb
    return None


def _pools(pids: Sequence[str], pools: Mapping[str, Any], now: datetime, need: int) -> tuple[Any, bool, str | None]:
    """(the block-on-exhaust pool that cannot take the request, or None; whether a free
    pool can; that pool's id)."""
    free, pool_id = False, None
    for pid in pids:
        p = pools.get(pid)
        if p is None:
            continue
        usable = p.usable(now, need)
        if not usable and p.on_exhaust == "block":
            return p, False, None
        if usable and p.free and not free:
            free, pool_id = True, p.pool_id
    return None, free, pool_id


def _deployments(mid: str, provider: str, keys: Mapping[str, Sequence[str]] | None, hget: Any, now: datetime
                 ) -> tuple[Sequence[str | None], float, tuple[Any, ...] | None]:
    """(usable deployments best first, the first one's latency, None) or ((), 0.0, why not):
    open circuits, bad keys, half-open probes in flight."""
    if keys is None:  # one deployment per model: the model's and the provider key's health
        h = hget(mid)
        if h is not None and not h.available(now):
            return (), 0.0, unavailable(mid, h, now)
        kh = hget(provider)
        if kh is not None and kh.bad and kh.blocked(now):
            return (), 0.0, (mid, "key %s marked bad (%s)", (provider, kh.bad_reason))
        return NO_KEYS, (h.latency_ewma_ms if h is not None and h.latency_ewma_ms is not None else 0.0), None
    pkeys = keys.get(provider)
    if not pkeys:
        return (), 0.0, (mid, "no API key configured for %s", (provider,))
    if len(pkeys) == 1:  # the common case
        k0 = pkeys[0]
        kh = hget(k0)
        if kh is not None and kh.bad and kh.blocked(now):
            return (), 0.0, (mid, "key %s marked bad (%s)", (k0, kh.bad_reason))
        dh = hget(mid + "@" + k0)
        if dh is not None and not dh.available(now):
            return (), 0.0, unavailable(mid, dh, now)
        return pkeys, (dh.latency_ewma_ms if dh is not None and dh.latency_ewma_ms is not None else 0.0), None
    deps, lat, why = usable_keys(mid, pkeys, hget, now)
    return (deps, lat, None) if deps else ((), 0.0, (mid, why))


def _rank(kept: list[Candidate], below: list[Candidate], policy: Policy, task: str, floor: float, use_floor: bool,
          fallback: bool) -> tuple[list[Candidate], list[tuple[Candidate, str, tuple[Any, ...]]], float]:
    """Order the priced candidates by the policy: (kept in order, dropped late with their
    reason, the floor that applied). A quality margin raises the floor to within `margin`
    of the best; cascade puts the cheapest first, then escalates by quality."""
    late = [(c, "quality %.2f < floor %.2f for %s", (c.quality, floor, task)) for c in below]
    margin = policy.quality_margin
    qbest = None
    if margin is not None and use_floor and len(kept) > 1:
        # relative floor: within `margin` of the best candidate that survived every filter
        qbest = max(c.quality for c in kept)
        rel = qbest - margin
        if policy.name != "cascade" and rel > floor:  # cascade: applies to the escalation steps only
            floor = rel
            low = [c for c in kept if c.quality < rel - 1e-12]
            if low:
                late += [(c, "quality %.2f < best %.2f - margin %.2f", (c.quality, qbest, margin)) for c in low]
                kept = [c for c in kept if c.quality >= rel - 1e-12]
    if len(kept) > 1 and policy.name == "cascade" and not fallback:
        # the cheapest first (O(n)), then escalation by quality among models meeting the task floor
        first = min(kept, key=_RANK_KEY)
        full_floor = policy.floor(task)
        if qbest is not None and margin is not None:
            full_floor = max(full_floor, qbest - margin)
        late += [(c, "quality %.2f < floor %.2f to escalate to", (c.quality, full_floor))
                 for c in kept if c.quality < full_floor and c is not first]
        # escalation: best quality first, then cheapest, fastest, by id (the index keeps it total)
        esc = [(-c.quality, c.cost, c.latency_ms, c.info.id, i) for i, c in enumerate(kept)
               if c.quality >= full_floor and c is not first]
        esc.sort()
        kept = [first] + [kept[e[4]] for e in esc]
    elif len(kept) > 1:
        kept.sort(key=_RANK_KEY)
    return kept, late, floor


def _plan(kept: list[Candidate], reasons: list[Any], policy: Policy, floor: float, features: Features,
          rule_label: str | None, late: list[tuple[Candidate, str, tuple[Any, ...]]], below_floor_fallback: bool
          ) -> RoutePlan:
    """The plan: each kept candidate's deployments in order, up to `max_attempts` steps."""
    pname = policy.name
    steps: list[PlanStep] = []
    limit = max(1, policy.max_attempts)
    for c in kept:
        for k in c.deployments:
            steps.append(PlanStep(c.info.card, k, c.cost, c.free, c.pool_id, c.quality))
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


def _summary(pname: str, kept: list[Candidate], reasons: list[Any], floor: float, f: Features,
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
    best = kept[0]
    what = f"free pool {best.pool_id}" if best.free else f"expected ${_fmt(best.cost)}"
    floor_txt = f" (below floor {floor:.2f}: nothing meets it)" if below else (
        f" >= floor {floor:.2f}" if pname in ("free-first", "cheapest", "balanced", "cascade") else "")
    return f"{pre}: {best.info.id} for {f.task}, {what}, quality {best.quality:.2f}{floor_txt}"


def _fmt(d: Decimal) -> str:
    """Money in plain decimals, never scientific notation: 0.000123, 0.00000025."""
    if d == 0:
        return "0"
    if d >= Decimal("0.000001"):
        return f"{d:.6f}".rstrip("0").rstrip(".")
    return f"{Decimal(f'{d:.3g}'):f}".rstrip("0").rstrip(".")  # 3 significant digits
