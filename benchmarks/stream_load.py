"""The two ends of the streaming benchmark, each run as its own process:

    python -m benchmarks.stream_load upstream --port P --chunks N --gap-ms D
        a fake OpenAI-compatible vendor: every POST gets an SSE stream of N content
        chunks D ms apart, then a usage chunk and `data: [DONE]` (chunked encoding,
        keep-alive); a POST to /v1/messages gets the Anthropic Messages stream instead
        (message_start, content_block_start, ping, N text deltas D ms apart,
        content_block_stop, message_delta with usage, message_stop; the API's bytes).
    python -m benchmarks.stream_load load --url URL --concurrency C --duration T ...
        an asyncio load generator: C clients, each streaming back-to-back over a
        keep-alive connection for T seconds (starts spread over one stream length),
        prints one JSON line of measurements.

Both are raw asyncio protocols (uvloop when installed) so that neither end spends
its core on HTTP machinery: the generator only timestamps reads, counts `data:`
events and watches for the end of each response. It reports its own CPU so a
saturated generator is visible in the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from array import array
from typing import Any

__all__ = ["serve_upstream", "run_load", "main", "percentile"]


def _loop_policy() -> None:
    try:
        import uvloop  # lazy: optional speed-up for the load ends

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


# ---------------------------------------------------------------- fake upstream


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(i: int) -> bytes:
    body = ('{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1733000000,'
            '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"tok%d "},'
            '"finish_reason":null}]}') % i
    return _chunk(b"data: " + body.encode() + b"\n\n")


_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
         b"transfer-encoding: chunked\r\nx-request-id: bench\r\n\r\n")


def _tail(n: int) -> bytes:
    fin = (b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini",'
           b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
    usage = (b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini",'
             b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}') % (2 * n, 2 * n + 12)
    return (_chunk(b"data: " + fin + b"\n\n") + _chunk(b"data: " + usage + b"\n\n")
            + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def _anthropic_events(n: int) -> tuple[list[bytes], bytes]:
    """The Anthropic Messages stream: its events (the first with the message's opening) and its tail."""
    def ev(name: str, data: str) -> bytes:
        return _chunk(b"event: %s\ndata: %s\n\n" % (name.encode(), data.encode()))

    head = (ev("message_start", '{"type":"message_start","message":{"id":"msg_bench","type":"message",'
               '"role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
               '"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
               '"output_tokens":1}}}')
            + ev("content_block_start", '{"type":"content_block_start","index":0,"content_block":{"type":"text",'
                 '"text":""}}')
            + ev("ping", '{"type": "ping"}'))
    events = [ev("content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
                 '"text":"tok%d "}}' % i) for i in range(n)]
    events[0] = head + events[0]
    tail = (ev("content_block_stop", '{"type":"content_block_stop","index":0}')
            + ev("message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
                 '"usage":{"output_tokens":%d}}' % (2 * n))
            + ev("message_stop", '{"type":"message_stop"}') + b"0\r\n\r\n")
    return events, tail


class _Upstream(asyncio.Protocol):
    def __init__(self, chunks: int, gap: float, events: list[bytes], tail: bytes,
                 anthropic: tuple[list[bytes], bytes]) -> None:
        self.chunks, self.gap, self.events, self.tail = chunks, gap, events, tail
        self.anthropic = anthropic
        self.buf = b""
        self.t: Any = None
        self.timer: asyncio.TimerHandle | None = None
        self.out: list[bytes] = []  # the stream being sent: its events
        self.end = b""
        self.i = 0

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            n = 0
            i = head.find(b"content-length:")
            if i >= 0:
                n = int(head[i + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4:end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            if head.startswith(b"get"):
                self.t.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
                             b'{"data":[]}')
                continue
            if b'"stream":true' not in body.replace(b" ", b""):
                msg = b'{"error":{"message":"this upstream only streams","type":"invalid_request_error"}}'
                self.t.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(msg), msg))
                continue
            self._stream(*(self.anthropic if head.startswith(b"post /v1/messages ") else (self.events, self.tail)))

    def _stream(self, events: list[bytes], tail: bytes) -> None:
        """The first event now, then one timer callback per event `gap` apart (no task, no
        future per chunk: the fake vendor's own CPU stays small next to the proxy's)."""
        self.out, self.end, self.i = events, tail, 1
        self.t.write(_HEAD + events[0])
        self._next_or_end()

    def _next_or_end(self) -> None:
        if self.i < self.chunks:
            self.timer = asyncio.get_running_loop().call_later(self.gap, self._tick)
        else:
            self.timer = None
            self.t.write(self.end)

    def _tick(self) -> None:
        if self.t.is_closing():
            self.timer = None
            return
        self.t.write(self.out[self.i])
        self.i += 1
        self._next_or_end()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


def serve_upstream(port: int, chunks: int, gap_ms: float) -> None:
    _loop_policy()
    events = [_event(i) for i in range(chunks)]
    tail = _tail(chunks)
    anthropic = _anthropic_events(chunks)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: _Upstream(chunks, gap_ms / 1000, events, tail, anthropic),
                                       "127.0.0.1", port, backlog=4096)
        print("listening", flush=True)
        await srv.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- load generator


