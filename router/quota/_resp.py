"""A minimal pipelined RESP2 client on an asyncio.Protocol, for the ledger's hot path.

Why not only `redis.asyncio`: on the 2-core machine the ledger is benchmarked on,
redis-py's pure-Python asyncio client costs ~300 us of CPU per command (measured:
see docs/quota-ledger.md), which caps reserve+commit at a few hundred ops/s. This
client writes each command straight to the socket and resolves replies in order
(Redis answers in order), so concurrent callers share one connection and one
event-loop wake-up reads many replies. It speaks only what the ledger needs:
AUTH/SELECT, EVALSHA/EVAL/SCRIPT LOAD, MGET. `RedisStore(transport="redis-py")`
selects the redis.asyncio client instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = ["RespClient", "RespError"]


class RespError(Exception):
    """An error reply from the server (e.g. NOSCRIPT, a Lua error)."""


def _encode(args: tuple[Any, ...]) -> bytes:
    out = [f"*{len(args)}\r\n"]
    for a in args:
        s = a if isinstance(a, str) else (a.decode() if isinstance(a, bytes) else str(a))
        n = len(s) if s.isascii() else len(s.encode())
        out.append(f"${n}\r\n{s}\r\n")
    return "".join(out).encode()


class _Proto(asyncio.Protocol):
    def __init__(self, timeout_s: float = 2.0) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: Exception | None = None
        self.outbox: list[bytes] = []  # commands written together once per loop iteration
        # One watchdog per connection instead of a timer per command: if commands are
        # waiting and no reply byte has arrived for timeout_s, every waiter fails with
        # TimeoutError and the connection is dropped (its replies could no longer be matched).
        self.timeout_s = timeout_s
        self.progress = 0.0  # loop time of the last reply byte (or of the first waiter)
        self.timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes) -> asyncio.Future[Any]:
        loop = self.loop
        fut = loop.create_future()
        if not self.waiters:
            self.progress = loop.time()
            if self.timer is None:
                self.timer = loop.call_later(self.timeout_s, self._watch)
        idle = not self.waiters
        self.waiters.append(fut)
        if idle and self.transport is not None:  # nothing in flight: write now, no loop turn
            self.transport.write(data)
            return fut
        if not self.outbox:
            loop.call_soon(self.flush)
        self.outbox.append(data)
        return fut

    def _watch(self) -> None:
        self.timer = None
        if not self.waiters or self.closed is not None:
            return
        loop = self.loop
        idle = loop.time() - self.progress
        if idle < self.timeout_s:
            self.timer = loop.call_later(self.timeout_s - idle, self._watch)
            return
        self.closed = TimeoutError("redis command timed out")
        while self.waiters:
            f = self.waiters.popleft()
            if not f.done():
                f.set_exception(TimeoutError("redis command timed out"))
        if self.transport is not None:
            self.transport.close()

    def flush(self) -> None:
        if self.outbox and self.transport is not None and self.closed is None:
            data = b"".join(self.outbox)
            self.outbox.clear()
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.closed = self.closed or exc or ConnectionError("redis connection closed")
        while self.waiters:
            f = self.waiters.popleft()
            if not f.done():
                f.set_exception(ConnectionError(f"redis connection lost: {self.closed}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.timer is not None:
            self.progress = self.loop.time()
        while self.waiters:
            try:
                val, end = self._parse(self.pos)
            except IndexError:
                break  # incomplete reply: wait for more bytes
            self.pos = end
            f = self.waiters.popleft()
            if not f.done():
                if isinstance(val, RespError):
                    f.set_exception(val)
                else:
                    f.set_result(val)
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > 65536:
            del self.buf[: self.pos]
            self.pos = 0

    def _line(self, i: int) -> tuple[bytes, int]:
        j = self.buf.find(b"\r\n", i)
        if j < 0:
            raise IndexError
        return bytes(self.buf[i:j]), j + 2

    def _parse(self, i: int) -> tuple[Any, int]:
        if i >= len(self.buf):
            raise IndexError
        t = self.buf[i]
        line, i = self._line(i + 1)
        if t == 58:  # ':'
            return int(line), i
        if t == 36:  # '$'
            n = int(line)
            if n < 0:
                return None, i
            if i + n + 2 > len(self.buf):
                raise IndexError
            return bytes(self.buf[i : i + n]), i + n + 2
        if t == 42:  # '*'
            n = int(line)
            if n < 0:
                return None, i
            items = []
            for _ in range(n):
                v, i = self._parse(i)
                items.append(v)
            return items, i
        if t == 43:  # '+'
            return line.decode(), i
        if t == 45:  # '-'
            return RespError(line.decode(errors="replace")), i
        raise ConnectionError(f"unexpected RESP type byte {t!r}")


class RespClient:
    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        u = urlparse(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.db = int((u.path or "/0").strip("/") or 0)
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self.timeout_s = timeout_s
        self._proto: _Proto | None = None
        self._lock: asyncio.Lock | None = None

    async def _connect(self) -> _Proto:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._proto is not None and self._proto.closed is None:
                return self._proto
            loop = asyncio.get_running_loop()
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Proto(self.timeout_s), self.host, self.port), self.timeout_s)
            self._proto = proto
            if self.password:
                await self._send(proto, ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                await self._send(proto, ("SELECT", self.db))
            return proto

    async def _send(self, proto: _Proto, args: tuple[Any, ...]) -> Any:
        return await self._send_raw(proto, _encode(args))

    async def _send_raw(self, proto: _Proto, data: bytes) -> Any:
        return await proto.send(data)

    async def execute(self, *args: Any) -> Any:
        return await self.execute_raw(_encode(args))

    async def execute_raw(self, data: bytes) -> Any:
        """Send one command already encoded as a RESP array (callers cache encoded keys)."""
        proto = self._proto
        if proto is None or proto.closed is not None:
            proto = await self._connect()
        return await proto.send(data)  # the connection's watchdog raises TimeoutError

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
