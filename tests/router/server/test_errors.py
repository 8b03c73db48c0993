"""Bad input -> the right status and an OpenAI/Anthropic-shaped error body."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from providers.fake import FakeProvider, Script
from router.errors import (AuthFailed, BadRequest, ContextTooLong, MalformedResponse, QuotaExhausted, RateLimited,
                           Timeout, Unavailable)
from router.server.errors import ascii_header
from router.server.settings import ServerSettings
from tests.router.server.conftest import KEY_A, keyed_settings, make_app
from tests.router.server.fakes import FakeRouter

OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
CASES = [
    # (name, body bytes, headers, status, code/param check)
    ("malformed json", b'{"model": "auto", "messages": [', {}, 400, "invalid_json"),
    ("not an object", b"[1, 2]", {}, 400, "invalid_type"),
    ("missing model", b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400, "missing_required_parameter"),
    ("model not a string", b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', {}, 400, "invalid_type"),
    ("messages not a list", b'{"model": "auto", "messages": "hi"}', {}, 400, "invalid_type"),
    ("empty messages", b'{"model": "auto", "messages": []}', {}, 400, "empty_array"),
    ("bad role", b'{"model": "auto", "messages": [{"role": "robot", "content": "x"}]}', {}, 400, "invalid_value"),
    ("temperature string", b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     {}, 400, "invalid_type"),
    ("stream not bool", b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": 1}', {}, 400,
     "invalid_type"),
    ("max_tokens bool", b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": true}', {},
     400, "invalid_type"),
    ("unknown model", b'{"model": "nope:none", "messages": [{"role": "user", "content": "x"}]}', {}, 404,
     "model_not_found"),
    ("no route", b'{"model": "nowhere", "messages": [{"role": "user", "content": "x"}]}', {}, 503,
     "no_route_available"),
    ("oversize body", b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}', {}, 413,
     "request_too_large"),
]


@pytest.fixture
async def small_client(frouter: Any, spend_path: Any) -> Any:
    app = make_app(frouter, spend_path, ServerSettings(max_body_bytes=2048))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await app.aclose()


@pytest.mark.parametrize("name,body,headers,status,code", CASES, ids=[c[0] for c in CASES])
async def test_bad_input_table(small_client: Any, name: str, body: bytes, headers: dict, status: int, code: str) -> None:
    r = await small_client.post("/v1/chat/completions", content=body,
                                headers={"content-type": "application/json", **headers})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code and err["message"]
    assert r.headers["x-quotaroute-overhead-ms"]
    # the same on /v1/messages, in Anthropic's shape
    if name in ("malformed json", "unknown model", "oversize body", "no route"):
        r2 = await small_client.post("/v1/messages", content=body.replace(b'"messages"', b'"max_tokens": 5, "messages"'),
                                     headers={"content-type": "application/json"})
        assert r2.status_code == status
        j = r2.json()
        assert j["type"] == "error" and set(j["error"]) == {"type", "message"}


async def test_auth_errors(spend_path: Any, frouter: Any) -> None:
    app = make_app(frouter, spend_path, keyed_settings())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=OK)
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = await c.post("/v1/chat/completions", json=OK, headers={"authorization": "Bearer wrong-key-123"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = await c.post("/v1/messages", json={**OK, "max_tokens": 5}, headers={"x-api-key": "nope-nope-nope"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = await c.get("/v1/quota", headers={"authorization": f"Bearer {KEY_A}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
        r = await c.post("/v1/chat/completions", json={**OK, "model": "fake:large"},
                         headers={"authorization": f"Bearer {KEY_A}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        r = await c.get("/nowhere")
        assert r.status_code == 404
        r = await c.get("/v1/chat/completions")
        assert r.status_code == 405
        m = await c.get("/metrics")
        assert 'quotaroute_requests_total{endpoint="chat",model="-",provider="-",status="401"} 2.0' in m.text
    app.spend.flush()
    import sqlite3

    rows = sqlite3.connect(spend_path).execute("SELECT status FROM spend ORDER BY id").fetchall()
    assert rows == [(403,)]  # the 401s are metrics only; the 403 names a real key
    await app.aclose()


UPSTREAM_KEY = "sk-upstreamSECRET0123456789abcdef"


@pytest.mark.parametrize("exc,status,code", [
    (RateLimited("slow down", retry_after=7), 429, "rate_limit_exceeded"),
    (QuotaExhausted("free tier used up"), 429, "upstream_quota_exhausted"),
    (AuthFailed(f"Incorrect API key provided: {UPSTREAM_KEY}"), 502, "upstream_auth_failed"),
    (BadRequest("bad param"), 400, None),
    (ContextTooLong("too long"), 400, "context_length_exceeded"),
    (Unavailable("overloaded", status=529), 529, None),
    (Timeout("slow"), 504, "upstream_timeout"),
    (MalformedResponse("<html>"), 502, "upstream_malformed_response"),
])
async def test_upstream_errors_mapped(spend_path: Any, exc: Exception, status: int, code: str | None) -> None:
    app = make_app(FakeRouter(FakeProvider(scripts=[Script(error=exc)])), spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for stream in (False, True):
            r = await c.post("/v1/chat/completions", json={**OK, "stream": stream})
            assert r.status_code == status
            assert r.json()["error"]["code"] == code
            assert UPSTREAM_KEY not in r.text and UPSTREAM_KEY not in str(r.headers)
            if status == 429 and code == "rate_limit_exceeded":
                assert r.headers["retry-after"] == "7"
    await app.aclose()


async def test_error_mid_stream_is_an_error_event(spend_path: Any) -> None:
    from router.types import TextDelta

    fake = FakeProvider(scripts=[Script(events=[TextDelta(text="par")], error=Unavailable("connection reset"))])
    app = make_app(FakeRouter(fake), spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json={**OK, "stream": True})
        assert r.status_code == 200
        assert '"content":"par"' in r.text and '"error"' in r.text and "[DONE]" not in r.text
        r = await c.post("/v1/messages", json={**OK, "stream": True, "max_tokens": 5})
        assert "event: error" in r.text and "overloaded_error" in r.text
    await app.aclose()


def test_ascii_header() -> None:
    assert ascii_header("café\r\nx" + "y" * 500, 20) == b"caf???xyyyyyyyyyyyyy"
