"""/v1/messages request validation: token limits, the top-level allow-list, nesting
depth, and the malformed bodies that used to end in a 500. Errors are Anthropic's
shape; the message starts with the offending path."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from providers.anthropic import build_body
from providers.fake import FakeProvider
from router.server import anthropic_wire as aw
from tests.router.server.conftest import make_app
from tests.router.server.test_openai_wire import capped_router, dumps, nested, raw

URL = "/v1/messages"
OK = {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


async def post(client: Any, body: Any) -> Any:
    return await client.post(URL, content=dumps(body), headers={"content-type": "application/json"})


def assert_400(r: Any, path: str | None) -> str:
    assert r.status_code == 400, r.text
    j = r.json()
    assert j["type"] == "error" and j["error"]["type"] == "invalid_request_error"
    msg = j["error"]["message"]
    if path is not None:
        assert msg.startswith(path + ":") or f"'{path}'" in msg, msg
    assert "Traceback" not in r.text and "/router/" not in r.text
    return msg


# ---------------------------------------------------------------- token limits

@pytest.mark.parametrize("value", [-5, 0, -1_000_000, True, 5.5, "100", 2**31, raw("1" + "0" * 30), [], None])
async def test_bad_max_tokens(client: Any, fake: FakeProvider, value: Any) -> None:
    assert_400(await post(client, {**OK, "max_tokens": value}), "max_tokens")
    assert not fake.calls


async def test_max_completion_tokens_is_not_an_anthropic_field(client: Any, fake: FakeProvider) -> None:
    """The budget bypass: a negative max_tokens plus a top-level max_completion_tokens."""
    msg = assert_400(await post(client, {**OK, "max_tokens": -1_000_000, "max_completion_tokens": 100_000}), None)
    assert "max_completion_tokens" in msg  # the unknown field is named first; max_tokens is refused alone too
    assert_400(await post(client, {**OK, "max_tokens": -1_000_000}), "max_tokens")
    msg = assert_400(await post(client, {**OK, "max_completion_tokens": 100_000}), "max_completion_tokens")
    assert msg == "max_completion_tokens: Extra inputs are not permitted"
    assert not fake.calls


async def test_a_limit_above_the_models_max_output_is_clamped(spend_path: Any) -> None:
    router, pa = capped_router()
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await post(c, {**OK, "max_tokens": 2**31 - 1})
        assert r.status_code == 200, r.text
        assert pa.calls[-1].max_tokens == 1_000
        assert build_body(pa.calls[-1], stream=False)["max_tokens"] == 1_000
    await app.aclose()


# ---------------------------------------------------------------- the allow-list

@pytest.mark.parametrize("field,value,path", [
    ("n", 8, "n"),
    ("stream_options", {"include_usage": False}, "stream_options"),
    ("service_tier", "priority", "service_tier"),
    ("container", "c1", "container"),
    ("mcp_servers", [{"type": "url", "url": "http://x"}], "mcp_servers"),
    ("foo", {}, "foo"),
    ("top_k", -1, "top_k"),
    ("top_k", "5", "top_k"),
    ("thinking", {"type": "enabled", "budget_tokens": 100}, "thinking.budget_tokens"),  # >= max_tokens
    ("thinking", {"type": "enabled"}, "thinking.budget_tokens"),
    ("thinking", {"type": "on"}, "thinking.type"),
    ("thinking", {"type": "enabled", "budget_tokens": 50, "extra": 1}, "thinking.extra"),
    ("temperature", 1.5, "temperature"),
    ("metadata", {"user_id": 5}, "metadata.user_id"),
    ("metadata", {"session": "x"}, "metadata.session"),
    ("stop_sequences", "END", "stop_sequences"),
    ("stop_sequences", [1], "stop_sequences.0"),
    ("system", [{"type": "text", "text": 5}], "system.0.text"),
    ("system", [{"type": "image"}], "system.0.type"),
    ("system", 5, "system"),
    ("tool_choice", {"type": []}, "tool_choice.type"),
    ("tool_choice", {"type": "tool"}, "tool_choice.name"),
    ("tool_choice", {"type": "auto", "disable_parallel_tool_use": "yes"}, "tool_choice.disable_parallel_tool_use"),
    ("tool_choice", "auto", "tool_choice"),
    ("tools", [{"name": "f", "input_schema": []}], "tools.0.input_schema"),
    ("tools", [{"name": 5}], "tools.0.name"),
    ("tools", [{"type": "web_search_20250305", "name": "web_search"}], "tools.0.type"),
    ("tools", {}, "tools"),
])
async def test_allow_list_refuses_unknown_owned_and_mistyped_fields(client: Any, fake: FakeProvider, field: str,
                                                                    value: Any, path: str) -> None:
    assert_400(await post(client, {**OK, field: value}), path)
    assert not fake.calls


async def test_unknown_field_message_is_anthropics(client: Any) -> None:
    assert assert_400(await post(client, {**OK, "n": 8}), "n") == "n: Extra inputs are not permitted"


async def test_top_k_and_thinking_become_normalized_fields(client: Any, fake: FakeProvider) -> None:
    r = await post(client, {**OK, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 50},
                            "metadata": {"user_id": "u1"}, "service_tier": "standard_only"})
    assert r.status_code == 200, r.text
    sent = fake.calls[-1]
    # translated per vendor by providers.params, never forwarded raw
    assert sent.extra_body == {} and sent.top_k == 5
    assert sent.reasoning is not None and sent.reasoning.budget_tokens == 50
    assert sent.user == "u1" and sent.max_tokens == 100


# ---------------------------------------------------------------- malformed bodies that were 500s

@pytest.mark.parametrize("messages,path", [
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text",
                                                                                           "text": 5}]}]}],
     "messages.0.content.0.content.0.text"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [5]}]}],
     "messages.0.content.0.content.0"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": {"a": 1}}]}],
     "messages.0.content.0.content"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 5, "content": "x"}]}],
     "messages.0.content.0.tool_use_id"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}],
     "messages.0.content.0.is_error"),
    ([{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}],
     "messages.0.content.0.input"),
    ([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
     "messages.0.content.0.type"),
    ([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": 5, "data": "x"}}]}],
     "messages.0.content.0.source.media_type"),
    ([{"role": "user", "content": [{"type": "image", "source": {"type": []}}]}], "messages.0.content.0.source.type"),
    ([{"role": "user", "content": [{"type": {}}]}], "messages.0.content.0.type"),
    ([{"role": "user", "content": 5}], "messages.0.content"),
    ([{"role": "user", "content": None}], "messages.0.content"),
    ([{"role": {}, "content": "x"}], "messages.0.role"),
    (["hi"], "messages.0"),
    ("hi", "messages"),
])
async def test_malformed_messages_are_400_with_the_path(client: Any, messages: Any, path: str) -> None:
    assert_400(await post(client, {**OK, "messages": messages}), path)


@pytest.mark.parametrize("body,prefix", [
    ({**OK, "foo": nested(300)}, "foo.a.a"),
    ({**OK, "tools": [{"name": "f", "input_schema": nested(254)}]}, "tools.0.input_schema.a"),
    ({**OK, "tool_choice": nested(1000)}, "tool_choice.a"),
    ({**OK, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                            "input": nested(300)}]}]},
     "messages.0.content.0.input.a"),
])
async def test_too_deep_is_a_400_with_the_path(client: Any, fake: FakeProvider, body: Any, prefix: str) -> None:
    msg = assert_400(await post(client, body), None)
    assert msg.startswith(prefix) and "nested more than 64 levels" in msg
    assert not fake.calls


async def test_model_name_length_is_bounded(client: Any) -> None:
    assert_400(await post(client, {**OK, "model": "x" * 257}), "model")


def test_fields_table_is_the_documented_allow_list() -> None:
    assert aw.FIELDS == {"model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences",
                         "temperature", "top_p", "top_k", "stream", "metadata", "thinking", "output_config",
                         "service_tier",
                         "container", "mcp_servers"}


U = "user"
DOC = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}


@pytest.mark.parametrize("body,path", [
    ({"messages": [{"role": U, "content": [{"type": "text", "text": "x", "cache_control": {"type": "persistent"}}]}]},
     "messages.0.content.0.cache_control.type"),
    ({"messages": [{"role": U, "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral",
                                                                                          "ttl": 3600}}]}]},
     "messages.0.content.0.cache_control.ttl"),
    ({"messages": [{"role": U, "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral",
                                                                                          "scope": "x"}}]}]},
     "messages.0.content.0.cache_control.scope"),
    ({"system": [{"type": "text", "text": "s", "cache_control": "ephemeral"}]}, "system.0.cache_control"),
    ({"tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": []}]}, "tools.0.cache_control"),
    ({"messages": [{"role": U, "content": [{**DOC, "source": {"type": "content", "content": []}}]}]},
     "messages.0.content.0.source.type"),
    ({"messages": [{"role": U, "content": [{**DOC, "source": {"type": "url", "url": "file:///etc/passwd"}}]}]},
     "messages.0.content.0.source.url"),
    ({"messages": [{"role": U, "content": [{**DOC, "source": {"type": "text", "media_type": "text/html",
                                                              "data": "<p>"}}]}]},
     "messages.0.content.0.source.media_type"),
    ({"messages": [{"role": U, "content": [{**DOC, "title": "t" * 501}]}]}, "messages.0.content.0.title"),
    ({"messages": [{"role": U, "content": [{**DOC, "citations": {"enabled": "yes"}}]}]},
     "messages.0.content.0.citations.enabled"),
    ({"messages": [{"role": U, "content": [{**DOC, "extra": 1}]}]}, "messages.0.content.0.extra"),
    ({"messages": [{"role": U, "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}]},
     "messages.0.content.0.type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": 5}]}]},
     "messages.0.content.0.signature"),
    ({"messages": [{"role": "assistant", "content": [{"type": "redacted_thinking", "data": None}]}]},
     "messages.0.content.0.data"),
])
async def test_content_block_fields_are_checked_at_the_edge(client: Any, fake: FakeProvider, body: Any,
                                                            path: str) -> None:
    assert_400(await post(client, {**OK, **body}), path)
    assert fake.calls == []


async def test_cache_breakpoints_are_counted_across_tools_system_and_messages(client: Any) -> None:
    cc = {"type": "ephemeral"}
    body = {**OK, "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": cc}],
            "system": [{"type": "text", "text": "s", "cache_control": cc}],
            "messages": [{"role": U, "content": [{"type": "text", "text": "a", "cache_control": cc},
                                                 {"type": "text", "text": "b", "cache_control": cc},
                                                 {"type": "text", "text": "c", "cache_control": cc}]}]}
    assert_400(await post(client, body), "messages.0.content.2.cache_control")
    body["tools"][0].pop("cache_control")
    r = await post(client, body)
    assert r.status_code == 200


def test_count_fields_and_dropped_names() -> None:
    with pytest.raises(aw.WireError, match="stream: Extra inputs"):
        aw.parse_count_request({"model": "auto", "messages": [{"role": U, "content": "x"}], "stream": True})
    req = aw.parse_count_request({"model": "auto", "messages": [{"role": U, "content": "x"}],
                                  "thinking": {"type": "enabled", "budget_tokens": 5000}})
    assert req.max_tokens is None and req.reasoning is not None
    req = aw.parse_messages_request({**OK, "messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": U, "content": [{"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
                                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                                "data": "JVBE"}, "cache_control": {"type": "ephemeral"}}]}]})
    assert aw.dropped(req, "anthropic") == aw.dropped(req, "bedrock") == aw.dropped(req, "") == []
    assert aw.dropped(req, "gemini") == ["cache_control", "thinking blocks and their signatures", "URL documents"]
    assert aw.dropped(req, "deepseek")[-1] == "PDF documents" and "PDF documents" not in aw.dropped(req, "openai")
