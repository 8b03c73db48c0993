"""OpenAI chat completions adapter against real-format fixtures (respx, offline)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from providers.openai import build_body, map_finish, parse_usage
from providers.vendors import VENDORS
from router import errors as E
from router.types import (ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool, ToolCall, accumulate)
from tests.providers._oai_helpers import KEY, Sleeps, collect, fx, fx_headers, json_resp, provider, req, sse_headers

URL = "https://api.openai.com/v1/chat/completions"


# ------------------------------------------------------------------ request translation


def test_request_translation_full():
    r = ChatRequest(
        model="gpt-4o", system="Be brief.",
        messages=[
            Message(role="developer", content="Use metric units."),
            Message(role="user", content=[TextPart(text="What is this?"),
                                          ImagePart(url="data:image/png;base64,AAAA", detail="low")]),
            Message(role="assistant", content=None,
                    tool_calls=[ToolCall(id="call_1", name="lookup", arguments='{"q":"x"}')]),
            Message(role="tool", tool_call_id="call_1", content="42"),
        ],
        tools=[Tool(name="lookup", description="Look up", parameters={"type": "object", "properties": {}},
                    strict=True)],
        tool_choice="required",
        response_format=ResponseFormat(type="json_schema", json_schema={"name": "a", "schema": {}, "strict": True}),
        temperature=0.2, top_p=0.9, max_tokens=100, stop=["END"], user="u-1", extra_body={"seed": 7})
    b = build_body(r, VENDORS["openai"], stream=True)
    assert b["messages"][0] == {"role": "system", "content": "Be brief."}
    assert b["messages"][1] == {"role": "developer", "content": "Use metric units."}
    assert b["messages"][2]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]
    assert b["messages"][3]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]
    assert b["messages"][4] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    assert b["tools"][0] == {"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {}}, "description": "Look up",
        "strict": True}}
    assert b["tool_choice"] == "required"
    assert b["response_format"] == {"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "strict": True}}
    assert (b["temperature"], b["top_p"], b["stop"], b["user"], b["seed"]) == (0.2, 0.9, ["END"], "u-1", 7)
    assert b["max_tokens"] == 100 and "max_completion_tokens" not in b
    assert b["stream"] is True and b["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model,field", [("o3-mini", "max_completion_tokens"), ("gpt-5", "max_completion_tokens"),
                                         ("o1-2024-12-17", "max_completion_tokens"), ("gpt-4o", "max_tokens")])
def test_max_completion_tokens_row_quirk(model, field):
    b = build_body(req(model, max_tokens=50), VENDORS["openai"], stream=False)
    assert b[field] == 50 and "stream" not in b


def test_compatible_vendors_get_system_not_developer_and_plain_text():
    r = ChatRequest(model="deepseek-chat", messages=[
        Message(role="developer", content="d"), Message(role="user", content=[TextPart(text="a"), TextPart(text="b")])],
        max_tokens=10, response_format=ResponseFormat(type="json_object"))
    b = build_body(r, VENDORS["deepseek"], stream=False)
    assert b["messages"] == [{"role": "system", "content": "d"}, {"role": "user", "content": "ab"}]
    assert b["max_tokens"] == 10 and b["response_format"] == {"type": "json_object"}


# ------------------------------------------------------------------ non-streaming


@respx.mock
async def test_complete_parses_usage_and_rate_limits():
    route = respx.post(URL).mock(return_value=json_resp(200, "openai/chat_completion.json",
                                                        fx_headers("openai/ok.headers.json")))
    p = provider()
    res = await p.complete(req("gpt-4o"))
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content)["model"] == "gpt-4o"
    assert res.text.startswith("The image shows") and res.finish_reason == "stop"
    assert res.model == "gpt-4o-2024-08-06" and res.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert (res.usage.input_tokens, res.usage.output_tokens, res.usage.cache_read_tokens) == (1117, 46, 1024)
    rl = res.rate_limits
    assert (rl.limit_requests, rl.remaining_tokens, rl.reset_requests_s) == (10000, 29998864, 0.006)
    assert res.provider == "openai" and res.usage_reported


@respx.mock
async def test_reasoning_tokens():
    respx.post(URL).mock(return_value=json_resp(200, "openai/reasoning_completion.json"))
    res = await provider().complete(req("o3-mini"))
    assert res.usage.reasoning_tokens == 192 and res.usage.output_tokens == 203 and res.text == "4"


@respx.mock
async def test_tool_call_non_stream():
    respx.post(URL).mock(return_value=json_resp(200, "openai/tool_call.json"))
    res = await provider().complete(req())
    assert res.finish_reason == "tool_calls"
    assert res.tool_calls[0].id == "call_abc123" and res.tool_calls[0].name == "get_current_weather"
    assert json.loads(res.tool_calls[0].arguments) == {"location": "Boston, MA"}


@respx.mock
async def test_unknown_finish_reason_kept_in_details():
    respx.post(URL).mock(return_value=json_resp(200, "openai/unknown_finish.json"))
    res = await provider().complete(req())
    assert res.finish_reason == "unknown" and res.provider_details["finish_reason_raw"] == "brand_new_reason"
    assert res.text == "Hi"


# ------------------------------------------------------------------ streaming


@respx.mock
async def test_stream_text_and_usage_same_as_accumulate():
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("openai/chat_stream.sse"),
                                                     headers=sse_headers(fx_headers("openai/ok.headers.json"))))
    evs = await collect(provider(), req(stream=True))
    assert evs[-1].kind == "finish"
    res = accumulate(evs)
    assert res.text == "Hello! How can I help?" and res.finish_reason == "stop"
    assert (res.usage.input_tokens, res.usage.output_tokens) == (19, 10) and res.usage_reported
    assert res.provider_details["rate_limits"]["limit_requests"] == 10000
    sent = json.loads(respx.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@respx.mock
async def test_tool_call_stream():
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("openai/tool_call_stream.sse"),
                                                     headers=sse_headers()))
    res = accumulate(await collect(provider(), req()))
    assert res.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in res.tool_calls] == [("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"),
                                                       ("call_Xb2x0vJk1Q8nZk7sYh3fT4aM", "get_time")]
    assert json.loads(res.tool_calls[0].arguments) == {"location": "Paris"}
    assert res.usage.input_tokens == 85


@respx.mock
async def test_stream_split_into_tiny_chunks_with_crlf():
    body = fx("openai/chat_stream.sse").replace(b"\n", b"\r\n")

    async def gen():
        for i in range(0, len(body), 7):
            yield body[i:i + 7]

    class S(httpx.AsyncByteStream):
        async def __aiter__(self):
            async for c in gen():
                yield c

    respx.post(URL).mock(return_value=httpx.Response(200, stream=S(), headers=sse_headers()))
    res = accumulate(await collect(provider(), req()))
    assert res.text == "Hello! How can I help?" and res.usage.output_tokens == 10


# ------------------------------------------------------------------ bad upstream input


@respx.mock
async def test_stream_without_done_or_finish_is_malformed():
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("openai/stream_no_done.sse"),
                                                     headers=sse_headers()))
    got = []
    with pytest.raises(E.MalformedResponse, match="without \\[DONE\\]"):
        async for ev in provider().stream(req()):
            got.append(ev)
    assert "".join(e.text for e in got if e.kind == "text") == "Partial ans"


@respx.mock
async def test_stream_cut_after_usage_keeps_billed_usage():
    body = fx("openai/chat_stream.sse")
    body = body[:body.index(b'data: {"id":"chatcmpl-AxKqdW0YXbSlBHHkN3tRMr35vhGmk","object":"chat.completion.chunk",'
                            b'"created":1738701635,"model":"gpt-4o-mini-2024-07-18","service_tier":"default",'
                            b'"system_fingerprint":"fp_72ed7ab54c","choices":[{"index":0,"delta":{},')]
    # add a usage-bearing chunk, then cut without finish/[DONE]
    body += (b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
             b'"usage":{"prompt_tokens":19,"completion_tokens":7,"total_tokens":26}}\n\n')
    respx.post(URL).mock(return_value=httpx.Response(200, content=body, headers=sse_headers()))
    with pytest.raises(E.MalformedResponse) as ei:
        await collect(provider(), req())
    assert ei.value.billed_usage.output_tokens == 7


@respx.mock
async def test_finish_without_done_is_accepted_but_flagged():
    body = fx("openai/chat_stream.sse")
    body = body[:body.index(b'data: {"id":"chatcmpl-AxKqdW0YXbSlBHHkN3tRMr35vhGmk","object":"chat.completion.chunk",'
                            b'"created":1738701635,"model":"gpt-4o-mini-2024-07-18","service_tier":"default",'
                            b'"system_fingerprint":"fp_72ed7ab54c","choices":[],')]
    respx.post(URL).mock(return_value=httpx.Response(200, content=body, headers=sse_headers()))
    res = accumulate(await collect(provider(), req()))
    assert res.text == "Hello! How can I help?" and not res.usage_reported
    assert res.provider_details["stream_terminated_early"] is True


@respx.mock
async def test_truncated_json_is_malformed():
    respx.post(URL).mock(return_value=json_resp(200, "openai/truncated.json"))
    with pytest.raises(E.MalformedResponse, match="invalid JSON"):
        await provider().complete(req())


@respx.mock
async def test_html_502_is_unavailable_and_retried():
    html = httpx.Response(502, content=fx("openai/html_502.html"), headers={"content-type": "text/html"})
    respx.post(URL).mock(side_effect=[html, json_resp(200, "openai/chat_completion.json")])
    p = provider(retries=3)
    res = await p.complete(req())
    assert res.text.startswith("The image")
    assert respx.calls.call_count == 2


@respx.mock
async def test_html_502_without_retry_is_typed():
    respx.post(URL).mock(return_value=httpx.Response(502, content=fx("openai/html_502.html"),
                                                     headers={"content-type": "text/html"}))
    with pytest.raises(E.Unavailable, match="HTML error page") as ei:
        await provider().complete(req())
    assert ei.value.status == 502


@respx.mock
async def test_html_page_with_200_is_malformed():
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("openai/html_502.html"),
                                                     headers={"content-type": "text/html"}))
    with pytest.raises(E.MalformedResponse):
        await provider().complete(req())
    with pytest.raises(E.MalformedResponse):
        await collect(provider(), req())


@respx.mock
async def test_empty_choices_is_malformed():
    respx.post(URL).mock(return_value=json_resp(200, b'{"id":"x","object":"chat.completion","choices":[]}'))
    with pytest.raises(E.MalformedResponse, match="no choices"):
        await provider().complete(req())


@respx.mock
async def test_garbage_in_stream_is_malformed():
    respx.post(URL).mock(return_value=httpx.Response(200, content=b"data: {not json\n\n", headers=sse_headers()))
    with pytest.raises(E.MalformedResponse, match="invalid JSON in stream"):
        await collect(provider(), req())


# ------------------------------------------------------------------ errors, retries, transport


@respx.mock
async def test_insufficient_quota_is_quota_not_rate_and_not_retried():
    respx.post(URL).mock(return_value=json_resp(429, "openai/error_insufficient_quota.json",
                                                fx_headers("openai/error_insufficient_quota.headers.json")))
    with pytest.raises(E.QuotaExhausted) as ei:
        await provider(retries=3).complete(req())
    assert respx.calls.call_count == 1
    assert ei.value.code == "insufficient_quota" and ei.value.status == 429 and not ei.value.retryable


@respx.mock
async def test_rate_limit_retry_after_ms_and_snapshot():
    respx.post(URL).mock(return_value=json_resp(429, "openai/error_rate_limit.json",
                                                fx_headers("openai/error_rate_limit.headers.json")))
    with pytest.raises(E.RateLimited) as ei:
        await provider().complete(req())
    e = ei.value
    assert e.retry_after == 0.196 and e.rate_limits.remaining_tokens == 0 and e.rate_limits.reset_tokens_s == 0.196
    assert e.headers["x-ratelimit-limit-tokens"] == "200000"


@respx.mock
async def test_rate_limit_is_retried_with_retry_after():
    sleeps = Sleeps()
    from providers.openai import OpenAIProvider
    from providers.retry import RetryPolicy
    respx.post(URL).mock(side_effect=[
        json_resp(429, "openai/error_rate_limit.json", fx_headers("openai/error_rate_limit.headers.json")),
        json_resp(200, "openai/chat_completion.json")])
    p = OpenAIProvider(api_key=KEY, client=httpx.AsyncClient(), retry=RetryPolicy(sleep=sleeps))
    assert (await p.complete(req())).finish_reason == "stop"
    assert sleeps == [0.196]


@pytest.mark.parametrize("status,path,cls", [
    (400, "openai/error_context_length.json", E.ContextTooLong),
    (401, "openai/error_invalid_api_key.json", E.AuthFailed),
    (500, "openai/error_server.json", E.Unavailable),
    (503, b"", E.Unavailable),
    (529, b"overloaded", E.Unavailable),
    (408, b"", E.Timeout),
    (409, b"", E.Unavailable),
    (422, b"{\"detail\":\"bad\"}", E.BadRequest),
    (404, b'{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}',
     E.BadRequest),
])
@respx.mock
async def test_status_mapping(status, path, cls):
    respx.post(URL).mock(return_value=json_resp(status, path))
    with pytest.raises(cls) as ei:
        await provider().complete(req())
    assert type(ei.value) is cls and ei.value.status == status


@respx.mock
async def test_stream_http_error_is_mapped_before_first_event_and_retried():
    respx.post(URL).mock(side_effect=[
        json_resp(500, "openai/error_server.json"),
        httpx.Response(200, content=fx("openai/chat_stream.sse"), headers=sse_headers())])
    res = accumulate(await collect(provider(retries=2), req()))
    assert res.text == "Hello! How can I help?" and respx.calls.call_count == 2


@respx.mock
async def test_transport_errors():
    respx.post(URL).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(E.Timeout):
        await provider().complete(req())
    respx.post(URL).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(E.Unavailable):
        await provider().complete(req())
    with pytest.raises(E.Unavailable):
        await collect(provider(), req())


def test_parse_usage_tolerates_garbage():
    assert parse_usage(None) is None
    u = parse_usage({"prompt_tokens": "x", "completion_tokens": None, "prompt_tokens_details": None})
    assert u.input_tokens == 0 and u.output_tokens == 0
    assert map_finish("stop") == ("stop", {}) and map_finish(None) == ("unknown", {})
    assert map_finish("function_call")[0] == "tool_calls"


async def test_repr_and_str_never_show_the_key():
    p = provider()
    assert KEY not in repr(p) and KEY not in str(p.__dict__.get("name"))
    await p.aclose()


@respx.mock
async def test_keepalive_blank_lines_before_json_body():
    # DeepSeek keeps a queued non-stream request alive with blank lines before the JSON.
    respx.post(URL).mock(return_value=json_resp(200, b"\n\n\n" + fx("openai/chat_completion.json")))
    assert (await provider().complete(req())).usage.input_tokens == 1117


@respx.mock
async def test_html_413_from_proxy_is_context_too_long():
    page = b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body></body></html>\r\n"
    respx.post(URL).mock(return_value=httpx.Response(413, content=page, headers={"content-type": "text/html"}))
    with pytest.raises(E.ContextTooLong):
        await provider().complete(req())


@respx.mock
async def test_error_json_mentioning_html_is_not_mistaken_for_a_page():
    body = b'{"error":{"message":"bad <html> in prompt","type":"invalid_request_error","code":null}}'
    respx.post(URL).mock(return_value=json_resp(400, body))
    with pytest.raises(E.BadRequest, match="bad <html> in prompt"):
        await provider().complete(req())


@respx.mock
async def test_mid_stream_read_timeout_is_typed_keeps_output_and_is_not_retried():
    body = fx("openai/chat_stream.sse")
    head = body[:body.index(b'"finish_reason":"stop"')]
    head = head[:head.rindex(b"data: ")]  # everything before the finish chunk

    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield head
            raise httpx.ReadTimeout("read timed out")

    respx.post(URL).mock(return_value=httpx.Response(200, stream=Cut(), headers=sse_headers()))
    got = []
    with pytest.raises(E.Timeout):
        async for ev in provider(retries=3).stream(req()):
            got.append(ev)
    assert "".join(e.text for e in got if e.kind == "text") == "Hello! How can I help?"
    assert respx.calls.call_count == 1


@respx.mock
async def test_event_stream_mislabelled_as_json_is_still_parsed():
    respx.post(URL).mock(return_value=httpx.Response(200, content=fx("openai/chat_stream.sse"),
                                                     headers={"content-type": "application/json"}))
    res = accumulate(await collect(provider(), req()))
    assert res.text == "Hello! How can I help?" and res.usage.output_tokens == 10


@respx.mock
async def test_whole_completion_returned_to_a_stream_request():
    respx.post(URL).mock(return_value=json_resp(200, "openai/chat_completion.json"))
    res = accumulate(await collect(provider(), req()))
    assert res.text.startswith("The image shows") and res.usage.cache_read_tokens == 1024


@pytest.mark.parametrize("chunk", [
    b'data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":{"bad":1},"function":{"name":5}}]}}]}\n\n',
    b'data: {"id":"x","choices":"nope"}\n\n',
    b'data: [1,2,3]\n\n',
    b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}],"model":{"x":1}}\n\n'
    b'data: [DONE]\n\n',
])
@respx.mock
async def test_odd_chunk_shapes_give_typed_errors_or_answers(chunk):
    respx.post(URL).mock(return_value=httpx.Response(200, content=chunk, headers=sse_headers()))
    try:
        res = accumulate(await collect(provider(), req()))
    except E.ProviderError:
        return
    assert res.finish_reason in ("stop", "unknown")


@respx.mock
async def test_odd_json_shapes_give_typed_errors():
    for body in [b'[]', b'{"choices":[{"message":{"tool_calls":[{"id":1,"function":{"name":["x"]}}]}}]}',
                 b'{"choices":[{"message":"str"}]}', b'null']:
        respx.post(URL).mock(return_value=json_resp(200, body))
        with pytest.raises(E.ProviderError):
            await provider().complete(req())


@respx.mock
async def test_empty_streams_are_malformed_never_empty_answers():
    for body in [b"data: [DONE]\n\n", b": keep-alive\n\n", b"",
                 b'data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":null}\n\ndata: [DONE]\n\n']:
        respx.post(URL).mock(return_value=httpx.Response(200, content=body, headers=sse_headers()))
        with pytest.raises(E.MalformedResponse):
            await collect(provider(), req())


@respx.mock
async def test_length_finish_with_empty_content_is_a_real_answer():
    body = (b'{"id":"x","object":"chat.completion","model":"o3-mini","choices":[{"index":0,"message":{"role":"assistant",'
            b'"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":100,'
            b'"completion_tokens_details":{"reasoning_tokens":100}}}')
    respx.post(URL).mock(return_value=json_resp(200, body))
    res = await provider().complete(req())
    assert res.finish_reason == "length" and res.text == "" and res.usage.reasoning_tokens == 100


def test_prefill_is_vendor_data_and_marked_the_vendors_way() -> None:
    from providers.openai import OpenAIProvider

    r = ChatRequest(model="m", messages=[Message(role="user", content="count"), Message(role="assistant",
                                                                                         content="1 2 3")])
    assert build_body(r, VENDORS["openai"], stream=True)["messages"][-1] == {"role": "assistant",
                                                                             "content": "1 2 3"}
    assert build_body(r, VENDORS["deepseek"], stream=True)["messages"][-1]["prefix"] is True
    assert build_body(r, VENDORS["moonshot"], stream=True)["messages"][-1]["partial"] is True
    assert "prefix" not in build_body(req("m"), VENDORS["deepseek"], stream=True)["messages"][-1]
    assert not OpenAIProvider(api_key="k", vendor="openai").prefill  # OpenAI starts a new turn instead
    assert OpenAIProvider(api_key="k", vendor="deepseek").prefill and OpenAIProvider(vendor="ollama").prefill
