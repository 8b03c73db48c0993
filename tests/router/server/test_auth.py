"""Proxy keys: hashing, isolation between keys, budgets, allowed models, rate limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import pytest

from router.errors import ConfigError
from router.server.auth import KeyStore, ProxyKey, hash_key, verify_hash
from tests.router.server.conftest import ADMIN, KEY_A, KEY_B, keyed_settings, make_app

OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def test_hashes_verify_and_never_hold_the_key() -> None:
    for scheme in ("sha256", "scrypt"):
        h = hash_key("secret-key-1", scheme=scheme)
        assert "secret-key-1" not in h and h.startswith(scheme + "$")
        assert verify_hash("secret-key-1", h) and not verify_hash("secret-key-2", h)
    assert not verify_hash("x", "md5$abc") and not verify_hash("x", "scrypt$a$b$c$d$e")
    store = KeyStore([ProxyKey("a", hash_key("k1")), ProxyKey("b", hash_key("k2"))])
    assert store.lookup("k2").id == "b" and store.lookup("k3") is None and store.lookup("") is None
    assert "k1" not in repr(store.keys) and all(len(d) == 32 for d in store._cache)  # digests, not keys


def test_loopback_detection() -> None:
    from router.server.settings import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.com", ""))


def _settings(server: dict[str, Any]) -> Any:
    from router.config import build_server_settings, parse_config

    return build_server_settings(parse_config({"server": server}, file="cfg.yaml"))


def test_settings_from_config_mapping() -> None:
    h = hash_key("abc")
    s = _settings({"port": 4100, "admin_key": h, "keys": [
        {"id": "x", "hash": h, "budget_usd": "2.50", "models": ["auto*"], "rpm": 10, "budget_period": "day"}]})
    k = s.keys.keys[0]
    assert (s.port, k.budget_usd, k.models, k.rpm, k.budget_period) == (4100, Decimal("2.50"), ("auto*",), 10, "day")
    assert k.allows_model("auto:cheap") and not k.allows_model("openai:gpt-4o")
    with pytest.raises(ConfigError) as ei:
        _settings({"keys": [{"id": "x", "hash": "plaintext-key"}]})
    assert "cfg.yaml" in str(ei.value) and "server.keys[0].hash" in str(ei.value)
    assert "plaintext-key" not in str(ei.value)
    with pytest.raises(ConfigError, match="server.port"):
        _settings({"port": "eighty"})
    with pytest.raises(ConfigError, match="duplicate"):
        _settings({"keys": [{"id": "x", "hash": h}, {"id": "x", "hash": h}]})


@pytest.fixture
async def kclient(frouter: Any, spend_path: Any) -> Any:
    app = make_app(frouter, spend_path, keyed_settings())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        c.app = app
        yield c
    await app.aclose()


def auth(k: str) -> dict[str, str]:
    return {"authorization": f"Bearer {k}"}


async def test_key_scope_and_budget(kclient: Any, frouter: Any) -> None:
    # team-a: budget $0.0001; each call reserves and costs 15 tokens * $0.000002 = $0.00003.
    # The budget is a hard ledger budget: a 4th call would pass it, so it is refused before the call.
    for _ in range(3):
        r = await kclient.post("/v1/chat/completions", json=OK, headers={**auth(KEY_A), "x-quotaroute-tags": "ci, web"})
        assert r.status_code == 200
    assert frouter.scopes[-1] == {"key": "team-a", "user": None, "tags": ["ci", "web"]}
    calls = len(frouter.provider.calls)
    r = await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_A))
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    assert len(frouter.provider.calls) == calls  # refused before any vendor call
    # key B is not affected by A's budget
    r = await kclient.post("/v1/chat/completions", json={**OK, "model": "fake:large"}, headers=auth(KEY_B))
    assert r.status_code == 200


async def test_budget_survives_restart(spend_path: Any) -> None:
    # A fresh in-memory ledger each time: the key's spend is seeded from the spend log at start-up.
    from tests.router.server.fakes import FakeRouter

    codes = []
    for _ in range(2):
        app = make_app(FakeRouter(), spend_path, keyed_settings())
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
            codes.append([(await c.post("/v1/chat/completions", json=OK, headers=auth(KEY_A))).status_code
                          for _ in range(2)])
        await app.aclose()
    assert codes == [[200, 200], [200, 429]]  # 3 paid calls ($0.00009) in all, as without the restart


async def test_rate_limit_per_key(kclient: Any) -> None:
    codes = [(await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_B))).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_B))
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
    assert (await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_A))).status_code == 200


async def test_spend_visibility(kclient: Any) -> None:
    await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_A))
    await kclient.post("/v1/chat/completions", json=OK, headers=auth(KEY_B))
    r = await kclient.get("/v1/spend?by=key&key=team-a", headers=auth(KEY_B))  # B asks for A's spend
    assert r.status_code == 200
    assert [row["key"] for row in r.json()["data"]] == ["team-b"]
    r = await kclient.get("/v1/spend?by=key", headers=auth(ADMIN))
    assert {row["key"] for row in r.json()["data"]} == {"team-a", "team-b"}
    assert r.json()["data"][0]["cost_usd"] == "0.000030"
    r = await kclient.get("/v1/quota", headers=auth(ADMIN))
    assert r.status_code == 200 and r.json()["pools"]["fake:free-daily"]["remaining_requests"] == 99
    assert r.json()["budgets"][0]["limit_usd"] == "10"
    r = await kclient.get("/v1/spend?since=yesterday-ish", headers=auth(ADMIN))
    assert r.status_code == 400


async def test_models_need_a_key(kclient: Any) -> None:
    assert (await kclient.get("/v1/models")).status_code == 401
    assert (await kclient.get("/v1/models", headers=auth(KEY_B))).status_code == 200
    assert (await kclient.get("/healthz")).status_code == 200
