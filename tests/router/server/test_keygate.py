"""Per-key limits in the ledger: budgets as hard ledger budgets (exact key id), rpm as one
atomic take per request (every request counts, shared by workers and replicas), and
the ledger going away (503 before any vendor call)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.keygate import KeyGate, key_budget_id, key_budgets
from router.server.settings import ServerSettings
from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)
from tests.router.server.conftest import make_app
from tests.router.server.fakes import FakeRouter

OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def auth(k: str) -> dict[str, str]:
    return {"authorization": f"Bearer {k}"}


def test_key_budgets_match_exactly_one_key() -> None:
    keys = KeyStore([ProxyKey("ci-*", hash_key("a"), budget_usd=Decimal("1"), budget_period="day"),
                     ProxyKey("plain", hash_key("b")), ProxyKey("x" * 200, hash_key("c"), budget_usd=Decimal("2"))])
    specs = key_budgets(keys)
    assert [s.id for s in specs] == ["key:ci-*", key_budget_id("x" * 200)] and len(specs[1].id) <= 120
    b = specs[0]
    assert (b.scope, b.period, b.limit_usd, b.hard) == ("key", "day", Decimal("1"), True)
    assert b.applies("m:x", "m", {"key": "ci-*"}) and not b.applies("m:x", "m", {"key": "ci-other"})
    assert specs[1].applies("m:x", "m", {"key": "x" * 200}) and not specs[1].applies("m:x", "m", {"key": "x"})


def store_for(kind: str, tmp_path: Any, request: Any) -> Any:
    if kind == "memory":
        return None  # one shared MemoryStore below
    if kind == "sqlite":
        from router.quota.sqlite_store import SQLiteStore

        return lambda: SQLiteStore(str(tmp_path / "shared.sqlite"))
    from router.quota.redis_store import RedisStore

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return lambda: RedisStore(url, prefix=prefix)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_rpm_is_shared_by_every_worker(kind: str, tmp_path: Any, request: Any) -> None:
    # 3 gates (3 workers / replicas) on one store: 5 requests a minute for the key in all.
    make = store_for(kind, tmp_path, request)
    shared = MemoryStore()
    key = ProxyKey("k", hash_key("t"), rpm=5)
    keys = KeyStore([key])
    gates = [KeyGate(keys, Ledger(make() if make else shared)) for _ in range(3)]
    t0 = time.time()  # Redis expires keys by its own clock: real time
    outcomes = await asyncio.gather(*(gates[i % 3].admit(key, t0) for i in range(30)),
                                    return_exceptions=True)
    refused = [o for o in outcomes if o is not None]
    assert len(outcomes) - len(refused) == 5
    assert all(o.status == 429 and o.code == "rate_limit_exceeded" and o.retry_after >= 1 for o in refused)
    # the window rolls: a minute (plus one bucket) later the key has room again
    await gates[0].admit(key, t0 + 67)
    for g in gates:
        await g.ledger.aclose()


async def test_invalid_and_refused_requests_count_against_rpm(tmp_path: Any) -> None:
    keys = KeyStore([ProxyKey("k", hash_key("tok-123456"), rpm=3, models=("fake:small",))])
    router = FakeRouter()
    app = make_app(router, tmp_path / "spend.sqlite", ServerSettings(keys=keys))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        bad = await c.post("/v1/chat/completions", content=b"{not json", headers=auth("tok-123456"))
        forbidden = await c.post("/v1/chat/completions", json={**OK, "model": "fake:large"},
                                 headers=auth("tok-123456"))
        ok = await c.post("/v1/chat/completions", json={**OK, "model": "fake:small"}, headers=auth("tok-123456"))
        over = await c.post("/v1/chat/completions", json={**OK, "model": "fake:small"}, headers=auth("tok-123456"))
        models = await c.get("/v1/models", headers=auth("tok-123456"))
    await app.aclose()
    assert [bad.status_code, forbidden.status_code, ok.status_code] == [400, 403, 200]
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(over.headers["retry-after"]) >= 1
    assert models.status_code == 429  # every request of the key counts, not only chat
    assert len(router.provider.calls) == 1


async def test_25_concurrent_requests_on_a_key_with_room_for_3(tmp_path: Any) -> None:
    # $0.0001 budget, $0.00003 reserved per call: 3 fit. The vendor is slow, so all 25
    # requests are in flight together: the reservations, not the finished calls, decide.
    from providers.fake import FakeProvider, reply

    keys = KeyStore([ProxyKey("k", hash_key("tok-123456"), budget_usd=Decimal("0.0001"))])
    router = FakeRouter(FakeProvider(scripts=[reply("Hello there", per_event_s=0.05)] * 25))
    app = make_app(router, tmp_path / "spend.sqlite", ServerSettings(keys=keys))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=OK, headers=auth("tok-123456"))
                                    for _ in range(25)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200] * 3 + [429] * 22, codes
    assert len(router.provider.calls) == 3
    v = await router.ledger.view(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    b = next(b for b in v.budgets if b.budget_id == "key:k")
    assert b.spent_usd == Decimal("0.00009") and b.reserved_usd == 0
    await app.aclose()


async def test_ledger_down_fail_closed_is_503_before_any_vendor_call(tmp_path: Any) -> None:
    from router.quota.redis_store import RedisStore
    from tests.router.quota.conftest import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5, retry_after_s=7)
    keys = KeyStore([ProxyKey("k", hash_key("tok-123456"), budget_usd=Decimal("1"), rpm=100),
                     ProxyKey("n", hash_key("tok-nolimit"))])
    router = FakeRouter(ledger=Ledger(store))
    app = make_app(router, tmp_path / "spend.sqlite", ServerSettings(keys=keys))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for tok in ("tok-123456", "tok-nolimit"):  # rpm take / the reservation: both refused, never a 500
            for anthropic in (False, True):
                path = "/v1/messages" if anthropic else "/v1/chat/completions"
                body = {**OK, "max_tokens": 10} if anthropic else OK
                r = await c.post(path, json=body, headers=auth(tok))
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) == 7
                err = r.json()["error"]
                assert err["type"] == "overloaded_error" if anthropic else err["code"] == "ledger_unavailable"
    await app.aclose()
    assert router.provider.calls == []
