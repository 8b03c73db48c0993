"""Key checks off the event loop, their caches, and the limit on unknown keys per client address."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
from typing import Any

import httpx2
import pytest

from router.server import auth as auth_mod
from router.server.auth import AttemptLimiter, KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings
from tests.router.server.conftest import LiveServer, make_app

GOOD = "qr-good-key-0123456789"
OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def scrypt_settings(**kw: Any) -> ServerSettings:
    return ServerSettings(keys=KeyStore([ProxyKey("team", hash_key(GOOD, scheme="scrypt"))]), **kw)


def bearer(k: str) -> dict[str, str]:
    return {"authorization": f"Bearer {k}"}


class Gate:
    """Makes every key check wait on a threading.Event (a scrypt that takes as long as we like),
    and records which threads ran them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.calls = 0
        real = auth_mod.verify_hash

        def slow(token: str, stored: str) -> bool:
            self.calls += 1
            self.threads.append(threading.current_thread())
            if token != GOOD:
                self.release.wait(30)
            return real(token, stored)

        monkeypatch.setattr(auth_mod, "verify_hash", slow)


async def test_a_legit_request_is_served_while_random_keys_are_being_checked(
        frouter: Any, spend_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(frouter, spend_path, scrypt_settings())
    gate = Gate(monkeypatch)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/v1/chat/completions", json=OK, headers=bearer(GOOD))).status_code == 200
        bad = [asyncio.create_task(c.post("/v1/chat/completions", json=OK,
                                          headers=bearer("qr-" + secrets.token_hex(12)))) for _ in range(8)]
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in bad)  # their checks are stuck in the key-check threads...
        r = await asyncio.wait_for(c.post("/v1/chat/completions", json=OK, headers=bearer(GOOD)), 10)
        assert r.status_code == 200  # ...and the event loop still serves the known key
        assert not any(t.done() for t in bad)
        gate.release.set()
        codes = [(await t).status_code for t in bad]
    await app.aclose()
    assert codes == [401] * 8
    assert threading.main_thread() not in gate.threads  # no check ran on the event loop's thread


async def test_unknown_keys_per_address_are_limited_without_hashing(frouter: Any, spend_path: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(frouter, spend_path, scrypt_settings())
    gate = Gate(monkeypatch)
    gate.release.set()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/v1/chat/completions", json=OK, headers=bearer(GOOD))).status_code == 200
        codes = [(await c.post("/v1/chat/completions", json=OK, headers=bearer(f"qr-wrong-{i}"))).status_code
                 for i in range(20)]
        assert codes == [401] * 20
        checks = gate.calls
        r = await c.post("/v1/chat/completions", json=OK, headers=bearer("qr-wrong-21"))
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_auth_failures"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert gate.calls == checks  # refused before any hashing
        # a key already verified is still served from that address
        assert (await c.post("/v1/chat/completions", json=OK, headers=bearer(GOOD))).status_code == 200
    # another address is not affected
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app, client=("10.0.0.9", 5000)),
                                  base_url="http://t") as c2:
        assert (await c2.get("/v1/models", headers=bearer("qr-wrong-x"))).status_code == 401
    await app.aclose()
    statuses = [r[0] for r in sqlite3.connect(spend_path).execute("SELECT status FROM spend")]
    assert statuses == [200, 200]  # refused attempts are counted in /metrics, never written to disk


async def test_checks_are_cached_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore([ProxyKey("team", hash_key(GOOD, scheme="scrypt"))])
    gate = Gate(monkeypatch)
    gate.release.set()
    found = await asyncio.gather(*[store.alookup(GOOD) for _ in range(5)])
    assert {k.id for k in found} == {"team"} and gate.calls == 1  # five callers, one check
    assert await store.alookup("qr-bad") is None and await store.alookup("qr-bad") is None
    assert gate.calls == 2  # a miss is remembered for a minute
    store._misses[store.digest("qr-bad")] = 0.0  # ...and then forgotten
    assert await store.alookup("qr-bad") is None and gate.calls == 3
    for i in range(5000):
        store._remember(store.digest(f"qr-{i}"), None)
    assert len(store._misses) <= 4096 and len(store._cache) == 1


def test_attempt_limiter_window_refund_and_bound() -> None:
    lim = AttemptLimiter(3, max_addresses=100)
    assert [lim.take("1.2.3.4", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("1.2.3.4", now=10.0) == 50.0
    lim.refund("1.2.3.4")
    assert lim.take("1.2.3.4", now=10.0) == 0.0
    assert lim.take("1.2.3.4", now=61.0) == 0.0  # the first ones left the window
    # one IPv6 /64 is one client
    assert [lim.take(f"2001:db8::{i}", now=0.0) for i in range(4)][-1] > 0
    for i in range(500):
        lim.take(f"10.0.{i // 256}.{i % 256}", now=0.0)
    assert len(lim._hits) <= 100
    assert AttemptLimiter(0).take("x") == 0.0  # 0 = no limit


def test_real_scrypt_over_a_real_server(frouter: Any, spend_path: Any) -> None:
    """Eight clients sending random keys through uvicorn; a client with the real key is answered
    while they are being refused."""
    app = make_app(frouter, spend_path, scrypt_settings())
    with LiveServer(app) as srv:
        assert httpx2.post(srv.url + "/v1/chat/completions", json=OK, headers=bearer(GOOD)).status_code == 200
        results: list[int] = []

        def attacker() -> None:
            with httpx2.Client(base_url=srv.url, timeout=30) as c:
                for _ in range(4):
                    results.append(c.post("/v1/chat/completions", json=OK,
                                          headers=bearer("qr-" + secrets.token_hex(12))).status_code)

        threads = [threading.Thread(target=attacker) for _ in range(8)]
        for t in threads:
            t.start()
        legit = [httpx2.post(srv.url + "/v1/chat/completions", json=OK, headers=bearer(GOOD), timeout=30).status_code
                 for _ in range(5)]
        for t in threads:
            t.join(60)
    assert legit == [200] * 5
    assert len(results) == 32 and set(results) <= {401, 429} and results.count(401) <= 20
