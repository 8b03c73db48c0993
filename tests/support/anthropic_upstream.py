"""A fake Anthropic Messages upstream on 127.0.0.1 (`POST /v1/messages`, streams only),
built on `FaultUpstream` (the same raw asyncio server, lifecycle and call counts).

A stream is what the Messages API sends, in its own compact byte layout, one event
per HTTP chunk: `message_start` (usage: the prompt and one output token),
`content_block_start` (text), `ping`, one `content_block_delta` text delta per word
`Timing.word_s` apart (a `ping` after every `PING_EVERY` words, as the API sends them
now and then), `content_block_stop`, `message_delta` (stop reason and the output
tokens: one per word) and `message_stop`. The answer is the fault server's
("w1 w2 ... w60"; an assistant prefill of k words continues from word k+1). The
MODEL NAME picks the behaviour:

=========  ===========================================================================
ok         the whole answer
fb-cut     40 of 60 words, then the connection closes mid-body (no stop, no usage)
fb-stall   10 words, then silence (held until the server stops)
=========  ===========================================================================
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.support.fault_upstream import (
    CUT_AFTER,
    PROMPT_TOKENS,
    STALL_AFTER,
    WORDS,
    Call,
    FaultUpstream,
    _chunked_end,
    _json,
    _Request,
    _sse_head,
)

__all__ = ["AnthropicUpstream", "PING_EVERY"]

PING_EVERY = 25


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def _event(w: asyncio.StreamWriter, name: str, data: bytes) -> None:
    ev = b"event: %s\ndata: %s\n\n" % (name.encode(), data)
    w.write(b"%x\r\n%s\r\n" % (len(ev), ev))
    await w.drain()


def _prefill_words(messages: Any) -> int:
    last = messages[-1] if isinstance(messages, list) and messages else {}
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return 0
    content = last.get("content")
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return len(content.split()) if isinstance(content, str) else 0


class AnthropicUpstream(FaultUpstream):
    """`with AnthropicUpstream(Timing(word_s=0.01)) as up: up.base_url` (ends in /v1, as
    the fault server's; the Anthropic adapter takes it with or without)."""

    async def _handle(self, req: _Request, w: asyncio.StreamWriter) -> bool:
        if req.method != "POST" or req.path.split("?")[0] != "/v1/messages":
            await _json(w, 404, {"type": "error", "error": {"type": "not_found_error", "message": "no route"}})
            return True
        try:
            body = json.loads(req.body)
            model, messages, stream = str(body["model"]), body["messages"], body.get("stream") is True
        except (ValueError, KeyError, TypeError):
            await _json(w, 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "invalid JSON body"}})
            return True
        if not stream:
            await _json(w, 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "this upstream only streams"}})
            return True
        start = min(_prefill_words(messages), WORDS)
        now = time.monotonic()
        self._state.seen[model] = self._state.seen.get(model, 0) + 1
        self.calls.append(Call(model, True, now, start))
        self._ids += 1
        rid = f"msg_fault{self._ids:06d}"
        if model == "ok":
            await self._answer(w, rid, model, start, WORDS)
            return True
        if model == "fb-cut":
            await self._answer(w, rid, model, 0, CUT_AFTER, end=False)
            await asyncio.sleep(0.05)  # let the client read what was sent, then close without a last chunk
            return False
        if model == "fb-stall":
            await self._answer(w, rid, model, 0, STALL_AFTER, end=False)
            await self._hold()
            return False
        await _json(w, 404, {"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}})
        return True

    async def _answer(self, w: asyncio.StreamWriter, rid: str, model: str, start: int, stop: int, *,
                      end: bool = True) -> None:
        await _sse_head(w)
        await _event(w, "message_start", _compact({"type": "message_start", "message": {
            "id": rid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": PROMPT_TOKENS, "cache_creation_input_tokens": 0,
                                             "cache_read_input_tokens": 0, "output_tokens": 1}}}))
        await _event(w, "content_block_start",
                     b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}')
        await _event(w, "ping", b'{"type": "ping"}')
        for i in range(start, stop):
            piece = f"w{i + 1}" if i == 0 else f" w{i + 1}"
            await _event(w, "content_block_delta", _compact({"type": "content_block_delta", "index": 0,
                                                             "delta": {"type": "text_delta", "text": piece}}))
            if (i + 1 - start) % PING_EVERY == 0:
                await _event(w, "ping", b'{"type": "ping"}')
            if self.timing.word_s:
                await asyncio.sleep(self.timing.word_s)
        if not end:
            return
        await _event(w, "content_block_stop", b'{"type":"content_block_stop","index":0}')
        await _event(w, "message_delta", _compact({"type": "message_delta", "delta": {
            "stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": stop - start}}))
        await _event(w, "message_stop", b'{"type":"message_stop"}')
        await _chunked_end(w)
