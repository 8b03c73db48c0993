"""The splice sink of one proxied stream (`router.splice.Sink`): writes the body straight
to the client's socket, in order with everything sent before, under the client's flow
control.

It is offered when the ASGI `send` is uvicorn's (its request cycle has the socket, its
flow control and chunked framing); anything else (another server, an in-process test
client, a wrapped `send`) keeps the plain ASGI path. Once the status line is out, every
body write of the stream goes through `write` (the pump's batches too), so order is one
queue: a write goes to the socket at once unless the client is behind (the transport
paused writing) or bytes are already queued; then it queues and one drain task sends the
queue when the client catches up, after which whoever waited (`when_drained`) resumes.
`since` is the loop time the queue started waiting (0 when empty), for the write timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["ClientSink"]


def _chunk(body: bytes) -> bytes:
    """One HTTP/1.1 chunk (uvicorn's own framing of a body message)."""
    return b"%x\r\n%b\r\n" % (len(body), body)


class ClientSink:
    __slots__ = ("cycle", "transport", "flow", "text", "pending", "queued", "since", "drainer", "waiters", "loop")

    def __init__(self, cycle: Any, text: Callable[[str], bytes]) -> None:
        self.cycle, self.transport, self.flow, self.text = cycle, cycle.transport, cycle.flow, text
        self.pending: list[str] = []
        self.queued: list[bytes] = []
        self.since = 0.0
        self.drainer: asyncio.Task[None] | None = None
        self.waiters: list[Callable[[], None]] = []
        self.loop = asyncio.get_running_loop()

    @classmethod
    def for_send(cls, send: Any, encoder: Any) -> "ClientSink | None":
        """A sink for this response (after its status line went out with chunked framing),
        or None when `send` is not uvicorn's or the encoder cannot encode a bare text."""
        cycle = getattr(send, "__self__", None)
        text = getattr(encoder, "text", None)
        if cycle is None or text is None or getattr(cycle, "chunked_encoding", None) is not True:
            return None
        flow = getattr(cycle, "flow", None)
        if getattr(cycle, "transport", None) is None or not hasattr(flow, "drain") or \
                not hasattr(flow, "write_paused") or getattr(cycle, "response_complete", True):
            return None
        return cls(cycle, text)

    def write(self, body: bytes) -> None:
        """Body bytes of the stream, after everything written before."""
        if self.queued or self.flow.write_paused:
            self.queued.append(body)
            self._drain_soon()
        elif not self.cycle.disconnected:
            self.transport.write(_chunk(body))

    def write_texts(self, texts: list[str]) -> bool:
        enc = self.text
        self.write(enc(texts[0]) if len(texts) == 1 else b"".join([enc(t) for t in texts]))
        return not (self.queued or self.flow.write_paused)

    def when_drained(self, resume: Callable[[], None]) -> None:
        self.waiters.append(resume)
        self._drain_soon()

    def _drain_soon(self) -> None:
        if self.drainer is None:
            self.since = self.loop.time()
            self.drainer = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        cycle, flow = self.cycle, self.flow
        try:
            while not cycle.disconnected:
                if flow.write_paused:
                    await flow.drain()
                    continue
                if not self.queued:
                    break
                body = b"".join(self.queued)
                self.queued.clear()
                self.transport.write(_chunk(body))
        finally:
            if cycle.disconnected:
                self.queued.clear()
            self.drainer, self.since = None, 0.0
            waiters, self.waiters = self.waiters, []
            for w in waiters:
                w()

    async def wait(self) -> None:
        """Until the queue is sent (the pump, before it reads on or ends the response)."""
        while self.drainer is not None:
            await asyncio.wait((self.drainer,))

    def close(self) -> None:
        if self.drainer is not None:
            self.drainer.cancel()
