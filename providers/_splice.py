"""Splicing a vendor's text stream to the proxy's client (the contract is in
`router.splice`).

`tap_for(resp, call, plain)` gives a `Tap` when the response's bytes come straight from
an aiohttp connection (the proxy's transport, no content encoding); `plain` says which
event blocks are plain text (`openai_plain`; Anthropic's is `providers.anthropic.
anthropic_plain`). `aiter_data` / `aiter_sse` run it once the adapter has armed it
(after a plain text event), and only where the reading task has a sink.

While a tap runs, the aiohttp reader's class is swapped for a subclass whose
`feed_data` hands each read to the tap (`__class__` assignment: the same slots), so a
vendor chunk goes from the socket to the client's socket in one callback: no buffer, no
waiter future, no task step, no event object. The tap stops, restores the reader and
returns the bytes from the first event that is not plain text (a finish, usage, tool
call, reasoning, error, comment, a CR line ending), at the end of the body (the reader
gets its EOF), on a transport error (the reader gets the error), or on a stall longer
than the attempt's idle limit (`Timeout`, as `aiter_bytes` would raise). A client that
is not keeping up pauses reading from the vendor until it has taken what was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from providers import _http
from providers._sse import MAX_EVENT_BYTES
from router.errors import ProviderError
from router.splice import SPLICE, Sink

__all__ = ["Tap", "tap_for", "openai_plain"]

_ACTIVE: dict[int, "Tap"] = {}  # id(reader) -> the tap reading it
_CLASSES: dict[type, type] = {}


def openai_plain(lean: Callable[[bytes], str | None]) -> Callable[[bytes], str | None]:
    """The text of an OpenAI-compatible event block that carries only text (`lean` is the
    stream's `LeanText`), else None."""

    def plain(block: bytes) -> str | None:
        if block[:6] != b"data: " or b"\n" in block:
            return None
        return lean(block[6:])

    return plain


def tap_for(resp: Any, call: _http.Call, plain: Callable[[bytes], str | None]) -> "Tap | None":
    """A tap for this streaming response, or None (not an aiohttp body). It splices only
    where the reading task has a sink (the proxy's pump; not the task that routes)."""
    if "content-encoding" in resp.headers:
        return None
    get = getattr(resp.stream, "splice_reader", None)
    reader = get() if get is not None else None
    if reader is None or not hasattr(reader, "_size"):
        return None
    lim = resp.extensions.get(_http._LIMITS)
    idle = lim[1].idle_s if lim is not None else 60.0
    return Tap(reader, call, idle, plain)


def _spliced_class(base: type) -> type:
    cls = _CLASSES.get(base)
    if cls is not None:
        return cls

    def feed_data(self: Any, data: bytes, *a: Any) -> bool:
        tap = _ACTIVE.get(id(self))
        if tap is None:
            return base.feed_data(self, data, *a)  # type: ignore[no-any-return]
        tap.feed(data)
        return False

    def feed_eof(self: Any) -> None:
        tap = _ACTIVE.get(id(self))
        if tap is not None:
            tap.stop(tap.buf)
        base.feed_eof(self)

    def set_exception(self: Any, exc: BaseException, *a: Any) -> None:
        tap = _ACTIVE.get(id(self))
        if tap is not None:
            tap.stop(tap.buf)
        base.set_exception(self, exc, *a)

    def chunk_mark(self: Any) -> None:  # chunk offsets are kept for readers of whole HTTP chunks: none here
        return None

    cls = type("Spliced" + base.__name__, (base,), {
        "__slots__": (), "feed_data": feed_data, "feed_eof": feed_eof, "set_exception": set_exception,
        "begin_http_chunk_receiving": chunk_mark, "end_http_chunk_receiving": chunk_mark})
    _CLASSES[base] = cls
    return cls


class Tap:
    """One stream's splice (see the module docstring). `armed` is set by the adapter after
    a plain text chunk; `run` clears it."""

    __slots__ = ("reader", "base", "sink", "call", "idle_s", "plain", "loop", "armed", "buf", "fut", "last",
                 "timer", "paused", "spliced", "read_timeout")

    def __init__(self, reader: Any, call: _http.Call, idle_s: float, plain: Callable[[bytes], str | None]) -> None:
        self.reader, self.base, self.call = reader, type(reader), call
        self.sink: Sink | None = None  # the reading task's, set by `run`
        self.idle_s, self.plain = idle_s, plain
        self.loop = asyncio.get_running_loop()
        self.armed = False
        self.buf = b""
        self.fut: asyncio.Future[tuple[bytes, ProviderError | None]] | None = None
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.spliced = 0  # reads handed straight to the client (tests, metrics)
        self.read_timeout: Any = None

    async def run(self, buf: bytes) -> tuple[bytes, ProviderError | None]:
        """Splice until something other than plain text; returns (the bytes from there on,
        the stall error if it stalled). `buf` is the partial event the caller holds."""
        self.armed = False
        sink = SPLICE.get()
        if sink is None:
            return buf, None
        self.sink = sink
        r = self.reader
        if r._size or r.is_eof() or r.exception() is not None or b"\r" in buf:
            return buf, None  # bytes already buffered (or the end) come first: read on as usual
        loop = self.loop
        self.fut = fut = loop.create_future()
        self.buf = b""
        r.__class__ = _spliced_class(self.base)
        _ACTIVE[id(r)] = self
        self.last = loop.time()
        self.timer = loop.call_at(self.last + self.idle_s, self._check)
        proto = r._protocol  # aiohttp re-arms its read timer per read: the tap's one timer does that job
        if getattr(proto, "_read_timeout", None) is not None and hasattr(proto, "_reschedule_timeout"):
            self.read_timeout, proto._read_timeout = proto._read_timeout, None
            proto._reschedule_timeout()  # drops the pending one
        try:
            if buf:
                self.feed(buf)
            if not fut.done():
                await fut
            return fut.result()
        finally:
            self._restore()

    async def run_and_take(self, buf: bytes) -> tuple[bytes, str, ProviderError | None]:
        """`run`, then the text it wrote, taken from the sink's pending texts (the caller
        yields it as one spliced text, before raising the stall error if there is one)."""
        rest, err = await self.run(buf)
        if self.sink is None:
            return rest, "", err
        pending = self.sink.pending
        text = "".join(pending)
        pending.clear()
        return rest, text, err

    def feed(self, data: bytes) -> None:
        """One read from the vendor: write the texts of its whole plain-text events; stop at
        anything else."""
        self.last = self.loop.time()
        buf = self.buf + data if self.buf else data
        if b"\r" in data:
            self.stop(buf)
            return
        texts: list[str] = []
        plain = self.plain
        pos = 0
        stop = False
        while True:
            i = buf.find(b"\n\n", pos)
            if i < 0:
                break
            t = plain(buf[pos:i])
            if t is None:
                stop = True
                break
            if t:
                texts.append(t)
            pos = i + 2
        if texts:
            self.spliced += 1
            sink = self.sink
            assert sink is not None  # a tap only feeds while `run` holds a sink
            sink.pending += texts
            if not sink.write_texts(texts) and not stop:
                self._pause()
        if stop:
            self.stop(buf[pos:])
        else:
            self.buf = buf[pos:] if pos else buf
            if len(self.buf) > MAX_EVENT_BYTES:  # the reader of the event path reports it
                self.stop(self.buf)

    def stop(self, rest: bytes, error: ProviderError | None = None) -> None:
        fut = self.fut
        if fut is None or fut.done():
            return
        self._restore()
        fut.set_result((rest, error))

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.reader._protocol.pause_reading()
            assert self.sink is not None
            self.sink.when_drained(self._resume)

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self.reader._protocol.resume_reading()

    def _check(self) -> None:
        now = self.loop.time()
        if self.paused:  # waiting for our client, not for the vendor
            self.timer = self.loop.call_at(now + self.idle_s, self._check)
        elif now - self.last >= self.idle_s:
            self.timer = None
            self.stop(self.buf, _http._timeout("idle", self.idle_s, self.call))
        else:
            self.timer = self.loop.call_at(self.last + self.idle_s, self._check)

    def _restore(self) -> None:
        r = self.reader
        if _ACTIVE.pop(id(r), None) is not None:
            r.__class__ = self.base
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.read_timeout is not None:
            proto = r._protocol
            proto._read_timeout, self.read_timeout = self.read_timeout, None
            proto._reschedule_timeout()
        self._resume()
