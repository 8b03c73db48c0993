"""Bedrock Converse content blocks: cache breakpoints as `cachePoint` blocks, documents, signed
reasoning round trips, cache writes by TTL (cacheDetails) billed exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from providers.bedrock import build_body, converse_events
from router.errors import BadRequest
from router.pricing import Price, cost
from router.types import (CacheControl, ChatRequest, DocumentPart, Message, RedactedThinkingPart, TextPart,
                          ThinkingPart, Tool, ToolCall, accumulate)
from tests.providers._native_helpers import FIXTURES, collect
from tests.providers.test_bedrock import chunked, events_file, provider

FIX = FIXTURES / "bedrock"
EPH, HOUR = CacheControl(), CacheControl(ttl="1h")
CP, CP_1H = {"cachePoint": {"type": "default"}}, {"cachePoint": {"type": "default", "ttl": "1h"}}
SONNET = Price(input="3", output="15", cache_read="0.3", cache_write="3.75", cache_write_1h="6")


def test_cache_breakpoints_become_cache_points_after_their_block() -> None:
    req = ChatRequest(
        model="m", system="Guide. Rules.",
        system_parts=[TextPart(text="Guide."), TextPart(text="Rules.", cache_control=HOUR)],
        tools=[Tool(name="a"), Tool(name="b", cache_control=HOUR)],
        messages=[Message(role="user", content=[TextPart(text="Hi", cache_control=EPH)]),
                  Message(role="assistant", tool_calls=[ToolCall(id="t1", name="a", arguments="{}",
                                                                 cache_control=EPH)]),
                  Message(role="tool", tool_call_id="t1", content="ok", cache_control=EPH)])
    body = build_body(req)
    assert body["system"] == [{"text": "Guide."}, {"text": "Rules."}, CP_1H]
    assert [next(iter(b)) for b in body["toolConfig"]["tools"]] == ["toolSpec", "toolSpec", "cachePoint"]
    assert body["toolConfig"]["tools"][2] == CP_1H
    assert body["messages"][0]["content"] == [{"text": "Hi"}, CP]
    assert body["messages"][1]["content"][1] == CP and "toolUse" in body["messages"][1]["content"][0]
    assert body["messages"][2]["content"][1] == CP and "toolResult" in body["messages"][2]["content"][0]


def test_documents_become_document_blocks() -> None:
    pdf = DocumentPart(source="base64", media_type="application/pdf", data="JVBERi0x", title="Q3 report: final!",
                       citations=True, cache_control=EPH)
    txt = DocumentPart(source="text", media_type="text/plain", data="Notes.", context="minutes")
    body = build_body(ChatRequest(model="m", messages=[Message(role="user", content=[pdf, txt])]))
    b0, cp, b1 = body["messages"][0]["content"]
    assert b0["document"]["format"] == "pdf" and b0["document"]["source"] == {"bytes": "JVBERi0x"}
    assert b0["document"]["name"].startswith("Q3 report final ")  # only the characters Converse allows
    assert b0["document"]["citations"] == {"enabled": True} and cp == CP
    assert b1["document"]["format"] == "txt" and b1["document"]["source"] == {"text": "Notes."}
    assert b1["document"]["context"] == "minutes" and b1["document"]["name"] != b0["document"]["name"]
    url = DocumentPart(source="url", url="https://example.com/a.pdf")
    with pytest.raises(BadRequest, match="not by URL"):
        build_body(ChatRequest(model="m", messages=[Message(role="user", content=[url])]))


def test_signed_reasoning_round_trips_and_unsigned_is_left_out() -> None:
    r = accumulate(converse_events(json.loads((FIX / "converse_reasoning_signed.json").read_text())))
    raw = json.loads((FIX / "converse_reasoning_signed.json").read_text())["output"]["message"]["content"][0]
    assert r.thinking_blocks == [ThinkingPart(thinking=raw["reasoningContent"]["reasoningText"]["text"],
                                              signature=raw["reasoningContent"]["reasoningText"]["signature"])]
    back = Message(role="assistant", content=[*r.thinking_blocks, ThinkingPart(thinking="unsigned"),
                                              RedactedThinkingPart(data="ZW5jcnlwdGVk"), TextPart(text=r.text)])
    body = build_body(ChatRequest(model="m", messages=[Message(role="user", content="q"), back,
                                                        Message(role="user", content="more")]))
    assert body["messages"][1]["content"] == [raw, {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}},
                                              {"text": r.text}]


def test_cache_writes_by_ttl_are_billed_exactly() -> None:
    r = accumulate(converse_events(json.loads((FIX / "converse_reasoning_signed.json").read_text())))
    u = r.usage
    assert (u.input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens, u.output_tokens) == (1240, 1200, 1000, 160)
    # 40 x $3 + 200 x $3.75 (5 min writes) + 1000 x $6 (1 h writes) + 160 x $15, per 1M tokens
    assert cost(u, SONNET).usd == Decimal("0.00927")


@pytest.mark.respx(base_url="https://bedrock-runtime.eu-west-1.amazonaws.com")
async def test_stream_signature_delta_closes_the_thinking_block(respx_mock: object) -> None:
    respx_mock.post(url__regex=r"/converse-stream$").mock(  # type: ignore[attr-defined]
        return_value=chunked(events_file("stream_reasoning.events.json"), 50))
    evs = await collect(provider(), ChatRequest(model="m", messages=[Message(role="user", content="q")]))
    r = accumulate(evs)
    sig = next(e[1]["delta"]["reasoningContent"]["signature"]
               for e in json.loads((FIX / "stream_reasoning.events.json").read_text())
               if "signature" in e[1].get("delta", {}).get("reasoningContent", {}))
    assert r.thinking_blocks == [ThinkingPart(thinking=r.reasoning, signature=sig)]
