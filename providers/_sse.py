"""One Server-Sent Events parser for every adapter (WHATWG event-stream rules).

Yields `SSEEvent(event, data, id)` per dispatched event. Comment lines (":...")
are ignored; multi-line `data:` fields are joined with "\n"; CRLF, CR and LF line
ends are all accepted; a trailing event with no blank line is still dispatched.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEEvent", "aiter_sse", "parse_sse_lines"]


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


async def aiter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Parse an async byte stream (e.g. `httpx.Response.aiter_bytes()`)."""
    d = _Decoder()
    buf = ""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in chunks:
        buf += dec.decode(chunk)
        while True:
            i_n, i_r = buf.find("\n"), buf.find("\r")
            if i_n < 0 and i_r < 0:
                break
            if i_r >= 0 and (i_n < 0 or i_r < i_n):
                if i_r == len(buf) - 1:
                    break  # might be the CR of a CRLF split across chunks
                line, buf = buf[:i_r], buf[i_r + (2 if buf[i_r + 1] == "\n" else 1):]
            else:
                line, buf = buf[:i_n], buf[i_n + 1:]
            ev = d.feed(line)
            if ev:
                yield ev
    buf += dec.decode(b"", final=True)
    for line in buf.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        ev = d.feed(line)
        if ev:
            yield ev
    last = d.flush()
    if last:
        yield last
