"""Run the real quotaroute proxy (uvicorn on loopback) for the demo, in a thread of
its own with its own event loop, and stop it cleanly."""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.server.app import create_app
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings

__all__ = ["DemoProxy", "PortTaken", "free_port", "check_port"]


class PortTaken(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port(port: int) -> None:
    """Raise PortTaken if 127.0.0.1:port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortTaken(f"port {port} on 127.0.0.1 is taken; pass --port 0 for a free one") from None
            raise


class DemoProxy:
    """`make_router()` is called inside the server thread, so the Router, its ledger
    and its SQLite connections live on the server's own event loop."""

    def __init__(self, make_router: Callable[[], Any], *, folder: Path, port: int) -> None:
        self.make_router = make_router
        self.folder = folder
        self.port = port
        self.client_key = "qr-demo-" + secrets.token_urlsafe(12)
        self.admin_key = "qr-admin-" + secrets.token_urlsafe(12)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.router: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _settings(self) -> Any:
        keys = KeyStore(
            [ProxyKey(id="demo-app", hash=hash_key(self.client_key))],
            ProxyKey(id="admin", hash=hash_key(self.admin_key), admin=True),
        )
        return ServerSettings(host="127.0.0.1", port=self.port, spend_db=str(self.folder / "spend.sqlite"), keys=keys)

    def _main(self) -> None:
        import uvicorn  # lazy: import time (uvicorn), in the proxy's thread


        async def serve() -> None:
            self.router = self.make_router()
            app = create_app(self.router, self._settings())
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                    access_log=False)
            self._server = uvicorn.Server(config)
            self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            task = asyncio.ensure_future(self._server.serve())
            while not self._server.started and not task.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await task
            if self._server.started is False and not task.cancelled() and task.exception() is None:
                raise PortTaken(f"the proxy could not start on 127.0.0.1:{self.port}")

        try:
            asyncio.run(serve())
        except BaseException as e:  # noqa: BLE001 - reported to the caller's thread
            self._error = e
        finally:
            self._ready.set()

    def start(self, timeout: float = 20.0) -> "DemoProxy":
        check_port(self.port)
        self._thread = threading.Thread(target=self._main, name="quotaroute-demo-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the proxy did not start in time")
        if self._error is not None:
            raise self._error
        if self._server is None or not self._server.started:
            raise PortTaken(f"the proxy could not start on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._error is not None and not isinstance(self._error, (SystemExit, KeyboardInterrupt)):
            raise self._error

    def __enter__(self) -> "DemoProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
