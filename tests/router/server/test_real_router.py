"""The proxy over the real `router.sdk.Router` (FakeProviders behind it), and
`quotaroute serve --config` against a local fake OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from providers.fake import FakeProvider, Script, reply
from router.errors import QuotaExhausted
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec
from router.sdk import Router
from router.catalog import Catalog
from tests.support.threaded_upstream import ThreadedUpstream
from tests.router.routing_helpers import card
from tests.router.server.conftest import KEY_A, free_port, keyed_settings, make_app
from tests.router.server.fakes import hang_up_mid_stream, track_stream

ROOT = Path(__file__).resolve().parents[3]
CAT = Catalog([card("pa:small", "1", "2", q=0.7), card("pb:big", "3", "6", q=0.95)])
MSG = [{"role": "user", "content": "hi"}]


def real_router(pa: Any = None, pb: Any = None, budgets: list[Any] | None = None) -> Router:
    provs = {"pa": pa or FakeProvider(name="pa", scripts=[reply("from a", chunks=2)]),
             "pb": pb or FakeProvider(name="pb", scripts=[reply("from b")])}
    return Router(catalog=CAT, providers=provs, ledger=Ledger(MemoryStore(), [], budgets or []), policy="cheapest")


def clients(app: Any) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic, httpx2.AsyncClient]:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return (openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=hc, max_retries=0),
            anthropic.AsyncAnthropic(api_key="x", base_url="http://t", http_client=hc, max_retries=0), hc)


async def test_routes_through_real_router(spend_path: Any) -> None:
    router = real_router()
    app = make_app(router, spend_path)
    o, a, hc = clients(app)
    raw = await o.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.parse().choices[0].message.content == "from a"
    assert raw.headers["x-quotaroute-model"] == "pa:small" and raw.headers["x-quotaroute-provider"] == "pa"
    assert Decimal(raw.headers["x-quotaroute-cost-usd"]) == Decimal("0.00002")  # 10 in * $1/M + 5 out * $2/M
    assert "cheapest" in raw.headers["x-quotaroute-route-reason"] or raw.headers["x-quotaroute-route-reason"] != "-"
    r = await o.chat.completions.create(model="auto:best", messages=MSG)
    assert r.model == "big"  # the vendor's model id (x-quotaroute-model: pb:big)
    chunks = [c async for c in await o.chat.completions.create(model="auto", messages=MSG, stream=True,
                                                               stream_options={"include_usage": True})]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from a"
    assert chunks[-1].usage.total_tokens == 15
    async with a.messages.stream(model="auto", max_tokens=20, messages=MSG) as st:
        assert (await st.get_final_message()).content[0].text == "from a"
    ids = [m.id async for m in o.models.list()]
    assert ids[:4] == ["auto", "auto:cheap", "auto:best", "auto:free"] and "pa:small" in ids
    assert (await hc.get("/v1/quota")).status_code == 200
    with pytest.raises(openai.NotFoundError):
        await o.chat.completions.create(model="nope:zzz", messages=MSG)
    app.spend.flush()
    await app.aclose()
    assert router.executor is not None


async def test_budget_and_no_route_from_the_ledger(spend_path: Any) -> None:
    router = real_router(budgets=[BudgetSpec(id="team-a-cap", scope="key", match="team-a", limit_usd=Decimal("0"))])
    app = make_app(router, spend_path, keyed_settings())
    _, _, hc = clients(app)
    r = await hc.post("/v1/chat/completions", json={"model": "auto", "messages": MSG},
                      headers={"authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 429, r.text  # the engine dropped every candidate for the key's hard budget
    assert r.json()["error"]["code"] == "insufficient_quota"
    await app.aclose()
    dead = FakeProvider(name="pa", scripts=[Script(error=QuotaExhausted("free tier gone", provider="pa"))])
    dead_b = FakeProvider(name="pb", scripts=[Script(error=QuotaExhausted("free tier gone", provider="pb"))])
    app = make_app(real_router(dead, dead_b), spend_path)
    _, _, hc = clients(app)
    r = await hc.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_route_available"
    assert "QuotaExhausted" in r.headers["x-quotaroute-route-reason"]
    await app.aclose()


# ---------------------------------------------------------------- subprocess with a real adapter

UPSTREAM_KEY = "sk-test-upstream-DO-NOT-LEAK-1234567890"
COMPLETION = (b'{"id":"chatcmpl-up1","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
              b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi from upstream"},'
              b'"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}')


class FakeUpstream(ThreadedUpstream):
    """A tiny OpenAI-compatible server on loopback (aiohttp) that records auth headers."""

    def __init__(self) -> None:
        super().__init__()
        self.auth: list[str] = []
        self.stream_ended: list[str] = []  # "complete" or the exception that stopped a slow stream

    def routes(self) -> dict[str, Any]:
        from aiohttp import web

        async def chat(req: Any) -> Any:
            self.auth.append(req.headers.get("authorization", ""))
            body = await req.json()
            if body.get("stream") and body["messages"][0]["content"] == "slow":
                resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await resp.prepare(req)
                try:
                    for _ in range(200):
                        await resp.write(b'data: {"id":"c2","object":"chat.completion.chunk","created":1,"model":'
                                         b'"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"z"},'
                                         b'"finish_reason":null}]}\n\n')
                        await asyncio.sleep(0.02)
                    self.stream_ended.append("complete")
                except BaseException as e:  # the proxy closed the upstream connection
                    self.stream_ended.append(type(e).__name__)
                    raise
                return resp
            if body.get("stream"):
                resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await resp.prepare(req)
                for piece in ("hi ", "from ", "upstream"):
                    await resp.write(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":'
                                     b'"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"' + piece.encode() +
                                     b'"},"finish_reason":null}]}\n\n')
                await resp.write(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
                                 b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,'
                                 b'"completion_tokens":4,"total_tokens":13}}\n\ndata: [DONE]\n\n')
                return resp
            if body["messages"][0]["content"] == "fail":
                return web.json_response({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}",
                                                    "type": "invalid_request_error", "code": "invalid_api_key"}},
                                         status=401)
            return web.Response(body=COMPLETION, content_type="application/json")

        return {"/v1/chat/completions": chat}


def test_serve_with_config_and_real_adapter(tmp_path: Any) -> None:
    with FakeUpstream() as up:
        port = free_port()
        cfg = tmp_path / "quotaroute.yaml"
        cfg.write_text(f"providers:\n  openai:\n    base_url: http://127.0.0.1:{up.port}/v1\n"
                       f"    api_key_env: TEST_UPSTREAM_KEY\nmodels:\n  include: [openai:gpt-4o-mini]\n"
                       f"policy:\n  default: cheapest\nserver:\n  port: {port}\n")
        env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
        p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            from tests.router.server.test_live import _up, _wait

            assert _wait(lambda: _up(url), 60), p.stderr.read1().decode() if p.poll() is not None else "not up"
            o = openai.OpenAI(api_key="x", base_url=url + "/v1", max_retries=0)
            raw = o.chat.completions.with_raw_response.create(model="auto", messages=MSG)
            assert raw.parse().choices[0].message.content == "hi from upstream"
            assert raw.headers["x-quotaroute-model"] == "openai:gpt-4o-mini"
            text = "".join(c.choices[0].delta.content or "" for c in
                           o.chat.completions.create(model="auto", messages=MSG, stream=True) if c.choices)
            assert text == "hi from upstream"
            texts = [raw.http_response.text]
            with pytest.raises(openai.APIStatusError) as ei:
                o.chat.completions.create(model="auto", messages=[{"role": "user", "content": "fail"}])
            assert ei.value.status_code in (502, 503)
            texts.append(ei.value.response.text + str(ei.value.response.headers))
            texts.append(httpx2.get(url + "/metrics").text)
            texts.append(httpx2.get(url + "/v1/spend?by=model").text)
            texts.append(httpx2.get(url + "/v1/quota").text)
            for t in texts:
                assert UPSTREAM_KEY not in t
            assert up.auth and all(a == f"Bearer {UPSTREAM_KEY}" for a in up.auth)  # the key did reach the vendor
        finally:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        assert UPSTREAM_KEY not in (out + err).decode()


def test_disconnect_mid_stream_cancels_real_router_stream(spend_path: Any) -> None:
    import sqlite3

    from tests.router.server.conftest import LiveServer
    from tests.router.server.test_live import _wait

    closed: list[int] = []
    slow = FakeProvider(name="pa", scripts=[reply("y" * 300, chunks=300, per_event_s=0.02)])
    track_stream(slow, closed)
    router = real_router(pa=slow)
    app = make_app(router, spend_path)
    body = b'{"model":"pa:small","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    with LiveServer(app) as srv:
        got = hang_up_mid_stream(srv.port, body, b'"content":"y"', 3)
        assert b"x-quotaroute-cost-usd: " in got  # headers (with the estimate) came before the body
        assert _wait(lambda: bool(closed))
        assert closed[0] < 150  # the upstream generator was closed early
        app.spend.flush()
        assert _wait(lambda: sqlite3.connect(spend_path).execute("SELECT count(*) FROM spend").fetchone()[0] == 1)
        status, cost, out_tokens = sqlite3.connect(spend_path).execute(
            "SELECT status, cost_usd, output_tokens FROM spend").fetchone()
    assert status == 499 and Decimal(cost) > 0 and out_tokens > 0  # billed for what was generated


def test_disconnect_closes_the_upstream_connection(tmp_path: Any) -> None:
    """Client hangs up mid-stream -> the proxy closes its aiohttp connection to the vendor."""
    from router.server.aiohttp_transport import aiohttp_client
    from tests.router.server.conftest import LiveServer
    from tests.router.server.test_live import _wait

    with FakeUpstream() as up:
        cfg = tmp_path / "q.yaml"
        cfg.write_text(f"providers:\n  openai:\n    base_url: http://127.0.0.1:{up.port}/v1\n"
                       f"    api_key_env: TEST_UPSTREAM_KEY\nmodels:\n  include: [openai:gpt-4o-mini]\n")
        os.environ["TEST_UPSTREAM_KEY"] = UPSTREAM_KEY
        try:
            router = Router.from_config(str(cfg), client=aiohttp_client())
        finally:
            del os.environ["TEST_UPSTREAM_KEY"]
        app = make_app(router, tmp_path / "spend.sqlite")
        body = b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"slow"}]}'
        with LiveServer(app) as srv:
            hang_up_mid_stream(srv.port, body, b'"content":"z"', 3)
            assert _wait(lambda: bool(up.stream_ended), 5)
        assert up.stream_ended[0] != "complete"  # stopped well before its 200 chunks
