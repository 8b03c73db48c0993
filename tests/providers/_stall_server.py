"""A tiny OpenAI-shaped upstream on 127.0.0.1 whose model name picks how it misbehaves
in time (for the timeout tests; real sockets, real HTTP/1.1 bytes):

    silent            accept, read the request, never answer
    headers           send the 200 headers of an SSE stream (or a JSON body's), then nothing
    jsonstall         send the 200 headers of a JSON body (even to a stream request), then nothing
    stall             stream two text chunks, then nothing
    ok                answer at once ("hello from <model>")
    slow-<s>          wait <s> seconds, then answer like `ok`
    drip-<s>          stream: a ": keep-alive" comment every <s> seconds for `drip_for` seconds,
                      then answer (a thinking model that says it is alive)

Any other model answers like `ok`. `hits[model]` counts requests per model.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

__all__ = ["StallServer"]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
    obj: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        obj["choices"] = []
        obj["usage"] = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _completion(model: str) -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hello from {model}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()


class StallServer:
    def __init__(self, drip_for: float = 0.6) -> None:
        self.hits: Counter[str] = Counter()
        self.drip_for = drip_for
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> "StallServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 2)
        except (asyncio.TimeoutError, Exception):
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # keep-alive: several requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                body = json.loads(await reader.readexactly(length)) if length else {}
                model = str(body.get("model", ""))
                self.hits[model] += 1
                await self._answer(writer, model, bool(body.get("stream")))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, w: asyncio.StreamWriter, model: str, stream: bool) -> None:
        kind, _, arg = model.partition("-")
        if kind == "silent":
            await asyncio.sleep(3600)
        if kind == "slow":
            await asyncio.sleep(float(arg))
        if kind in ("headers", "jsonstall"):
            ctype = b"text/event-stream" if stream and kind == "headers" else b"application/json"
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\ncontent-length: 100\r\n\r\n")
            await w.drain()
            await asyncio.sleep(3600)
        if not stream:
            body = _completion(model)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)
            await w.drain()
            return
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

        async def send(data: bytes) -> None:
            w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await w.drain()

        if kind == "drip":
            loop = asyncio.get_running_loop()
            end = loop.time() + self.drip_for
            while loop.time() < end:
                await send(b": keep-alive\n\n")
                await asyncio.sleep(float(arg))
        await send(_chunk(model, {"role": "assistant", "content": "hello "}))
        await send(_chunk(model, {"content": f"from {model}"}))
        if kind == "stall":
            await asyncio.sleep(3600)
        await send(_chunk(model, {}, "stop"))
        await send(_chunk(model, {}, usage=True))
        await send(b"data: [DONE]\n\n")
        w.write(b"0\r\n\r\n")
        await w.drain()
