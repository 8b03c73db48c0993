"""Pure routing core: every filter and policy, no I/O."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from router.engine import choose
from router.health import HealthBook
from router.policies import Policy, Rule, policy_for_model
from tests.router.routing_helpers import NOW, budget, card, feats, free_pool, view

CHEAP = card("openai:mini", "0.15", "0.60", q=0.75)
MID = card("anthropic:sonnet", "3", "15", q=0.9, caps=("tools", "vision"))
TOP = card("openai:big", "10", "30", q=0.95, caps=("tools", "vision", "json_schema"))
FREE = card("gemini:flash", "0.30", "2.50", q=0.8, caps=("tools", "vision", "json_schema"))
WEAK_FREE = card("groq:tiny", "0.05", "0.08", q=0.4)
ALL = [CHEAP, MID, TOP, FREE, WEAK_FREE]
FREEVIEW = view({"gemini-free": (free_pool("gemini-free"), ("gemini:flash",)),
                 "groq-free": (free_pool("groq-free"), ("groq:tiny",))})


def ids(plan):
    return [s.model_id for s in plan.steps]


def reason(plan, mid):
    return next(r for r in plan.reasons if r.model_id == mid)


def test_free_first_puts_free_quota_first_then_cheapest_paid():
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("free-first"), NOW)
    assert ids(plan) == ["gemini:flash", "openai:mini", "anthropic:sonnet", "openai:big"]
    s = plan.steps[0]
    assert s.free and s.pool_id == "gemini-free" and s.expected_cost_usd == 0
    # the free model below this task's quality floor is dropped, with the reason
    r = reason(plan, "groq:tiny")
    assert not r.kept and "floor" in r.reason
    assert plan.policy == "free-first" and "gemini:flash" in plan.reason and "free pool gemini-free" in plan.reason


def test_expected_cost_is_exact_decimal():
    plan = choose(feats("chat", inp=1000, out=500), [CHEAP], view(), {}, Policy("cheapest"), NOW)
    # 1000 * 0.15/1M + 500 * 0.60/1M
    assert plan.steps[0].expected_cost_usd == Decimal("0.00045")


def test_cny_price_converted_with_fx():
    ds = card("deepseek:chat", "2", "3", currency="CNY", regions=("cn",), ctx=2_000_000)
    plan = choose(feats(inp=1_000_000, out=0), [ds], view(), {}, Policy("cheapest"), NOW)
    assert plan.steps[0].expected_cost_usd == Decimal("2") * Decimal("0.1404")


def test_time_discount_uses_the_clock_passed_in():
    ds = card("deepseek:chat", "1", "2", ctx=2_000_000, time_discounts=[{"start": "16:30", "end": "00:30", "multiplier": "0.5"}])
    day = choose(feats(inp=1_000_000, out=0), [ds], view(), {}, Policy("cheapest"), NOW)
    night = choose(feats(inp=1_000_000, out=0), [ds], view(), {}, Policy("cheapest"), NOW.replace(hour=17))
    assert day.steps[0].expected_cost_usd == Decimal(1)
    assert night.steps[0].expected_cost_usd == Decimal("0.5")


def test_cheapest_orders_by_expected_cost_free_counts_zero():
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("cheapest"), NOW)
    assert ids(plan) == ["gemini:flash", "openai:mini", "anthropic:sonnet", "openai:big"]
    plan = choose(feats("chat"), ALL, view(), {}, Policy("cheapest"), NOW)
    assert ids(plan)[0] == "openai:mini"  # groq:tiny is cheaper but below the floor


def test_best_respects_cost_cap():
    plan = choose(feats("code"), ALL, view(), {}, Policy("best"), NOW)
    assert ids(plan)[:2] == ["openai:big", "anthropic:sonnet"]
    capped = choose(feats("code"), ALL, view(), {}, Policy("best", max_cost_usd=Decimal("0.02")), NOW)
    assert ids(capped)[0] == "anthropic:sonnet"
    r = reason(capped, "openai:big")
    assert not r.kept and "cap" in r.reason and r.expected_cost_usd == Decimal("0.025")


def test_balanced_weight_trades_quality_for_cost():
    f = feats("chat", inp=10_000, out=2_000)
    hi_w = choose(f, [CHEAP, TOP], view(), {}, Policy("balanced", cost_weight=0.05), NOW)
    assert ids(hi_w)[0] == "openai:mini"  # big costs $0.16/request = $160 per 1k requests
    lo_w = choose(f, [CHEAP, TOP], view(), {}, Policy("balanced", cost_weight=0.0), NOW)
    assert ids(lo_w)[0] == "openai:big"


def test_cascade_cheap_first_then_best():
    plan = choose(feats("code"), ALL, view(), {}, Policy("cascade", cascade_floor=0.3), NOW)
    # groq:tiny is the cheapest above the cascade floor; escalation goes to the best models
    assert ids(plan) == ["groq:tiny", "openai:big", "anthropic:sonnet", "gemini:flash", "openai:mini"]


def test_capability_filter():
    plan = choose(feats("chat", needs=("vision", "json_schema")), ALL, FREEVIEW, {}, Policy(), NOW)
    assert ids(plan) == ["gemini:flash", "openai:big"]
    assert "lacks json_schema, vision" == reason(plan, "openai:mini").reason


def test_context_window_counts_expected_or_max_output():
    small = card("x:small", ctx=8000)
    assert ids(choose(feats(inp=7000, out=900), [small], view(), {}, Policy(), NOW)) == ["x:small"]
    p = choose(feats(inp=7000, out=1100), [small], view(), {}, Policy(), NOW)
    assert not p.steps and "context window 8000 < 8100" in reason(p, "x:small").reason
    p = choose(feats(inp=7000, out=100, max_output_tokens=2000), [small], view(), {}, Policy(), NOW)
    assert not p.steps
    # a max_tokens above the model's max output is clamped to it (not a reason to drop the model):
    # the context check and the estimate use the clamped value
    capped = card("x:capped", max_output=1000)
    p = choose(feats(max_output_tokens=4000), [capped], view(), {}, Policy(), NOW)
    assert ids(p) == ["x:capped"]
    small_capped = card("x:small-capped", ctx=8000, max_output=500)
    p = choose(feats(inp=7000, out=100, max_output_tokens=2**31 - 1), [small_capped], view(), {}, Policy(), NOW)
    assert ids(p) == ["x:small-capped"]


def test_allow_and_deny_lists():
    plan = choose(feats(), ALL, view(), {}, Policy(allow=("openai:*",), deny=("openai:big",)), NOW)
    assert ids(plan) == ["openai:mini"]
    assert reason(plan, "openai:big").reason == "in the deny list"
    assert reason(plan, "gemini:flash").reason == "not in the allow list"


def test_region_residency_from_policy_and_metadata():
    eu = card("mistral:small", regions=("eu",))
    cn = card("qwen:plus", regions=("cn",))
    plan = choose(feats(), [CHEAP, eu, cn], view(), {}, Policy(regions=frozenset({"eu"})), NOW)
    assert ids(plan) == ["mistral:small"]
    plan = choose(feats(metadata={"region": "cn"}), [CHEAP, eu, cn], view(), {}, Policy(), NOW)
    assert ids(plan) == ["qwen:plus"]
    assert "region us not allowed" in reason(plan, "openai:mini").reason


def test_exhausted_and_cooling_pools_are_dropped():
    v = view({"gemini-free": (free_pool("gemini-free", exhausted=True), ("gemini:flash",)),
              "groq-rate": (free_pool("groq-rate", cooldown=True), ("openai:mini",))})
    plan = choose(feats(), ALL, v, {}, Policy(), NOW)
    assert "gemini:flash" not in ids(plan) and "openai:mini" not in ids(plan)
    assert "exhausted until" in reason(plan, "gemini:flash").reason
    assert "cooling down" in reason(plan, "openai:mini").reason


def test_paid_on_exhaust_pool_keeps_model_as_paid():
    v = view({"grant": (free_pool("grant", remaining=0, on_exhaust="paid"), ("gemini:flash",))})
    plan = choose(feats(), [FREE], v, {}, Policy(), NOW)
    assert ids(plan) == ["gemini:flash"] and not plan.steps[0].free and plan.steps[0].expected_cost_usd > 0


def test_empty_pool_with_token_need():
    v = view({"tok": (free_pool("tok", remaining=None), ("gemini:flash",))})
    assert choose(feats(inp=5000), [FREE], v, {}, Policy(), NOW).steps[0].free


def test_budgets_drop_candidates_whose_cost_exceeds_headroom():
    v = view(budgets=(budget("monthly", "10", "9.999"),))
    plan = choose(feats("chat"), ALL, v, {}, Policy("cheapest"), NOW)
    # headroom $0.001: mini ($0.00045) fits, sonnet ($0.0105) does not
    assert ids(plan) == ["openai:mini"]
    assert "budget monthly headroom $0.001" in reason(plan, "anthropic:sonnet").reason
    v = view({"gemini-free": (free_pool("gemini-free"), ("gemini:flash",))}, budgets=(budget("m", "1", "1"),))
    assert ids(choose(feats(), ALL, v, {}, Policy(), NOW)) == ["gemini:flash"]  # free costs nothing


def test_scoped_budgets():
    v = view(budgets=(budget("alice", "1", "1", scope="user", match="alice"),
                      budget("oa", "1", "1", scope="provider", match="openai"),
                      budget("soft", "1", "5", hard=False)))
    bob = choose(feats(user="bob"), [CHEAP, MID], v, {}, Policy(), NOW)
    assert ids(bob) == ["anthropic:sonnet"]  # openai provider budget is spent
    alice = choose(feats(user="alice"), [CHEAP, MID], v, {}, Policy(), NOW)
    assert ids(alice) == []
    assert "budget alice" in reason(alice, "anthropic:sonnet").reason
    assert "no model fits" in alice.reason


def test_open_circuit_and_half_open_probe():
    hb = HealthBook(failure_threshold=2, cooloff_s=30)
    hb.failure("openai:mini", NOW)
    assert ids(choose(feats(), [CHEAP], view(), hb, Policy(), NOW)) == ["openai:mini"]
    hb.failure("openai:mini", NOW)
    plan = choose(feats(), [CHEAP], view(), hb, Policy(), NOW)
    assert not plan.steps and "circuit open until 12:00:30" in reason(plan, "openai:mini").reason
    later = NOW + timedelta(seconds=31)
    assert ids(choose(feats(), [CHEAP], view(), hb, Policy(), later)) == ["openai:mini"]  # half-open probe
    hb.started("openai:mini")
    assert not choose(feats(), [CHEAP], view(), hb, Policy(), later).steps  # one probe at a time


def test_keys_expand_to_deployments_least_used_first_and_bad_keys_skipped():
    hb = HealthBook()
    hb.success("openai:mini@K1", 100.0, NOW)
    hb.success("openai:mini@K1", 100.0, NOW)
    keys = {"openai": ("K1", "K2", "K3"), "anthropic": ("A1",)}
    plan = choose(feats(), [CHEAP, MID], view(), hb, Policy("cheapest"), NOW, keys=keys)
    assert [s.deployment for s in plan.steps] == ["openai:mini@K2", "openai:mini@K3", "openai:mini@K1",
                                                   "anthropic:sonnet@A1"]
    hb.mark_bad("A1", "401")
    plan = choose(feats(), [CHEAP, MID], view(), hb, Policy("cheapest"), NOW, keys=keys)
    assert "key A1 marked bad" in reason(plan, "anthropic:sonnet").reason
    plan = choose(feats(), [CHEAP, FREE], view(), hb, Policy(), NOW, keys=keys)
    assert reason(plan, "gemini:flash").reason == "no API key configured for gemini"


def test_max_attempts_bounds_the_plan_not_the_reasons():
    plan = choose(feats(), ALL, view(), {}, Policy("best", max_attempts=2), NOW)
    assert len(plan.steps) == 2
    assert sum(r.kept for r in plan.reasons) == 5 and reason(plan, "openai:mini").rank == 4


def test_pinned_by_id_and_alias():
    aliased = CHEAP.model_copy(update={"aliases": ("gpt-mini",)})
    for name in ("openai:mini", "gpt-mini", "mini"):
        plan = choose(feats(), [aliased, MID], view(), {}, policy_for_model(name, Policy()), NOW)
        assert ids(plan) == ["openai:mini"] and plan.policy == "pinned"
    plan = choose(feats(needs=("vision",)), [aliased, MID], view(), {}, policy_for_model("openai:mini", Policy()), NOW)
    assert not plan.steps and "lacks vision" in plan.reason


def test_virtual_models_map_to_policies():
    base = Policy("balanced", cost_weight=0.2)
    assert policy_for_model("auto", base) is base
    assert policy_for_model("auto:cheap", base).name == "cheapest"
    assert policy_for_model("auto:best", base).name == "best"
    free = policy_for_model("auto:free", base)
    plan = choose(feats(), ALL, FREEVIEW, {}, free, NOW)
    assert ids(plan) == ["gemini:flash"] and "free-only" in reason(plan, "openai:mini").reason


def test_rules_first_match_switches_policy_and_candidates():
    rules = (
        Rule(name="code-cheap", task=frozenset({"code"}), models=("openai:*",), policy="cheapest"),
        Rule(name="vip", user="ceo*", policy="best"),
        Rule(name="batch", tag="batch", metadata={"tier": "low"}, policy="cheapest"),
    )
    pol = Policy("free-first", rules=rules)
    code = choose(feats("code"), ALL, FREEVIEW, {}, pol, NOW)
    assert code.rule == "code-cheap" and code.policy == "cheapest" and ids(code) == ["openai:mini", "openai:big"]
    assert reason(code, "gemini:flash").reason == "excluded by code-cheap"
    vip = choose(feats("chat", user="ceo-bob"), ALL, FREEVIEW, {}, pol, NOW)
    assert vip.rule == "vip" and ids(vip)[0] == "openai:big"
    batch = choose(feats(tags=("batch",), metadata={"tier": "low"}), ALL, view(), {}, pol, NOW)
    assert batch.rule == "batch" and batch.policy == "cheapest"
    assert choose(feats(tags=("batch",)), ALL, view(), {}, pol, NOW).rule is None


def test_nothing_meets_floor_keeps_best_available():
    plan = choose(feats("code"), [WEAK_FREE], view(), {}, Policy(), NOW)
    assert ids(plan) == ["groq:tiny"] and "below floor" in plan.reason


def test_tie_break_is_deterministic_by_id():
    a, b = card("p:b"), card("p:a")
    for order in ([a, b], [b, a]):
        assert ids(choose(feats(), order, view(), {}, Policy("cheapest"), NOW)) == ["p:a", "p:b"]


def test_unknown_price_is_dropped_even_with_free_quota_local_is_free():
    unpriced = card("x:unpriced", None)
    local = card("ollama:llama", None, regions=("local",))
    plan = choose(feats(), [unpriced, local], view(), {}, Policy(), NOW)
    assert ids(plan) == ["ollama:llama"] and plan.steps[0].expected_cost_usd == 0
    assert reason(plan, "x:unpriced").reason == (
        "no known price (set one in config: models: {overrides: {x:unpriced: {price: {input: ..., output: ...}}}})")
    # a free pool does not make an unpriced model routable (an overflow would bill as $0) ...
    fv = view({"x-free": (free_pool("x-free"), ("x:unpriced",))})
    for pol in ("free-first", "cheapest", "best", "balanced", "cascade"):
        plan = choose(feats(), [unpriced, local], fv, {}, Policy(pol), NOW)
        assert ids(plan) == ["ollama:llama"], pol
        assert reason(plan, "x:unpriced").reason.startswith("no known price (set one in config")
    # ... nor pinning it; a price set by the user (even 0) makes it routable
    plan = choose(feats(), [unpriced], fv, {}, Policy("pinned", pinned="x:unpriced"), NOW)
    assert not plan.steps and "no known price" in plan.reason
    priced = card("x:unpriced", "0", "0")
    assert ids(choose(feats(), [priced], fv, {}, Policy(), NOW)) == ["x:unpriced"]


def test_predictor_overrides_quality_and_chinese_bonus():
    class P:
        def predict(self, features, text, model_ids):
            return {"openai:mini": 0.99}

    plan = choose(feats("code"), [CHEAP, TOP], view(), {}, Policy("best"), NOW, predictor=P(), text="x")
    assert ids(plan)[0] == "openai:mini"
    qwen = card("qwen:plus", q=0.9, regions=("cn",))
    plan = choose(feats(chinese=True), [qwen, TOP], view(), {}, Policy("best"), NOW)
    assert ids(plan)[0] == "qwen:plus" and plan.steps[0].quality == pytest.approx(0.95)


def test_plan_serialises_and_reasons_convert():
    plan = choose(feats(), ALL, FREEVIEW, {}, Policy(), NOW)
    d = plan.to_dict()
    assert d["plan"][0]["model"] == "gemini:flash" and len(d["candidates"]) == 5
    models = plan.candidates()
    assert models[0].model_id and all(isinstance(m.reason, str) for m in models)


def test_thinking_models_budget_hidden_reasoning_tokens_on_hard_tasks():
    o = card("openai:o-think", "1", "4", caps=("tools", "reasoning"))
    code = choose(feats("code", inp=1000, out=500), [o], view(), {}, Policy("cheapest"), NOW)
    chat = choose(feats("chat", inp=1000, out=500), [o], view(), {}, Policy("cheapest"), NOW)
    capped = choose(feats("code", inp=1000, out=500, max_output_tokens=500), [o], view(), {}, Policy("cheapest"), NOW)
    assert chat.steps[0].expected_cost_usd == Decimal("0.003")  # 1000*1/1M + 500*4/1M
    assert code.steps[0].expected_cost_usd == Decimal("0.005")  # output x2 (router.tokens.REASONING_MULTIPLIER)
    assert capped.steps[0].expected_cost_usd == Decimal("0.003")


def test_candidates_fast_path_matches_the_reasons():
    for pol in ("free-first", "cascade", "best"):
        plan = choose(feats("code", needs=("tools",)), ALL + [card("x:novis", caps=())], FREEVIEW, {}, Policy(pol), NOW)
        fast = [m.model_dump() for m in plan.candidates()]
        slow = [r.to_model().model_dump() for r in plan.reasons]
        assert fast == slow and plan.candidates()[0].model_dump() == slow[0]


def test_time_discount_validity_bound_inside_a_minute_is_exact():
    from datetime import timedelta

    ends = NOW + timedelta(seconds=30)  # the promotion ends mid-minute
    ds = card("deepseek:promo", "1", "2", ctx=2_000_000, time_discounts=[
        {"start": "00:00", "end": "24:00", "multiplier": "0.5", "valid_until": ends.isoformat()}])
    from router.cards import prepare

    cands = prepare([ds])
    f = feats(inp=1_000_000, out=0)
    assert choose(f, cands, view(), {}, Policy("cheapest"), NOW).steps[0].expected_cost_usd == Decimal("0.5")
    late = NOW + timedelta(seconds=45)
    assert choose(f, cands, view(), {}, Policy("cheapest"), late).steps[0].expected_cost_usd == Decimal(1)


# ------------------------------------------------------------------ relative quality floor (quality_margin)


def test_quality_margin_keeps_only_candidates_within_margin_of_the_best():
    # chat floor 0.50: every model but groq:tiny meets it; best kept quality is TOP's 0.95
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("free-first", quality_margin=0.1), NOW)
    assert ids(plan) == ["anthropic:sonnet", "openai:big"]  # >= 0.85: the free 0.80 model no longer qualifies
    r = reason(plan, "gemini:flash")
    assert not r.kept and r.reason == "quality 0.80 < best 0.95 - margin 0.10"
    assert reason(plan, "openai:mini").reason == "quality 0.75 < best 0.95 - margin 0.10"
    assert "groq:tiny" in [x.model_id for x in plan.reasons if "floor 0.50" in x.reason]  # the absolute floor first
    assert "floor 0.85" in plan.reason
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("free-first", quality_margin=0.15), NOW)
    assert ids(plan) == ["gemini:flash", "anthropic:sonnet", "openai:big"]  # 0.80 >= 0.95 - 0.15: free first again
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("cheapest", quality_margin=0.1), NOW)
    assert ids(plan) == ["anthropic:sonnet", "openai:big"]
    # the absolute floor still applies when it is higher than best - margin
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy("cheapest", quality_margin=1.0), NOW)
    assert ids(plan) == ["gemini:flash", "openai:mini", "anthropic:sonnet", "openai:big"]
    assert ids(choose(feats("chat"), ALL, FREEVIEW, {}, Policy("free-first"), NOW))[0] == "gemini:flash"  # off


def test_quality_margin_is_relative_to_the_best_candidate_that_survived_the_filters():
    # TOP is the only json_schema+vision... drop it with a cost cap: the best kept is then MID (0.90)
    pol = Policy("cheapest", quality_margin=0.1, max_cost_usd=Decimal("0.02"))
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, pol, NOW)
    assert "openai:big" not in ids(plan) and "cap" in reason(plan, "openai:big").reason
    assert ids(plan) == ["gemini:flash", "anthropic:sonnet"]  # >= 0.90 - 0.10 = 0.80
    assert reason(plan, "openai:mini").reason == "quality 0.75 < best 0.90 - margin 0.10"


def test_quality_margin_follows_a_predictor_whose_scale_varies_per_prompt():
    class P:  # a learned predictor: low absolute numbers on a hard prompt, same ranking
        def __init__(self, scale):
            self.scale = scale

        def predict(self, features, text, model_ids):
            base = {"gemini:flash": 0.8, "openai:mini": 0.75, "anthropic:sonnet": 0.9, "openai:big": 0.95,
                    "groq:tiny": 0.4}
            return {m: base[m] * self.scale for m in model_ids}

    pol = Policy("free-first", quality_floors={"chat": 0.0}, quality_margin=0.08)
    for scale in (1.0, 0.5):
        plan = choose(feats("chat"), ALL, FREEVIEW, {}, pol, NOW, predictor=P(scale), text="x")
        kept = ids(plan)
        assert "openai:big" in kept and "groq:tiny" not in kept
        assert all(s.quality >= 0.95 * scale - 0.08 - 1e-9 for s in plan.steps)


def test_quality_margin_in_cascade_raises_the_escalation_floor_only():
    pol = Policy("cascade", quality_margin=0.05)
    plan = choose(feats("chat"), ALL, FREEVIEW, {}, pol, NOW)
    # the cheap first step is untouched (free, cascade floor 0); escalation: >= 0.95 - 0.05
    assert ids(plan) == ["gemini:flash", "openai:big", "anthropic:sonnet"]
    assert reason(plan, "openai:mini").reason == "quality 0.75 < floor 0.90 to escalate to"
    assert "openai:mini" in ids(choose(feats("chat"), ALL, FREEVIEW, {}, Policy("cascade"), NOW))  # without it


def test_quality_margin_rule_and_validation():
    rule = Rule(task="code", settings={"quality_margin": 0.0})
    plan = choose(feats("code"), ALL, FREEVIEW, {}, Policy("cheapest", rules=(rule,)), NOW)
    assert ids(plan) == ["openai:big"]  # margin 0: only the best
    with pytest.raises(ValueError, match="quality_margin"):
        Policy(quality_margin=1.5)


@pytest.mark.parametrize("pol", ["free-first", "cheapest", "best", "balanced", "cascade"])
def test_every_kept_candidate_has_every_field_set(pol):
    """`_admit` builds `Candidate`s slot by slot (no __init__ call): a field added to the
    record but not set there would surface here as an AttributeError."""
    from dataclasses import fields

    from router.plan import Candidate

    plan = choose(feats("chat"), ALL, FREEVIEW, {}, Policy(pol), NOW)
    assert plan._kept
    for c in plan._kept:
        assert isinstance(c, Candidate)
        values = {f.name: getattr(c, f.name) for f in fields(Candidate)}
        assert values["info"].id == c.info.id and values["rank_key"]
