"""The official anthropic SDK (2.x, on httpx2) against POST /v1/messages."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from providers.fake import FakeProvider, Script
from router.types import FinishEvent, TextDelta, ToolCallDelta, Usage, UsageEvent
from tests.router.server.conftest import make_app
from tests.router.server.fakes import FakeRouter

MSG = [{"role": "user", "content": "hi"}]


def sdk(app: Any) -> anthropic.AsyncAnthropic:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver")
    return anthropic.AsyncAnthropic(api_key="unused", base_url="http://testserver", http_client=hc, max_retries=0)


async def test_messages_non_stream(app: Any, fake: FakeProvider) -> None:
    raw = await sdk(app).messages.with_raw_response.create(model="auto", max_tokens=64, system="be brief",
                                                          messages=MSG, stop_sequences=["END"])
    m = await raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.model == "small"  # the vendor's id; qualified in x-quotaroute-model
    assert m.content[0].type == "text" and m.content[0].text == "Hello there"
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (10, 5)
    assert raw.headers["x-quotaroute-provider"] == "fake"
    sent = fake.calls[-1]
    assert sent.system == "be brief" and sent.max_tokens == 64 and sent.stop == ["END"]


async def test_messages_stream_event_sequence(app: Any) -> None:
    async with sdk(app).messages.stream(model="auto", max_tokens=64, messages=MSG) as st:
        types = [ev.type async for ev in st]
        final = await st.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_stop" in types and "message_delta" in types
    assert final.content[0].text == "Hello there"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5


async def test_messages_tool_use_and_results(spend_path: Any) -> None:
    evs = [TextDelta(text="Let me check."), ToolCallDelta(index=0, id="toolu_1", name="get_weather", arguments='{"city"'),
           ToolCallDelta(index=0, arguments=':"Paris"}'), UsageEvent(usage=Usage(input_tokens=30, output_tokens=9)),
           FinishEvent(finish_reason="tool_calls")]
    fake = FakeProvider(scripts=[Script(events=evs)])
    app = make_app(FakeRouter(fake), spend_path)
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object",
                                                                       "properties": {"city": {"type": "string"}}}}]
    c = sdk(app)
    m = await c.messages.create(model="auto", max_tokens=64, messages=MSG, tools=tools, tool_choice={"type": "any"})
    assert m.stop_reason == "tool_use"
    assert [b.type for b in m.content] == ["text", "tool_use"]
    assert m.content[1].input == {"city": "Paris"} and m.content[1].id == "toolu_1"
    assert fake.calls[-1].tool_choice == "required" and fake.calls[-1].tools[0].parameters["type"] == "object"
    async with c.messages.stream(model="auto", max_tokens=64, messages=MSG, tools=tools) as st:
        final = await st.get_final_message()
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Paris"}
    # tool results become `tool` messages
    await c.messages.create(model="auto", max_tokens=64, tools=tools, messages=MSG + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}])
    sent = fake.calls[-1].messages
    assert sent[1].tool_calls[0].name == "get_weather" and sent[2].role == "tool" and sent[2].content == "sunny"
    await app.aclose()


async def test_messages_errors_have_anthropic_shape(app: Any) -> None:
    c = sdk(app)
    try:
        await c.messages.create(model="nope:none", max_tokens=5, messages=MSG)
    except anthropic.NotFoundError as e:
        assert e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error"
    else:  # pragma: no cover
        raise AssertionError("expected 404")
    r = await c._client.post("http://testserver/v1/messages", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await c._client.post("http://testserver/v1/messages", json={"model": "auto", "messages": MSG})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
