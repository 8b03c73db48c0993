"""A key that pins `user`/`tags` in the config overrides what its callers send, so
budgets scoped to them cannot be dodged; the tags header is bounded."""

from __future__ import annotations

import pytest

from router.server.auth import ProxyKey
from router.server.errors import Failure
from router.server.keygate import request_scope


def _key(**kw):
    return ProxyKey(id="team-a", hash="sha256$s$" + "0" * 64, **kw)


def test_client_scope_without_pins():
    sc = request_scope(_key(), "bob", "x, y")
    assert sc == {"key": "team-a", "user": "bob", "tags": ["x", "y"]}


def test_pinned_user_and_tags_win_over_the_client():
    sc = request_scope(_key(user="alice", tags=("team-a",)), "someone-else", "free-tier")
    assert sc == {"key": "team-a", "user": "alice", "tags": ["team-a"]}


def test_open_access_scope():
    assert request_scope(None, None, None) == {"key": None, "user": None, "tags": []}


@pytest.mark.parametrize("raw", [",".join(["t"] * 17), "a" * 65])
def test_tags_header_is_bounded(raw):
    with pytest.raises(Failure) as ei:
        request_scope(None, None, raw)
    assert ei.value.status == 400 and ei.value.param == "x-quotaroute-tags"


async def test_pinned_scope_reaches_the_router_through_the_proxy(tmp_path):
    import httpx2

    from router.server.auth import KeyStore, hash_key
    from router.server.settings import ServerSettings
    from tests.router.server.conftest import make_app
    from tests.router.server.fakes import FakeRouter

    frouter = FakeRouter()
    keys = KeyStore([ProxyKey("team-a", hash_key("qr-pinned-key-123456"), user="alice", tags=("team-a",)),
                     ProxyKey("team-b", hash_key("qr-open-key-1234567"))])
    app = make_app(frouter, tmp_path / "spend.sqlite", ServerSettings(keys=keys))
    body = {"model": "auto", "user": "mallory", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for key in ("qr-pinned-key-123456", "qr-open-key-1234567"):
            r = await c.post("/v1/chat/completions", json=body,
                             headers={"authorization": f"Bearer {key}", "x-quotaroute-tags": "cheap"})
            assert r.status_code == 200, r.text
        r = await c.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer qr-open-key-1234567",
                                                                      "x-quotaroute-tags": "x" * 65})
        assert r.status_code == 400 and r.json()["error"]["param"] == "x-quotaroute-tags"
    await app.aclose()
    pinned, free = frouter.scopes[:2]
    assert pinned == {"key": "team-a", "user": "alice", "tags": ["team-a"]}
    assert free == {"key": "team-b", "user": "mallory", "tags": ["cheap"]}
