from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from providers.fake import FakeProvider, reply
from router.server.app import create_app
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings
from tests.router.server.fakes import FakeRouter

KEY_A, KEY_B, ADMIN = "qr-key-A-1234567890", "qr-key-B-0987654321", "qr-admin-555555555"


def keyed_settings(**kw: Any) -> ServerSettings:
    keys = KeyStore(
        [ProxyKey("team-a", hash_key(KEY_A), budget_usd=Decimal("0.0001"), models=("auto", "fake:small")),
         ProxyKey("team-b", hash_key(KEY_B, scheme="scrypt"), rpm=3)],
        ProxyKey("admin", hash_key(ADMIN), admin=True),
    )
    return ServerSettings(keys=keys, **kw)


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(scripts=[reply("Hello there", chunks=3)])


@pytest.fixture
def frouter(fake: FakeProvider) -> FakeRouter:
    return FakeRouter(fake)


@pytest.fixture
def spend_path(tmp_path: Any) -> Any:
    return tmp_path / "spend.sqlite"


def make_app(router: Any, spend_path: Any, settings: ServerSettings | None = None, **kw: Any) -> Any:
    settings = settings or ServerSettings()
    settings.spend_db = str(spend_path)
    if settings.responses.db is None:  # the Responses store beside the spend log, not in the shared home
        settings.responses = settings.responses.model_copy(update={"db": str(Path(spend_path).parent /
                                                                             "responses.sqlite")})
    return create_app(router, settings, **kw)


@pytest.fixture
async def app(frouter: FakeRouter, spend_path: Any) -> Any:
    a = make_app(frouter, spend_path)
    yield a
    await a.aclose()


@pytest.fixture
async def client(app: Any) -> Any:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on a free loopback port, in a thread (for the sync SDK and real disconnects)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                                    lifespan="on", loop="asyncio"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(frouter: FakeRouter, spend_path: Any) -> Iterator[LiveServer]:
    with LiveServer(make_app(frouter, spend_path)) as s:
        yield s


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts reads a stream splice handed to the client (tests/support/splice.py)."""
    from tests.support.splice import count_feeds  # lazy: only the splice tests use it

    return count_feeds(monkeypatch)
