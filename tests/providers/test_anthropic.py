"""Anthropic Messages adapter against real-format fixtures (respx, offline)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from providers.anthropic import AnthropicProvider, build_body
from providers.retry import NO_RETRY, RetryPolicy
from router.errors import (
    AuthFailed,
    BadRequest,
    ContextTooLong,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)
from router.types import ChatRequest, FinishEvent, Message, ResponseFormat, Tool, ToolCall, accumulate

from tests.providers._native_helpers import FIXTURES, Sleeps, collect, fixture_reader, request_factory

FIX = FIXTURES / "anthropic"
URL = "https://api.anthropic.com/v1/messages"
KEY = "sk-ant-api03-TESTKEYabcdefghijklmnopqrstuvwxyz0123456789"
NOW = 1780944335.0  # 2026-06-08T18:45:35Z


fx = fixture_reader("anthropic")
req = request_factory("claude-sonnet-4-5", "Hello")


def hdrs(name: str, content_type: str = "application/json") -> dict[str, str]:
    h = json.loads(fx(name))
    h["content-type"] = content_type
    return h


def provider(retry: object = NO_RETRY) -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=retry, clock=lambda: NOW)


def sse_response(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=fx(name), headers=hdrs("headers_ok.json", "text/event-stream; charset=utf-8"))


# ------------------------------------------------------------------ request translation


def test_build_body_maps_system_images_tools_and_defaults() -> None:
    r = ChatRequest(
        model="claude-sonnet-4-5",
        system="Be brief.",
        messages=[
            Message(role="system", content="You are a weather bot."),
            Message(role="user", content=[
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "url": "data:image/png;base64,iVBORw0KGgo="},
                {"type": "image_url", "url": "https://example.com/cat.jpg"},
            ]),
            Message(role="assistant", content="Checking.", tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="toolu_2", name="get_weather", arguments='{"city": "Rome"}'),
            ]),
            Message(role="tool", tool_call_id="toolu_1", content="18C"),
            Message(role="tool", tool_call_id="toolu_2", content="24C"),
        ],
        tools=[Tool(name="get_weather", description="Weather by city",
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}})],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stop=["END"], temperature=0.2, top_p=0.9, user="u-1",
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    b = build_body(r, stream=True)
    assert b["max_tokens"] == 4096 and b["stream"] is True
    assert b["system"] == "Be brief.\n\nYou are a weather bot."
    user, asst, results = b["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                              "data": "iVBORw0KGgo="}}
    assert user["content"][2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert asst["content"][1] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                  "input": {"city": "Paris"}}
    # consecutive tool results are merged into ONE user turn (the API wants alternation)
    assert results["role"] == "user" and [c["tool_use_id"] for c in results["content"]] == ["toolu_1", "toolu_2"]
    assert results["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}
    assert b["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert b["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert (b["stop_sequences"], b["temperature"], b["top_p"]) == (["END"], 0.2, 0.9)
    # thinking is not allowed with a forced tool call: the normalized reasoning is dropped (providers.params)
    assert b["metadata"] == {"user_id": "u-1"} and "thinking" not in b


@pytest.mark.parametrize("choice,wire", [("auto", {"type": "auto"}), ("required", {"type": "any"}),
                                         ("none", {"type": "none"})])
def test_tool_choice_mapping(choice: str, wire: dict[str, str]) -> None:
    b = build_body(req(tools=[Tool(name="f")], tool_choice=choice, max_tokens=10), stream=False)
    assert b["tool_choice"] == wire and b["max_tokens"] == 10 and "stream" not in b


def test_json_mode_without_a_schema_goes_into_the_system_prompt() -> None:
    # a JSON schema goes native or as a forced tool (tests/providers/test_params.py); plain JSON mode is an instruction
    b = build_body(req(response_format=ResponseFormat(type="json_object")), stream=False)
    assert "valid JSON object" in b["system"] and "output_config" not in b


def test_invalid_tool_arguments_are_a_bad_request() -> None:
    r = req(messages=[Message(role="assistant", tool_calls=[ToolCall(id="t", name="f", arguments="{oops")])])
    with pytest.raises(BadRequest):
        build_body(r, stream=False)


# ------------------------------------------------------------------ non-streaming


@respx.mock
async def test_complete_text_usage_headers_and_rate_limits() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=fx("message_text.json"),
                                                             headers=hdrs("headers_ok.json")))
    p = provider()
    r = await p.complete(req())
    sent = route.calls.last.request
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(sent.content)["max_tokens"] == 4096
    assert (r.text, r.finish_reason, r.id, r.model) == ("Hello!", "stop", "msg_01TestTextResponse", "claude-opus-4-7")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (10, 5)
    assert r.rate_limits is not None and r.rate_limits.remaining_requests == 999
    assert r.rate_limits.limit_tokens == 540000 and r.rate_limits.reset_requests_s == 0.0
    await p.aclose()


@respx.mock
async def test_complete_tool_use_and_refusal() -> None:
    respx.post(URL).mock(side_effect=[httpx.Response(200, content=fx("message_tool_use.json")),
                                      httpx.Response(200, content=fx("message_refusal.json"))])
    p = provider()
    r = await p.complete(req())
    assert r.finish_reason == "tool_calls" and r.text.startswith("<thinking>")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("toolu_01LRmxn9vGM1d2DZSDBowdZ1",
                                                                     "updateIssueList", "{}")]
    r2 = await p.complete(req())
    assert r2.finish_reason == "content_filter" and r2.provider_details["stop_details"]["category"] == "cyber"


@respx.mock
async def test_cache_read_tokens_are_part_of_input() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("message_cache_read.json")))
    u = (await provider().complete(req())).usage
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens) == (188107, 188086, 0, 393)


# ------------------------------------------------------------------ streaming


@respx.mock
async def test_stream_text_matches_complete_path() -> None:
    route = respx.post(URL).mock(return_value=sse_response("stream_text.sse"))
    evs = await collect(provider(), req())
    assert json.loads(route.calls.last.request.content)["stream"] is True
    r = accumulate(evs)
    assert r.text == "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.finish_reason) == (12, 30, "stop")
    assert r.id == "msg_01QC4g3HwBThD4BaNtBckFDJ" and r.model == "claude-sonnet-4-5-20250929"
    fin = [e for e in evs if isinstance(e, FinishEvent)]
    assert len(fin) == 1 and evs[-1] is fin[0] and fin[0].provider_details["rate_limits"]["remaining_requests"] == 999


@respx.mock
async def test_stream_tool_call_arguments_are_concatenated() -> None:
    respx.post(URL).mock(side_effect=[sse_response("stream_tool_use.sse"), sse_response("stream_text_then_tool.sse")])
    p = provider()
    r = accumulate(await collect(p, req()))
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "json"
    assert json.loads(r.tool_calls[0].arguments)["elements"][0]["temperature"] == 58
    r2 = accumulate(await collect(p, req()))
    assert r2.text == "I'll update the issue list for you." and r2.tool_calls[0].id == "toolu_01QE1WLsSVp5hy5Q3GmGTmjP"
    assert r2.tool_calls[0].arguments == "" and r2.usage.output_tokens == 48


@respx.mock
async def test_stream_thinking_becomes_reasoning() -> None:
    respx.post(URL).mock(return_value=sse_response("stream_thinking.sse"))
    r = accumulate(await collect(provider(), req()))
    assert r.reasoning.startswith("The previous result was 925.") and r.text == "925 ÷ 5 = 185"
    assert r.usage.output_tokens == 53


@respx.mock
async def test_stream_cache_write_counts_into_input_tokens() -> None:
    respx.post(URL).mock(return_value=sse_response("stream_cache_write.sse"))
    r = accumulate(await collect(provider(), req()))
    u = r.usage
    assert (u.input_tokens, u.cache_write_tokens, u.cache_read_tokens, u.output_tokens) == (188107, 188086, 0, 15)
    assert r.text == "Hello!"


@respx.mock
async def test_mid_stream_overloaded_error_is_typed_and_not_retried() -> None:
    route = respx.post(URL).mock(return_value=sse_response("stream_overloaded.sse"))
    sleeps = Sleeps()
    p = provider(RetryPolicy(sleep=sleeps))
    seen = []
    with pytest.raises(Unavailable) as ei:
        async for ev in p.stream(req()):
            seen.append(ev)
    e = ei.value
    assert e.code == "overloaded_error" and e.status == 529 and e.provider == "anthropic"
    assert e.billed_usage is not None and e.billed_usage.input_tokens == 12
    assert seen and route.call_count == 1 and sleeps.waits == []


@respx.mock
async def test_error_before_first_event_is_retried() -> None:
    route = respx.post(URL).mock(side_effect=[sse_response("stream_overloaded_first.sse"),
                                              httpx.Response(529, content=fx("error_overloaded.json")),
                                              sse_response("stream_text.sse")])
    sleeps = Sleeps()
    r = accumulate(await collect(provider(RetryPolicy(sleep=sleeps, rand=lambda: 0.0)), req()))
    assert r.finish_reason == "stop" and route.call_count == 3 and len(sleeps.waits) == 2


@respx.mock
@pytest.mark.parametrize("name", ["stream_truncated.sse", "stream_garbage.sse"])
async def test_cut_or_corrupt_stream_is_malformed_with_billed_usage(name: str) -> None:
    respx.post(URL).mock(return_value=sse_response(name))
    with pytest.raises(MalformedResponse) as ei:
        await collect(provider(), req())
    assert ei.value.billed_usage is not None and ei.value.billed_usage.input_tokens == 12


# ------------------------------------------------------------------ errors


@respx.mock
@pytest.mark.parametrize("status,name,cls,code", [
    (400, "error_invalid_request.json", BadRequest, "invalid_request_error"),
    (400, "error_prompt_too_long.json", ContextTooLong, "invalid_request_error"),
    (400, "error_credit_balance.json", QuotaExhausted, "invalid_request_error"),
    (401, "error_authentication.json", AuthFailed, "authentication_error"),
    (403, "error_permission.json", AuthFailed, "permission_error"),
    (404, "error_not_found.json", BadRequest, "not_found_error"),
    (413, "error_request_too_large.json", ContextTooLong, "request_too_large"),
    (500, "error_api.json", Unavailable, "api_error"),
    (529, "error_overloaded.json", Unavailable, "overloaded_error"),
])
async def test_error_mapping(status: int, name: str, cls: type, code: str) -> None:
    respx.post(URL).mock(return_value=httpx.Response(status, content=fx(name), headers=hdrs("headers_ok.json")))
    with pytest.raises(cls) as ei:
        await provider().complete(req())
    e = ei.value
    assert type(e) is cls and e.status == status and e.code == code and e.model == "claude-sonnet-4-5"
    assert e.rate_limits is not None and e.rate_limits.remaining_requests == 999
    assert "request-id" in e.headers


@respx.mock
async def test_rate_limit_uses_retry_after_and_headers() -> None:
    respx.post(URL).mock(return_value=httpx.Response(429, content=fx("error_rate_limit.json"),
                                                     headers=hdrs("headers_429.json")))
    with pytest.raises(RateLimited) as ei:
        await provider().complete(req())
    e = ei.value
    assert e.retry_after == 11.0 and e.code == "rate_limit_error"
    assert e.rate_limits.remaining_tokens == 0 and e.rate_limits.reset_tokens_s == 11.0


@respx.mock
async def test_retry_then_success_through_one_policy() -> None:
    route = respx.post(URL).mock(side_effect=[
        httpx.Response(429, content=fx("error_rate_limit.json"), headers=hdrs("headers_429.json")),
        httpx.Response(200, content=fx("message_text.json"))])
    sleeps = Sleeps()
    r = await provider(RetryPolicy(sleep=sleeps)).complete(req())
    assert r.text == "Hello!" and route.call_count == 2 and sleeps.waits == [11.0]


@respx.mock
async def test_quota_is_never_retried() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(400, content=fx("error_credit_balance.json")))
    with pytest.raises(QuotaExhausted):
        await provider(RetryPolicy(sleep=Sleeps())).complete(req())
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize("status,body,cls", [
    (502, "error_cloudflare_502.html", Unavailable),
    (200, "error_cloudflare_502.html", MalformedResponse),
])
async def test_html_pages_are_typed(status: int, body: str, cls: type) -> None:
    respx.post(URL).mock(return_value=httpx.Response(status, content=fx(body), headers={"content-type": "text/html"}))
    with pytest.raises(cls) as ei:
        await provider().complete(req())
    assert "HTML" in str(ei.value)


@respx.mock
async def test_truncated_json_and_wrong_shape_are_malformed() -> None:
    respx.post(URL).mock(side_effect=[httpx.Response(200, content=fx("message_text.json")[:120]),
                                      httpx.Response(200, json={"hello": "world"})])
    p = provider()
    for _ in range(2):
        with pytest.raises(MalformedResponse):
            await p.complete(req())


@respx.mock
async def test_transport_errors_are_typed() -> None:
    respx.post(URL).mock(side_effect=[httpx.ConnectError("boom"), httpx.ReadTimeout("slow")])
    p = provider()
    with pytest.raises(Unavailable):
        await p.complete(req())
    with pytest.raises(Timeout):
        await p.complete(req())


@respx.mock
async def test_key_never_leaks() -> None:
    body = json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                  "message": f"invalid x-api-key {KEY}"}})
    respx.post(URL).mock(return_value=httpx.Response(401, content=body, headers={"x-api-key": KEY}))
    p = provider()
    assert KEY not in repr(p)
    with pytest.raises(AuthFailed) as ei:
        await p.complete(req())
    e = ei.value
    assert KEY not in str(e) and KEY not in repr(e) and KEY not in e.body and KEY not in json.dumps(e.headers)


def test_registry_builds_the_native_adapter() -> None:
    from providers.base import Provider
    from providers.registry import build_provider

    p = build_provider("anthropic", api_key=KEY, client=httpx.AsyncClient(), name="claude", retry=NO_RETRY)
    assert isinstance(p, AnthropicProvider) and isinstance(p, Provider) and p.name == "claude"
    p2 = build_provider("anthropic", api_key=KEY, base_url="https://api.deepseek.com/anthropic",
                        default_max_tokens=1024)
    assert p2._url() == "https://api.deepseek.com/anthropic/v1/messages" and p2.default_max_tokens == 1024


def test_trailing_assistant_message_is_sent_as_a_prefill() -> None:
    from router.types import ChatRequest, Message

    r = ChatRequest(model="claude", messages=[Message(role="user", content="count"),
                                              Message(role="assistant", content="1 2 3")])
    msgs = build_body(r, stream=True)["messages"]
    assert msgs[-1]["role"] == "assistant" and "1 2 3" in json.dumps(msgs[-1]["content"])
    assert AnthropicProvider.prefill is True
