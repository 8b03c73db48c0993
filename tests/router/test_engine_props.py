"""Property tests: a plan never contains a model lacking a required capability,
drawing on an exhausted pool, exceeding its context window or breaking a budget;
and it does not depend on the order of the candidates."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine import choose, prepare
from router.policies import POLICIES, Policy
from tests.router.routing_helpers import NOW, budget, card, feats, free_pool, view

CAPS = ["tools", "vision", "json_schema", "reasoning"]
PROVIDERS = ["pa", "pb", "pc"]


@st.composite
def cards(draw):
    n = draw(st.integers(1, 8))
    out = []
    for i in range(n):
        prov = draw(st.sampled_from(PROVIDERS))
        caps = tuple(draw(st.sets(st.sampled_from(CAPS))))
        price = draw(st.sampled_from([None, ("0", "0"), ("0.1", "0.4"), ("1", "3"), ("5", "15")]))
        out.append(card(f"{prov}:m{i}", *(price or (None, None)), q=draw(st.sampled_from([0.3, 0.6, 0.8, 0.95])),
                        caps=caps, ctx=draw(st.sampled_from([4_000, 32_000, 200_000])),
                        regions=(draw(st.sampled_from(["us", "eu", "cn", "local"])),)))
    return out


@st.composite
def scenario(draw):
    cs = draw(cards())
    pools = {}
    for c in cs:
        kind = draw(st.sampled_from(["none", "free", "exhausted", "cooling", "empty", "paid-grant-empty"]))
        if kind == "none":
            continue
        pid = f"pool-{c.id}"
        p = {"free": free_pool(pid), "exhausted": free_pool(pid, exhausted=True),
             "cooling": free_pool(pid, cooldown=True), "empty": free_pool(pid, remaining=0),
             "paid-grant-empty": free_pool(pid, remaining=0, on_exhaust="paid")}[kind]
        pools[pid] = (p, (c.id,))
    budgets = tuple(
        budget(f"b{i}", limit, spent, scope=scope, match=match)
        for i, (limit, spent, scope, match) in enumerate(draw(st.lists(st.tuples(
            st.sampled_from(["0.001", "0.01", "1"]), st.sampled_from(["0", "0.0009", "0.5", "2"]),
            st.sampled_from(["global", "provider", "model"]),
            st.sampled_from(["*", "pa", "pb", "pa:m0", "pb:m1"])), max_size=3))))
    needs = tuple(draw(st.sets(st.sampled_from(["tools", "vision", "json_schema"]))))
    f = feats(draw(st.sampled_from(["chat", "code", "math"])), needs=needs,
              inp=draw(st.sampled_from([10, 3_000, 30_000])), out=draw(st.sampled_from([50, 900])))
    policy = Policy(draw(st.sampled_from([p for p in POLICIES if p != "pinned"])),
                    free_only=draw(st.booleans()), max_attempts=20,
                    quality_margin=draw(st.sampled_from([None, 0.0, 0.1, 0.4])))
    return cs, view(pools, budgets), f, policy


def _budget_ok(b, step) -> bool:
    if b.scope == "global":
        applies = True
    elif b.scope == "provider":
        applies = b.match in ("*", step.provider)
    else:
        applies = b.match in ("*", step.model_id)
    return not applies or b.headroom() >= step.expected_cost_usd


@settings(max_examples=80, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_plan_respects_capabilities_pools_budgets_and_is_order_independent(sc, rnd):
    cs, v, f, policy = sc
    plan = choose(f, cs, v, {}, policy, NOW)
    for s in plan.steps:
        assert f.needs <= s.card.capabilities, "a step lacks a required capability"
        assert v.blocked(s.model_id, NOW, f.total_tokens) is None, "a step draws on a blocked pool"
        assert s.card.context_window >= f.total_tokens
        assert all(_budget_ok(b, s) for b in v.budgets), "a step breaks a hard budget"
        assert s.expected_cost_usd >= Decimal(0)
        if s.free:
            assert s.expected_cost_usd == 0 and v.free_pool(s.model_id, NOW, f.total_tokens) is not None
        if policy.free_only:
            assert s.free
    assert len({r.model_id for r in plan.reasons}) == len(cs)  # every candidate has exactly one reason
    if policy.quality_margin is not None and policy.name in ("free-first", "cheapest", "balanced") and plan.steps \
            and "below floor" not in plan.reason:  # relative floor: within the margin of the best kept candidate
        best = max(r.quality for r in plan.reasons if r.kept)
        assert all(s.quality >= best - policy.quality_margin - 1e-9 for s in plan.steps)
    shuffled = list(cs)
    rnd.shuffle(shuffled)
    again = choose(f, shuffled, v, {}, policy, NOW)
    assert [s.deployment for s in again.steps] == [s.deployment for s in plan.steps]
    prepared = prepare(cs)  # the memoised path gives the same plan, also on a second call
    for _ in range(2):
        p2 = choose(f, prepared, v, {}, policy, NOW)
        assert [s.deployment for s in p2.steps] == [s.deployment for s in plan.steps]
        assert sorted((r.model_id, r.kept, r.reason) for r in p2.reasons) == sorted(
            (r.model_id, r.kept, r.reason) for r in plan.reasons)


# ---------------------------------------------------------------- expected cost is never negative

from router.catalog import load_catalog  # noqa: E402
from router.tasks import extract_features  # noqa: E402
from router.types import MAX_TOKENS_LIMIT, ChatRequest, Message  # noqa: E402

_CATALOG = load_catalog().all()
_PREPARED = prepare(_CATALOG)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(text=st.text(max_size=400), max_tokens=st.one_of(st.none(), st.integers(1, MAX_TOKENS_LIMIT)),
       task=st.sampled_from([None, "code", "math", "translation", "chat", "creative"]),
       policy=st.sampled_from(["free-first", "cheapest", "best", "balanced", "cascade"]))
def test_expected_costs_never_negative_and_max_tokens_is_clamped_not_dropped(text, max_tokens, task, policy):
    req = ChatRequest(messages=[Message(role="user", content=text or "hi")], max_tokens=max_tokens,
                      metadata={"task": task} if task else {})
    f = extract_features(req)
    assert f.input_tokens >= 0 and f.expected_output_tokens >= 0
    plan = choose(f, _PREPARED, view(), {}, Policy(policy, max_attempts=50), NOW)
    assert plan.steps  # a huge max_tokens never leaves the request without a route
    for r in plan.reasons:
        assert r.expected_cost_usd is None or r.expected_cost_usd >= 0, r
        assert "max output" not in r.reason


@settings(max_examples=60, deadline=None, derandomize=True)
@given(inp=st.integers(-10**9, 10**6), out=st.integers(-10**9, 10**6))
def test_estimator_never_prices_negative_counts(inp, out):
    """Features from a custom estimator with negative counts still price at >= 0."""
    plan = choose(feats(inp=inp, out=out), _PREPARED, view(), {}, Policy("cheapest", max_attempts=50), NOW)
    assert all(s.expected_cost_usd >= 0 for s in plan.steps)
    assert all(r.expected_cost_usd is None or r.expected_cost_usd >= 0 for r in plan.reasons)
