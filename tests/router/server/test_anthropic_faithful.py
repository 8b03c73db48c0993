"""The official anthropic SDK against the proxy over a real Router, with Anthropic (and an
OpenAI-compatible vendor) faked at the HTTP level: cache_control passed through and billed as
cache writes/reads, thinking blocks with their signatures round-tripped over two turns (stream
and not), documents, count_tokens, and what is translated or dropped for another vendor."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from providers.anthropic import AnthropicProvider
from providers.bedrock import BedrockProvider
from providers.openai import OpenAIProvider
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from tests.providers._native_helpers import fixture_reader
from tests.router.routing_helpers import card
from tests.router.server.conftest import make_app

ANT = fixture_reader("anthropic")
BED = fixture_reader("bedrock")
OAI = fixture_reader("openai")
SONNET = "anthropic:claude-sonnet-4-6"
# Anthropic's list price for Claude Sonnet 4.6 per 1M tokens: input 3, 5-minute cache write 3.75 (1.25x),
# 1-hour cache write 6 (2x), cache read 0.30 (0.1x), output 15
PRICES = {"cache_read": "0.3", "cache_write": "3.75", "cache_write_1h": "6"}
TOOLS = [{"name": "get_weather", "description": "Current weather", "input_schema": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]
PDF = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K"  # the first bytes of a PDF, base64


class Upstream:
    """A vendor faked at the HTTP level: records each request body, answers from a script."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.paths.append(request.url.path)
        return self.answers.pop(0)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def js(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def sse(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def anthropic_router(up: Upstream, *, with_openai: Upstream | None = None) -> Router:
    cards = [card(SONNET, "3", "15", caps=("tools", "vision", "reasoning"), **PRICES)]
    provs: dict[str, Any] = {"anthropic": AnthropicProvider(api_key="sk-ant-test", client=up.client())}
    if with_openai is not None:
        cards.append(card("openai:gpt-5-mini", "0.25", "2", caps=("tools", "vision")))
        provs["openai"] = OpenAIProvider(api_key="sk-test", vendor="openai", client=with_openai.client())
    return Router(catalog=Catalog(cards), providers=provs, ledger=Ledger(MemoryStore(), [], []), policy="cheapest")


def sdk(app: Any) -> anthropic.AsyncAnthropic:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return anthropic.AsyncAnthropic(api_key="unused", base_url="http://t", http_client=hc, max_retries=0)


def spent(app: Any) -> list[tuple[Decimal, str]]:
    """(exact cost, route reason) of each request in the spend log, in order."""
    app.spend.flush()
    con = sqlite3.connect(app.spend.path)
    try:
        return [(Decimal(c), r or "") for c, r in con.execute("SELECT cost_usd, route_reason FROM spend ORDER BY id")]
    finally:
        con.close()


# ------------------------------------------------------------------ cache_control


async def test_cache_control_passes_through_and_1h_writes_are_billed_at_2x(spend_path: Any) -> None:
    up = Upstream(js(ANT("message_cache_write_1h.json")), js(ANT("message_cache_read.json")))
    app = make_app(anthropic_router(up), spend_path)
    c = sdk(app)
    system = [{"type": "text", "text": "You are a careful editor."},
              {"type": "text", "text": "STYLE GUIDE " * 200, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    tools = [{**TOOLS[0], "cache_control": {"type": "ephemeral"}}]
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Remember the guide.",
                                          "cache_control": {"type": "ephemeral"}}]}]
    raw = await c.messages.with_raw_response.create(model=SONNET, max_tokens=256, system=system, tools=tools,
                                                    messages=msgs)
    m = await raw.parse()
    sent = up.bodies[0]
    assert sent["system"] == system  # blocks and breakpoints unchanged
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["messages"][0]["content"] == msgs[0]["content"]
    assert (m.usage.input_tokens, m.usage.cache_creation_input_tokens, m.usage.cache_read_input_tokens) == (50, 2000, 0)
    assert m.usage.cache_creation.ephemeral_1h_input_tokens == 1500
    assert m.usage.cache_creation.ephemeral_5m_input_tokens == 500
    # 50 x $3 + 500 x $3.75 (5 min writes) + 1500 x $6 (1 h writes) + 100 x $15, per 1M tokens
    assert Decimal(raw.headers["x-quotaroute-cost-usd"]) == Decimal("0.012525")
    # a cache hit: 21 uncached x $3 + 188086 reads x $0.30 + 393 out x $15, per 1M
    m2 = await c.messages.create(model=SONNET, max_tokens=512, system=system, tools=tools, messages=msgs)
    assert m2.usage.cache_read_input_tokens == 188086 and m2.usage.input_tokens == 21
    assert [cost for cost, _ in spent(app)] == [Decimal("0.012525"), Decimal("0.0623838")]
    await app.aclose()


