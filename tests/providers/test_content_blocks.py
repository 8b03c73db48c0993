"""Content blocks across the adapters: what Anthropic gets unchanged (cache_control, documents,
signed thinking), what OpenAI-compatible vendors and Gemini get translated or left out, the
vendors' token counting endpoints, and 1-hour cache writes read from Anthropic's usage."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from providers.anthropic import AnthropicProvider, StreamState, build_body, message_events
from providers.gemini import GeminiProvider, build_body as gemini_body
from providers.openai import build_body as openai_body
from providers.retry import NO_RETRY
from providers.vendors import get_vendor
from router.errors import BadRequest
from router.types import (CacheControl, ChatRequest, DocumentPart, ImagePart, Message, RedactedThinkingPart,
                          TextPart, ThinkingPart, Tool, accumulate)
from tests.providers._native_helpers import fixture_reader

ANT, GEM = fixture_reader("anthropic"), fixture_reader("gemini")
EPH = CacheControl()
PDF = DocumentPart(source="base64", media_type="application/pdf", data="JVBERi0x", title="report")
TXT = DocumentPart(source="text", media_type="text/plain", data="Notes.", title="Minutes")
URLDOC = DocumentPart(source="url", url="https://example.com/a.pdf")
SIGNED = ThinkingPart(thinking="Let me think.", signature="EqQBCgIYAh")


def convo(*parts: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[
        Message(role="user", content="q"),
        Message(role="assistant", content=[SIGNED, ThinkingPart(thinking="unsigned"), RedactedThinkingPart(data="ZW5j"),
                                           TextPart(text="a")]),
        Message(role="user", content=list(parts) or "more")])  # type: ignore[arg-type]


def test_anthropic_body_keeps_breakpoints_documents_and_signed_thinking() -> None:
    req = convo(TextPart(text="x", cache_control=CacheControl(ttl="1h")), PDF.model_copy(update={"cache_control": EPH}),
                TXT, URLDOC, ImagePart(url="data:image/png;base64,iVBO", cache_control=EPH))
    req = req.model_copy(update={"tools": [Tool(name="t", cache_control=EPH)], "system": "S",
                                 "system_parts": [TextPart(text="S", cache_control=EPH)]})
    body = build_body(req, stream=False)
    assert body["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAh"},  # the unsigned one is left out
        {"type": "redacted_thinking", "data": "ZW5j"}, {"type": "text", "text": "a"}]
    user = body["messages"][2]["content"]
    assert user[0] == {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    assert user[1] == {"type": "document", "title": "report", "cache_control": {"type": "ephemeral"},
                       "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    assert user[2]["source"] == {"type": "text", "media_type": "text/plain", "data": "Notes."}
    assert user[3]["source"] == {"type": "url", "url": "https://example.com/a.pdf"}
    assert user[4]["cache_control"] == {"type": "ephemeral"} and user[4]["type"] == "image"


def test_anthropic_usage_reads_1h_cache_writes_and_signed_blocks() -> None:
    r = accumulate(message_events(json.loads(ANT("message_cache_write_1h.json"))))
    assert (r.usage.input_tokens, r.usage.cache_write_tokens, r.usage.cache_write_1h_tokens) == (2050, 2000, 1500)
    r = accumulate(message_events(json.loads(ANT("message_redacted_thinking.json"))))
    assert [b.type for b in r.thinking_blocks] == ["redacted_thinking", "thinking"]
    assert r.reasoning == "A second, readable thought." and r.text == "Done."


def test_anthropic_stream_signature_and_redacted_blocks() -> None:
    st = StreamState()
    evs = []
    for e, d in [("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "redacted_thinking", "data": "ZW5j"}}),
                 ("content_block_start", {"type": "content_block_start", "index": 1,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                 ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                          "delta": {"type": "thinking_delta", "thinking": "Hm."}}),
                 ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                          "delta": {"type": "signature_delta", "signature": "SIG"}})]:
        evs += st.feed(e, json.dumps(d))
    assert accumulate(evs).thinking_blocks == [RedactedThinkingPart(data="ZW5j"),
                                               ThinkingPart(thinking="Hm.", signature="SIG")]


def test_openai_compatible_translates_text_documents_and_drops_the_rest() -> None:
    req = convo(TXT, PDF, URLDOC, TextPart(text="Summarize.", cache_control=EPH))
    msgs = openai_body(req, get_vendor("deepseek"), stream=False)["messages"]
    assert msgs[1] == {"role": "assistant", "content": "a"}  # thinking blocks have no equivalent
    assert msgs[2]["content"] == "Minutes\n\nNotes.Summarize."  # PDF and URL documents left out
    parts = openai_body(req, get_vendor("openai"), stream=False)["messages"][2]["content"]
    assert parts[1] == {"type": "file", "file": {"filename": "report.pdf",
                                                 "file_data": "data:application/pdf;base64,JVBERi0x"}}
    assert "cache_control" not in json.dumps(parts)


def test_gemini_reads_pdfs_inline_and_text_documents_as_text() -> None:
    body = gemini_body(convo(PDF, TXT, URLDOC, TextPart(text="Go.", cache_control=EPH)))
    assert body["contents"][1]["parts"] == [{"text": "a"}]  # another vendor's thinking is left out
    assert body["contents"][2]["parts"] == [{"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
                                            {"text": "Minutes\n\nNotes."}, {"text": "Go."}]


@respx.mock
async def test_anthropic_count_tokens_endpoint() -> None:
    route = respx.post("https://api.anthropic.com/v1/messages/count_tokens").mock(
        return_value=httpx.Response(200, content=ANT("count_tokens.json")))
    p = AnthropicProvider(api_key="k", client=httpx.AsyncClient(), retry=NO_RETRY)
    req = convo(TextPart(text="x", cache_control=EPH)).model_copy(update={"temperature": 0.5, "stop": ["X"]})
    assert await p.count_tokens(req) == 2095
    sent = json.loads(route.calls.last.request.content)
    assert set(sent) == {"model", "messages"} and route.calls.last.request.headers["x-api-key"] == "k"
    respx.post("https://api.anthropic.com/v1/messages/count_tokens").mock(
        return_value=httpx.Response(400, content=ANT("error_invalid_request.json")))
    with pytest.raises(BadRequest):
        await p.count_tokens(req)


@respx.mock
async def test_gemini_count_tokens_endpoint() -> None:
    route = respx.post("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens").mock(
        return_value=httpx.Response(200, content=GEM("count_tokens.json")))
    p = GeminiProvider(api_key="g", client=httpx.AsyncClient(), retry=NO_RETRY)
    n = await p.count_tokens(ChatRequest(model="gemini-2.5-flash", system="Be brief.",
                                         messages=[Message(role="user", content="Hello")]))
    assert n == 31
    sent = json.loads(route.calls.last.request.content)["generateContentRequest"]
    assert sent["model"] == "models/gemini-2.5-flash" and sent["contents"][0]["parts"] == [{"text": "Hello"}]
    assert sent["systemInstruction"]["parts"] == [{"text": "Be brief."}]
