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


# ---------------------------------------------------------------- redaction of vendor error bodies, field by field
SHAPELESS = "qrtest-UpstreamSecret-4242"  # a configured key with no known shape (registered by the adapter)
LEAKS = {"code": SHAPELESS, "type": UPSTREAM_KEY, "param": SHAPELESS, "message": f"key {UPSTREAM_KEY} refused",
         "details": {"nested": [SHAPELESS, {"deeper": UPSTREAM_KEY}]}}


def _vendor_error(field: str) -> dict[str, Any]:
    err: dict[str, Any] = {"message": "refused", "type": "invalid_request_error", "param": None, "code": "x"}
    err[field] = LEAKS[field]
    return {"error": err}


def _leaky_app(spend_path: Any, field: str, status: int, mode: str) -> Any:
    import httpx
    import orjson

    from providers.openai import OpenAIProvider
    from providers.retry import NO_RETRY
    from router.catalog import Catalog
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    body = _vendor_error(field)

    def handler(request: httpx.Request) -> httpx.Response:
        if mode == "mid-stream":
            chunk = {"id": "c", "model": "small", "choices": [{"index": 0, "delta": {"content": "par"}}]}
            sse = b"data: " + orjson.dumps(chunk) + b"\n\ndata: " + orjson.dumps(body) + b"\n\n"
            return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream",
                                                             "x-leak": SHAPELESS})
        return httpx.Response(status, json=body, headers={"x-leak": SHAPELESS, "x-request-id": UPSTREAM_KEY})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    prov = OpenAIProvider(name="pa", api_key=SHAPELESS, base_url="http://pa.test/v1", client=client, retry=NO_RETRY)
    router = Router(catalog=Catalog([card("pa:small", "1", "2")]), providers={"pa": prov},
                    ledger=Ledger(MemoryStore(), [], []), policy="cheapest")
    return make_app(router, spend_path)


_MODES = [(m, st) for m in ("whole", "stream") for st in (400, 403, 418, 429, 500)] + [("mid-stream", 200)]


@pytest.mark.parametrize("field", list(LEAKS))
@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("mode,status", _MODES, ids=[f"{m}-{st}" for m, st in _MODES])
async def test_no_upstream_key_in_any_error_field(spend_path: Any, field: str, status: int, endpoint: str,
                                                  mode: str) -> None:
    app = _leaky_app(spend_path, field, status, mode)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(endpoint, json={**OK, "max_tokens": 5, "stream": mode != "whole"})
        text = r.text + str(r.headers)
        assert r.status_code >= 400 or "error" in r.text, r.text
        assert SHAPELESS not in text and UPSTREAM_KEY not in text, text
        assert "sk-" not in text.replace("sk-***", "")
    app.spend.flush()
    import sqlite3

    rows = sqlite3.connect(spend_path).execute("SELECT * FROM spend").fetchall()
    assert rows and SHAPELESS not in str(rows) and UPSTREAM_KEY not in str(rows)
    await app.aclose()


def test_failure_redacts_every_field() -> None:
    from router.server.errors import Failure

    f = Failure(400, f"m {UPSTREAM_KEY}", type=UPSTREAM_KEY, code=UPSTREAM_KEY, param=UPSTREAM_KEY)
    assert UPSTREAM_KEY not in (f.openai_body() + f.anthropic_body()).decode()
    e = BadRequest("x", code=UPSTREAM_KEY, headers={"x-request-id": UPSTREAM_KEY, "authorization": "Bearer x"})
    assert UPSTREAM_KEY not in str(e) and UPSTREAM_KEY not in (e.code or "")
    assert e.headers == {"x-request-id": "***"}  # allow-listed names only, values redacted