async def test_cache_control_stream_bills_the_cache_write(spend_path: Any) -> None:
    up = Upstream(sse(ANT("stream_cache_write.sse")))
    app = make_app(anthropic_router(up), spend_path)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}]
    async with sdk(app).messages.stream(model=SONNET, max_tokens=64, messages=msgs) as st:
        final = await st.get_final_message()
    assert up.bodies[0]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert up.bodies[0]["stream"] is True
    u = final.usage
    raw = [json.loads(line[6:]) for line in ANT("stream_cache_write.sse").decode().splitlines()
           if line.startswith("data: ")]
    start = raw[0]["message"]["usage"]
    assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (
        start["cache_creation_input_tokens"], start["cache_read_input_tokens"])
    out = [e for e in raw if e["type"] == "message_delta"][-1]["usage"]["output_tokens"]
    expected = (Decimal(start["input_tokens"]) * 3 + Decimal(start["cache_creation_input_tokens"]) * Decimal("3.75")
                + Decimal(start["cache_read_input_tokens"]) * Decimal("0.3") + Decimal(out) * 15) / 1_000_000
    assert spent(app)[0][0] == expected
    await app.aclose()


async def test_too_many_cache_breakpoints_are_refused_at_the_edge(spend_path: Any) -> None:
    up = Upstream()
    app = make_app(anthropic_router(up), spend_path)
    cc = {"type": "ephemeral"}
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": cc} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as e:
        await sdk(app).messages.create(model=SONNET, max_tokens=8, messages=[{"role": "user", "content": blocks}])
    assert "messages.0.content.4.cache_control" in e.value.message and up.bodies == []
    with pytest.raises(anthropic.BadRequestError) as e:
        await sdk(app).messages.create(model=SONNET, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]}])
    assert "cache_control.ttl" in e.value.message
    await app.aclose()


# ------------------------------------------------------------------ thinking round trip


async def test_thinking_signatures_round_trip_over_two_turns(spend_path: Any) -> None:
    up = Upstream(js(ANT("message_thinking_tool_use.json")), js(ANT("message_after_tool.json")))
    app = make_app(anthropic_router(up), spend_path)
    c = sdk(app)
    q = {"role": "user", "content": "What's the weather in Paris?"}
    thinking = {"type": "enabled", "budget_tokens": 2000}
    m1 = await c.messages.create(model=SONNET, max_tokens=4000, thinking=thinking, tools=TOOLS, messages=[q])
    vendor = json.loads(ANT("message_thinking_tool_use.json"))["content"]
    assert [b.model_dump(exclude_none=True) for b in m1.content] == vendor  # signature as the vendor sent it
    assert m1.stop_reason == "tool_use" and "thinking" in up.bodies[0]  # (the setting is translated per model)
    turn2 = [q, {"role": "assistant", "content": m1.content},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": m1.content[1].id,
                                           "content": "15 C, partly cloudy"}]}]
    m2 = await c.messages.create(model=SONNET, max_tokens=4000, thinking=thinking, tools=TOOLS, messages=turn2)
    assert m2.content[0].text.startswith("It is currently 15")
    assert up.bodies[1]["messages"][1]["content"] == vendor  # thinking + signature + tool_use, unchanged
    assert up.bodies[1]["messages"][2]["content"][0]["type"] == "tool_result"
    await app.aclose()


