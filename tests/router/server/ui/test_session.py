"""Dashboard sessions: random tokens kept as ledger counters, expiry, sign-out,
admin key changes, sharing across processes, and the same-origin checks."""

from __future__ import annotations

from typing import Any

import pytest

from router.quota.memory_store import MemoryStore
from router.quota.redis_store import RedisStore
from router.quota.sqlite_store import SQLiteStore
from router.server.ui.session import COOKIE, Sessions, cookie_token, host_of, same_origin, secure_cookie
from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)


def scope(*headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {"headers": [(k.encode(), v.encode()) for k, v in headers], "scheme": scheme}


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_session_lives_for_its_ttl_then_ends() -> None:
    clock = Clock()
    s = Sessions(MemoryStore(), "sha256$salt$abc", ttl_s=3600, clock=clock)
    token = await s.create()
    assert len(token) == 43 and await s.valid(token)
    assert not await s.valid(token[:-1] + ("A" if token[-1] != "A" else "B"))  # a guessed neighbour
    assert not await s.valid(None)
    clock.t += 3599
    assert await s.valid(token)
    clock.t += 2
    assert not await s.valid(token)


async def test_sign_out_ends_the_session_and_the_store_holds_no_token() -> None:
    store = MemoryStore()
    s = Sessions(store, "sha256$salt$abc")
    token = await s.create()
    assert all(token not in k for k in store._c)  # only a keyed digest is stored
    await s.end(token)
    assert not await s.valid(token)
    await s.end(token)  # twice is harmless
    assert not await s.valid(token)


async def test_a_new_admin_key_ends_every_session() -> None:
    store = MemoryStore()
    token = await Sessions(store, "sha256$salt$old").create()
    assert await Sessions(store, "sha256$salt$old").valid(token)
    assert not await Sessions(store, "sha256$salt$new").valid(token)


async def test_sessions_are_shared_through_a_shared_ledger_store(tmp_path: Any) -> None:
    """Two workers (two stores on one ledger file) see the same session and its end."""
    a, b = SQLiteStore(str(tmp_path / "ledger.sqlite")), SQLiteStore(str(tmp_path / "ledger.sqlite"))
    try:
        token = await Sessions(a, "h").create()
        assert await Sessions(b, "h").valid(token)
        await Sessions(b, "h").end(token)
        assert not await Sessions(a, "h").valid(token)
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.redis
async def test_sessions_are_shared_by_replicas_on_one_redis(redis_url: str, redis_prefix: str) -> None:
    a, b = RedisStore(redis_url, prefix=redis_prefix), RedisStore(redis_url, prefix=redis_prefix)
    try:
        clock = Clock()
        token = await Sessions(a, "h", ttl_s=60, clock=clock).create()
        assert await Sessions(b, "h", ttl_s=60, clock=clock).valid(token)
        clock.t += 61
        assert not await Sessions(b, "h", ttl_s=60, clock=clock).valid(token)  # expired by its end time
        clock.t -= 61
        await Sessions(b, "h", clock=clock).end(token)
        assert not await Sessions(a, "h", clock=clock).valid(token)
    finally:
        await a.aclose()
        await b.aclose()


def test_cookie_flags() -> None:
    s = Sessions(MemoryStore(), "h")
    local = s.cookie("t" * 43, scope(("host", "127.0.0.1:4000"))).decode()
    assert local == f"{COOKIE}={'t' * 43}; Max-Age=28800; Path=/ui; HttpOnly; SameSite=Strict"
    assert s.cookie("t", scope(("host", "localhost:4000"))).endswith(b"SameSite=Strict")
    assert s.cookie("t", scope(("host", "[::1]:4000"))).endswith(b"SameSite=Strict")
    assert s.cookie("t", scope(("host", "router.example.com"))).endswith(b"; Secure")
    assert s.cookie("t", scope(("host", "10.0.0.5:4000"))).endswith(b"; Secure")
    assert s.cookie("t", scope(("host", "localhost"), scheme="https")).endswith(b"; Secure")
    assert b"Max-Age=0" in Sessions.clear_cookie(scope(("host", "localhost")))
    assert host_of(scope(("host", "[::1]:80"))) == "::1" and host_of(scope(("host", "A.b:1"))) == "a.b"
    assert not secure_cookie(scope(("host", "127.0.0.1")))


def test_cookie_token_is_read_strictly() -> None:
    good = "a" * 43
    assert cookie_token(scope(("cookie", f"x=1; {COOKIE}={good}; y=2"))) == good
    assert cookie_token(scope(("cookie", f"{COOKIE}={good[:-1]}"))) is None  # wrong length
    assert cookie_token(scope(("cookie", f"{COOKIE}={'a' * 42}<"))) is None
    assert cookie_token(scope(("cookie", "other=1"))) is None
    assert cookie_token(scope()) is None


def test_same_origin() -> None:
    host = ("host", "127.0.0.1:4000")
    assert same_origin(scope(host))  # not a browser: the key or the session decides
    assert same_origin(scope(host, ("origin", "http://127.0.0.1:4000"), ("sec-fetch-site", "same-origin")))
    assert same_origin(scope(host, ("sec-fetch-site", "none")))  # typed in the address bar
    assert not same_origin(scope(host, ("origin", "http://evil.example")))
    assert not same_origin(scope(host, ("origin", "http://127.0.0.1:4001")))
    assert not same_origin(scope(host, ("origin", "null")))
    assert not same_origin(scope(host, ("sec-fetch-site", "cross-site")))
    assert not same_origin(scope(host, ("sec-fetch-site", "same-site")))
    assert not same_origin(scope(host, ("origin", "http://[bad")))
