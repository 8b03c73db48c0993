"""The response cache through the proxy: the openai SDK in-process, stream replay,
opt-out, key scoping, TTL, the SQLite and Redis stores, spend rows and $0 cost."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import httpx2
import openai
import orjson
import pytest

from providers.fake import FakeProvider, Script, reply
from router.cache import MemoryCache, RedisCache, SqliteCache
from router.config import build_server_settings, parse_config
from router.errors import ConfigError
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.cache import ProxyCache
from router.server.settings import ServerSettings
from router.types import FinishEvent, ToolCallDelta, Usage, UsageEvent
from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)
from tests.router.server.conftest import KEY_A, KEY_B, make_app
from tests.router.server.fakes import FakeRouter

MSG = [{"role": "user", "content": "hi"}]
OK = {"model": "auto", "messages": MSG}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def app_with(tmp_path: Any, store: Any = None, *, settings: ServerSettings | None = None, router: Any = None,
             **kw: Any) -> tuple[Any, FakeRouter]:
    fr = router or FakeRouter(FakeProvider(scripts=[reply("Hello there", chunks=3)]))
    pc = ProxyCache(store if store is not None else MemoryCache(), **kw)
    app = make_app(fr, tmp_path / "spend.sqlite", settings)
    app.cache = app.handed.cache = pc
    return app, fr


def sdk(app: Any, key: str = "unused") -> openai.AsyncOpenAI:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver")
    return openai.AsyncOpenAI(api_key=key, base_url="http://testserver/v1", http_client=hc, max_retries=0)


def http(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver")


def spend_rows(app: Any) -> list[tuple[Any, ...]]:
    app.spend.flush()
    con = sqlite3.connect(app.spend.path)
    try:
        return con.execute("SELECT endpoint, key_id, model, provider, input_tokens, output_tokens, cost_usd, status, "
                           "stream, route_reason FROM spend ORDER BY id").fetchall()
    finally:
        con.close()


async def test_sdk_miss_then_hit_costs_nothing(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path)
    c = sdk(app)
    first = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    second = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    a, b = first.parse(), second.parse()
    assert first.headers["x-quotaroute-cache"] == "miss" and second.headers["x-quotaroute-cache"] == "hit"
    assert b.choices[0].message.content == a.choices[0].message.content == "Hello there"
    assert b.choices[0].finish_reason == "stop" and b.model == "small" and b.id != a.id
    assert (b.usage.prompt_tokens, b.usage.completion_tokens) == (10, 5)  # the answer's own usage
    assert second.headers["x-quotaroute-cost-usd"] == "0" or Decimal(second.headers["x-quotaroute-cost-usd"]) == 0
    assert second.headers["x-quotaroute-model"] == "fake:small" and second.headers["x-quotaroute-route-reason"] \
        == "cache hit"
    assert len(fr.provider.calls) == 1 and len(fr.scopes) == 1  # no vendor call, no ledger reserve on a hit
    rows = spend_rows(app)
    assert rows[0][0] == "chat" and rows[0][6] == "0.000030"
    assert rows[1] == ("cache:chat", None, "fake:small", "fake", 0, 0, "0", 200, 0, "cache hit")
    await app.aclose()


async def test_stream_and_non_stream_replay_each_other(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path)
    c = sdk(app)
    await c.chat.completions.create(model="auto", messages=MSG)  # miss, non-stream
    raw = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG, stream=True,
                                                            stream_options={"include_usage": True})
    assert raw.headers["x-quotaroute-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = [ch async for ch in raw.parse()]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Hello there"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    # a streamed miss is cached too, and replays as one JSON answer
    stream = await c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "again"}],
                                             stream=True)
    assert "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices]) == "Hello there"
    raw2 = await c.chat.completions.with_raw_response.create(model="auto",
                                                             messages=[{"role": "user", "content": "again"}])
    assert raw2.headers["x-quotaroute-cache"] == "hit" and raw2.parse().choices[0].message.content == "Hello there"
    assert len(fr.provider.calls) == 2
    rows = spend_rows(app)
    assert [(r[0], r[8]) for r in rows] == [("chat", 0), ("cache:chat", 1), ("chat", 1), ("cache:chat", 0)]
    assert rows[1][6] == "0" and rows[3][6] == "0"
    await app.aclose()


async def test_messages_and_responses_hit(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path)
    async with http(app) as h:
        body = {**OK, "max_tokens": 50}
        r1 = await h.post("/v1/messages", json=body)
        r2 = await h.post("/v1/messages", json=body)
        assert (r1.headers["x-quotaroute-cache"], r2.headers["x-quotaroute-cache"]) == ("miss", "hit")
        assert r2.json()["content"][0]["text"] == "Hello there" and r2.json()["type"] == "message"
        s = await h.post("/v1/messages", json={**body, "stream": True})
        assert s.headers["x-quotaroute-cache"] == "hit"
        assert b"event: message_start" in s.content and b"Hello there" in s.content \
            and b"event: message_stop" in s.content
        rq = {"model": "auto", "input": "tell me", "store": False}
        p1 = await h.post("/v1/responses", json=rq)
        p2 = await h.post("/v1/responses", json=rq)
        assert (p1.headers["x-quotaroute-cache"], p2.headers["x-quotaroute-cache"]) == ("miss", "hit")
        assert p2.json()["output"][0]["content"][0]["text"] == "Hello there" and p2.json()["id"] != p1.json()["id"]
    assert len(fr.provider.calls) == 2
    assert [r[0] for r in spend_rows(app)] == ["messages", "cache:messages", "cache:messages", "responses",
                                               "cache:responses"]
    await app.aclose()


async def test_opt_out_by_header_and_body(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path)
    c = sdk(app)
    await c.chat.completions.create(model="auto", messages=MSG)
    r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG,
                                                          extra_headers={"Cache-Control": "no-store"})
    assert r.headers["x-quotaroute-cache"] == "bypass"
    r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG, extra_body={"cache": False})
    assert r.headers["x-quotaroute-cache"] == "bypass"
    assert "cache" not in fr.provider.calls[-1].extra_body  # the flag never reaches a vendor
    assert len(fr.provider.calls) == 3
    r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG,
                                                          extra_headers={"Cache-Control": "no-cache"})
    assert r.headers["x-quotaroute-cache"] == "miss" and len(fr.provider.calls) == 4  # re-asked, then stored
    r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG, extra_body={"cache": True})
    assert r.headers["x-quotaroute-cache"] == "hit"
    with pytest.raises(openai.BadRequestError) as e:
        await c.chat.completions.create(model="auto", messages=MSG, extra_body={"cache": "yes"})
    assert e.value.body["param"] == "cache"
    await app.aclose()


async def test_body_flag_accepted_without_a_cache(tmp_path: Any) -> None:
    app = make_app(FakeRouter(FakeProvider(scripts=[reply("Hi")])), tmp_path / "spend.sqlite")
    r = await sdk(app).chat.completions.with_raw_response.create(model="auto", messages=MSG,
                                                                 extra_body={"cache": False})
    assert r.parse().choices[0].message.content == "Hi" and "x-quotaroute-cache" not in r.headers
    await app.aclose()


def two_keys(rpm: int | None = None) -> ServerSettings:
    return ServerSettings(keys=KeyStore([ProxyKey("team-a", hash_key(KEY_A), rpm=rpm), ProxyKey("team-b",
                                                                                             hash_key(KEY_B))]))


async def test_answers_never_cross_keys_unless_shared(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path, settings=two_keys())
    a, b = sdk(app, KEY_A), sdk(app, KEY_B)
    await a.chat.completions.create(model="auto", messages=MSG)
    rb = await b.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    ra = await a.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert (rb.headers["x-quotaroute-cache"], ra.headers["x-quotaroute-cache"]) == ("miss", "hit")
    assert len(fr.provider.calls) == 2
    assert [(r[0], r[1]) for r in spend_rows(app)] == [("chat", "team-a"), ("chat", "team-b"), ("cache:chat", "team-a")]
    await app.aclose()
    shared, fr2 = app_with(tmp_path / "s", settings=two_keys(), scope="shared")
    await sdk(shared, KEY_A).chat.completions.create(model="auto", messages=MSG)
    rb = await sdk(shared, KEY_B).chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert rb.headers["x-quotaroute-cache"] == "hit" and len(fr2.provider.calls) == 1
    await shared.aclose()


async def test_hits_count_against_rpm(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path, settings=two_keys(rpm=3))
    a = sdk(app, KEY_A)
    for _ in range(3):
        await a.chat.completions.create(model="auto", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        await a.chat.completions.create(model="auto", messages=MSG)
    assert len(fr.provider.calls) == 1
    await app.aclose()


async def test_ttl_expiry_with_an_injected_clock(tmp_path: Any) -> None:
    clock = Clock()
    app, fr = app_with(tmp_path, MemoryCache(ttl_s=60, clock=clock), clock=clock)
    c = sdk(app)
    await c.chat.completions.create(model="auto", messages=MSG)
    clock.t += 59
    assert (await c.chat.completions.with_raw_response.create(model="auto", messages=MSG)).headers[
        "x-quotaroute-cache"] == "hit"
    clock.t += 2
    assert (await c.chat.completions.with_raw_response.create(model="auto", messages=MSG)).headers[
        "x-quotaroute-cache"] == "miss"
    assert len(fr.provider.calls) == 2
    await app.aclose()


def _tool_script() -> Script:
    return Script(events=[ToolCallDelta(index=0, id="call_1", name="f", arguments='{"a": 1}'),
                          UsageEvent(usage=Usage(input_tokens=10, output_tokens=5)),
                          FinishEvent(finish_reason="tool_calls")])


@pytest.mark.parametrize("script,tool_calls,cached", [
    (reply("cut", finish="length"), False, False),
    (reply("filtered", finish="content_filter"), False, False),
    (_tool_script(), False, False),
    (_tool_script(), True, True),
])
async def test_what_is_cached(tmp_path: Any, script: Script, tool_calls: bool, cached: bool) -> None:
    fr = FakeRouter(FakeProvider(scripts=[script]))
    app, _ = app_with(tmp_path, router=fr, tool_calls=tool_calls)
    c = sdk(app)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await c.chat.completions.create(model="auto", messages=MSG, tools=tools)
    r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG, tools=tools, stream=True)
    assert r.headers["x-quotaroute-cache"] == ("hit" if cached else "miss")
    chunks = [ch async for ch in r.parse()]
    if cached:  # a cached tool call replays as a stream of tool-call deltas
        calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
        assert calls[0].id == "call_1" and calls[0].function.arguments == '{"a": 1}'
    assert len(fr.provider.calls) == (1 if cached else 2)
    await app.aclose()


async def test_errors_and_logprobs_are_not_cached(tmp_path: Any) -> None:
    app, fr = app_with(tmp_path)
    async with http(app) as h:
        for _ in range(2):
            r = await h.post("/v1/chat/completions", json={**OK, "model": "nope:x"})
            assert r.status_code == 404 and r.headers.get("x-quotaroute-cache") != "hit"
        for _ in range(2):
            r = await h.post("/v1/chat/completions", json={**OK, "logprobs": True})
            assert r.headers["x-quotaroute-cache"] == "miss"
    assert len(fr.provider.calls) == 2
    await app.aclose()


async def test_a_failing_store_is_a_miss(tmp_path: Any) -> None:
    from tests.router.server.conftest import free_port

    app, fr = app_with(tmp_path, RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5))
    c = sdk(app)
    for _ in range(2):
        r = await c.chat.completions.with_raw_response.create(model="auto", messages=MSG)
        assert r.parse().choices[0].message.content == "Hello there" and r.headers["x-quotaroute-cache"] == "miss"
    assert app.cache.errors >= 2 and len(fr.provider.calls) == 2
    await app.aclose()


async def test_sqlite_store_through_the_proxy(tmp_path: Any) -> None:
    clock = Clock()
    store = SqliteCache(tmp_path / "cache.sqlite", ttl_s=60, clock=clock)
    app, fr = app_with(tmp_path, store, clock=clock)
    c = sdk(app)
    await c.chat.completions.create(model="auto", messages=MSG)
    app2, fr2 = app_with(tmp_path / "w2", SqliteCache(tmp_path / "cache.sqlite", ttl_s=60, clock=clock), clock=clock)
    r = await sdk(app2).chat.completions.with_raw_response.create(model="auto", messages=MSG)  # another worker
    assert r.headers["x-quotaroute-cache"] == "hit" and not fr2.provider.calls
    clock.t += 61
    r = await sdk(app2).chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert r.headers["x-quotaroute-cache"] == "miss" and len(fr2.provider.calls) == 1
    await app.aclose()
    await app2.aclose()


async def test_redis_store_through_the_proxy(tmp_path: Any, redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    app, fr = app_with(tmp_path, RedisCache(redis_url, ttl_s=30, prefix=redis_prefix))
    app2, fr2 = app_with(tmp_path / "r2", RedisCache(redis_url, ttl_s=30, prefix=redis_prefix))
    await sdk(app).chat.completions.create(model="auto", messages=MSG)
    raw = await sdk(app2).chat.completions.with_raw_response.create(model="auto", messages=MSG, stream=True)
    assert raw.headers["x-quotaroute-cache"] == "hit" and not fr2.provider.calls  # another replica
    assert "".join([ch.choices[0].delta.content or "" async for ch in raw.parse() if ch.choices]) == "Hello there"
    await app.aclose()
    await app2.aclose()


def test_config_section(tmp_path: Any) -> None:
    cfg = parse_config({"cache": {"enabled": True, "store": "sqlite", "ttl_s": 120, "path": str(tmp_path / "c.db"),
                                  "scope": "shared", "max_entries": 5}})
    s = build_server_settings(cfg)
    pc = ProxyCache.from_config(s.cache)
    assert isinstance(pc.store, SqliteCache) and pc.store.ttl_s == 120 and pc.scope == "shared" \
        and pc.store.max_entries == 5
    assert build_server_settings(parse_config({})).cache.enabled is False
    led = {"store": "redis", "url": "redis://127.0.0.1:7/1"}
    s = build_server_settings(parse_config({"ledger": led, "cache": {"enabled": True, "store": "redis"}}))
    assert s.cache_redis_url == "redis://127.0.0.1:7/1"  # the ledger's Redis
    assert isinstance(ProxyCache.from_config(s.cache, redis_url=s.cache_redis_url).store, RedisCache)
    with pytest.raises(ConfigError, match="cache.url|url"):
        build_server_settings(parse_config({"cache": {"enabled": True, "store": "redis"}}))
    with pytest.raises(ConfigError):
        parse_config({"cache": {"enabled": True, "store": "disk"}})
    with pytest.raises(ConfigError):
        parse_config({"cache": {"ttl_s": 0}})


async def test_app_builds_its_cache_from_settings(tmp_path: Any) -> None:
    s = build_server_settings(parse_config({"cache": {"enabled": True}}))
    app = make_app(FakeRouter(FakeProvider(scripts=[reply("Hi")])), tmp_path / "spend.sqlite", s)
    assert isinstance(app.cache, ProxyCache) and app.handed.cache is app.cache
    async with http(app) as h:
        await h.post("/v1/chat/completions", json=OK)
        r = await h.post("/v1/chat/completions", json=OK)
        assert r.headers["x-quotaroute-cache"] == "hit" and orjson.loads(r.content)["choices"][0]["message"][
            "content"] == "Hi"
    await app.aclose()


async def test_real_router_with_the_anthropic_sdk(tmp_path: Any) -> None:
    import anthropic

    from tests.router.server.test_real_router import real_router

    pa = FakeProvider(name="pa", scripts=[reply("from a", chunks=2)])
    router = real_router(pa=pa)
    app, _ = app_with(tmp_path, router=router)
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    a = anthropic.AsyncAnthropic(api_key="x", base_url="http://t", http_client=hc, max_retries=0)
    m = await a.messages.create(model="auto", max_tokens=20, messages=MSG)
    assert m.content[0].text == "from a"
    async with a.messages.stream(model="auto", max_tokens=20, messages=MSG) as s:  # a hit, replayed as a stream
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "from a" and final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    assert len(pa.calls) == 1
    rows = spend_rows(app)
    assert [(r[0], r[2], r[6]) for r in rows] == [("messages", "pa:small", "0.00002"), ("cache:messages", "pa:small",
                                                                                       "0")]
    await app.aclose()