async def test_thinking_stream_deltas_and_signature_round_trip(spend_path: Any) -> None:
    up = Upstream(sse(ANT("stream_thinking.sse")), js(ANT("message_after_tool.json")))
    app = make_app(anthropic_router(up), spend_path)
    c = sdk(app)
    q = {"role": "user", "content": "And divided by 5?"}
    deltas: list[str] = []
    async with c.messages.stream(model=SONNET, max_tokens=4000, messages=[q],
                                 thinking={"type": "enabled", "budget_tokens": 1024}) as st:
        async for ev in st:
            if ev.type == "content_block_delta":
                deltas.append(ev.delta.type)
        final = await st.get_final_message()
    assert "thinking_delta" in deltas and "signature_delta" in deltas and "text_delta" in deltas
    lines = [json.loads(x[6:]) for x in ANT("stream_thinking.sse").decode().splitlines() if x.startswith("data: ")]
    sig = next(e["delta"]["signature"] for e in lines if e.get("delta", {}).get("type") == "signature_delta")
    think = "".join(e["delta"]["thinking"] for e in lines if e.get("delta", {}).get("type") == "thinking_delta")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature == sig and final.content[0].thinking == think
    await c.messages.create(model=SONNET, max_tokens=4000, messages=[
        q, {"role": "assistant", "content": final.content}, {"role": "user", "content": "Thanks"}],
        thinking={"type": "enabled", "budget_tokens": 1024})
    assert up.bodies[1]["messages"][1]["content"][0] == {"type": "thinking", "thinking": think, "signature": sig}
    await app.aclose()


async def test_redacted_thinking_round_trips_unchanged(spend_path: Any) -> None:
    up = Upstream(js(ANT("message_redacted_thinking.json")), js(ANT("message_after_tool.json")))
    app = make_app(anthropic_router(up), spend_path)
    c = sdk(app)
    q = {"role": "user", "content": "Think about it."}
    m1 = await c.messages.create(model=SONNET, max_tokens=4000, messages=[q],
                                 thinking={"type": "enabled", "budget_tokens": 1024})
    vendor = json.loads(ANT("message_redacted_thinking.json"))["content"]
    assert [b.model_dump(exclude_none=True) for b in m1.content] == vendor
    await c.messages.create(model=SONNET, max_tokens=4000, messages=[
        q, {"role": "assistant", "content": m1.content}, {"role": "user", "content": "Go on"}])
    assert up.bodies[1]["messages"][1]["content"] == vendor
    await app.aclose()


# ------------------------------------------------------------------ documents


async def test_documents_pass_to_anthropic_unchanged(spend_path: Any) -> None:
    up = Upstream(js(ANT("message_text.json")))
    app = make_app(anthropic_router(up), spend_path)
    docs = [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
         "title": "Q3 report", "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Plain notes."},
         "context": "meeting notes"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
        {"type": "text", "text": "Summarize these."},
    ]
    await sdk(app).messages.create(model=SONNET, max_tokens=100, messages=[{"role": "user", "content": docs}])
    assert up.bodies[0]["messages"][0]["content"] == docs
    with pytest.raises(anthropic.BadRequestError) as e:
        await sdk(app).messages.create(model=SONNET, max_tokens=100, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": PDF}}]}])
    assert "messages.0.content.0.source.media_type" in e.value.message and len(up.bodies) == 1
    await app.aclose()


# ------------------------------------------------------------------ another vendor


async def test_routed_to_openai_translates_and_names_what_was_dropped(spend_path: Any) -> None:
    ant, oai = Upstream(), Upstream(js(OAI("chat_completion.json")))
    app = make_app(anthropic_router(ant, with_openai=oai), spend_path)
    msgs = [{"role": "user", "content": "Read this."},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCgIYAh"},
                                              {"type": "text", "text": "Send it."}]},
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes."},
                 "title": "Minutes", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarize."}]}]
    raw = await sdk(app).messages.with_raw_response.create(model="openai:gpt-5-mini", max_tokens=100, messages=msgs)
    reason = raw.headers["x-quotaroute-route-reason"]
    assert "dropped for openai: cache_control, thinking blocks and their signatures" in reason
    sent = oai.bodies[0]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Send it."}  # the thinking block is gone
    assert sent[2]["content"] == "Minutes\n\nNotes.Summarize."  # the text document became text
    assert ant.bodies == [] and "dropped for openai" in spent(app)[0][1]
    await app.aclose()


# ------------------------------------------------------------------ count_tokens


async def test_count_tokens_exact_from_anthropic(spend_path: Any) -> None:
    up = Upstream(js(ANT("count_tokens.json")))
    app = make_app(anthropic_router(up), spend_path)
    c = sdk(app)
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    raw = await c.messages.with_raw_response.count_tokens(
        model=SONNET, system=system, tools=TOOLS, messages=[{"role": "user", "content": "Hello"}],
        thinking={"type": "enabled", "budget_tokens": 1024})
    r = await raw.parse()
    assert r.input_tokens == 2095
    assert raw.headers["x-quotaroute-token-count"] == "exact"
    assert raw.headers["x-quotaroute-model"] == SONNET and raw.headers["x-quotaroute-cost-usd"] == "0"
    assert up.paths == ["/v1/messages/count_tokens"]
    assert set(up.bodies[0]) == {"model", "messages", "system", "tools", "thinking"}  # no max_tokens, no stream
    assert up.bodies[0]["model"] == "claude-sonnet-4-6" and up.bodies[0]["system"] == system
    assert spent(app) == []  # counting is free: nothing is billed or logged as spend
    await app.aclose()


