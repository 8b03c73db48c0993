"""A fault-injecting OpenAI-compatible upstream on 127.0.0.1, for tests and benchmarks.

It speaks the chat-completions wire (`POST .../chat/completions`, a JSON body, or
SSE with chunked transfer encoding when the request says `"stream": true`) on a
small raw asyncio HTTP/1.1 server, so it can also misbehave below HTTP (reset a
connection, accept and never answer, cut a body half-way). The request's MODEL
NAME picks the behaviour:

=================  =========================================================================
model              behaviour (stream and non-stream unless said)
=================  =========================================================================
ok                 a complete answer: 60 words, finish "stop", usage. When the last message
                   is an assistant prefill of k words, it continues from word k+1.
fb-429-once        first call: 429 with Retry-After (`Timing.retry_after_s`); then as ok
fb-429             every call: 429 rate limit, no Retry-After
fb-500-once        first call: 500; then as ok
fb-503             every call: 503 overloaded
fb-reset           reads the request, then resets the connection (RST), nothing sent
fb-silent          accepts and reads the request, never answers (until the server stops)
fb-slow-first      the first token comes after `Timing.first_token_s`, then as ok (non-stream:
                   the status line waits; stream: the SSE headers come at once, then nothing)
fb-cut             stream: 40 of 60 words, then the connection closes mid-body (no finish,
                   no usage, no [DONE]); non-stream: half the JSON body, then closes
fb-stall           stream: 10 words, then silence; non-stream: half the JSON body, then
                   silence (held until the server stops)
fb-malformed       stream: 10 words, one chunk of broken JSON, then the rest and [DONE];
                   non-stream: a 200 whose JSON body is truncated
fb-no-done         stream: the whole answer with finish and usage, but no `data: [DONE]`;
                   non-stream: as ok
fb-context-400     400 `context_length_exceeded` (OpenAI's body)
fb-filter-400      400 `content_filter` (Azure's prompt-filter body)
fb-flap            503 for `Timing.flap_s` seconds from its first call, then as ok
fb-insufficient    20 of 60 words, then finish "insufficient_system_resource" (DeepSeek's)
                   with usage for the 20 words
fb-finish-error    as fb-insufficient with finish "error"
=================  =========================================================================

Usage is deterministic: `PROMPT_TOKENS` input tokens for any request and one output
token per word sent, reported only when the vendor would report it (a whole answer,
or the final stream chunk when `stream_options.include_usage` is set).

    with FaultUpstream(Timing(first_token_s=1.0)) as up:
        base_url = up.base_url            # http://127.0.0.1:PORT/v1
        ...
        up.count("fb-503")                # calls that reached the server for a model

Runs its own event loop on a daemon thread, so sync and async clients (and a
benchmark) can use it alike. `stop()` (or leaving the `with`) releases every held
connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultUpstream", "Timing", "Call", "FAULTS", "WORDS", "PROMPT_TOKENS", "answer_words", "answer_text"]

WORDS = 60  # words in a complete answer
PROMPT_TOKENS = 12  # input tokens reported for any request
CUT_AFTER = 40
STALL_AFTER = 10
MALFORMED_AFTER = 10
INSUFFICIENT_AFTER = 20

FAULTS = ("ok", "fb-429-once", "fb-429", "fb-500-once", "fb-503", "fb-reset", "fb-silent", "fb-slow-first",
          "fb-cut", "fb-stall", "fb-malformed", "fb-no-done", "fb-context-400", "fb-filter-400", "fb-flap",
          "fb-insufficient", "fb-finish-error")


def answer_words(start: int = 0, stop: int = WORDS) -> list[str]:
    """Words `start+1 .. stop` of the one answer every model gives ("w1 w2 ... w60")."""
    return [f"w{i + 1}" for i in range(start, stop)]


def answer_text(n: int = WORDS) -> str:
    return " ".join(answer_words(0, n))


@dataclass
class Timing:
    """The fault server's delays (seconds). Defaults are the real-world scenario;
    tests pass short ones (with proportionally short router limits)."""

    retry_after_s: float = 1.0  # Retry-After on fb-429-once
    first_token_s: float = 20.0  # fb-slow-first
    flap_s: float = 60.0  # fb-flap: 503s for this long after its first call
    word_s: float = 0.0  # pause between streamed words
    hold_s: float = 3600.0  # how long fb-silent / fb-stall hold a connection (stop() ends it sooner)


@dataclass(frozen=True)
class Call:
    model: str
    stream: bool
    t: float  # time.monotonic() when the request was read
    prefill_words: int = 0


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _State:
    seen: dict[str, int] = field(default_factory=dict)  # calls per model
    first: dict[str, float] = field(default_factory=dict)  # monotonic time of a model's first call


class FaultUpstream:
    """The fault server. `base_url` is ready once `start()` (or `__enter__`) returns."""

    def __init__(self, timing: Timing | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.timing = timing or Timing()
        self.host, self.port = host, port
        self.calls: list[Call] = []
        self._state = _State()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "FaultUpstream":
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as e:  # noqa: BLE001 - reported to start()
                err.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if err:
            raise err[0]
        return self

    async def _open(self) -> None:
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._stop is not None and self._server is not None
        self._stop.set()
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)

    def __enter__(self) -> "FaultUpstream":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ what happened
    def count(self, model: str) -> int:
        """Requests for `model` that reached the server."""
        return sum(1 for c in self.calls if c.model == model)

    def healed_at(self, model: str = "fb-flap") -> float | None:
        """time.monotonic() when a flapping model stops failing (None before its first call)."""
        t = self._state.first.get(model)
        return None if t is None else t + self.timing.flap_s

    # ------------------------------------------------------------------ HTTP/1.1
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    return
                if not await self._handle(req, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _handle(self, req: _Request, w: asyncio.StreamWriter) -> bool:
        """Serve one request; False closes the connection."""
        if req.method != "POST" or not req.path.split("?")[0].endswith("/chat/completions"):
            await _json(w, 404, {"error": {"message": f"no route {req.method} {req.path}", "type":
                                           "invalid_request_error", "code": "not_found"}})
            return True
        try:
            body = json.loads(req.body)
            model = str(body["model"])
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            await _json(w, 400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return True
        stream = bool(body.get("stream"))
        usage_chunk = bool((body.get("stream_options") or {}).get("include_usage"))
        prefill = 0
        last = messages[-1] if messages else {}
        if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str):
            prefill = len(last["content"].split())
        now = time.monotonic()
        st = self._state
        n = st.seen[model] = st.seen.get(model, 0) + 1
        st.first.setdefault(model, now)
        self.calls.append(Call(model, stream, now, prefill))
        self._ids += 1
        ans = _Answer(f"chatcmpl-fault-{self._ids}", model, stream, usage_chunk, self.timing.word_s)
        return await self._fault(model, n, now, ans, prefill, w)

    async def _fault(self, model: str, n: int, now: float, a: "_Answer", prefill: int,
                     w: asyncio.StreamWriter) -> bool:
        t = self.timing
        if model == "ok" or (model in ("fb-429-once", "fb-500-once") and n > 1):
            return await a.whole(w, start=min(prefill, WORDS))
        if model == "fb-429-once":
            await _json(w, 429, _RATE_LIMIT, {"retry-after": str(max(1, math.ceil(t.retry_after_s))),
                                              "retry-after-ms": str(int(t.retry_after_s * 1000))})
            return True
        if model == "fb-429":
            await _json(w, 429, _RATE_LIMIT)
            return True
        if model == "fb-500-once":
            await _json(w, 500, {"error": {"message": "The server had an error while processing your request.",
                                           "type": "server_error", "param": None, "code": None}})
            return True
        if model == "fb-503" or (model == "fb-flap" and now < self._state.first[model] + t.flap_s):
            await _json(w, 503, {"error": {"message": "The engine is currently overloaded, please try again later.",
                                           "type": "server_error", "param": None, "code": None}})
            return True
        if model == "fb-flap":
            return await a.whole(w)
        if model == "fb-reset":
            _reset(w)
            return False
        if model == "fb-silent":
            await self._hold()
            return False
        if model == "fb-slow-first":
            if a.stream:
                await _sse_head(w)
            await self._hold(t.first_token_s)
            return await a.whole(w, head=not a.stream)
        if model == "fb-cut":
            await a.partial(w, CUT_AFTER)
            await asyncio.sleep(0.05)  # let the client read what was sent, then close without a last chunk
            return False
        if model == "fb-stall":
            await a.partial(w, STALL_AFTER)
            await self._hold()
            return False
        if model == "fb-malformed":
            return await a.malformed(w)
        if model == "fb-no-done":
            return await a.whole(w, done=False)
        if model == "fb-context-400":
            await _json(w, 400, {"error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in "
                           "9000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
            return True
        if model == "fb-filter-400":
            await _json(w, 400, {"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                           "management policy.", "type": None, "param": "prompt", "code": "content_filter",
                "status": 400}})
            return True
        if model == "fb-insufficient":
            return await a.whole(w, stop=INSUFFICIENT_AFTER, finish="insufficient_system_resource")
        if model == "fb-finish-error":
            return await a.whole(w, stop=INSUFFICIENT_AFTER, finish="error")
        await _json(w, 404, {"error": {"message": f"The model `{model}` does not exist.",
                                       "type": "invalid_request_error", "param": "model",
                                       "code": "model_not_found"}})
        return True

    async def _hold(self, seconds: float | None = None) -> None:
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), self.timing.hold_s if seconds is None else seconds)
        except asyncio.TimeoutError:
            pass


_RATE_LIMIT = {"error": {"message": "Rate limit reached for requests per minute. Please try again later.",
                         "type": "requests", "param": None, "code": "rate_limit_exceeded"}}


class _Answer:
    """Writes one answer (or part of one) in the requested wire shape."""

    def __init__(self, rid: str, model: str, stream: bool, usage_chunk: bool, word_s: float) -> None:
        self.id, self.model, self.stream, self.usage_chunk, self.word_s = rid, model, stream, usage_chunk, word_s

    def _usage(self, n: int) -> dict[str, int]:
        return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n, "total_tokens": PROMPT_TOKENS + n}

    def _body(self, text: str, finish: str, n: int) -> bytes:
        return json.dumps({"id": self.id, "object": "chat.completion", "created": 1, "model": self.model,
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                        "finish_reason": finish}], "usage": self._usage(n)}).encode()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": 1, "model": self.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()

    @staticmethod
    def _piece(i: int, start: int) -> str:
        return f"w{i + 1}" if i == 0 else f" w{i + 1}"

    async def _words(self, w: asyncio.StreamWriter, start: int, stop: int) -> None:
        for i in range(start, stop):
            delta = {"role": "assistant", "content": self._piece(i, start)} if i == start else {
                "content": self._piece(i, start)}
            await _sse(w, self._chunk(delta))
            if self.word_s:
                await asyncio.sleep(self.word_s)

    async def whole(self, w: asyncio.StreamWriter, *, start: int = 0, stop: int = WORDS, finish: str = "stop",
                    done: bool = True, head: bool = True) -> bool:
        n = stop - start
        if not self.stream:
            text = "".join(self._piece(i, start) for i in range(start, stop))
            await _json_raw(w, 200, self._body(text, finish, n))
            return True
        if head:
            await _sse_head(w)
        await self._words(w, start, stop)
        await _sse(w, self._chunk({}, finish))
        if self.usage_chunk:
            await _sse(w, json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": 1,
                                      "model": self.model, "choices": [], "usage": self._usage(n)}).encode())
        if done:
            await _sse(w, b"[DONE]")
        await _chunked_end(w)
        return True

    async def partial(self, w: asyncio.StreamWriter, n: int) -> None:
        """Stream: the first `n` words. Non-stream: the status line, headers and half the body."""
        if not self.stream:
            body = self._body(answer_text(), "stop", WORDS)
            w.write(_head(200, "application/json", {"content-length": str(len(body))}) + body[: len(body) // 2])
            await w.drain()
            return
        await _sse_head(w)
        await self._words(w, 0, n)

    async def malformed(self, w: asyncio.StreamWriter) -> bool:
        if not self.stream:
            body = self._body(answer_text(), "stop", WORDS)
            await _json_raw(w, 200, body[: len(body) * 2 // 3])
            return True
        await _sse_head(w)
        await self._words(w, 0, MALFORMED_AFTER)
        await _sse(w, self._chunk({"content": " w11"})[:-12])  # a chunk cut inside its JSON
        await self._words(w, MALFORMED_AFTER + 1, WORDS)
        await _sse(w, self._chunk({}, "stop"))
        await _sse(w, b"[DONE]")
        await _chunked_end(w)
        return True


# ---------------------------------------------------------------------- wire helpers

_REASON = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        n = int(headers.get("content-length") or 0)
        body = await reader.readexactly(n) if n else b""
    return _Request(method, path, headers, body)


def _head(status: int, ctype: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASON.get(status, 'Error')}", f"content-type: {ctype}",
             "x-request-id: fault-upstream"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _json_raw(w: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    w.write(_head(status, "application/json", {"content-length": str(len(body)), **(extra or {})}) + body)
    await w.drain()


async def _json(w: asyncio.StreamWriter, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
    await _json_raw(w, status, json.dumps(obj).encode(), extra)


async def _sse_head(w: asyncio.StreamWriter) -> None:
    w.write(_head(200, "text/event-stream; charset=utf-8", {"transfer-encoding": "chunked",
                                                            "cache-control": "no-cache"}))
    await w.drain()


async def _sse(w: asyncio.StreamWriter, data: bytes) -> None:
    event = b"data: " + data + b"\n\n"
    w.write(b"%x\r\n%s\r\n" % (len(event), event))
    await w.drain()


async def _chunked_end(w: asyncio.StreamWriter) -> None:
    w.write(b"0\r\n\r\n")
    await w.drain()


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()
