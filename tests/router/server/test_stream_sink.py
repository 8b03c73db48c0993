"""router.server.stream_sink: one ordered queue for a stream's body, under the client's
flow control (a uvicorn request cycle's shape, faked)."""

from __future__ import annotations

import asyncio
from typing import Any

from router.server.stream_sink import ClientSink


class Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, b: bytes) -> None:
        self.out.append(b)


class Flow:
    def __init__(self) -> None:
        self.write_paused = False
        self._ev = asyncio.Event()
        self._ev.set()

    def pause(self) -> None:
        self.write_paused = True
        self._ev.clear()

    def resume(self) -> None:
        self.write_paused = False
        self._ev.set()

    async def drain(self) -> None:
        await self._ev.wait()


class Cycle:
    def __init__(self) -> None:
        self.transport, self.flow = Transport(), Flow()
        self.disconnected = False
        self.chunked_encoding: Any = True
        self.response_complete = False

    async def send(self, msg: Any) -> None:  # pragma: no cover - only its __self__ matters
        pass


class Enc:
    def text(self, t: str) -> bytes:
        return b"data: " + t.encode() + b"\n\n"


def body(*texts: str) -> bytes:
    b = b"".join(b"data: " + t.encode() + b"\n\n" for t in texts)
    return b"%x\r\n%b\r\n" % (len(b), b)


async def test_offered_only_for_a_uvicorn_cycle_with_chunked_framing() -> None:
    c = Cycle()
    assert ClientSink.for_send(c.send, Enc()) is not None

    async def plain_send(msg: Any) -> None:  # pragma: no cover
        pass

    assert ClientSink.for_send(plain_send, Enc()) is None  # an in-process client, a wrapped send
    assert ClientSink.for_send(c.send, object()) is None  # an encoder without `text`
    c.chunked_encoding = False  # HTTP/1.0: no chunked framing
    assert ClientSink.for_send(c.send, Enc()) is None


async def test_writes_go_out_at_once_in_order_and_queue_while_the_client_is_behind() -> None:
    c = Cycle()
    s = ClientSink.for_send(c.send, Enc())
    assert s is not None
    assert s.write_texts(["a", "b"]) is True
    assert c.transport.out == [body("a", "b")]
    c.flow.pause()
    resumed: list[int] = []
    assert s.write_texts(["c"]) is False
    s.when_drained(lambda: resumed.append(1))
    s.write(b"data: d\n\n")  # the pump's own batch keeps its place behind the texts
    assert c.transport.out == [body("a", "b")] and s.since > 0
    waiter = asyncio.ensure_future(s.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    c.flow.resume()
    await asyncio.wait_for(waiter, 5)
    assert c.transport.out == [body("a", "b"), body("c", "d")]
    assert resumed == [1] and s.since == 0.0 and s.drainer is None


async def test_a_client_gone_drops_what_was_queued() -> None:
    c = Cycle()
    s = ClientSink.for_send(c.send, Enc())
    assert s is not None
    c.flow.pause()
    s.write_texts(["a"])
    c.disconnected = True
    c.flow.resume()
    await asyncio.wait_for(s.wait(), 5)
    assert c.transport.out == [] and s.queued == []
    s.write_texts(["b"])  # never written to a closed connection
    assert c.transport.out == []
