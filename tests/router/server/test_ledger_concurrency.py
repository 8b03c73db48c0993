"""Concurrent requests through the proxy over the real Router: a key budget, a free pool
and a global budget admit exactly what their reservations allow, with one proxy on a
memory ledger, two on one SQLite file (two workers) and three on one redis-server
(three replicas). Each proxy has its own Router and Ledger, as separate processes would."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from providers.fake import FakeProvider, reply
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.spec import load_quota_config
from router.sdk import Router
from router.server.app import create_app
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings
from router.types import ChatRequest, Message
from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)
from tests.router.routing_helpers import card

TOKEN = "qr-concurrency-key-123456"
CAT = Catalog([card("pa:small", "1", "2")])
N = 30


async def estimate() -> tuple[Decimal, int, int]:
    """(reserved cost per call, input tokens, expected output tokens) the engine plans for one request."""
    from router.quota.memory_store import MemoryStore

    r = Router(catalog=CAT, providers={"pa": FakeProvider(name="pa")}, ledger=Ledger(MemoryStore()), policy="cheapest")
    plan = await r.aexplain(ChatRequest(model="auto", messages=[Message(role="user", content="hi")]))
    await r.aclose()
    f = plan.features
    return plan.steps[0].expected_cost_usd, f.input_tokens, f.expected_output_tokens


def store_factory(kind: str, tmp_path: Any, request: Any) -> tuple[int, Any]:
    """(number of proxies, factory of one store each)."""
    if kind == "memory":
        from router.quota.memory_store import MemoryStore

        return 1, MemoryStore
    if kind == "sqlite":
        from router.quota.sqlite_store import SQLiteStore

        return 2, lambda: SQLiteStore(str(tmp_path / "ledger.sqlite"))
    from router.quota.redis_store import RedisStore

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return 3, lambda: RedisStore(url, prefix=prefix)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
@pytest.mark.parametrize("limit", ["key", "pool", "global"])
async def test_concurrent_requests_never_pass_what_the_reservations_allow(kind: str, limit: str, tmp_path: Any,
                                                                          request: Any) -> None:
    est, t_in, t_out = await estimate()
    # The vendor bills exactly the estimate, so later calls find no more room than earlier ones:
    # what fits does not depend on timing. It answers slowly, so the calls overlap.
    script = reply("answer", input_tokens=t_in, output_tokens=t_out)
    script.latency_s = 0.3
    quotas: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    key_budget = None
    if limit == "key":
        key_budget, fits = est * 3 + est / 2, 3
    elif limit == "pool":
        quotas.append({"id": "pa-daily", "models": ["pa:small"], "on_exhaust": "block",
                       "limits": [{"per": "day", "requests": 10}]})
        fits = 10
    else:
        budgets.append({"id": "all", "scope": "global", "period": "day", "limit_usd": str(est * 8 + est / 2)})
        fits = 8
    pools, buds = load_quota_config({"quotas": quotas, "budgets": budgets}, file="t", include_defaults=False)
    n_proxies, make_store = store_factory(kind, tmp_path, request)
    vendors, apps, clients = [], [], []
    for i in range(n_proxies):
        vendor = FakeProvider(name="pa", scripts=[script])
        router = Router(catalog=CAT, providers={"pa": vendor}, ledger=Ledger(make_store(), pools, buds),
                        policy="cheapest")
        keys = KeyStore([ProxyKey("team", hash_key(TOKEN), budget_usd=key_budget)])
        app = create_app(router, ServerSettings(keys=keys, spend_db=None))
        await app.warm_up()
        vendors.append(vendor)
        apps.append(app)
        clients.append(httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t", timeout=60))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    rs = await asyncio.gather(*(clients[i % n_proxies].post("/v1/chat/completions", json=body,
                                                            headers={"authorization": f"Bearer {TOKEN}"})
                                for i in range(N)))
    codes = [r.status_code for r in rs]
    answered = sum(len(v.calls) for v in vendors)
    assert codes.count(200) == answered == fits, codes
    assert all(c in (200, 429, 503) for c in codes), codes  # refused cleanly, never a 500
    view = await apps[0].router.ledger.view(datetime.now(timezone.utc))
    if limit == "pool":
        assert view.pools["pa-daily"].remaining_requests == 0
    else:
        b = view.budgets[0]
        assert b.spent_usd == est * fits <= b.limit_usd and b.reserved_usd == 0
    for c, app in zip(clients, apps):
        await c.aclose()
        await app.aclose()
        await app.router.ledger.aclose()  # passed in, so not the Router's to close
