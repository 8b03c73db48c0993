"""Slow and abusive clients against a real uvicorn server on 127.0.0.1 (uvloop + the
guarded httptools protocol): read timeouts, the header size limit, the connection cap."""

from __future__ import annotations

import json
import select
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from router.server.limits import Limits, default_max_connections
from router.server.transport import bind_socket, server_config
from tests.router.server.conftest import make_app

FAST = Limits(header_timeout_s=1.0, body_timeout_s=1.0, keepalive_timeout_s=1.0, max_connections=1000)
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "  # headers that never finish


class Guarded:
    """The proxy app on uvicorn with the guarded protocol, in a thread."""

    def __init__(self, app: Any, limits: Limits) -> None:
        import uvicorn

        self.sock = bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = server_config(app, limits, host="127.0.0.1", port=self.port, log_level="critical", lifespan="on",
                            loop="auto")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "Guarded":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    @property
    def gate(self) -> Any:
        return self.server.server_state.quotaroute_gate

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return s


def serve(frouter: Any, spend_path: Any, limits: Limits) -> Guarded:
    return Guarded(make_app(frouter, spend_path), limits)


def readable(s: socket.socket) -> bool:
    p = select.poll()  # not select(): the flood tests use descriptors above 1,024
    p.register(s, select.POLLIN)
    return bool(p.poll(0))


def read_all(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it; fails if one is still open at the deadline."""
    got = {s: b"" for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    deadline = time.monotonic() + timeout
    try:
        while left:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{left} of {len(socks)} connections still open"
            for k, _ in sel.select(min(remaining, 0.5)):
                s = k.fileobj
                try:
                    chunk = s.recv(65536)  # type: ignore[union-attr]
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                if chunk:
                    got[s] += chunk  # type: ignore[index]
                else:
                    sel.unregister(s)
                    left -= 1
    finally:
        sel.close()
    return got


def healthz(url: str) -> int:
    return httpx2.get(url + "/healthz", timeout=10).status_code


def rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture
def srv(frouter: Any, spend_path: Any) -> Iterator[Guarded]:
    with serve(frouter, spend_path, FAST) as s:
        yield s


def test_default_connection_cap_leaves_room_below_the_open_file_limit() -> None:
    assert default_max_connections(1024) == 416  # + up to 416 upstream sockets + 192 reserve = 1,024
    assert default_max_connections(65536) == 65536 - 192 - 512
    assert default_max_connections(100) == 16
    assert Limits.of(object()) == Limits()
    lim = Limits.of(type("S", (), {"limits": {"max_header_bytes": 1000, "max_connections": None}})())
    assert lim.max_header_bytes == 1000 and lim.header_timeout_s == 10 and lim.resolved().max_connections


def test_slowloris_connections_are_closed_after_the_header_timeout(srv: Guarded) -> None:
    socks = [srv.connect() for _ in range(200)]
    for s in socks:
        s.sendall(PARTIAL)
    got = read_all(socks, timeout=15)
    assert all(b.startswith(b"HTTP/1.1 408 ") for b in got.values())
    assert b'"code":"request_timeout"' in next(iter(got.values()))
    for s in socks:
        s.close()
    assert healthz(srv.url) == 200


def test_a_connection_that_sends_nothing_is_closed_quietly(srv: Guarded) -> None:
    s = srv.connect()
    assert read_all([s], timeout=10)[s] == b""


def test_a_body_that_never_arrives_gets_408(srv: Guarded, spend_path: Any) -> None:
    s = srv.connect()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              b"Content-Length: 500\r\n\r\n{\"model\":")
    out = read_all([s], timeout=10)[s]
    assert out.startswith(b"HTTP/1.1 408 ") and b"Request body not received" in out
    assert healthz(srv.url) == 200


def test_keep_alive_connections_are_closed_when_idle_and_pipelining_still_works(srv: Guarded) -> None:
    s = srv.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n")
    out = read_all([s], timeout=10)[s]  # both answered, then closed after the 1 s keep-alive timeout
    assert out.count(b"HTTP/1.1 200 ") == 2 and b'"object":"list"' in out


def test_headers_over_the_limit_get_431(srv: Guarded) -> None:
    ok = httpx2.get(srv.url + "/healthz", headers={f"x-h{i}": "v" * 1000 for i in range(60)}, timeout=10)
    assert ok.status_code == 200  # ~61 KiB: within the 64 KiB default
    s = srv.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)) + b"\r\n")
    out = read_all([s], timeout=10)[s]
    assert out.startswith(b"HTTP/1.1 431 ") and b"connection: close" in out
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "headers_too_large"


def test_a_200_mb_header_is_refused_without_buffering_it(srv: Guarded) -> None:
    before = rss_kib()
    s = srv.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
    chunk, sent, reply = b"a" * (1 << 20), 0, b""
    try:
        while sent < 200 << 20:
            s.sendall(chunk)
            sent += len(chunk)
            if readable(s):
                reply = s.recv(65536)
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    if not reply:
        reply = read_all([s], timeout=10)[s]
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert sent < 64 << 20  # refused after the first 64 KiB (plus socket buffers), not after 200 MB
    assert rss_kib() - before < 64 * 1024
    s.close()
    assert healthz(srv.url) == 200


def test_over_the_connection_cap_new_connections_get_503_and_legit_requests_get_through(
        frouter: Any, spend_path: Any) -> None:
    lim = Limits(header_timeout_s=30.0, keepalive_timeout_s=5.0, max_connections=20)
    with serve(frouter, spend_path, lim) as srv:
        slow = [srv.connect() for _ in range(20)]
        for s in slow:
            s.sendall(PARTIAL)
        time.sleep(0.3)
        extra = [srv.connect() for _ in range(40)]  # the slow ones are too young to be closed for room
        got = read_all(extra, timeout=15)
        refused = [b for b in got.values() if b.startswith(b"HTTP/1.1 503 ")]
        assert len(refused) == 40 and srv.gate.refused == 40
        head, body = refused[0].split(b"\r\n\r\n", 1)
        assert b"retry-after: 1" in head and json.loads(body)["error"]["code"] == "too_many_connections"
        time.sleep(1.0)  # now the slow ones have waited over a second: a new client takes the oldest one's place
        assert healthz(srv.url) == 200
        still_open = [s for s in slow if not readable(s)]
        assert len(still_open) >= 18  # only as many slow connections were closed as room was needed
        for s in slow + extra:
            s.close()
        assert healthz(srv.url) == 200
