"""The flat bytes scan of OpenAI stream chunks (providers/_openai_events.lean_text): it reads
exactly the text-only chunks, and leaves every other chunk to the full parse."""

from __future__ import annotations

import orjson
import pytest

from providers._openai_events import LeanText, StreamState, lean_text


def chunk(choice: dict, **top) -> bytes:
    return orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                         "choices": [choice], **top})


@pytest.mark.parametrize("text", ["tok ", "", 'quote " and \\ backslash', "\\", 'ends with \\"', "é ✓ \U0001f600",
                                  '"usage":{"prompt_tokens":1}', "line\nbreak\t\u0000", '"error":"x"'])
def test_text_chunks_read_as_the_full_parse_reads_them(text):
    raw = chunk({"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}, usage=None)
    assert lean_text(raw) == text
    evs = StreamState().feed(orjson.loads(raw))
    assert "".join(e.text for e in evs if e.kind == "text") == text


@pytest.mark.parametrize("raw", [
    chunk({"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}),  # a finish
    chunk({"index": 0, "delta": {"content": "x"}, "finish_reason": None}, usage={"prompt_tokens": 1}),  # usage
    chunk({"index": 1, "delta": {"content": "x"}, "finish_reason": None}),  # another choice
    chunk({"index": 0, "delta": {"role": "assistant", "content": "x"}, "finish_reason": None}),  # a role
    chunk({"index": 0, "delta": {"content": "x", "reasoning_content": "r"}, "finish_reason": None}),
    chunk({"index": 0, "delta": {"content": "x"}, "finish_reason": None}, error={"message": "boom"}),  # OpenRouter
    chunk({"index": 0, "delta": {"content": "x"}, "finish_reason": None}, x_groq={"usage": {"prompt_tokens": 1}}),
    chunk({"index": 0, "delta": {"content": "x"}, "finish_reason": None, "usage": {"prompt_tokens": 1}}),  # Moonshot
    chunk({"index": 0, "delta": {"content": "x", "tool_calls": []}, "finish_reason": None}),
    chunk({"delta": {"content": "x"}}),  # no index: the full parse decides
    b'{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null},{"index":1,"delta":{"content":"y"}}]}',
    b'{"choices":[{"index":0,"delta":{"content":"unterminated}]}',
    b'{"choices":[{"index":0,"delta":{"content":"x"}',  # cut short
    b'{"choices":[{"index":0,"delta":{"content":"\\ud800 bad \\q"},"finish_reason":null}]}',  # bad escapes
    b"[DONE]",
])
def test_anything_else_goes_to_the_full_parse(raw):
    assert lean_text(raw) is None


def test_a_stream_scan_reuses_the_checked_bytes_around_the_text_and_rechecks_any_change():
    scan = LeanText()
    base = {"index": 0, "delta": {"content": "a"}, "finish_reason": None}
    assert scan(chunk(base)) == "a"
    assert scan(chunk({**base, "delta": {"content": 'b"\\'}})) == 'b"\\'
    assert scan(chunk({**base, "finish_reason": "stop"})) is None  # different bytes after the text
    assert scan(chunk(base, usage={"prompt_tokens": 1})) is None
    assert scan(chunk({**base, "delta": {"content": "c"}})) == "c"
    assert scan(chunk({**base, "delta": {"content": "cut"}})[:-3]) is None
    assert scan(chunk({**base, "delta": {"content": "x"}}, model="other")) == "x"  # checked again, in full
