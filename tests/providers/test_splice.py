"""providers._splice: a tap on a real aiohttp StreamReader, fed as aiohttp's parser feeds
it (the end-to-end runs through the proxy are in tests/router/server/test_stream_splice.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp.streams
import pytest

from providers import _http, _splice
from providers._openai_events import LeanText
from router.errors import Timeout
from router.splice import SPLICE


def ev(text: str) -> bytes:
    return (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % text.encode())


FINISH = b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'


class Proto:
    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self, *a: Any, **k: Any) -> None:
        self.resumed += 1


class Sink:
    def __init__(self, keeping_up: bool = True) -> None:
        self.pending: list[str] = []
        self.written: list[str] = []
        self.keeping_up = keeping_up
        self.drained: list[Callable[[], None]] = []

    def write_texts(self, texts: list[str]) -> bool:
        self.written += texts
        return self.keeping_up

    def when_drained(self, resume: Callable[[], None]) -> None:
        self.drained.append(resume)


def reader(proto: Proto) -> aiohttp.streams.StreamReader:
    return aiohttp.streams.StreamReader(proto, 2 ** 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]


def tap(r: Any, idle_s: float = 60.0) -> _splice.Tap:
    return _splice.Tap(r, _http.Call("p", "m"), idle_s, _splice.openai_plain(LeanText()))


async def run_with(sink: Sink, t: _splice.Tap, buf: bytes = b"") -> "asyncio.Task[Any]":
    tok = SPLICE.set(sink)  # type: ignore[arg-type]
    try:
        task = asyncio.ensure_future(t.run(buf))  # copies the context (with the sink)
    finally:
        SPLICE.reset(tok)
    await asyncio.sleep(0)
    return task


async def test_texts_go_to_the_sink_until_something_else_comes() -> None:
    p, sink = Proto(), Sink()
    r = reader(p)
    t = tap(r)
    task = await run_with(sink, t, b"data: {\"id\"")  # a partial event the caller held
    assert type(r) is not aiohttp.streams.StreamReader  # swapped while splicing
    r.feed_data(b'"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
                b'"delta":{"content":"a"},"finish_reason":null}]}\n\n' + ev("b")[:20])
    r.feed_data(ev("b")[20:] + ev("c"))
    assert sink.written == ["a", "b", "c"] == sink.pending
    r.feed_data(ev("d") + FINISH + b"data: [DONE]\n\n")
    rest, err = await task
    assert (rest, err) == (FINISH + b"data: [DONE]\n\n", None)
    assert sink.written == ["a", "b", "c", "d"]
    assert type(r) is aiohttp.streams.StreamReader and id(r) not in _splice._ACTIVE  # restored
    r.feed_data(b"later")  # the reader is itself again
    assert await r.readany() == b"later"


async def test_eof_and_errors_reach_the_reader_after_the_tap_stops() -> None:
    p, sink = Proto(), Sink()
    r = reader(p)
    task = await run_with(sink, tap(r))
    r.feed_data(ev("a") + b"data: {\"partial")
    r.feed_eof()
    rest, err = await task
    assert (rest, err, sink.written) == (b"data: {\"partial", None, ["a"])
    assert r.is_eof() and await r.readany() == b""

    r2 = reader(p)
    task = await run_with(sink, tap(r2))
    r2.set_exception(ConnectionResetError("reset"))
    assert (await task) == (b"", None)
    with pytest.raises(ConnectionResetError):
        await r2.readany()


async def test_a_crlf_stream_or_buffered_bytes_are_left_to_the_plain_path() -> None:
    p, sink = Proto(), Sink()
    r = reader(p)
    assert await tap(r).run(b"x") == (b"x", None)  # no sink: nothing happens
    task = await run_with(sink, tap(r))
    r.feed_data(b'data: {"a":1}\r\n\r\n')
    assert (await task) == (b'data: {"a":1}\r\n\r\n', None) and sink.written == []
    r.feed_data(b"queued")  # bytes already in the reader come first
    task = await run_with(sink, tap(r))
    assert (await task) == (b"", None)


async def test_a_stall_past_the_idle_limit_is_a_timeout() -> None:
    p, sink = Proto(), Sink()
    r = reader(p)
    task = await run_with(sink, tap(r, idle_s=0.2))
    r.feed_data(ev("a"))
    rest, err = await asyncio.wait_for(task, 5)
    assert isinstance(err, Timeout) and err.code == "idle_timeout" and sink.written == ["a"]


async def test_a_slow_client_pauses_the_vendor_until_drained() -> None:
    p, sink = Proto(), Sink(keeping_up=False)
    r = reader(p)
    t = tap(r, idle_s=0.2)
    task = await run_with(sink, t)
    r.feed_data(ev("a"))
    assert p.paused == 1 and len(sink.drained) == 1
    await asyncio.sleep(0.5)  # paused for our client: not the vendor's stall
    assert not task.done()
    sink.drained.pop()()
    assert p.resumed == 1
    r.feed_data(FINISH)
    assert (await task) == (FINISH, None)


async def test_cancelled_while_splicing_restores_the_reader() -> None:
    p, sink = Proto(), Sink(keeping_up=False)
    r = reader(p)
    task = await run_with(sink, tap(r))
    r.feed_data(ev("a"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert type(r) is aiohttp.streams.StreamReader and id(r) not in _splice._ACTIVE
    assert p.resumed == 1  # a pause of ours never outlives the tap
    assert sink.pending == ["a"]  # for the router to count (router.splice.take_pending)


async def test_run_and_take_hands_back_the_text_it_wrote_once() -> None:
    p, sink = Proto(), Sink()
    r = reader(p)
    t = tap(r)
    tok = SPLICE.set(sink)  # type: ignore[arg-type]
    try:
        task = asyncio.ensure_future(t.run_and_take(b""))
    finally:
        SPLICE.reset(tok)
    await asyncio.sleep(0)
    r.feed_data(ev("a") + ev("b") + FINISH)
    assert (await task) == (FINISH, "ab", None)
    assert sink.pending == [] and sink.written == ["a", "b"]


async def test_an_event_that_never_ends_goes_back_to_the_event_path() -> None:
    from providers._sse import MAX_EVENT_BYTES

    p, sink = Proto(), Sink()
    r = reader(p)
    task = await run_with(sink, tap(r))
    r.feed_data(b"data: " + b"x" * (MAX_EVENT_BYTES + 1))
    rest, err = await task
    assert len(rest) > MAX_EVENT_BYTES and err is None  # `aiter_data` refuses it (tests/providers/test_sse.py)
