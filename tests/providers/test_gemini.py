"""Gemini generateContent / streamGenerateContent adapter against real-format fixtures."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from providers.gemini import GeminiProvider, build_body, seconds_to_pacific_midnight
from providers.retry import NO_RETRY, RetryPolicy
from router.errors import (
    AuthFailed,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)
from router.types import ChatRequest, Message, ResponseFormat, Tool, ToolCall, accumulate

from tests.providers._native_helpers import FIXTURES, Sleeps, collect, fixture_reader, request_factory

FIX = FIXTURES / "gemini"
BASE = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
URL = BASE + ":generateContent"
SURL = BASE + ":streamGenerateContent"
KEY = "AIzaSyTESTKEY0123456789abcdefghijklmnop"
NOW = 1780944335.0  # 2026-06-08T18:45:35Z = 11:45:35 PDT


fx = fixture_reader("gemini")
req = request_factory("gemini-2.5-flash", "Hi")


def provider(retry: object = NO_RETRY) -> GeminiProvider:
    return GeminiProvider(api_key=KEY, client=httpx.AsyncClient(), retry=retry, clock=lambda: NOW)


def sse(name: str) -> httpx.Response:
    return httpx.Response(200, content=fx(name), headers={"content-type": "text/event-stream"})


def err(status: int, name: str) -> httpx.Response:
    return httpx.Response(status, content=fx(name), headers={"content-type": "application/json; charset=UTF-8"})


# ------------------------------------------------------------------ request translation


def test_build_body_roles_system_images_tools_generation_config() -> None:
    r = ChatRequest(
        model="gemini-2.5-flash",
        system="Be brief.",
        messages=[
            Message(role="user", content=[{"type": "text", "text": "Weather here?"},
                                          {"type": "image_url", "url": "data:image/jpeg;base64,/9j/4AAQ"}]),
            Message(role="assistant", tool_calls=[ToolCall(id="call_0", name="weather",
                                                           arguments='{"location": "Paris"}')]),
            Message(role="tool", tool_call_id="call_0", content='{"temp": 18}'),
            Message(role="tool", tool_call_id="call_0", content="plain text"),
        ],
        tools=[Tool(name="weather", description="Weather", parameters={"type": "object", "properties": {
            "location": {"type": "string"}}, "additionalProperties": False})],
        tool_choice="required", temperature=0.1, top_p=0.5, max_tokens=100, stop=["\n\n"],
        response_format=ResponseFormat(type="json_schema", json_schema={"name": "w", "schema": {"type": "object"}}),
        extra_body={"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
    )
    b = build_body(r)
    assert b["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    user, model, tool = b["contents"]
    assert user["role"] == "user" and user["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"location": "Paris"}}}]}
    assert tool["role"] == "user" and [p["functionResponse"]["response"] for p in tool["parts"]] == [
        {"temp": 18}, {"result": "plain text"}]
    assert tool["parts"][0]["functionResponse"]["name"] == "weather"
    decl = b["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"]["additionalProperties"] is False and decl["description"] == "Weather"
    assert b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    g = b["generationConfig"]
    assert (g["temperature"], g["topP"], g["maxOutputTokens"], g["stopSequences"]) == (0.1, 0.5, 100, ["\n\n"])
    assert g["responseMimeType"] == "application/json" and g["responseJsonSchema"] == {"type": "object"}
    assert g["thinkingConfig"] == {"includeThoughts": True}


def test_named_tool_choice_and_http_images() -> None:
    r = req(messages=[Message(role="user", content=[{"type": "image_url", "url": "https://x.org/a.png"}])],
            tools=[Tool(name="f")], tool_choice={"type": "function", "function": {"name": "f"}})
    b = build_body(r)
    assert b["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["f"]}
    assert b["contents"][0]["parts"][0] == {"fileData": {"mimeType": "image/png", "fileUri": "https://x.org/a.png"}}


def test_tool_result_without_a_known_call_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        build_body(req(messages=[Message(role="tool", tool_call_id="nope", content="x")]))


# ------------------------------------------------------------------ non-streaming


@respx.mock
async def test_complete_sends_key_in_header_never_in_url() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=fx("generate_text.json")))
    r = await provider().complete(req())
    sent = route.calls.last.request
    assert sent.headers["x-goog-api-key"] == KEY and KEY not in str(sent.url) and "key=" not in str(sent.url)
    assert r.text.startswith("There are **3** r's") and r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (9, 28 + 244, 244)
    assert (r.id, r.model) == ("Un6LacrVMcjUxs0PmJfWoQc", "gemini-3-pro-preview")


@respx.mock
async def test_complete_tool_call_and_finish_mapping() -> None:
    respx.post(URL).mock(side_effect=[httpx.Response(200, content=fx("generate_tool_call.json")),
                                      httpx.Response(200, content=fx("generate_max_tokens.json")),
                                      httpx.Response(200, content=fx("generate_safety.json"))])
    p = provider()
    r = await p.complete(req())
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "weather"
    assert json.loads(r.tool_calls[0].arguments) == {"location": "San Francisco"}
    assert r.tool_calls[0].id == "call_m36LaZGyCLz1xs0PtNSB-QU_0"
    assert r.provider_details["finish_message"] == "Model generated function call(s)."
    assert (await p.complete(req())).finish_reason == "length"
    safety = await p.complete(req())
    assert safety.finish_reason == "content_filter" and safety.text == "" and safety.usage.input_tokens == 12


@respx.mock
async def test_prompt_block_is_content_filtered_with_billed_prompt() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("generate_prompt_blocked.json")))
    with pytest.raises(ContentFiltered) as ei:
        await provider().complete(req())
    assert ei.value.code == "PROHIBITED_CONTENT" and ei.value.billed_usage.input_tokens == 9


# ------------------------------------------------------------------ streaming


@respx.mock
async def test_stream_text_crlf_capture() -> None:
    route = respx.post(SURL).mock(return_value=sse("stream_text.sse"))
    evs = await collect(provider(), req())
    assert route.calls.last.request.url.params["alt"] == "sse"
    assert KEY not in str(route.calls.last.request.url)
    r = accumulate(evs)
    assert r.text.endswith("5.  **Italian:** Ciao") and r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (5, 44 + 186, 186)
    assert r.model == "models/gemini-2.5-flash-preview-05-20" and evs[-1].kind == "finish"


@respx.mock
async def test_stream_and_complete_agree() -> None:
    respx.post(SURL).mock(return_value=sse("stream_thinking_tokens.sse"))
    r = accumulate(await collect(provider(), req()))
    assert r.text == 'There are **3** "r"s in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y.'
    assert (r.usage.output_tokens, r.usage.reasoning_tokens) == (29 + 256, 256)


@respx.mock
async def test_stream_tool_call() -> None:
    respx.post(SURL).mock(return_value=sse("stream_tool_call.sse"))
    r = accumulate(await collect(provider(), req()))
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "weather"
    assert json.loads(r.tool_calls[0].arguments) == {"location": "San Francisco"}


@respx.mock
async def test_stream_thought_parts_and_cached_tokens() -> None:
    respx.post(SURL).mock(return_value=sse("stream_thought_summary_cached.sse"))
    r = accumulate(await collect(provider(), req()))
    assert r.reasoning.startswith("**Counting the letters**") and r.text == "There are 3 r's in strawberry."
    u = r.usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (2066, 2048, 143, 134)


@respx.mock
@pytest.mark.parametrize("name", ["stream_truncated.sse", "stream_garbage.sse"])
async def test_stream_without_finish_reason_is_malformed(name: str) -> None:
    respx.post(SURL).mock(return_value=sse(name))
    with pytest.raises(MalformedResponse) as ei:
        await collect(provider(), req())
    assert ei.value.billed_usage is not None and ei.value.billed_usage.output_tokens == 39 + 186


@respx.mock
async def test_error_chunk_mid_stream_is_typed_and_not_retried() -> None:
    route = respx.post(SURL).mock(return_value=sse("stream_error_midway.sse"))
    with pytest.raises(Unavailable) as ei:
        await collect(provider(RetryPolicy(sleep=Sleeps())), req())
    assert ei.value.code == "UNAVAILABLE" and ei.value.billed_usage.input_tokens == 5 and route.call_count == 1


@respx.mock
async def test_stream_http_error_before_first_event_is_retried() -> None:
    route = respx.post(SURL).mock(side_effect=[err(503, "error_unavailable.json"), sse("stream_text.sse")])
    r = accumulate(await collect(provider(RetryPolicy(sleep=Sleeps())), req()))
    assert r.finish_reason == "stop" and route.call_count == 2


# ------------------------------------------------------------------ errors


@respx.mock
async def test_per_day_free_tier_quota_is_quota_exhausted() -> None:
    route = respx.post(URL).mock(return_value=err(429, "error_429_per_day.json"))
    with pytest.raises(QuotaExhausted) as ei:
        await provider(RetryPolicy(sleep=Sleeps())).complete(req())
    e = ei.value
    assert route.call_count == 1 and e.code == "RESOURCE_EXHAUSTED" and "limit: 20" in e.message
    assert e.retry_after == seconds_to_pacific_midnight(NOW) == 12 * 3600 + 14 * 60 + 25  # until 00:00 PDT


@respx.mock
async def test_limit_zero_means_no_free_tier() -> None:
    respx.post(URL).mock(return_value=err(429, "error_429_limit_zero.json"))
    with pytest.raises(QuotaExhausted):
        await provider().complete(req())


@respx.mock
async def test_per_minute_limit_is_rate_limited_with_retry_info() -> None:
    route = respx.post(URL).mock(side_effect=[err(429, "error_429_per_minute.json"),
                                              httpx.Response(200, content=fx("generate_text.json"))])
    sleeps = Sleeps()
    r = await provider(RetryPolicy(sleep=sleeps, max_wait_s=60)).complete(req())
    assert r.finish_reason == "stop" and route.call_count == 2 and sleeps.waits == [34.4]
    respx.post(URL).mock(return_value=err(429, "error_429_per_minute.json"))
    with pytest.raises(RateLimited) as ei:
        await provider().complete(req())
    assert ei.value.retry_after == 34.4 and ei.value.rate_limits.retry_after_s == 34.4


@respx.mock
@pytest.mark.parametrize("status,name,cls,code", [
    (400, "error_api_key_invalid.json", AuthFailed, "INVALID_ARGUMENT"),
    (400, "error_context_too_long.json", ContextTooLong, "INVALID_ARGUMENT"),
    (400, "error_invalid_argument.json", BadRequest, "INVALID_ARGUMENT"),
    (400, "error_location.json", BadRequest, "FAILED_PRECONDITION"),
    (403, "error_permission_denied.json", AuthFailed, "PERMISSION_DENIED"),
    (404, "error_not_found.json", BadRequest, "NOT_FOUND"),
    (500, "error_internal.json", Unavailable, "INTERNAL"),
    (503, "error_unavailable.json", Unavailable, "UNAVAILABLE"),
    (504, "error_deadline.json", Timeout, "DEADLINE_EXCEEDED"),
])
async def test_error_mapping(status: int, name: str, cls: type, code: str) -> None:
    respx.post(URL).mock(return_value=err(status, name))
    with pytest.raises(cls) as ei:
        await provider().complete(req())
    e = ei.value
    assert type(e) is cls and e.status == status and e.code == code and e.provider == "gemini"
    assert e.rate_limits is not None and e.rate_limits.observed_at == NOW


@respx.mock
async def test_garbage_bodies_are_typed() -> None:
    html = b"<!DOCTYPE html><html><head><title>Error 502 (Server Error)!!1</title></head></html>"
    respx.post(URL).mock(side_effect=[httpx.Response(502, content=html), httpx.Response(200, content=html),
                                      httpx.Response(200, content=fx("generate_text.json")[:200]),
                                      httpx.Response(200, json={"unexpected": True})])
    p = provider()
    with pytest.raises(Unavailable):
        await p.complete(req())
    for _ in range(3):
        with pytest.raises(MalformedResponse):
            await p.complete(req())


@respx.mock
async def test_key_never_leaks() -> None:
    body = json.dumps({"error": {"code": 400, "message": f"API key not valid: {KEY}", "status": "INVALID_ARGUMENT",
                                 "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                              "reason": "API_KEY_INVALID"}]}})
    respx.post(URL).mock(return_value=httpx.Response(400, content=body))
    p = provider()
    assert KEY not in repr(p)
    with pytest.raises(AuthFailed) as ei:
        await p.complete(req())
    assert KEY not in str(ei.value) and KEY not in ei.value.body and KEY not in repr(ei.value)


def test_base_url_variants() -> None:
    p = GeminiProvider(api_key=KEY, base_url="https://proxy.example/v1beta/")
    assert p._url("models/gemini-2.5-flash", "generateContent") == \
        "https://proxy.example/v1beta/models/gemini-2.5-flash:generateContent"


def test_registry_builds_the_native_adapter() -> None:
    from providers.base import Provider
    from providers.registry import build_provider

    for kind in ("gemini", "google"):
        p = build_provider(kind, api_key=KEY)
        assert isinstance(p, GeminiProvider) and isinstance(p, Provider)


@respx.mock
async def test_thought_signatures_round_trip_and_sentinel_for_foreign_history() -> None:
    """Gemini 3 rejects replayed function calls without their thoughtSignature."""
    route = respx.post(SURL.replace("gemini-2.5-flash", "gemini-3-pro-preview")).mock(
        return_value=sse("stream_tool_call.sse"))
    p = provider()
    first = accumulate(await collect(p, req(model="gemini-3-pro-preview")))
    call = first.tool_calls[0]
    assert call.id == "call_b36LacjwM668nsEP2tbsgQQ_0"
    history = [Message(role="user", content="Weather in SF?"),
               Message(role="assistant", tool_calls=[call]),
               Message(role="tool", tool_call_id=call.id, content='{"temp": 58}'),
               Message(role="assistant", tool_calls=[ToolCall(id="toolu_from_claude", name="weather",
                                                              arguments='{"location": "LA"}')]),
               Message(role="tool", tool_call_id="toolu_from_claude", content='{"temp": 75}')]
    await collect(p, req(model="gemini-3-pro-preview", messages=history))
    contents = json.loads(route.calls.last.request.content)["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"].startswith("EqUCCqICAb4+9vsh8Pd5")  # the real one, echoed
    assert contents[3]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"  # none known
    assert "thoughtSignature" not in json.dumps(build_body(req(messages=history)))  # Gemini 2.x: untouched


@respx.mock
async def test_malformed_function_call_finish_is_an_error_of_the_models_output() -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "calling"}]},
                            "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}}
    respx.post(URL).mock(return_value=httpx.Response(200, json=body))
    r = await provider().complete(req())
    assert r.finish_reason == "error"  # never presented as a complete answer
    assert r.provider_details["finish_reason"] == "MALFORMED_FUNCTION_CALL" and r.provider_details["model_error"]
