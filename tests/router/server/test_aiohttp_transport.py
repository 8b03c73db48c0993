"""The lean `FastAsyncClient.post` path sends exactly what httpx's own path sends."""

from __future__ import annotations

import gzip
import socket
from typing import Any

import httpx
import orjson
import pytest

from router.server.aiohttp_transport import aiohttp_client


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def upstream() -> Any:
    from aiohttp import web

    async def echo(req: Any) -> Any:
        body = await req.read()
        out = orjson.dumps({"headers": [[k.lower(), v] for k, v in req.headers.items()], "body": body.decode(),
                            "path": req.path_qs})
        if req.path.endswith("/gz"):
            return web.Response(body=gzip.compress(out), headers={"content-encoding": "gzip",
                                                                  "content-type": "application/json"})
        return web.Response(body=out, status=201, headers={"content-type": "application/json", "x-one": "1"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_lean_post_matches_httpx_path(upstream: str) -> None:
    client = aiohttp_client()
    try:
        h = {"content-type": "application/json", "Authorization": "Bearer sk-test"}
        lean = await client.post(f"{upstream}/v1/chat", content=b'{"a":1}', headers=h)
        stock = await client.send(client.build_request("POST", f"{upstream}/v1/chat", content=b'{"a":1}', headers=h))
        assert lean.status_code == stock.status_code == 201
        assert lean.json() == stock.json()  # same headers, same order, same body
        assert lean.json()["body"] == '{"a":1}'
        assert ["authorization", "Bearer sk-test"] in lean.json()["headers"]
        assert lean.headers["x-one"] == "1"
        assert lean.request.method == "POST" and str(lean.request.url) == f"{upstream}/v1/chat"
        assert lean.request.headers["content-length"] == "7"
        gz = await client.post(f"{upstream}/gz", content=b"{}", timeout=5.0)
        assert gz.json()["body"] == "{}"  # decompressed like httpx does
        # anything the lean path does not handle takes httpx's own path
        p = await client.post(f"{upstream}/q", content=b"{}", params={"api-version": "1"})
        assert p.json()["path"] == "/q?api-version=1"
    finally:
        await client.aclose()


async def test_lean_post_maps_connect_errors() -> None:
    client = aiohttp_client()
    try:
        with pytest.raises(httpx.ConnectError) as ei:
            await client.post(f"http://127.0.0.1:{_port()}/v1/chat", content=b"{}")
        assert ei.value.request.method == "POST"
    finally:
        await client.aclose()
    with pytest.raises(RuntimeError):
        await client.post("http://127.0.0.1:1/x", content=b"{}")


async def test_lean_post_header_merge_matches_httpx(upstream: str) -> None:
    client = aiohttp_client()
    client.headers["X-Team"] = "a"
    try:
        for h in ({"x-team": "b", "Accept": "application/json"}, {"User-Agent": "qr"}, {}, None):
            lean = await client.post(f"{upstream}/v1/chat", content=b"{}", headers=h)
            stock = await client.send(client.build_request("POST", f"{upstream}/v1/chat", content=b"{}", headers=h))
            assert lean.json()["headers"] == stock.json()["headers"], h
    finally:
        await client.aclose()


def test_whole_response_matches_httpx() -> None:
    from router.server.aiohttp_transport import _whole

    body = b'{"x":1}'
    for raw in ([(b"Content-Type", b"application/json"), (b"Content-Length", b"7")],
                [(b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked")],
                [(b"Content-Encoding", b"gzip")]):
        content = gzip.compress(body) if raw[0][0] == b"Content-Encoding" else body
        a = httpx.Response(201, headers=list(raw), content=content, extensions={"http_version": b"HTTP/1.1"})
        b = _whole(201, list(raw), content, {"http_version": b"HTTP/1.1"})
        assert (a.status_code, a.headers.raw, a.content, a.json(), a.is_closed, a.is_stream_consumed,
                a.num_bytes_downloaded, a.extensions) == (b.status_code, b.headers.raw, b.content, b.json(), b.is_closed,
                                                          b.is_stream_consumed, b.num_bytes_downloaded, b.extensions)


# ------------------------------------------------------------------ per-request timeouts


async def test_per_request_read_timeout_and_stream_idle_gap_raise_timeouts() -> None:
    """The transport takes each request's own limits (not the client's long default):
    no headers within `read` -> ReadTimeout; a stream that stalls between chunks ->
    ReadTimeout while iterating; both become the adapters' `Timeout`."""
    import time

    from providers._http import Call, transport_error
    from router.errors import Timeout
    from tests.providers._stall_server import StallServer

    client = aiohttp_client(timeout=600.0)
    tight = httpx.Timeout(2.0, read=0.3)
    async with StallServer() as up:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as ei:
            await client.post(f"{up.url}/chat/completions", content=b'{"model":"silent"}', timeout=tight)
        assert time.monotonic() - t0 < 3.0
        assert isinstance(transport_error(ei.value, call=Call("p", "m")), Timeout)
        req = client.build_request("POST", f"{up.url}/chat/completions", content=b'{"model":"stall","stream":true}',
                                   timeout=tight)
        resp = await client.send(req, stream=True)
        got = b""
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async for chunk in resp.aiter_bytes():
                got += chunk
        await resp.aclose()
        assert b"hello " in got and time.monotonic() - t0 < 3.0
    await client.aclose()


async def test_connect_timeout_maps_to_connect_timeout() -> None:
    """A listener with a full accept backlog never completes the handshake in time (or
    refuses): either way a typed error, quickly, never the client's 600 s default."""
    import time

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    client = aiohttp_client(timeout=600.0)
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        t0 = time.monotonic()
        with pytest.raises((httpx.ConnectTimeout, httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError)):
            await client.post(f"http://127.0.0.1:{port}/x", content=b"{}", timeout=httpx.Timeout(0.3))
        assert time.monotonic() - t0 < 3.0
    finally:
        for s in fillers:
            s.close()
        lsock.close()
        await client.aclose()
