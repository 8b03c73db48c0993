"""A fake vendor on loopback for tests that start a real `quotaroute serve` process:
an aiohttp app in its own thread and event loop. Subclasses give `routes()`."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedUpstream:
    """`with Sub() as up:` serves `up.routes()` on 127.0.0.1:`up.port` until the block ends."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def routes(self) -> dict[str, Any]:
        """{path: async handler(request)} for POST requests."""
        raise NotImplementedError

    def _run(self) -> None:
        from aiohttp import web

        async def start() -> None:
            app = web.Application()
            for path, handler in self.routes().items():
                app.router.add_post(path, handler)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> Any:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