class _Stream(asyncio.Protocol):
    """One client connection; runs one response at a time and timestamps every read."""

    def __init__(self, res: "_Results", end_marker: bytes) -> None:
        self.res, self.end_marker = res, end_marker
        self.t: Any = None
        self.done: asyncio.Future | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def start(self, request: bytes) -> asyncio.Future:
        self.done = asyncio.get_running_loop().create_future()
        self.t0 = time.perf_counter()
        self.first = 0.0
        self.last = 0.0
        self.status = 0
        self.events = 0
        self.tail = b""
        self.t.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.done is None or self.done.done():
            return
        if not self.status:
            self.status = int(data[9:12]) if data[:5] == b"HTTP/" else -1
        n = data.count(b"data:")
        if n:
            if not self.first:
                self.first = now
                self.res.ttft.append(now - self.t0)
            else:
                self.res.gaps.append(now - self.last)
            self.last = now
            self.events += n
        w = self.tail + data
        self.tail = w[-64:]
        if self.status != 200 and (b"\r\n\r\n" in w):
            self.done.set_result(False)  # an error response: no SSE to wait for
        elif self.end_marker in w and w.endswith(b"0\r\n\r\n"):
            self.done.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(False)
        if not self.lost.done():
            self.lost.set_result(None)


class _Results:
    def __init__(self) -> None:
        self.ttft = array("d")
        self.gaps = array("d")
        self.ok = 0
        self.errors = 0
        self.starved = 0
        self.events = 0
        self.error_kinds: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def _client(host: str, port: int, request: bytes, end_marker: bytes, res: _Results, delay: float,
                  stop_at: float, starve_s: float, stream_timeout: float) -> None:
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    proto: _Stream | None = None
    while time.perf_counter() < stop_at:
        if proto is None or proto.t.is_closing():
            try:
                _, proto = await loop.create_connection(lambda: _Stream(res, end_marker), host, port)
            except OSError as e:
                res.error(type(e).__name__)
                await asyncio.sleep(0.1)
                proto = None
                continue
        fut = proto.start(request)
        try:
            ok = await asyncio.wait_for(fut, stream_timeout)
        except asyncio.TimeoutError:
            ok = False
            proto.t.close()
        if not proto.first or proto.first - proto.t0 > starve_s:
            res.starved += 1
        res.events += proto.events
        if ok:
            res.ok += 1
        else:
            res.error(f"status {proto.status}" if proto.status not in (0, 200) else "incomplete stream")
            proto.t.close()
            proto = None
    if proto is not None:
        proto.t.close()


def percentile(values: Any, q: float) -> float | None:
    if not len(values):
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


def run_load(url: str, concurrency: int, duration: float, body: str, key: str, ramp: float, starve_s: float,
             wire: str, stream_timeout: float) -> dict[str, Any]:
    _loop_policy()
    rest = url.split("://", 1)[1]
    hostport, path = rest.split("/", 1)
    host, port = hostport.split(":")
    raw = body.encode()
    hdrs = [f"POST /{path} HTTP/1.1", f"host: {hostport}", "content-type: application/json",
            f"content-length: {len(raw)}", "accept: text/event-stream"]
    if key:
        hdrs.append(f"authorization: Bearer {key}")
        hdrs.append(f"x-api-key: {key}")
    if wire == "anthropic":
        hdrs.append("anthropic-version: 2023-06-01")
    request = ("\r\n".join(hdrs) + "\r\n\r\n").encode() + raw
    end_marker = b"message_stop" if wire == "anthropic" else b"[DONE]"
    res = _Results()

    async def main() -> float:
        t0 = time.perf_counter()
        stop_at = t0 + duration
        rnd = random.Random(7)
        await asyncio.gather(*(
            _client(host, int(port), request, end_marker, res, rnd.uniform(0, ramp), stop_at, starve_s, stream_timeout)
            for _ in range(concurrency)))
        return time.perf_counter() - t0

    cpu0 = os.times()
    wall = asyncio.run(main())
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ms = 1000.0
    p = percentile
    return {
        "concurrency": concurrency, "wall_s": round(wall, 2), "streams_ok": res.ok, "errors": res.errors,
        "error_kinds": res.error_kinds, "starved": res.starved, "events": res.events,
        "streams_per_s": round(res.ok / wall, 1) if wall else 0.0,
        "ttft_p50_ms": _r(p(res.ttft, 50), ms), "ttft_p99_ms": _r(p(res.ttft, 99), ms),
        "gap_p50_ms": _r(p(res.gaps, 50), ms), "gap_p99_ms": _r(p(res.gaps, 99), ms),
        "gap_p999_ms": _r(p(res.gaps, 99.9), ms),
        "loadgen_cpu_share": round(cpu / wall, 2) if wall else 0.0,
    }


def _r(v: float | None, scale: float) -> float | None:
    return None if v is None else round(v * scale, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stream_load")
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("upstream")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--chunks", type=int, default=100)
    u.add_argument("--gap-ms", type=float, default=20.0)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    ld.add_argument("--concurrency", type=int, default=50)
    ld.add_argument("--duration", type=float, default=10.0)
    ld.add_argument("--body", required=True)
    ld.add_argument("--key", default="")
    ld.add_argument("--ramp", type=float, default=2.0)
    ld.add_argument("--starve-s", type=float, default=5.0)
    ld.add_argument("--wire", choices=["openai", "anthropic"], default="openai")
    ld.add_argument("--stream-timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    if a.cmd == "upstream":
        serve_upstream(a.port, a.chunks, a.gap_ms)
        return 0
    out = run_load(a.url, a.concurrency, a.duration, a.body, a.key, a.ramp, a.starve_s, a.wire, a.stream_timeout)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
