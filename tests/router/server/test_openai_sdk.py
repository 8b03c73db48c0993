"""The official openai SDK (3.x, on httpx2) as the client: in-process through
httpx2.ASGITransport (async) and against a live uvicorn server (sync)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from providers.fake import FakeProvider, Script, reply
from router.types import FinishEvent, ToolCallDelta, Usage, UsageEvent

MSG = [{"role": "user", "content": "hi"}]


def sdk(app: Any) -> openai.AsyncOpenAI:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver")
    return openai.AsyncOpenAI(api_key="unused", base_url="http://testserver/v1", http_client=hc, max_retries=0)


async def test_async_non_stream_with_route_headers(app: Any, frouter: Any) -> None:
    raw = await sdk(app).chat.completions.with_raw_response.create(model="auto", messages=MSG)
    r = raw.parse()
    assert r.choices[0].message.content == "Hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "small" and r.object == "chat.completion"  # the vendor's model id
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (10, 5, 15)
    h = raw.headers
    assert h["x-quotaroute-model"] == "fake:small"
    assert h["x-quotaroute-provider"] == "fake"
    assert h["x-quotaroute-cost-usd"] == "0.000030"
    assert h["x-quotaroute-route-reason"].startswith("free-first: fake pool")
    assert h["x-quotaroute-route-reason"].isascii()  # the en dash was replaced
    assert float(h["x-quotaroute-overhead-ms"]) >= 0
    assert frouter.scopes[-1] == {"key": None, "user": None, "tags": []}


async def test_async_stream_exact_chunks_with_usage(app: Any) -> None:
    stream = await sdk(app).chat.completions.create(model="auto", messages=MSG, stream=True,
                                                    stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_stream_raw_bytes_end_with_done(client: Any) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-quotaroute-cost-usd"] == "0.00003"  # the estimate, before the body
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert "usage" not in json.loads(events[1][6:])  # no usage key without include_usage


async def test_tools_round_trip(spend_path: Any) -> None:
    from tests.router.server.conftest import make_app
    from tests.router.server.fakes import FakeRouter

    evs = [ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"city":'),
           ToolCallDelta(index=0, arguments='"Paris"}'),
           UsageEvent(usage=Usage(input_tokens=20, output_tokens=8)), FinishEvent(finish_reason="tool_calls")]
    fake = FakeProvider(scripts=[Script(events=evs)])
    app = make_app(FakeRouter(fake), spend_path)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    c = sdk(app)
    r = await c.chat.completions.create(model="auto", messages=MSG, tools=tools, tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_1", "get_weather", {"city": "Paris"})
    sent = fake.calls[-1]
    assert sent.tools[0].name == "get_weather" and sent.tool_choice == "auto"
    # streamed: fragments arrive as OpenAI tool_call deltas
    s = await c.chat.completions.create(model="auto", messages=MSG, tools=tools, stream=True)
    deltas = [ch.choices[0].delta.tool_calls for ch in [x async for x in s] if ch.choices and ch.choices[0].delta.tool_calls]
    assert deltas[0][0].id == "call_1" and deltas[0][0].function.name == "get_weather"
    assert "".join(d[0].function.arguments for d in deltas) == '{"city":"Paris"}'
    # a follow-up with the tool result is accepted and normalized
    await c.chat.completions.create(model="auto", tools=tools, messages=MSG + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                               "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert fake.calls[-1].messages[-1].role == "tool" and fake.calls[-1].messages[-1].tool_call_id == "call_1"
    await app.aclose()


async def test_json_mode_passes_response_format(app: Any, fake: FakeProvider) -> None:
    fake.scripts[:] = [reply('{"ok": true}')]
    r = await sdk(app).chat.completions.create(model="auto", messages=MSG, response_format={"type": "json_object"},
                                               temperature=0.2, max_tokens=50, seed=7)
    assert json.loads(r.choices[0].message.content) == {"ok": True}
    sent = fake.calls[-1]
    assert sent.response_format.type == "json_object"
    # seed is a normalized field (translated per vendor by providers.params), not a raw passthrough
    assert (sent.temperature, sent.max_tokens, sent.seed, sent.extra_body) == (0.2, 50, 7, {})


async def test_models_list_has_virtual_and_concrete(app: Any) -> None:
    ids = [m.id async for m in sdk(app).models.list()]
    assert ids[:4] == ["auto", "auto:cheap", "auto:best", "auto:free"]
    assert "fake:small" in ids and "fake:large" in ids
    m = await sdk(app).models.retrieve("fake:large")
    assert (m.id, m.owned_by) == ("fake:large", "fake")
    with pytest.raises(openai.NotFoundError):
        await sdk(app).models.retrieve("nope")


def test_sync_sdk_against_live_server(live: Any) -> None:
    c = openai.OpenAI(api_key="unused", base_url=live.url + "/v1", max_retries=0)
    r = c.chat.completions.create(model="fake:large", messages=MSG)
    assert r.choices[0].message.content == "Hello there" and r.model == "large"
    text = "".join(ch.choices[0].delta.content or "" for ch in
                   c.chat.completions.create(model="auto", messages=MSG, stream=True) if ch.choices)
    assert text == "Hello there"
    with pytest.raises(openai.NotFoundError) as ei:
        c.chat.completions.create(model="nope:nothing", messages=MSG)
    assert ei.value.code == "model_not_found"
    c.close()
