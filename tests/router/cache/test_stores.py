"""The response cache's key, entry format and stores (memory, SQLite, a real redis-server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router.cache import MemoryCache, RedisCache, SqliteCache, decode, encode, replay_events, request_key
from router.types import ChatRequest, ChatResponse, Message, Tool, ToolCall, Usage, accumulate
from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def req(**kw: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "hi"}], **kw})


def test_key_covers_everything_that_changes_the_answer() -> None:
    base = request_key(req(), "team-a")
    assert base == request_key(req(stream=True), "team-a")  # a stream and a non-stream request share the entry
    assert base == request_key(req(temperature=None, metadata={}), "team-a")  # unset is unset
    assert len(base) == 64 and int(base, 16) >= 0
    variants = [req(model="auto:best"), req(temperature=0.2), req(top_p=0.5), req(max_tokens=9), req(seed=1),
                req(stop=["x"]), req(tools=[Tool(name="f")]), req(tool_choice="required"),
                req(response_format={"type": "json_object"}), req(reasoning={"effort": "high"}),
                req(messages=[Message(role="user", content="hi!")]), req(system="be brief"),
                req(extra_body={"top_k": 3}), req(metadata={"team": "x"}), req(user="u1")]
    keys = {request_key(v, "team-a") for v in variants}
    assert len(keys) == len(variants) and base not in keys
    assert request_key(req(), "team-b") != base  # another owner
    assert request_key(req(), "team-a", ["prod"]) != base  # pinned tags may route differently
    assert request_key(req(), "team-a", ["b", "a"]) == request_key(req(), "team-a", ["a", "b"])


def test_entry_round_trip_and_replay() -> None:
    resp = ChatResponse(id="chatcmpl-1", text="Hello", reasoning="thought", finish_reason="tool_calls",
                        tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": 1}')],
                        usage=Usage(input_tokens=10, output_tokens=5), provider="fake", model="small")
    got = decode(encode("fake:small", "fake", resp, 12.5))
    assert got is not None and (got.model_id, got.provider, got.created) == ("fake:small", "fake", 12.5)
    assert got.response == resp.model_copy(update={"id": ""})  # each replay gets a fresh id
    again = accumulate(replay_events(got.response), provider="fake", model="small")
    assert (again.text, again.reasoning, again.tool_calls, again.usage, again.finish_reason) == \
        (resp.text, resp.reasoning, resp.tool_calls, resp.usage, resp.finish_reason)
    assert decode(b"not json") is None and decode(b'{"m": 1}') is None


async def test_memory_lru_bounds_and_ttl() -> None:
    clock = Clock()
    c = MemoryCache(ttl_s=60, max_entries=2, max_bytes=10, clock=clock)
    await c.put("a", b"1")
    await c.put("b", b"2")
    assert await c.get("a") == b"1"  # a is now the most recently used
    await c.put("c", b"3")
    assert await c.get("b") is None and await c.get("a") == b"1" and len(c) == 2
    await c.put("big", b"x" * 9)  # the byte bound evicts the least recently used
    assert c.bytes <= 10 and await c.get("big") == b"x" * 9
    await c.put("huge", b"y" * 11)  # larger than the whole cache: not stored
    assert await c.get("huge") is None
    clock.t += 61
    assert await c.get("big") is None  # expired: dropped when read
    assert all([await c.get(k) is None for k in ("a", "b", "c")])


async def test_sqlite_bounded_expiring_and_shared(tmp_path: Any) -> None:
    clock = Clock()
    path = tmp_path / "cache.sqlite"
    c = SqliteCache(path, ttl_s=60, max_entries=3, max_bytes=1 << 20, clock=clock)
    for i in range(3):
        clock.t += 1
        await c.put(f"k{i}", b"v%d" % i)
    clock.t += 1
    assert await c.get("k0") == b"v0"  # used now: k1 is the least recently used
    clock.t += 1
    await c.put("k3", b"v3")
    assert c.count() == 3 and await c.get("k1") is None and await c.get("k0") == b"v0"
    other = SqliteCache(path, ttl_s=60, clock=clock)  # another worker on the same file
    assert await other.get("k3") == b"v3"
    clock.t += 61
    assert await other.get("k3") is None
    await c.put("new", b"n")  # a write drops every expired row
    assert c.count() == 1
    small = SqliteCache(tmp_path / "small.sqlite", ttl_s=60, max_bytes=100, clock=clock)
    for i in range(5):
        clock.t += 1
        await small.put(f"k{i}", b"x" * 40)
    assert small.count() <= 2 and await small.get("k4") == b"x" * 40
    await c.aclose()
    await other.aclose()
    await small.aclose()


async def test_redis_ttl_and_prefix(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    c = RedisCache(redis_url, ttl_s=30, prefix=redis_prefix)
    try:
        assert await c.get("k") is None
        value = '{"text": "caf\u00e9 \u2615"}'.encode()
        await c.put("k", value)
        assert await c.get("k") == value
        assert 0 < await c.ttl_ms("k") <= 30_000  # Redis expires it
        other = RedisCache(redis_url, ttl_s=30, prefix=redis_prefix + "x:")
        assert await other.get("k") is None  # prefixes keep deployments apart
        await other.aclose()
        short = RedisCache(redis_url, ttl_s=0.05, prefix=redis_prefix)
        await short.put("gone", b"1")
        await asyncio.sleep(0.3)
        assert await short.get("gone") is None
        await short.aclose()
    finally:
        await c.aclose()


async def test_redis_down_raises() -> None:
    from tests.router.server.conftest import free_port

    c = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    with pytest.raises(OSError):
        await c.get("k")
    await c.aclose()
