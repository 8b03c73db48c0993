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