async def test_count_tokens_falls_back_to_the_labelled_estimate(spend_path: Any) -> None:
    ant, oai = Upstream(httpx.Response(404, content=ANT("error_not_found.json"))), Upstream()
    app = make_app(anthropic_router(ant, with_openai=oai), spend_path)
    c = sdk(app)
    msgs = [{"role": "user", "content": "Hello there, how many tokens is this?"}]
    raw = await c.messages.with_raw_response.count_tokens(model="openai:gpt-5-mini", messages=msgs)
    assert raw.headers["x-quotaroute-token-count"] == "estimate" and (await raw.parse()).input_tokens > 5
    assert oai.bodies == []  # OpenAI has no counting endpoint: nothing was sent
    # Anthropic failing to count (e.g. a gateway without the endpoint): the estimate, labelled, not an error
    raw = await c.messages.with_raw_response.count_tokens(model=SONNET, messages=msgs)
    assert raw.headers["x-quotaroute-token-count"] == "estimate" and ant.paths == ["/v1/messages/count_tokens"]
    with pytest.raises(anthropic.BadRequestError) as e:  # count_tokens takes no max_tokens (Anthropic's own rule)
        await c.messages.count_tokens(model=SONNET, messages=msgs, extra_body={"max_tokens": 5})
    assert "max_tokens: Extra inputs are not permitted" in e.value.message
    await app.aclose()


# ------------------------------------------------------------------ Bedrock


async def test_bedrock_gets_cache_points_and_round_trips_signed_reasoning(spend_path: Any) -> None:
    from tests.providers.test_bedrock import events_file  # the test-only AWS event-stream encoder

    up = Upstream(js(BED("converse_reasoning_signed.json")), js(BED("converse_text.json")),
                  httpx.Response(200, content=events_file("stream_reasoning.events.json"),
                                 headers={"content-type": "application/vnd.amazon.eventstream"}))
    bed = "bedrock:anthropic.claude-sonnet-4-6"
    router = Router(catalog=Catalog([card(bed, "3", "15", caps=("tools", "vision", "reasoning"), **PRICES)]),
                    providers={"bedrock": BedrockProvider(api_key="bedrock-api-key", region="us-east-1",
                                                          client=up.client())},
                    ledger=Ledger(MemoryStore(), [], []))
    app = make_app(router, spend_path)
    c = sdk(app)
    system = [{"type": "text", "text": "GUIDE " * 100, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    q = {"role": "user", "content": [{"type": "text", "text": "27 * 453?", "cache_control": {"type": "ephemeral"}}]}
    raw = await c.messages.with_raw_response.create(model=bed, max_tokens=2000, system=system, messages=[q])
    m1 = await raw.parse()
    assert up.bodies[0]["system"] == [{"text": "GUIDE " * 100}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
    assert up.bodies[0]["messages"][0]["content"] == [{"text": "27 * 453?"}, {"cachePoint": {"type": "default"}}]
    vendor = json.loads(BED("converse_reasoning_signed.json"))["output"]["message"]["content"][0]
    assert m1.content[0].type == "thinking"
    assert m1.content[0].signature == vendor["reasoningContent"]["reasoningText"]["signature"]
    assert m1.usage.cache_creation.ephemeral_1h_input_tokens == 1000
    assert Decimal(raw.headers["x-quotaroute-cost-usd"]) == Decimal("0.00927")  # 1000 of the writes at the 1 h rate
    await c.messages.create(model=bed, max_tokens=2000, system=system,
                            messages=[q, {"role": "assistant", "content": m1.content}, {"role": "user", "content": "ok"}])
    assert up.bodies[1]["messages"][1]["content"][0] == vendor  # text and signature exactly as Bedrock sent them
    async with c.messages.stream(model=bed, max_tokens=2000, messages=[q]) as st:
        final = await st.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].signature.startswith("Ep0C")
    await app.aclose()
