"""The Router SDK over FakeProviders: async, sync, streams, pinning, virtual models."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from providers.fake import FakeProvider, Script, reply
from router import Router
from router.catalog import Catalog
from router.errors import BudgetExceeded, NoRouteAvailable, RateLimited, UnknownModel
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec
from router.types import ChatRequest, Message
from tests.router.routing_helpers import NOW, card

A = card("pa:a", "1", "2", q=0.8).model_copy(update={"aliases": ("alpha",)})
B = card("pb:b", "2", "4", q=0.95)
CAT = Catalog([A, B])


def make(policy="cheapest", **kw):
    provs = kw.pop("providers", None) or {"pa": FakeProvider(name="pa", scripts=[reply("from a")]),
                                          "pb": FakeProvider(name="pb", scripts=[reply("from b")])}
    ledger = kw.pop("ledger", None) or Ledger(MemoryStore())
    return Router(catalog=CAT, providers=provs, ledger=ledger, policy=policy, clock=lambda: NOW, **kw), provs


async def test_achat_with_a_prompt_string():
    router, provs = make()
    out = await router.achat("hi there")
    assert out.response.text == "from a" and out.route.model_id == "pa:a" and out.route.policy == "cheapest"
    assert out.route.cost_usd == Decimal("0.00002") and out.route.overhead_ms is not None
    assert out.route.task == "chat" and {c.model_id for c in out.route.candidates} == {"pa:a", "pb:b"}
    await router.aclose()
    assert provs["pa"].closed and provs["pb"].closed


async def test_messages_and_request_objects_and_kwargs():
    router, provs = make()
    await router.achat([{"role": "user", "content": "x"}], temperature=0.2, max_tokens=50)
    sent = provs["pa"].calls[-1]
    assert sent.temperature == 0.2 and sent.max_tokens == 50 and sent.model == "a"
    await router.achat(ChatRequest(model="auto:best", messages=[Message(role="user", content="x")]))
    assert len(provs["pb"].calls) == 1


@pytest.mark.parametrize("model,expect", [("auto:best", "pb:b"), ("auto:cheap", "pa:a"), ("pb:b", "pb:b"),
                                          ("alpha", "pa:a"), ("auto:balanced", "pb:b")])
async def test_virtual_and_pinned_models(model, expect):
    router, _ = make()
    out = await router.achat("hello", model=model)
    assert out.route.model_id == expect


async def test_unknown_model_suggests():
    router, _ = make()
    with pytest.raises(UnknownModel, match="did you mean .pa:a"):
        await router.achat("x", model="alpah")


async def test_sync_chat_without_and_inside_a_running_loop():
    router, _ = make()
    assert router.chat("x").response.text == "from a"  # called from a coroutine: runs on the private loop
    router.close()


def test_sync_chat_plain():
    router, _ = make()
    out = router.chat("x", model="auto:best")
    assert out.route.model_id == "pb:b"
    with router.stream("y") as s:
        assert s.route.model_id == "pa:a"
        assert "".join(e.text for e in s if e.kind == "text") == "from a"
    assert s.route.cost_usd == Decimal("0.00002")
    router.close()


async def test_astream_route_known_before_first_token():
    router, _ = make()
    s = await router.astream("tell me")
    assert s.route.model_id == "pa:a" and s.route.reason
    text = "".join([e.text async for e in s if e.kind == "text"])
    assert text == "from a" and s.route.cost_usd == Decimal("0.00002")


def test_explain_makes_no_calls():
    router, provs = make()
    plan = router.explain("write a python function")
    assert plan.features.task == "code" and [s.model_id for s in plan.steps] == ["pa:a", "pb:b"]
    assert provs["pa"].calls == [] and provs["pb"].calls == []


async def test_several_keys_per_provider_are_spread():
    k1, k2 = FakeProvider(name="pa", scripts=[reply("1")]), FakeProvider(name="pa", scripts=[reply("2")])
    router, _ = make(providers={"pa": [k1, k2]})
    texts = [(await router.achat("x")).response.text for _ in range(4)]
    assert texts == ["1", "2", "1", "2"]
    assert router.candidates == (A,)  # pb has no provider configured


async def test_fallback_through_the_sdk():
    provs = {"pa": FakeProvider(name="pa", scripts=[reply()]), "pb": FakeProvider(name="pb", scripts=[reply("b")])}
    provs["pa"].scripts = [__import__("providers.fake").fake.Script(error=RateLimited("slow down", retry_after=5))]
    router, _ = make(providers=provs)
    out = await router.achat("x")
    assert out.route.fallback_chain == ["pa:a", "pb:b"] and out.response.text == "b"


async def test_rules_from_dicts_and_scope_budgets():
    ledger = Ledger(MemoryStore(), [], [BudgetSpec(id="bob", scope="user", match="bob", limit_usd=Decimal("0"))])
    router, _ = make(rules=[{"name": "math-best", "match": {"task": "math"}, "policy": "best"}], ledger=ledger)
    out = await router.achat("solve 2x + 3 = 7")
    assert out.route.model_id == "pb:b" and "math-best" in out.route.reason
    with pytest.raises(NoRouteAvailable, match="budget bob"):
        await router.achat("x", scope={"user": "bob"})


async def test_models_filter_and_no_route():
    router, _ = make(models=["pb:*"])
    assert router.candidates == (B,)
    with pytest.raises(NoRouteAvailable, match="lacks vision"):
        await router.achat([{"role": "user", "content": [{"type": "image_url", "url": "data:image/png;base64,AA"}]}])


async def test_budget_exceeded_propagates_when_every_attempt_hits_it():
    ledger = Ledger(MemoryStore(), [], [BudgetSpec(id="g", scope="global", limit_usd=Decimal("0.00001"))])
    router, provs = make(ledger=ledger)
    router.ledger.view = _empty_view  # type: ignore[method-assign]  # plan as if the view lagged
    with pytest.raises(BudgetExceeded):
        await router.achat("x")
    assert provs["pa"].calls == []


async def _empty_view(now, models=()):
    from router.quota.view import LedgerView

    return LedgerView()


def test_default_router_explains_over_the_bundled_catalog():
    router = Router()
    plan = router.explain("请把这段话翻译成英文：你好世界")
    assert plan.features.task == "translation" and plan.features.chinese
    assert plan.steps and len(plan.reasons) == len(router.candidates)
    asyncio.run(router.aclose())


async def test_errors_carry_route_info_for_the_proxy():
    from providers.fake import Script
    from router.errors import BadRequest

    provs = {"pa": FakeProvider(name="pa", scripts=[Script(error=BadRequest("bad"))]),
             "pb": FakeProvider(name="pb", scripts=[reply("b")])}
    router, _ = make(providers=provs)
    with pytest.raises(BadRequest) as ei:
        await router.achat("x")
    assert ei.value.route.attempts[0].error_type == "BadRequest" and ei.value.route.policy == "cheapest"


def test_route_command_explains_without_calls(capsys, tmp_path, monkeypatch):
    from router.cli import main

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_CONFIG", raising=False)
    assert main(["route", "--explain", "Write a python function", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["features"]["task"] == "code" and out["plan"] and out["candidates"]
    assert main(["route", "describe this picture", "--image", "--policy", "cheapest"]) == 0
    text = capsys.readouterr().out
    assert "needs vision" in text and "lacks vision" in text and "fallback order" in text
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers:\n  deepseek: {api_key_env: DEEPSEEK_API_KEY}\npolicy: {default: best}\n")
    assert main(["route", "hello", "--config", str(cfg), "--json"]) == 0  # no key needed to explain
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "best" and all(p["model"].startswith("deepseek:") for p in out["plan"])
    cfg.write_text("policy: {defualt: best}\n")
    assert main(["route", "hello", "--config", str(cfg)]) == 2
    assert "did you mean 'default'" in capsys.readouterr().err


async def test_no_providers_is_a_clear_error():
    router = Router(catalog=CAT, providers={}, ledger=Ledger(MemoryStore()))
    with pytest.raises(NoRouteAvailable, match="no providers configured"):
        await router.achat("x")


async def test_end_to_end_over_real_adapters_one_retry_layer(tmp_path, monkeypatch):
    """Router.from_config with the real OpenAI-compatible adapters over a mocked transport:
    a 429 whose Retry-After exceeds the retry cap is not retried by the adapter; the
    router falls back to the next vendor at once and bills its exact price."""
    import httpx

    from router.pricing import cost
    from router.types import Usage

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-deepseek-0123456789")
    cfg = tmp_path / "q.yaml"
    cfg.write_text("providers:\n  openai: {api_key_env: OPENAI_API_KEY}\n  deepseek: {api_key_env: DEEPSEEK_API_KEY}\n"
                   "models:\n  include: [openai:gpt-5-nano, deepseek:deepseek-flash]\n"
                   "policy: {default: cheapest, quality_floors: {default: 0.0, chat: 0.0}}\n"
                   "retry: {max_attempts: 3, max_wait_s: 5}\n")
    hits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.host)
        if request.url.host == "api.openai.com":
            return httpx.Response(429, headers={"retry-after": "30", "content-type": "application/json"}, json={
                "error": {"message": "Rate limit reached for gpt-5-nano on requests per min (RPM): Limit 3, "
                          "Used 3, Requested 1. Please try again in 30s.", "type": "requests", "param": None,
                          "code": "rate_limit_exceeded"}})
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "deepseek-flash",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    router = Router.from_config(str(cfg), client=client, clock=lambda: NOW)
    out = await router.achat("hi")
    assert hits == ["api.openai.com", "api.deepseek.com"]  # no same-deployment retry on a 30 s wait
    assert out.route.fallback_chain == ["openai:gpt-5-nano", "deepseek:deepseek-flash"]
    assert out.route.attempts[0].error_type == "RateLimited" and out.route.attempts[0].cost_usd == 0
    price = router.catalog.get("deepseek:deepseek-flash").price
    assert out.route.cost_usd == cost(Usage(input_tokens=10, output_tokens=5), price, at=NOW).usd
    assert out.route.currency == "CNY" and out.response.text == "hello"
    assert "sk-test" not in repr(out) and "sk-test" not in str(out.route.attempts[0].error_message)
    view = await router.ledger.view(NOW, ["openai:gpt-5-nano"])
    assert view.blocked("openai:gpt-5-nano", NOW) is not None  # cooling down for the Retry-After
    await router.aclose()
    await client.aclose()


async def test_padded_model_names_do_not_grow_memory():
    import gc
    import tracemalloc

    router, provs = make()
    await router.achat("hi", model="pa:a")  # warm the caches
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for i in range(600):
        pad = "pa:a" + " " * (1_000_000 + i)  # resolves to pa:a; 600 distinct ~1 MB strings
        out = await router.achat("hi", model=pad)
        assert out.route.model_id == "pa:a"
        with pytest.raises(NoRouteAvailable):  # a padded region is not "us" (and is never memoised)
            await router.achat("hi", metadata={"region": "us" + " " * (100_000 + i)})
        del pad, out
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    assert grown < 2_000_000, grown  # not 600 MB
    assert len(router._policies) <= 2 and len(router._pinned) == 1 and len(router._resolved) <= 2
    await router.aclose()


async def test_a_truncated_answer_is_never_returned_as_complete():
    from router.types import FinishEvent, TextDelta

    cut = Script(events=[TextDelta(text="twenty of sixty words"), FinishEvent(finish_reason="error")])
    router, provs = make(providers={"pa": FakeProvider(name="pa", scripts=[cut]),
                                    "pb": FakeProvider(name="pb", scripts=[reply("whole")])})
    out = await router.achat("hi")
    assert out.response.text == "whole" and out.route.model_id == "pb:b"
    assert [a.error_type for a in out.route.attempts] == ["TruncatedResponse", None]
    with pytest.raises(NoRouteAvailable) as ei:  # pinned: nothing to fall back to -> raise, never the cut answer
        await router.achat("hi", model="pa:a")
    assert ei.value.last_error.__class__.__name__ == "TruncatedResponse"
    await router.aclose()


async def test_public_quota_view_model_ids_and_policy_name():
    spec = BudgetSpec(id="all", scope="global", match="*", period="month", limit_usd=Decimal("5"), hard=True)
    router, _ = make(ledger=Ledger(MemoryStore(), [], [spec]))
    assert router.model_ids == ("pa:a", "pb:b") and router.policy_name == "cheapest"
    await router.achat("hi there")
    view = await router.quota_view(NOW)  # read fresh, not the routing cache
    assert [b.budget_id for b in view.budgets] == ["all"] and view.budgets[0].spent_usd == Decimal("0.00002")
    assert (await router.quota_view()).budgets[0].spent_usd == Decimal("0.00002")  # default: the router's clock
    await router.aclose()


async def test_a_handed_over_client_is_closed_with_the_router(tmp_path, monkeypatch):
    import httpx

    from router.sdk import Router

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("version: 1\n")
    mine, theirs = httpx.AsyncClient(), httpx.AsyncClient()
    r1 = Router.from_config(str(cfg), http_client=mine, owns_client=True)
    r2 = Router.from_config(str(cfg), http_client=theirs)
    await r1.aclose()
    await r2.aclose()
    assert mine.is_closed and not theirs.is_closed  # the caller's own client stays the caller's
    await theirs.aclose()


async def test_two_providers_with_the_same_key_name_keep_their_own_adapters():
    """Providers whose keys come from the same variable (`{key name: Provider}` groups with
    one name): each model is still served by its own provider's adapter."""
    pa, pb = FakeProvider(name="pa", scripts=[reply("from a")]), FakeProvider(name="pb", scripts=[reply("from b")])
    router, _ = make(providers={"pa": {"SHARED_KEY": pa}, "pb": {"SHARED_KEY": pb}})
    assert (await router.achat("x", model="pa:a")).response.text == "from a"
    assert (await router.achat("x", model="pb:b")).response.text == "from b"
    assert len(pa.calls) == 1 and len(pb.calls) == 1
