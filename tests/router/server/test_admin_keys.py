"""The admin API for keys at run time, in process, on SQLite (the spend log's file) and
on a real PostgreSQL server: create (secret shown once, stored hashed), list, patch,
rotate, revoke; every field validated with its path; pinned user/tags; rpm, tpm,
budget and expiry enforced; changes seen by a second app on the same store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings
from tests.router.server.conftest import make_app
from tests.router.server.fakes import FakeRouter
from tests.router.server.pgserver import pg_dsn, pg_server  # noqa: F401 - fixtures (a real PostgreSQL)

ADMIN, CONFIG_KEY = "qr-admin-key-00000000000", "qr-config-key-1111111111"
AH = {"authorization": f"Bearer {ADMIN}"}
CHAT = {"model": "auto", "user": "mallory", "messages": [{"role": "user", "content": "hi"}]}


def settings(store: str, dsn: str | None, monkeypatch: Any) -> ServerSettings:
    keys = KeyStore([ProxyKey("team-a", hash_key(CONFIG_KEY))], ProxyKey("admin", hash_key(ADMIN), admin=True))
    s = ServerSettings(keys=keys, key_poll_s=0.1)
    if store == "postgres":
        monkeypatch.setenv("QR_TEST_PG_DSN", dsn)
        s.store, s.dsn_env = "postgres", "QR_TEST_PG_DSN"
    return s


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: Any, monkeypatch: Any) -> tuple[str, str | None]:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    return request.param, dsn


async def _client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")


async def test_create_use_patch_rotate_revoke(store: Any, tmp_path: Any, monkeypatch: Any) -> None:
    frouter = FakeRouter()
    app = make_app(frouter, tmp_path / "spend.sqlite", settings(*store, monkeypatch))
    async with await _client(app) as c:
        r = await c.post("/admin/keys", headers=AH, json={"id": "ci-bot", "budget_usd": 5, "models": ["auto"],
                                                          "rpm": 60, "user": "ci", "tags": ["ci"]})
        assert r.status_code == 201, r.text
        made = r.json()
        secret = made["key"]
        assert secret.startswith("qr-") and made["budget_usd"] == "5" and made["models"] == ["auto"]
        assert "hash" not in made and "hint" not in made
        bot = {"authorization": f"Bearer {secret}"}
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=bot)).status_code == 200
        assert frouter.scopes[-1]["user"] == "ci" and frouter.scopes[-1]["tags"] == ["ci"]  # pinned, not mallory
        r = await c.post("/v1/chat/completions", json={**CHAT, "model": "fake:large"}, headers=bot)
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"

        listed = (await c.get("/admin/keys", headers=AH)).json()["data"]
        assert [(k["id"], k["source"]) for k in listed] == [("ci-bot", "runtime"), ("team-a", "config")]
        assert all("key" not in k and "hash" not in k for k in listed)  # the secret is shown once only
        # the stored form is a scrypt hash, never the secret
        rows = await asyncio.to_thread(app.gate.runtime.table.rows)
        assert rows[0]["hash"].startswith("scrypt$") and secret not in repr(rows)

        r = await c.patch("/admin/keys/ci-bot", headers=AH, json={"models": ["auto", "fake:*"], "rpm": None})
        assert r.status_code == 200 and r.json()["models"] == ["auto", "fake:*"] and r.json()["rpm"] is None
        assert (await c.post("/v1/chat/completions", json={**CHAT, "model": "fake:large"}, headers=bot)).status_code == 200

        r = await c.post("/admin/keys/ci-bot/rotate", headers=AH)
        new = r.json()["key"]
        assert r.status_code == 200 and new != secret
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=bot)).status_code == 401
        nbot = {"authorization": f"Bearer {new}"}
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=nbot)).status_code == 200

        assert (await c.delete("/admin/keys/ci-bot", headers=AH)).status_code == 200
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=nbot)).status_code == 401
        assert (await c.delete("/admin/keys/ci-bot", headers=AH)).status_code == 404
        # the config key keeps working and cannot be changed here
        ck = {"authorization": f"Bearer {CONFIG_KEY}"}
        assert (await c.post("/v1/chat/completions", json=CHAT, headers=ck)).status_code == 200
        assert (await c.patch("/admin/keys/team-a", headers=AH, json={"rpm": 1})).status_code == 409
        assert (await c.post("/admin/keys", headers=AH, json={"id": "team-a"})).status_code == 409
    await app.aclose()


async def test_only_the_admin_key(tmp_path: Any, monkeypatch: Any) -> None:
    app = make_app(FakeRouter(), tmp_path / "spend.sqlite", settings("sqlite", None, monkeypatch))
    async with await _client(app) as c:
        assert (await c.get("/admin/keys")).status_code == 401
        r = await c.post("/admin/keys", headers={"authorization": f"Bearer {CONFIG_KEY}"}, json={"id": "x"})
        assert r.status_code == 403
        r = await c.post("/admin/keys", headers=AH, json={"id": "dup"})
        assert r.status_code == 201
        assert (await c.post("/admin/keys", headers=AH, json={"id": "dup"})).status_code == 409
    await app.aclose()


@pytest.mark.parametrize("body, param", [
    ({}, "id"),
    ({"id": "bad id"}, "id"),
    ({"id": "admin"}, "id"),
    ({"id": "k", "budget_usd": -1}, "budget_usd"),
    ({"id": "k", "budget_usd": "1e999"}, "budget_usd"),
    ({"id": "k", "budget_usd": "0.0000000001"}, "budget_usd"),
    ({"id": "k", "budget_usd": True}, "budget_usd"),
    ({"id": "k", "budget_period": "week"}, "budget_period"),
    ({"id": "k", "models": "auto"}, "models"),
    ({"id": "k", "models": ["auto", 3]}, "models[1]"),
    ({"id": "k", "models": [""]}, "models[0]"),
    ({"id": "k", "rpm": 0}, "rpm"),
    ({"id": "k", "tpm": 1.5}, "tpm"),
    ({"id": "k", "user": "u" * 257}, "user"),
    ({"id": "k", "tags": ["t"] * 17}, "tags"),
    ({"id": "k", "tags": ["x" * 65]}, "tags[0]"),
    ({"id": "k", "expires_at": "soon"}, "expires_at"),
    ({"id": "k", "hash": "sha256$a$b"}, "hash"),
    ({"id": "k", "admin": True}, "admin"),
])
async def test_every_field_is_validated(body: dict[str, Any], param: str, tmp_path: Any, monkeypatch: Any) -> None:
    app = make_app(FakeRouter(), tmp_path / "spend.sqlite", settings("sqlite", None, monkeypatch))
    async with await _client(app) as c:
        r = await c.post("/admin/keys", headers=AH, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        assert (await c.post("/admin/keys", headers=AH, content=b"{nope")).status_code == 400
        assert (await c.post("/admin/keys", headers=AH, json=[1])).status_code == 400
        r = await c.post("/admin/keys", headers=AH, json={"id": "k"})
        r = await c.patch("/admin/keys/k", headers=AH, json={"id": "other"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "id"
        assert (await c.get("/admin/keys", headers=AH)).json()["data"][0]["id"] == "k"
    await app.aclose()


async def test_limits_of_a_runtime_key(tmp_path: Any, monkeypatch: Any) -> None:
    frouter = FakeRouter()
    app = make_app(frouter, tmp_path / "spend.sqlite", settings("sqlite", None, monkeypatch))
    async with await _client(app) as c:
        made = (await c.post("/admin/keys", headers=AH, json={"id": "rpm2", "rpm": 2})).json()
        h = {"authorization": f"Bearer {made['key']}"}
        codes = [(await c.post("/v1/chat/completions", json=CHAT, headers=h)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        made = (await c.post("/admin/keys", headers=AH, json={"id": "old", "expires_at": "2020-01-01T00:00:00Z"})).json()
        r = await c.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {made['key']}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"
        made = (await c.post("/admin/keys", headers=AH, json={"id": "poor", "budget_usd": "0.0000001"})).json()
        r = await c.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {made['key']}"})
        assert r.status_code == 429 and "budget" in r.text.lower()
        assert any(b.spec.id == "key:poor" and b.spec.limit_usd == Decimal("0.0000001")
                   for b in frouter.ledger.budgets)
    await app.aclose()


async def test_a_change_reaches_another_app_on_the_same_store(store: Any, tmp_path: Any, monkeypatch: Any) -> None:
    a = make_app(FakeRouter(), tmp_path / "spend.sqlite", settings(*store, monkeypatch))
    b = make_app(FakeRouter(), tmp_path / "spend.sqlite", settings(*store, monkeypatch))
    async with await _client(a) as ca, await _client(b) as cb:
        await cb.get("/admin/keys", headers=AH)  # b is started (polling)
        made = (await ca.post("/admin/keys", headers=AH, json={"id": "shared"})).json()
        h = {"authorization": f"Bearer {made['key']}"}
        assert (await cb.post("/v1/chat/completions", json=CHAT, headers=h)).status_code in (200, 401)
        for _ in range(50):  # polled every 0.1 s here (0.5 s by default)
            if (await cb.post("/v1/chat/completions", json=CHAT, headers=h)).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the key never reached the second app")
        await ca.delete("/admin/keys/shared", headers=AH)
        for _ in range(50):
            if (await cb.post("/v1/chat/completions", json=CHAT, headers=h)).status_code == 401:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the revocation never reached the second app")
    await a.aclose()
    await b.aclose()


async def test_concurrent_first_uses_of_a_new_key_share_one_auth_attempt(tmp_path: Any, monkeypatch: Any) -> None:
    """A runtime key is scrypt-hashed: 30 requests racing on its first use wait for one
    check instead of each counting as an unknown-key attempt (20 a minute per address)."""
    app = make_app(FakeRouter(), tmp_path / "spend.sqlite", settings("sqlite", None, monkeypatch))
    async with await _client(app) as c:
        made = (await c.post("/admin/keys", headers=AH, json={"id": "burst"})).json()
        h = {"authorization": f"Bearer {made['key']}"}
        rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=CHAT, headers=h) for _ in range(30)))
        assert [r.status_code for r in rs] == [200] * 30
    await app.aclose()
