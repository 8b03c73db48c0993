"""Shared set-up of the end-to-end splice tests (OpenAI and Anthropic wires)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

from providers import _splice
from tests.support.fault_cases import TIMING

SLOW = dataclasses.replace(TIMING, word_s=0.01)  # words 10 ms apart: text flows through the splice


def count_feeds(monkeypatch: Any) -> list[int]:
    """A one-item list counting reads a splice handed to the client."""
    n = [0]
    orig = _splice.Tap.feed

    def feed(self: Any, data: bytes) -> None:
        n[0] += 1
        orig(self, data)

    monkeypatch.setattr(_splice.Tap, "feed", feed)
    return n


def raw_stream(port: int, path: str, body: bytes, *, headers: bytes = b"", rcvbuf: int | None = None) -> socket.socket:
    """A client on a plain socket that sent one streaming POST (reading is up to the test);
    `rcvbuf` shrinks its receive buffer (a client that stops reading fills it at once)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n"
              % (path.encode(), headers, len(body)) + body)
    return s


async def read_until(s: socket.socket, marker: bytes, count: int) -> bytes:
    """What the socket gave until `marker` was seen `count` times."""
    got = b""
    while got.count(marker) < count:
        more = await asyncio.to_thread(s.recv, 65536)
        if not more:
            break
        got += more
    return got
