"""Executor: fallback, billing and learning, with scripted FakeProviders (no HTTP)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from providers.fake import FakeProvider, Script, reply
from router.engine import choose
from router.errors import (
    AuthFailed,
    BadRequest,
    BudgetExceeded,
    ContentFiltered,
    ContextTooLong,
    MalformedResponse,
    NoRouteAvailable,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)
from router.executor import Executor
from router.health import HealthBook
from router.policies import Policy
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec, PoolSpec
from router.streaming import open_stream
from router.tasks import extract_features
from router.types import ChatRequest, Message, ResponseFormat, TextDelta, Usage, UsageEvent
from tests.router.routing_helpers import NOW, card

# price per 1M tokens: a 1/2, b 2/4, c 4/8 -> a 10-in/5-out reply costs 0.00002, b 0.00004, c 0.00008
A = card("pa:a", "1", "2", q=0.8, ctx=8_000, caps=("tools", "json_schema"))
B = card("pb:b", "2", "4", q=0.85, ctx=16_000, caps=("tools", "json_schema"))
C = card("pc:c", "4", "8", q=0.9, ctx=200_000, caps=("tools", "json_schema"))
COST = {"pa": Decimal("0.00002"), "pb": Decimal("0.00004"), "pc": Decimal("0.00008")}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


def req(text: str = "hello there", **kw) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **kw)


def setup(scripts: dict[str, list[Script]], *, pools=(), budgets=(), policy: Policy | None = None, cards=(A, B, C),
          keys=None, providers=None):
    clock = Clock()
    ledger = Ledger(MemoryStore(), list(pools), list(budgets))
    provs = providers or {name: FakeProvider(name=name, scripts=list(s), repeat_last=False) for name, s in scripts.items()}
    ex = Executor(provs, ledger=ledger, health=HealthBook(), clock=clock)

    async def plan_for(r: ChatRequest):
        view = await ledger.view(clock(), [c.id for c in cards])
        return choose(extract_features(r), list(cards), view, ex.health, policy or Policy("cheapest"), clock(),
                      keys=keys)

    return ex, provs, ledger, clock, plan_for


def err(cls, **kw):
    return Script(error=cls("boom", **kw))


async def test_success_bills_exact_decimal():
    ex, provs, _, _, plan_for = setup({"pa": [reply("hi")], "pb": [], "pc": []})
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.response.text == "hi" and out.route.model_id == "pa:a"
    assert out.route.cost_usd == COST["pa"] and out.route.attempts[0].usage == Usage(input_tokens=10, output_tokens=5)
    assert provs["pa"].calls[0].model == "a"  # the vendor model id, no provider prefix


async def test_rate_limited_falls_back_and_cools_down_with_retry_after():
    ex, provs, ledger, clock, plan_for = setup({"pa": [err(RateLimited, retry_after=42.0)], "pb": [reply("b")], "pc": []})
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.response.text == "b" and out.route.fallback_chain == ["pa:a", "pb:b"]
    first, second = out.route.attempts
    assert first.error_type == "RateLimited" and first.usage is None and first.cost_usd == 0  # released, not billed
    assert out.route.cost_usd == COST["pb"]
    view = await ledger.view(clock(), ["pa:a"])
    assert view.blocked("pa:a", clock()).cooldown_until == clock() + timedelta(seconds=42)
    assert "fell back to pb:b after pa:a (RateLimited)" in out.route.reason
    plan = await plan_for(r)  # the next request skips the cooling model
    assert [s.model_id for s in plan.steps] == ["pb:b", "pc:c"]
    clock.now = NOW + timedelta(seconds=43)  # ... until Retry-After has passed
    assert [s.model_id for s in (await plan_for(r)).steps][0] == "pa:a"


async def test_quota_exhausted_mid_day_marks_the_free_pool_exhausted():
    pool = PoolSpec(id="pa-free", models=("pa:a",), free=True, limits=({"per": "day", "requests": 100},))
    ex, provs, ledger, clock, plan_for = setup({"pa": [err(QuotaExhausted)], "pb": [reply("b")], "pc": []},
                                               pools=[pool], policy=Policy("free-first"))
    r = req()
    plan = await plan_for(r)
    assert plan.steps[0].free and plan.steps[0].model_id == "pa:a"
    out = await ex.run(plan, r)
    assert out.route.model_id == "pb:b" and out.route.cost_usd == COST["pb"] and not out.route.free_quota_used
    for later in (timedelta(hours=2), timedelta(hours=11, minutes=59)):  # the rest of the (UTC) day
        clock.now = NOW + later
        plan = await plan_for(r)
        assert "pa:a" not in [s.model_id for s in plan.steps]
        assert "exhausted until 00:00:00" in next(x for x in plan.reasons if x.model_id == "pa:a").reason
    clock.now = NOW + timedelta(hours=12, minutes=1)  # the daily window reset: free again
    plan = await plan_for(r)
    assert plan.steps[0].model_id == "pa:a" and plan.steps[0].free


async def test_free_pool_call_costs_nothing():
    pool = PoolSpec(id="pa-free", models=("pa:a",), free=True, limits=({"per": "day", "requests": 100},))
    ex, _, _, _, plan_for = setup({"pa": [reply("a")], "pb": [], "pc": []}, pools=[pool], policy=Policy("free-first"))
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.route.cost_usd == 0 and out.route.free_quota_used and out.route.attempts[0].free_pool == "pa-free"


@pytest.mark.parametrize("cls", [Unavailable, Timeout])
async def test_transient_errors_fall_back_and_trip_the_breaker(cls):
    ex, provs, _, clock, plan_for = setup({"pa": [err(cls)] * 3, "pb": [reply("b")] * 3, "pc": []})
    r = req()
    for _ in range(3):
        out = await ex.run(await plan_for(r), r)
        assert out.route.model_id == "pb:b" and out.route.cost_usd == COST["pb"]
    assert ex.health["pa:a"].state(clock()) == "open"
    plan = await plan_for(r)
    assert plan.steps[0].model_id == "pb:b" and "circuit open" in plan.reasons[0].reason
    assert len(provs["pa"].calls) == 3


async def test_malformed_with_billed_usage_is_committed_then_falls_back():
    billed = Usage(input_tokens=10, output_tokens=5)
    ex, _, _, _, plan_for = setup({"pa": [err(MalformedResponse, billed_usage=billed)], "pb": [reply("b")], "pc": []})
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.route.attempts[0].cost_usd == COST["pa"] and out.route.cost_usd == COST["pa"] + COST["pb"]


async def test_context_too_long_skips_models_with_no_larger_window():
    a2 = card("pa:a2", "1", "2", q=0.8, ctx=8_000)
    ex, provs, _, _, plan_for = setup({"pa": [err(ContextTooLong)], "pb": [], "pc": [reply("c")]}, cards=(A, a2, B, C))
    r = req()
    plan = await plan_for(r)
    assert [s.model_id for s in plan.steps][:3] == ["pa:a", "pa:a2", "pb:b"]
    # pb:b has a larger window than pa:a -> it is tried; give it a ContextTooLong as well
    provs["pb"].scripts = [err(ContextTooLong)]
    out = await ex.run(plan, r)
    assert out.route.fallback_chain == ["pa:a", "pb:b", "pc:c"]  # pa:a2 (same 8k window) skipped
    assert len(provs["pa"].calls) == 1


@pytest.mark.parametrize("cls", [BadRequest, ContentFiltered])
async def test_bad_request_and_content_filter_stop(cls):
    ex, provs, _, _, plan_for = setup({"pa": [err(cls)], "pb": [reply("b")], "pc": []})
    r = req()
    with pytest.raises(cls):
        await ex.run(await plan_for(r), r)
    assert provs["pb"].calls == []


async def test_auth_failed_stops_and_marks_the_key_bad():
    provs = {"K1": FakeProvider(name="pa", scripts=[err(AuthFailed)], repeat_last=False),
             "K2": FakeProvider(name="pa", scripts=[reply("k2")])}
    ex, _, _, _, plan_for = setup({}, providers=provs, cards=(A,), keys={"pa": ("K1", "K2")})
    r = req()
    plan = await plan_for(r)
    assert [s.deployment for s in plan.steps] == ["pa:a@K1", "pa:a@K2"]
    with pytest.raises(AuthFailed):
        await ex.run(plan, r)
    assert ex.health["K1"].bad
    plan = await plan_for(r)
    assert [s.deployment for s in plan.steps] == ["pa:a@K2"]
    assert (await ex.run(plan, r)).response.text == "k2"


async def test_keys_are_balanced_least_used_first():
    provs = {"K1": FakeProvider(name="pa", scripts=[reply("1")]), "K2": FakeProvider(name="pa", scripts=[reply("2")])}
    ex, _, _, _, plan_for = setup({}, providers=provs, cards=(A,), keys={"pa": ("K1", "K2")})
    r = req()
    texts = [(await ex.run(await plan_for(r), r)).response.text for _ in range(4)]
    assert texts == ["1", "2", "1", "2"]


async def test_all_fail_raises_no_route_with_attempts():
    ex, _, _, _, plan_for = setup({"pa": [err(Unavailable)], "pb": [err(RateLimited)], "pc": [err(Timeout)]})
    r = req()
    with pytest.raises(NoRouteAvailable) as ei:
        await ex.run(await plan_for(r), r)
    assert [a.error_type for a in ei.value.attempts] == ["Unavailable", "RateLimited", "Timeout"]
    assert isinstance(ei.value.last_error, Timeout)


async def test_hard_budget_exceeded_is_raised_before_any_call():
    b = BudgetSpec(id="tiny", scope="global", period="month", limit_usd=Decimal("0.00001"))
    ex, provs, _, _, _ = setup({"pa": [reply()], "pb": [], "pc": []}, budgets=[b])
    r = req()
    # plan without budgets in the view (as if it changed since): the ledger is the hard stop
    plan = choose(extract_features(r), [A], __import__("router.quota.view").quota.view.LedgerView(), {},
                  Policy("cheapest"), NOW)
    with pytest.raises(BudgetExceeded):
        await ex.run(plan, r)
    assert provs["pa"].calls == []


async def test_cascade_escalates_on_invalid_json_and_bills_both():
    ex, provs, _, _, plan_for = setup({"pa": [reply("not json")], "pb": [], "pc": [reply('{"x": 1}')]},
                                      policy=Policy("cascade"))
    r = req("give me json", response_format=ResponseFormat(type="json_object"))
    out = await ex.run(await plan_for(r), r)
    assert out.response.text == '{"x": 1}' and out.route.fallback_chain == ["pa:a", "pc:c"]
    assert out.route.attempts[0].error_type == "CheckFailed" and "invalid JSON" in out.route.attempts[0].error_message
    assert out.route.cost_usd == COST["pa"] + COST["pc"]


async def test_cascade_verifier_and_refusal():
    ex, _, _, _, plan_for = setup({"pa": [reply("I'm sorry, but I can't help with that")], "pb": [],
                                   "pc": [reply("fine")]}, policy=Policy("cascade"))
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.route.model_id == "pc:c" and out.route.attempts[0].error_message == "refused"
    ex, _, _, _, plan_for = setup({"pa": [reply("x")], "pb": [], "pc": [reply("y")]}, policy=Policy("cascade"))
    out = await ex.run(await plan_for(r), r, verifier=lambda resp, rq: resp.text == "y")
    assert out.response.text == "y"


# ---------------------------------------------------------------- streams


async def collect(s):
    return [ev async for ev in s]


async def test_stream_cut_before_first_token_falls_back_silently():
    cut = Script(events=[UsageEvent(usage=Usage(input_tokens=10))], error=Unavailable("reset"))
    ex, provs, _, _, plan_for = setup({"pa": [cut], "pb": [reply("hello world", chunks=3)], "pc": []})
    r = req(stream=True)
    s = await open_stream(ex, await plan_for(r), r)
    assert s.route.model_id == "pb:b"  # known before the first token is consumed
    events = await collect(s)
    assert "".join(e.text for e in events if e.kind == "text") == "hello world"
    # pa reported 10 input tokens before failing: that usage is billed; pb in full
    assert s.route.attempts[0].cost_usd == Decimal("0.00001")
    assert s.route.cost_usd == Decimal("0.00001") + COST["pb"]


async def test_stream_cut_after_first_token_propagates_and_bills_what_the_vendor_billed():
    billed = Usage(input_tokens=10, output_tokens=2)
    cut = Script(events=[TextDelta(text="par")], error=Unavailable("reset", billed_usage=billed))
    ex, provs, _, _, plan_for = setup({"pa": [cut], "pb": [reply("b")], "pc": []})
    r = req(stream=True)
    s = await open_stream(ex, await plan_for(r), r)
    seen = []
    with pytest.raises(Unavailable):
        async for ev in s:
            seen.append(ev)
    assert [e.text for e in seen] == ["par"]  # one partial answer, never a second one
    assert provs["pb"].calls == []
    assert s.route.cost_usd == Decimal("0.000014") and s.route.attempts[0].usage == billed


async def test_stream_success_commits_reported_usage():
    ex, _, _, _, plan_for = setup({"pa": [reply("abc", chunks=3)], "pb": [], "pc": []})
    r = req(stream=True)
    s = await open_stream(ex, await plan_for(r), r)
    await collect(s)
    assert s.response.text == "abc" and s.route.cost_usd == COST["pa"]


async def test_stream_closed_early_by_caller_commits_an_estimate():
    ex, _, _, _, plan_for = setup({"pa": [Script(events=[TextDelta(text="x" * 40), TextDelta(text="y")])],
                                   "pb": [], "pc": []})
    r = req(stream=True)
    s = await open_stream(ex, await plan_for(r), r)
    await s.__anext__()
    await s.aclose()
    att = s.route.attempts[0]
    assert att.error_type == "Cancelled" and att.usage is not None and att.cost_usd > 0


async def test_native_currency_total_when_one_currency():
    cny = card("pa:a", "2", "8", q=0.8, currency="CNY", caps=("tools", "json_schema"))
    ex, _, _, _, plan_for = setup({"pa": [reply()], "pb": [], "pc": []}, cards=(cny,))
    r = req()
    out = await ex.run(await plan_for(r), r)
    # 10 * 2/1M + 5 * 8/1M = 0.00006 CNY; USD at the bundled 0.1404
    assert out.route.cost_native == Decimal("0.00006") and out.route.currency == "CNY"
    assert out.route.cost_usd == Decimal("0.00006") * Decimal("0.1404")
    assert ex._natives == {}


async def test_stream_rate_limit_headers_on_the_finish_event_are_observed():
    from router.types import FinishEvent

    pool = PoolSpec(id="pa-rpm", models=("pa:a",), limits=({"per": "minute", "requests": 100},))
    fin = FinishEvent(provider_details={"rate_limits": {"limit_requests": 100, "remaining_requests": 0,
                                                        "reset_requests_s": 30.0}})
    ex, _, ledger, clock, plan_for = setup({"pa": [Script(events=[TextDelta(text="x"), fin])], "pb": [], "pc": []},
                                           pools=[pool])
    r = req(stream=True)
    s = await open_stream(ex, await plan_for(r), r)
    await collect(s)
    view = await ledger.view(clock(), ["pa:a"])
    assert view.blocked("pa:a", clock()) is not None  # the vendor said 0 requests left this minute


async def test_an_unmapped_adapter_exception_falls_back_and_is_not_billed():
    class Broken:
        name = "pa"

        async def complete(self, req):
            raise KeyError("choices")

        async def stream(self, req):
            raise KeyError("choices")
            yield  # pragma: no cover

    ex, provs, _, _, plan_for = setup({}, providers={"pa": Broken(), "pb": FakeProvider(name="pb", scripts=[reply("b")]),
                                                     "pc": FakeProvider(name="pc")})
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.route.fallback_chain == ["pa:a", "pb:b"] and out.route.attempts[0].error_type == "Unavailable"
    assert out.route.cost_usd == COST["pb"]
    provs["pb"].scripts = [reply("b2")]
    s = await open_stream(ex, await plan_for(req(stream=True)), req(stream=True))
    assert s.route.model_id == "pb:b" and "".join([e.text async for e in s if e.kind == "text"]) == "b2"


def _with_first_step_card(plan, new_card):
    from router.plan import PlanStep

    s = plan.steps[0]
    plan.steps[0] = PlanStep(new_card, s.key_id, s.expected_cost_usd, s.free, s.pool_id, s.quality)
    return plan


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unpriced_step_is_never_called_nor_billed_at_zero(stream):
    """A plan not made by choose() (which drops unpriced models) still never bills $0: the step is skipped
    with UnknownPrice and the next one runs."""
    from router.errors import UnknownPrice

    ex, provs, _, _, plan_for = setup({"pa": [reply("hi")], "pb": [reply("b")], "pc": []})
    r = req()
    unpriced = card("pa:a", None, ctx=8_000)
    plan = _with_first_step_card(await plan_for(r), unpriced)
    if stream:
        s = await open_stream(ex, plan, r)
        async for _ in s:
            pass
        route = s.route
    else:
        route = (await ex.run(plan, r)).route
    assert provs["pa"].calls == [] and route.model_id == "pb:b" and route.cost_usd == COST["pb"]
    assert route.attempts[0].error_type == "UnknownPrice" and "no known price for pa:a" in route.attempts[0].error_message
    with pytest.raises(UnknownPrice, match="pa:a"):
        ex.price(plan.steps[0], Usage(input_tokens=10, output_tokens=5), NOW)


async def test_only_unpriced_steps_give_no_route_with_the_unknown_price_cause():
    from router.errors import UnknownPrice

    ex, provs, _, _, plan_for = setup({"pa": [reply("hi")]}, cards=(A,))
    r = req()
    plan = _with_first_step_card(await plan_for(r), card("pa:a", None, ctx=8_000))
    with pytest.raises(NoRouteAvailable) as ei:
        await ex.run(plan, r)
    assert isinstance(ei.value.last_error, UnknownPrice) and provs["pa"].calls == []


async def test_a_local_model_without_a_price_is_free():
    local = card("pa:a", None, ctx=8_000, regions=("local",))
    ex, provs, _, _, plan_for = setup({"pa": [reply("hi")]}, cards=(local,))
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.route.model_id == "pa:a" and out.route.cost_usd == 0 and out.route.attempts[0].usage is not None


def _deep(levels: int) -> dict:
    d: dict = {}
    x = d
    for _ in range(levels):
        x["a"] = {}
        x = x["a"]
    return d


def _openai_providers(handler):
    import httpx

    from providers.openai import OpenAIProvider
    from providers.retry import NO_RETRY

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return {p: OpenAIProvider(name=p, api_key="sk-test-0123456789", base_url=f"http://{p}.test/v1", client=client,
                              retry=NO_RETRY) for p in ("pa", "pb", "pc")}


def _openai_ok(request):
    import httpx

    return httpx.Response(200, json={"id": "x", "model": "m", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5}})


@pytest.mark.parametrize("stream", [False, True])
async def test_requests_nested_too_deep_are_the_clients_fault_and_open_no_breaker(stream):
    from router.errors import UnencodableRequest

    sent = []

    def handler(request):
        sent.append(request)
        return _openai_ok(request)

    provs = _openai_providers(handler)
    ex, _, ledger, clock, plan_for = setup({}, providers=provs)
    deep = req(stream=stream, extra_body={"x": _deep(300)})
    for _ in range(3):
        with pytest.raises(UnencodableRequest) as ei:
            if stream:
                await open_stream(ex, await plan_for(deep), deep)
            else:
                await ex.run(await plan_for(deep), deep)
        assert [a.model_id for a in ei.value.route.attempts] == ["pa:a"]  # no fallback: every model would fail
    assert sent == []  # nothing reached a vendor
    assert all(h.state(clock()) == "closed" and h.failures == 0 for h in ex.health.values())
    plan = await plan_for(req())
    assert [s.model_id for s in plan.steps] == ["pa:a", "pb:b", "pc:c"]
    out = await ex.run(plan, req())
    assert out.response.text == "fine" and out.route.model_id == "pa:a"
    view = await ledger.view(clock(), ["pa:a"])
    assert view.blocked("pa:a", clock()) is None


async def test_tool_parameters_nested_too_deep_open_no_breaker():
    from router.errors import UnencodableRequest
    from router.types import Tool

    provs = _openai_providers(lambda r: _openai_ok(r))
    ex, _, _, clock, plan_for = setup({}, providers=provs)
    r = req(tools=[Tool(name="f", parameters={"type": "object", "properties": _deep(260)})])
    for _ in range(3):
        with pytest.raises(UnencodableRequest):
            await ex.run(await plan_for(r), r)
    assert all(h.state(clock()) == "closed" for h in ex.health.values())


async def test_an_unmapped_adapter_exception_opens_no_breaker():
    class Broken:
        name = "pa"

        async def complete(self, req):
            raise KeyError("choices")

        async def stream(self, req):
            raise KeyError("choices")
            yield  # pragma: no cover

    ex, provs, _, clock, plan_for = setup({}, providers={"pa": Broken(), "pb": FakeProvider(name="pb", scripts=[reply("b")]),
                                                         "pc": FakeProvider(name="pc")})
    for _ in range(5):
        out = await ex.run(await plan_for(req()), req())
        assert out.route.model_id == "pb:b"
    assert ex.health.get("pa:a") is None or ex.health["pa:a"].state(clock()) == "closed"
    assert (await plan_for(req())).steps[0].model_id == "pa:a"  # still tried first (and logged each time)


# ---------------------------------------------------------------- bad keys: cool-off, probe, scope
A2 = card("pa:a2", "1", "2", q=0.8, ctx=8_000, caps=("tools", "json_schema"))


async def test_a_403_excludes_only_that_key_and_model():
    k1 = FakeProvider(name="pa", scripts=[err(AuthFailed, status=403), reply("a2 on K1")], repeat_last=False)
    ex, _, _, clock, plan_for = setup({}, providers={"K1": k1}, cards=(A, A2), keys={"pa": ("K1",)})
    r = req()
    with pytest.raises(AuthFailed):
        await ex.run(await plan_for(r), r)
    assert not ex.health.get("K1") or not ex.health["K1"].bad  # the key itself is fine
    plan = await plan_for(r)
    assert [s.deployment for s in plan.steps] == ["pa:a2@K1"]
    why = next(x for x in plan.reasons if x.model_id == "pa:a").reason
    assert "may not use this model" in why
    out = await ex.run(plan, r)
    assert out.response.text == "a2 on K1"


async def test_a_401_cools_the_key_off_then_one_probe_clears_it():
    k1 = FakeProvider(name="pa", scripts=[err(AuthFailed), err(AuthFailed), reply("back")], repeat_last=False)
    k2 = FakeProvider(name="pa", scripts=[reply("k2")])
    ex, _, _, clock, plan_for = setup({}, providers={"K1": k1, "K2": k2}, cards=(A,), keys={"pa": ("K1", "K2")})
    r = req()
    with pytest.raises(AuthFailed):
        await ex.run(await plan_for(r), r)
    assert ex.health.bad_entries() == {"K1": {"reason": "authentication failed (HTTP 401)",
                                              "until": (NOW + timedelta(seconds=60)).isoformat()}}
    clock.now = NOW + timedelta(seconds=59)
    assert [s.deployment for s in (await plan_for(r)).steps] == ["pa:a@K2"]
    clock.now = NOW + timedelta(seconds=60)  # the cool-off passed: K1 may be probed (it failed again)
    plan = await plan_for(r)
    assert "pa:a@K1" in [s.deployment for s in plan.steps]
    with pytest.raises(AuthFailed):
        await ex.run(plan, r)
    assert ex.health["K1"].bad_until == clock.now + timedelta(seconds=120)  # doubled
    clock.now += timedelta(seconds=120)
    plan = await plan_for(r)
    p2 = await plan_for(r)  # planned at the same time, run after the probe took the key
    probe = ex.health.admit("pa:a@K1", "K1", clock())
    assert probe is True and ex.health.admit("pa:a@K1", "K1", clock()) is None  # one probe at a time
    ex.health.finished("pa:a@K1")
    out = await ex.run(plan, r)
    assert out.response.text == "back" and not ex.health["K1"].bad and ex.health.bad_entries() == {}
    assert [s.deployment for s in p2.steps][0] == "pa:a@K1"


async def test_a_401_without_key_information_marks_the_provider():
    ex, provs, _, clock, plan_for = setup({"pa": [err(AuthFailed), reply("a")], "pb": [reply("b")], "pc": []})
    r = req()
    with pytest.raises(AuthFailed):
        await ex.run(await plan_for(r), r)
    plan = await plan_for(r)
    assert [s.model_id for s in plan.steps] == ["pb:b", "pc:c"]
    assert "key pa marked bad" in next(x for x in plan.reasons if x.model_id == "pa:a").reason
    clock.now = NOW + timedelta(seconds=61)
    out = await ex.run(await plan_for(r), r)
    assert out.route.model_id == "pa:a" and ex.health.bad_entries() == {}


# ---------------------------------------------------------------- breaker recovery
class _Flapping:
    """An OpenAI-compatible upstream for `pa` that answers 503 until `heals_at` (on the test clock)."""

    def __init__(self, clock, heals_at):
        self.clock, self.heals_at, self.calls = clock, heals_at, []

    def __call__(self, request):
        import httpx

        self.calls.append((self.clock(), request.url.host))
        if request.url.host == "pa.test" and self.clock() < self.heals_at:
            return httpx.Response(503, json={"error": {"message": "overloaded", "type": "server_error"}})
        return _openai_ok(request)


async def test_half_open_probe_is_one_attempt_and_recovery_is_within_seconds():
    import httpx

    from providers.openai import OpenAIProvider
    from providers.retry import RetryPolicy

    async def no_sleep(_s):
        return None

    up = _Flapping(None, NOW + timedelta(seconds=60))
    client = httpx.AsyncClient(transport=httpx.MockTransport(up))
    provs = {p: OpenAIProvider(name=p, api_key="sk-test-0123456789", base_url=f"http://{p}.test/v1", client=client,
                               retry=RetryPolicy(max_attempts=2, sleep=no_sleep)) for p in ("pa", "pb", "pc")}
    ex, _, ledger, clock, plan_for = setup({}, providers=provs)
    up.clock = clock
    back_at = None
    probes = []
    for sec in range(0, 90):
        clock.now = NOW + timedelta(seconds=sec)
        h = ex.health.get("pa:a")
        half_open = h is not None and h.state(clock()) == "half_open"
        before = len([c for c in up.calls if c[1] == "pa.test"])
        out = await ex.run(await plan_for(req()), req())
        tries = len([c for c in up.calls if c[1] == "pa.test"]) - before
        if half_open:
            probes.append(sec)
            assert tries == 1  # the probe is never retried
        if out.route.model_id == "pa:a" and sec >= 60 and back_at is None:
            back_at = sec
    assert back_at is not None and back_at - 60 <= 10, (back_at, probes)
    assert probes and all(b - a <= 10 for a, b in zip(probes, probes[1:]))
    assert ex.health["pa:a"].state(clock()) == "closed"


# ---------------------------------------------------------------- answers the vendor cut short
def _cut(text="twenty words of sixty", usage=True, details=None):
    from router.types import FinishEvent

    evs = [TextDelta(text=text)]
    if usage:
        evs.append(UsageEvent(usage=Usage(input_tokens=10, output_tokens=5)))
    evs.append(FinishEvent(finish_reason="error", provider_details=details or {
        "finish_reason_raw": "insufficient_system_resource"}))
    return Script(events=evs)


async def test_a_truncated_answer_falls_back_and_bills_what_the_vendor_billed():
    ex, provs, _, clock, plan_for = setup({"pa": [_cut()], "pb": [reply("whole answer")], "pc": []})
    r = req()
    out = await ex.run(await plan_for(r), r)
    assert out.response.text == "whole answer" and out.response.finish_reason == "stop"
    first, second = out.route.attempts
    assert first.error_type == "TruncatedResponse" and "insufficient_system_resource" in first.error_message
    assert first.usage == Usage(input_tokens=10, output_tokens=5) and first.cost_usd == COST["pa"]
    assert out.route.cost_usd == COST["pa"] + COST["pb"]
    assert ex.health["pa:a"].consecutive_failures == 1  # the vendor's failure


async def test_a_truncated_answer_without_usage_is_billed_an_estimate():
    ex, _, _, _, plan_for = setup({"pa": [_cut("word " * 40, usage=False)], "pb": [reply("b")], "pc": []})
    r = req()
    out = await ex.run(await plan_for(r), r)
    cut = out.route.attempts[0]
    assert cut.error_type == "TruncatedResponse" and cut.usage.output_tokens > 0 and cut.cost_usd > 0


async def test_a_truncated_answer_with_nothing_to_fall_back_to_raises():
    ex, _, _, _, plan_for = setup({"pa": [_cut()]}, cards=(A,))
    r = req()
    with pytest.raises(NoRouteAvailable) as ei:
        await ex.run(await plan_for(r), r)
    from router.errors import TruncatedResponse

    assert isinstance(ei.value.last_error, TruncatedResponse)
    assert ei.value.route.cost_usd == COST["pa"]  # what the vendor billed


async def test_a_malformed_tool_call_finish_falls_back_without_a_breaker_count():
    details = {"finish_reason": "MALFORMED_FUNCTION_CALL", "model_error": True}
    ex, _, _, clock, plan_for = setup({"pa": [_cut(details=details)] * 3, "pb": [reply("b")] * 3, "pc": []})
    for _ in range(3):
        out = await ex.run(await plan_for(req()), req())
        assert out.route.model_id == "pb:b"
    assert ex.health["pa:a"].state(clock()) == "closed" and ex.health["pa:a"].failures == 0


async def test_a_streamed_half_open_probe_is_one_attempt_too():
    import httpx

    from providers.openai import OpenAIProvider
    from providers.retry import RetryPolicy

    async def no_sleep(_s):
        return None

    hosts = []

    def handler(request):
        hosts.append(request.url.host)
        if request.url.host == "pa.test":
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        body = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}],'
                b'"usage":{"prompt_tokens":10,"completion_tokens":5}}\n\ndata: [DONE]\n\n')
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provs = {p: OpenAIProvider(name=p, api_key="sk-test-0123456789", base_url=f"http://{p}.test/v1", client=client,
                               retry=RetryPolicy(max_attempts=3, sleep=no_sleep)) for p in ("pa", "pb", "pc")}
    ex, _, _, clock, plan_for = setup({}, providers=provs)
    r = req(stream=True)
    for _ in range(3):  # closed: each request tries pa 3 times (the adapter's retry), then falls back
        s = await open_stream(ex, await plan_for(r), r)
        assert "".join([e.text async for e in s if e.kind == "text"]) == "ok"
    assert hosts.count("pa.test") == 9 and ex.health["pa:a"].state(clock()) == "open"
    clock.now = ex.health["pa:a"].open_until  # half-open: the probe is one attempt
    s = await open_stream(ex, await plan_for(r), r)
    assert s.route.model_id == "pb:b" and hosts.count("pa.test") == 10
    await s.aclose()


async def test_concurrent_requests_on_a_half_open_breaker_send_one_probe():
    import asyncio

    slow_ok = reply("a is back", latency_s=0.05)
    ex, provs, _, clock, plan_for = setup({"pa": [err(Unavailable)] * 3 + [slow_ok], "pb": [reply("b")] * 5, "pc": []})
    for _ in range(3):
        await ex.run(await plan_for(req()), req())
    clock.now = ex.health["pa:a"].open_until  # half-open
    p1, p2 = await plan_for(req()), await plan_for(req())  # both planned before either starts
    assert p1.steps[0].model_id == p2.steps[0].model_id == "pa:a"
    o1, o2 = await asyncio.gather(ex.run(p1, req()), ex.run(p2, req()))
    assert len(provs["pa"].calls) == 4  # three failures, then one probe
    assert {o1.route.model_id, o2.route.model_id} == {"pa:a", "pb:b"}
    skipped = o2 if o2.route.model_id == "pb:b" else o1
    assert skipped.route.attempts[0].error_type == "CircuitOpen"
    assert ex.health["pa:a"].state(clock()) == "closed"


async def test_max_tokens_above_the_models_max_output_is_clamped_in_the_vendor_request():
    small = card("pa:a", "1", "2", ctx=8_000, max_output=1_000)
    ex, provs, _, _, plan_for = setup({"pa": [reply("hi")] * 3, "pb": [], "pc": []}, cards=(small,))
    r = req(max_tokens=2**31 - 1)
    plan = await plan_for(r)
    assert [s.model_id for s in plan.steps] == ["pa:a"]  # not dropped for it
    await ex.run(plan, r)
    assert provs["pa"].calls[0].max_tokens == 1_000
    r = req(max_tokens=300)  # within the limit: unchanged
    await ex.run(await plan_for(r), r)
    assert provs["pa"].calls[1].max_tokens == 300
    s = await open_stream(ex, await plan_for(req(max_tokens=5_000)), req(max_tokens=5_000))
    async for _ in s:
        pass
    assert provs["pa"].calls[2].max_tokens == 1_000