async def test_bad_upstream_keys_on_healthz_and_metrics(spend_path: Any) -> None:
    from router.catalog import Catalog
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    k1 = FakeProvider(name="pa", scripts=[Script(error=AuthFailed(f"bad key {UPSTREAM_KEY}", provider="pa",
                                                                  status=401))])
    k2 = FakeProvider(name="pa", scripts=[Script(error=AuthFailed("not this model", provider="pa", status=403))])
    router = Router(catalog=Catalog([card("pa:small", "1", "2")]), providers={"pa": {"OPENAI_KEY_1": k1,
                                                                                     "OPENAI_KEY_2": k2}},
                    ledger=Ledger(MemoryStore(), [], []), policy="cheapest")
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(2):
            r = await c.post("/v1/chat/completions", json=OK)
            assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_auth_failed"
        h = (await c.get("/healthz")).json()
        assert h["status"] == "ok"
        assert sorted(b["id"] for b in h["bad_upstream_keys"]) == ["OPENAI_KEY_1", "pa:small@OPENAI_KEY_2"]
        assert all(b["until"] for b in h["bad_upstream_keys"])
        m = (await c.get("/metrics")).text
        assert 'quotaroute_upstream_key_bad{key="OPENAI_KEY_1"} 1.0' in m
        assert 'quotaroute_upstream_key_bad{key="pa:small@OPENAI_KEY_2"} 1.0' in m
        assert UPSTREAM_KEY not in m and UPSTREAM_KEY not in str(h)
        r = await c.post("/v1/chat/completions", json=OK)  # both cooling off: no route, no call
        assert r.status_code == 503 and len(k1.calls) == 1 and len(k2.calls) == 1
        router.health.clear_bad("OPENAI_KEY_1")
        m = (await c.get("/metrics")).text
        assert 'key_bad{key="OPENAI_KEY_1"}' not in m and 'key_bad{key="pa:small@OPENAI_KEY_2"} 1.0' in m
    await app.aclose()


def test_header_and_reason_memos_keep_no_long_client_strings() -> None:
    from router.server import errors as errs
    from router.server import respond

    n_hdr, n_reason = len(errs._HDR_CACHE), len(respond._REASONS)
    for i in range(100):
        long = f"pinned: region {'x' * (10_000 + i)} not allowed {UPSTREAM_KEY}"
        assert UPSTREAM_KEY.encode() not in errs.cached_header(long, 200)
        assert UPSTREAM_KEY not in (respond.safe_text(long) or "")
    assert len(errs._HDR_CACHE) == n_hdr and len(respond._REASONS) == n_reason
    assert all(len(k[0]) <= 512 for k in errs._HDR_CACHE) and all(len(k) <= 1024 for k in respond._REASONS)


