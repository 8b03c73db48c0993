"""/v1/chat/completions request validation: token limits, the top-level allow-list,
nesting depth and sizes. Every client mistake is a 400 naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import orjson
import pytest

from providers.fake import FakeProvider, reply
from providers.openai import build_body
from providers.vendors import get_vendor
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec
from router.sdk import Router
from router.server import openai_wire as ow
from router.server.settings import ServerSettings
from tests.router.routing_helpers import card
from tests.router.server.conftest import make_app

URL = "/v1/chat/completions"
OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def nested(depth: int) -> str:
    """A placeholder for `{"a": {"a": ... 1}}` nested `depth` deep (no JSON encoder writes that)."""
    return f"@nested:{depth}"


def raw(text: str) -> str:
    return f"@raw:{text}"


def dumps(body: Any) -> bytes:
    """orjson.dumps, with `nested(n)` / `raw(text)` placeholders spliced in as raw JSON."""
    import re

    def splice(m: Any) -> bytes:
        tag = m.group(1).decode()
        if tag.startswith("nested:"):
            n = int(tag[7:])
            return b'{"a":' * n + b"1" + b"}" * n
        return tag[4:].encode()

    return re.sub(rb'"@((?:nested|raw):[^"]*)"', splice, orjson.dumps(body))


async def post(client: Any, body: Any, url: str = URL) -> Any:
    return await client.post(url, content=dumps(body), headers={"content-type": "application/json"})


def assert_400(r: Any, param: str | None, *, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    assert "Traceback" not in r.text and "/router/" not in r.text
    return err


# ---------------------------------------------------------------- token limits

@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [-5, 0, -1_000_000, True, 5.5, 100.0, "100", "lots",
                                   2**31, raw("1" + "0" * 30), [], {}])
async def test_bad_token_limit_is_a_400_naming_the_field(client: Any, fake: FakeProvider, field: str,
                                                         value: Any) -> None:
    r = await post(client, {**OK, field: value})
    assert_400(r, field)
    assert not fake.calls  # never reached the vendor


async def test_a_number_no_double_can_hold_is_a_400(client: Any, fake: FakeProvider) -> None:
    assert_400(await post(client, {**OK, "max_tokens": raw("9" * 400)}), None, code="invalid_json")
    assert not fake.calls


async def test_max_completion_tokens_wins_over_max_tokens(client: Any, fake: FakeProvider) -> None:
    r = await post(client, {**OK, "max_tokens": 50, "max_completion_tokens": 70})
    assert r.status_code == 200 and fake.calls[-1].max_tokens == 70
    r = await post(client, {**OK, "max_tokens": -5, "max_completion_tokens": 70})  # both must be valid
    assert_400(r, "max_tokens")


def capped_router(budget_usd: str | None = None) -> tuple[Router, FakeProvider]:
    cat = Catalog([card("pa:small", "1", "2", q=0.7, max_output=1_000),
                   card("pb:big", "30", "60", q=0.95, max_output=4_000)])
    pa = FakeProvider(name="pa", scripts=[reply("from a")])
    pb = FakeProvider(name="pb", scripts=[reply("from b")])
    budgets = [BudgetSpec(id="day", scope="global", limit_usd=Decimal(budget_usd), period="day")] if budget_usd else []
    router = Router(catalog=cat, providers={"pa": pa, "pb": pb}, ledger=Ledger(MemoryStore(), [], budgets),
                    policy="cheapest")
    return router, pa


async def test_a_limit_above_the_models_max_output_is_clamped_not_refused(spend_path: Any) -> None:
    router, pa = capped_router()
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for field in ("max_tokens", "max_completion_tokens"):
            r = await post(c, {**OK, field: 2**31 - 1})
            assert r.status_code == 200, r.text
            assert r.headers["x-quotaroute-model"] == "pa:small"
            assert pa.calls[-1].max_tokens == 1_000  # the vendor got the model's own limit
            # and the adapter writes that limit into the vendor's body
            assert build_body(pa.calls[-1], get_vendor("openai"), stream=False)["max_tokens"] == 1_000
    await app.aclose()


async def test_negative_limit_cannot_bypass_a_budget(spend_path: Any) -> None:
    router, pa = capped_router(budget_usd="0.001")
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await post(c, {**OK, "model": "auto:best", "max_tokens": -5})
        assert_400(r, "max_tokens")
        assert not pa.calls
    await app.aclose()


# ---------------------------------------------------------------- the allow-list

@pytest.mark.parametrize("field,value,param", [
    ("foo", 1, "foo"),
    ("store", True, "store"),
    ("n", 8, "n"),
    ("n", True, "n"),
    ("service_tier", "priority", "service_tier"),
    ("service_tier", "flex", "service_tier"),
    ("prediction", {"type": "content", "content": "x"}, "prediction"),
    ("audio", {"voice": "alloy", "format": "wav"}, "audio"),
    ("modalities", ["text", "audio"], "modalities"),
    ("web_search_options", {}, "web_search_options"),
    ("functions", [{"name": "f"}], "functions"),
    ("stream_options", {"include_usage": True, "include_obfuscation": False}, "stream_options.include_obfuscation"),
    ("stream_options", {"include_usage": "yes"}, "stream_options.include_usage"),
    ("stream_options", [], "stream_options"),
    ("seed", 1.5, "seed"),
    ("seed", "7", "seed"),
    ("frequency_penalty", 3, "frequency_penalty"),
    ("presence_penalty", "x", "presence_penalty"),
    ("logit_bias", {"abc": 1}, "logit_bias.abc"),
    ("logit_bias", {"50256": 1000}, "logit_bias.50256"),
    ("logprobs", 1, "logprobs"),
    ("top_logprobs", 21, "top_logprobs"),
    ("parallel_tool_calls", "no", "parallel_tool_calls"),
    ("reasoning_effort", "max", "reasoning_effort"),
    ("reasoning_effort", [], "reasoning_effort"),
    ("temperature", 3, "temperature"),
    ("top_p", -0.1, "top_p"),
    ("user", 5, "user"),
    ("user", "u" * 257, "user"),
    ("metadata", {"k": {"nested": 1}}, "metadata.k"),
    ("metadata", {"k": "v" * 2000}, "metadata.k"),
    ("metadata", {"task": [1]}, "metadata.task"),  # routing reads it as a string
    ("metadata", {"tags": True}, "metadata.tags"),
    ("metadata", {"region": [5]}, "metadata.region[0]"),
    ("stop", [1], "stop[0]"),
    ("stop", ["x"] * 65, "stop"),
    ("tool_choice", {"type": []}, "tool_choice.type"),
    ("tool_choice", "sometimes", "tool_choice"),
    ("tool_choice", {"type": "function", "function": {"name": 5}}, "tool_choice.function.name"),
    ("response_format", {"type": "xml"}, "response_format.type"),
    ("response_format", {"type": "json_schema", "json_schema": "s"}, "response_format.json_schema"),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": []}}], "tools[0].function.parameters"),
    ("tools", [{"type": "custom", "custom": {}}], "tools[0].type"),
    ("tools", [{"type": "function", "function": {"name": 1}}], "tools[0].function.name"),
])
async def test_allow_list_refuses_unknown_owned_and_mistyped_fields(client: Any, fake: FakeProvider, field: str,
                                                                    value: Any, param: str) -> None:
    r = await post(client, {**OK, field: value})
    err = assert_400(r, param)
    assert param.split(".")[0].split("[")[0] in err["message"]
    assert not fake.calls


async def test_unknown_field_message_is_openais(client: Any) -> None:
    err = assert_400(await post(client, {**OK, "foo": 1}), "foo")
    assert err["message"] == "Unrecognized request argument supplied: foo"


async def test_price_neutral_knobs_pass_through_and_owned_ones_never_do(client: Any, fake: FakeProvider) -> None:
    knobs = {"seed": 7, "frequency_penalty": 0.5, "presence_penalty": -1, "logit_bias": {"50256": -100},
             "logprobs": True, "top_logprobs": 3, "parallel_tool_calls": False, "reasoning_effort": "low",
             "verbosity": "high"}
    r = await post(client, {**OK, **knobs, "n": 1, "service_tier": "default", "modalities": ["text"],
                            "stream": True, "stream_options": {"include_usage": False}})
    assert r.status_code == 200
    sent = fake.calls[-1]
    # normalized fields (translated per vendor by providers.params), never a raw passthrough
    assert sent.extra_body == {} and sent.reasoning is not None and sent.reasoning.effort == "low"
    assert {k: getattr(sent, k) for k in knobs if k != "reasoning_effort"} == {
        k: v for k, v in knobs.items() if k != "reasoning_effort"}
    body = build_body(sent.model_copy(update={"model": "gpt-4o-mini"}), get_vendor("openai"), stream=True)
    assert body["stream_options"] == {"include_usage": True}  # the adapter's own, whatever the client said
    assert "n" not in body and "service_tier" not in body and "modalities" not in body
    assert '"usage"' not in r.text  # include_usage false: the client's own output has no usage chunk


# ---------------------------------------------------------------- depth and sizes

@pytest.mark.parametrize("body,param_prefix", [
    ({**OK, "foo": nested(300)}, "foo.a.a"),
    ({**OK, "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(254)}}]},
     "tools[0].function.parameters.a"),
    ({**OK, "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": nested(1000)}}},
     "response_format.json_schema.schema.a"),
    ({**OK, "tool_choice": nested(500)}, "tool_choice.a"),
    ({**OK, "messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": nested(600)}}]}]},
     "messages[0].tool_calls[0].function.arguments.a"),
])
async def test_too_deep_is_a_400_with_the_path(client: Any, fake: FakeProvider, body: Any, param_prefix: str) -> None:
    r = await post(client, body)
    err = assert_400(r, None, code="too_deep")
    assert err["param"].startswith(param_prefix) and "64" in err["message"]
    assert not fake.calls


async def test_too_deep_never_opens_a_breaker(spend_path: Any) -> None:
    router, pa = capped_router()
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(5):
            assert (await post(c, {**OK, "tools": [{"type": "function", "function": {
                "name": "f", "parameters": nested(300)}}]})).status_code == 400
        r = await post(c, OK)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "from a"
        assert all(h.failures == 0 for h in router.health.values())
    await app.aclose()


async def test_depth_limit_comes_from_settings_when_set(frouter: Any, spend_path: Any) -> None:
    settings = ServerSettings()
    settings.limits = type("Limits", (), {"max_json_depth": 8})()  # type: ignore[attr-defined]
    app = make_app(frouter, spend_path, settings)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        assert (await post(c, {**OK, "metadata": {"k": "v"}, "foo": nested(3)})).status_code == 400  # unknown
        err = assert_400(await post(c, {**OK, "tools": [{"type": "function", "function": {
            "name": "f", "parameters": nested(8)}}]}), None, code="too_deep")
        assert "8 levels" in err["message"]
        ok = await post(c, {**OK, "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(2)}}]})
        assert ok.status_code == 200
    await app.aclose()


async def test_model_name_length_is_bounded(client: Any) -> None:
    assert_400(await post(client, {**OK, "model": "openai:gpt-4o-mini" + " " * 1_000_000}), "model")
    assert_400(await post(client, {**OK, "model": "m" * 257}), "model")
    r = await post(client, {**OK, "model": "m" * 256})
    assert r.status_code == 404  # a well-formed name that is not in the catalog


async def test_message_count_is_bounded(client: Any) -> None:
    from router.server.validate import MAX_MESSAGES

    r = await post(client, {**OK, "messages": [{"role": "user", "content": ""}] * (MAX_MESSAGES + 1)})
    assert_400(r, "messages")


@pytest.mark.parametrize("message,param", [
    ({"role": "user", "content": [{"type": "text", "text": 5}]}, "messages[0].content[0].text"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "max"}}]},
     "messages[0].content[0].image_url.detail"),
    ({"role": "user", "content": [{"type": "input_audio"}]}, "messages[0].content[0].type"),
    ({"role": "user", "content": [5]}, "messages[0].content[0]"),
    ({"role": ["user"], "content": "x"}, "messages[0].role"),
    ({"role": "tool", "content": "x"}, "messages[0].tool_call_id"),
    ({"role": "assistant", "tool_calls": [{"id": 1, "function": {"name": "f"}}]}, "messages[0].tool_calls[0].id"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"role": "assistant", "tool_calls": {"id": "c"}}, "messages[0].tool_calls"),
    ({"role": "user", "content": "x", "name": 5}, "messages[0].name"),
])
async def test_malformed_messages_are_400_with_the_path(client: Any, message: Any, param: str) -> None:
    assert_400(await post(client, {**OK, "messages": [message]}), param)


def test_fields_table_is_the_documented_allow_list() -> None:
    assert {"model", "messages", "max_tokens", "max_completion_tokens", "stream_options", "seed", "n",
            "service_tier"} <= ow.FIELDS
    assert "foo" not in ow.FIELDS and "store" not in ow.FIELDS
