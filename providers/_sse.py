"""One Server-Sent Events parser for every adapter (WHATWG event-stream rules).

Yields `SSEEvent(event, data, id)` per dispatched event. Comment lines (":...")
are ignored; multi-line `data:` fields are joined with "\n"; CRLF, CR and LF line
ends are all accepted; a trailing event with no blank line is still dispatched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEEvent", "aiter_sse", "aiter_data", "parse_sse_lines", "MAX_EVENT_BYTES"]

MAX_EVENT_BYTES = 8 << 20  # one event still without its end past this: the stream is broken


def _too_big(call: Any) -> Exception:
    from router.errors import MalformedResponse  # lazy: this module stays free of the error tree at import

    return MalformedResponse(f"a stream event grew past {MAX_EVENT_BYTES >> 20} MiB without its end",
                             provider=getattr(call, "provider", "") or "", model=getattr(call, "model", None))


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None


class _Decoder:
    __slots__ = ("event", "data", "last_id")

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> SSEEvent | None:
        if not line:
            if not self.data and not self.event:
                return None
            ev = SSEEvent(self.event or "message", "\n".join(self.data), self.last_id)
            self.event, self.data = "", []
            return ev
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None

    def flush(self) -> SSEEvent | None:
        return self.feed("")


def parse_sse_lines(lines: list[str]) -> list[SSEEvent]:
    d, out = _Decoder(), []
    for line in lines:
        ev = d.feed(line)
        if ev:
            out.append(ev)
    last = d.flush()
    if last:
        out.append(last)
    return out


async def aiter_sse(chunks: AsyncIterator[bytes], tap: Any = None, call: Any = None) -> AsyncIterator[SSEEvent | str]:
    """Parse an async byte stream (e.g. `httpx.Response.aiter_bytes()`).

    Works on bytes, one event block (the lines up to a blank line) at a time: a block
    that is a single `data:` line (what chat streams send) becomes an event without
    a per-line pass; other blocks go through the line decoder. CR and CRLF line ends
    are normalised to LF first (a CR at the end of a read waits for the next byte).
    Blocks end on a line boundary, so decoding a block never splits a UTF-8 sequence.

    With a `providers._splice.Tap` that the caller armed (as `aiter_data` runs one), the
    tap runs where the next read would be; what it wrote comes out as one `str` (the
    caller reports it, never sends it again), then parsing goes on from where it stopped."""
    d = _Decoder()
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while True:
            if b"\r" in buf:
                keep = buf.endswith(b"\r")  # maybe the CR of a CRLF split across reads
                head = buf[:-1] if keep else buf
                buf = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep else b"")
            i = buf.find(b"\n\n")
            while i >= 0:
                block, buf = buf[:i], buf[i + 2:]
                ev = _block(d, block)
                if ev is not None:
                    yield ev
                i = buf.find(b"\n\n")
            if len(buf) > MAX_EVENT_BYTES:
                raise _too_big(call)
            if tap is None or not tap.armed:
                break
            buf, text, err = await tap.run_and_take(buf)
            if text:
                yield text
            if err is not None:
                raise err
    if buf.endswith(b"\r"):
        buf = buf[:-1] + b"\n"
    for line in buf.decode("utf-8", "replace").split("\n"):
        ev = d.feed(line)
        if ev:
            yield ev
    last = d.flush()
    if last:
        yield last


async def aiter_data(chunks: AsyncIterator[bytes], tap: Any = None, call: Any = None) -> AsyncIterator[bytes | str]:
    """The `data` of each event of an async byte stream, as bytes (event names and ids are
    dropped: for vendors whose chunks say what they are, OpenAI's). The same rules as
    `aiter_sse`; a single-line `data:` block is sliced out without decoding anything.

    With a `providers._splice.Tap` that the caller armed, the tap runs at the next read
    (texts go straight to the client); what it wrote comes out as one `str` (the caller
    reports it, never sends it again), then reading goes on from where it stopped."""
    d = _Decoder()
    buf = b""
    it = chunks.__aiter__()
    while True:
        if tap is not None and tap.armed:
            buf, text, err = await tap.run_and_take(buf)
            if text:
                yield text
            if err is not None:
                raise err
        else:
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                break
            buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            keep = buf.endswith(b"\r")
            head = buf[:-1] if keep else buf
            buf = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep else b"")
        i = buf.find(b"\n\n")
        while i >= 0:
            block, buf = buf[:i], buf[i + 2:]
            if block.startswith(b"data:") and b"\n" not in block:
                yield block[6:] if block[5:6] == b" " else block[5:]
            else:
                ev = _block(d, block)
                if ev is not None:
                    yield ev.data.encode()
            i = buf.find(b"\n\n")
        if len(buf) > MAX_EVENT_BYTES:
            raise _too_big(call)
    if buf.endswith(b"\r"):
        buf = buf[:-1] + b"\n"
    for line in buf.decode("utf-8", "replace").split("\n"):
        ev = d.feed(line)
        if ev:
            yield ev.data.encode()
    last = d.flush()
    if last:
        yield last.data.encode()


def _block(d: _Decoder, block: bytes) -> SSEEvent | None:
    """One event block (no blank line inside) -> its event, or None (comments only)."""
    if block.startswith(b"data:") and b"\n" not in block:
        v = block[6:] if block[5:6] == b" " else block[5:]
        return SSEEvent("message", v.decode("utf-8", "replace"), d.last_id)
    if block.startswith(b"\n"):  # a blank line right after the previous block: nothing pending
        block = block.lstrip(b"\n")
        if not block:
            return None
    for line in block.decode("utf-8", "replace").split("\n"):
        d.feed(line)
    return d.feed("")