def test_wire_encoders_never_turn_an_error_finish_into_a_clean_stop() -> None:
    import orjson

    from router.server import anthropic_wire as aw
    from router.server import openai_wire as ow
    from router.types import FinishEvent, TextDelta, accumulate

    resp = accumulate([TextDelta(text="cut"), FinishEvent(finish_reason="error")], provider="pa", model="m")
    assert orjson.loads(ow.chat_response(resp, "pa:m"))["choices"][0]["finish_reason"] == "error"
    assert orjson.loads(aw.messages_response(resp, "pa:m"))["stop_reason"] not in ("end_turn", "stop_sequence")


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/messages"])
async def test_a_vendor_truncated_answer_falls_back_or_fails_never_200_complete(spend_path: Any, endpoint: str) -> None:
    import httpx

    from providers.openai import OpenAIProvider
    from providers.retry import NO_RETRY
    from router.catalog import Catalog
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    def handler(request: httpx.Request) -> httpx.Response:
        cut = request.url.host == "pa.test"
        return httpx.Response(200, json={
            "id": "x", "model": "m", "choices": [{"index": 0, "message": {
                "role": "assistant", "content": " ".join(["word"] * (20 if cut else 60))},
                "finish_reason": "insufficient_system_resource" if cut else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20 if cut else 60}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provs = {p: OpenAIProvider(name=p, vendor="deepseek", api_key="sk-test-0123456789", base_url=f"http://{p}.test/v1",
                               client=client, retry=NO_RETRY) for p in ("pa", "pb")}
    router = Router(catalog=Catalog([card("pa:small", "1", "2"), card("pb:big", "3", "6")]), providers=provs,
                    ledger=Ledger(MemoryStore(), [], []), policy="cheapest")
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(endpoint, json={**OK, "max_tokens": 100})
        assert r.status_code == 200 and r.headers["x-quotaroute-model"] == "pb:big"
        assert r.text.count("word") == 60 and ('"stop"' in r.text or "end_turn" in r.text)
        from decimal import Decimal

        # both attempts billed: 10 in + 20 out on pa ($1/$2 per M), 10 in + 60 out on pb ($3/$6 per M)
        assert Decimal(r.headers["x-quotaroute-cost-usd"]) == Decimal("0.00005") + Decimal("0.00039")
        r = await c.post(endpoint, json={**OK, "model": "pa:small", "max_tokens": 100})
        assert r.status_code >= 500 and "word" not in r.text
    await app.aclose()


async def test_error_metadata_names_the_qualified_model_and_excludes_upstream_time(spend_path: Any) -> None:
    import sqlite3

    from router.catalog import Catalog
    from router.errors import ContentFiltered
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    wall = FakeProvider(name="wall", scripts=[Script(error=ContentFiltered("blocked", provider="wall",
                                                                           model="fb-s13-content-filter"),
                                                     latency_s=2.0)])
    router = Router(catalog=Catalog([card("wall:fb-s13-content-filter", "1", "2")]), providers={"wall": wall},
                    ledger=Ledger(MemoryStore(), [], []), policy="cheapest")
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json=OK)
        assert r.status_code == 400 and r.json()["error"]["code"] == "content_filter"
        assert r.headers["x-quotaroute-model"] == "wall:fb-s13-content-filter"
        assert r.headers["x-quotaroute-provider"] == "wall"
        overhead = float(r.headers["x-quotaroute-overhead-ms"])
        assert overhead < 1000  # the 2-s upstream wait is not the proxy's overhead
    app.spend.flush()
    row = sqlite3.connect(spend_path).execute("SELECT model, provider, latency_ms, overhead_ms FROM spend").fetchone()
    assert row[0] == "wall:fb-s13-content-filter" and row[1] == "wall"
    assert row[2] >= 2000 and row[3] is not None and row[3] < 1000
    await app.aclose()


async def test_deeply_nested_requests_are_400_and_open_no_breaker(spend_path: Any) -> None:
    import httpx

    from providers.openai import OpenAIProvider
    from providers.retry import NO_RETRY
    from router.catalog import Catalog
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"id": "x", "model": "m", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provs = {p: OpenAIProvider(name=p, api_key="sk-test-0123456789", base_url=f"http://{p}.test/v1", client=client,
                               retry=NO_RETRY) for p in ("pa", "pb")}
    router = Router(catalog=Catalog([card("pa:small", "1", "2"), card("pb:big", "3", "6")]), providers=provs,
                    ledger=Ledger(MemoryStore(), [], []), policy="cheapest")
    app = make_app(router, spend_path)
    deep: dict[str, Any] = {"type": "object"}
    x = deep
    for _ in range(300):
        x["properties"] = {"a": {"type": "object"}}
        x = x["properties"]["a"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": deep}}]
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        for stream in (False, True, False):
            r = await c.post("/v1/chat/completions", json={**OK, "tools": tools, "stream": stream})
            assert r.status_code == 400, r.text
        assert sent == []  # nothing reached a vendor
        assert "quotaroute_circuit_open{" not in (await c.get("/metrics")).text
        r = await c.post("/v1/chat/completions", json=OK)
        assert r.status_code == 200 and r.headers["x-quotaroute-model"] == "pa:small"
    assert all(h.state(router.clock()) == "closed" and not h.failures for h in router.health.values())
    await app.aclose()
