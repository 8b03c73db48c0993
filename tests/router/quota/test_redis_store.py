"""RedisStore internals the ledger tests do not reach: key layout, expiry, upgrade path."""

from __future__ import annotations

import json
import time

from router.quota._resp import RespClient
from router.quota.redis_store import RedisStore
from router.quota.store import Adjust, Check


async def test_counters_and_reservation_expire(redis_url, redis_prefix):
    s = RedisStore(redis_url, prefix=redis_prefix)
    now = time.time()
    checks = [Check(("a1", "a2"), "a2", 3, 10, now + 60), Check(("b",), "b", 5, None, now + 3600, hold=True)]
    acq = await s.acquire("r1", checks, now + 30, now)
    assert acq.ok and acq.totals == (3, 5)
    c = RespClient(redis_url)
    ttl = {k: await c.execute("PTTL", redis_prefix + k) for k in ("a2", "b", "b#h", "rh:r1")}
    assert all(v > 0 for v in ttl.values()), ttl
    assert 55_000 < ttl["a2"] <= 60_000 and 3_595_000 < ttl["b"] <= 3_600_000
    assert await s.read(["a1", "a2", "b", "b#h"], now) == [0, 3, 5, 5]
    live, applied = await s.settle("r1", [Adjust("a2", 2, now + 60), Adjust("b", 7, now + 3600)], now)
    assert live and applied == [2, 7]
    assert await s.read(["a2", "b", "b#h"], now) == [2, 7, 0]
    assert await c.execute("EXISTS", redis_prefix + "rh:r1") == 0
    c.close()
    await s.aclose()


async def test_same_counter_charged_twice_is_undone_in_full(redis_url, redis_prefix):
    s = RedisStore(redis_url, prefix=redis_prefix)
    now = time.time()
    checks = [Check(("x",), "x", 2, 10, now + 60), Check(("x",), "x", 3, 10, now + 60)]
    assert (await s.acquire("r1", checks, now + 30, now)).ok
    assert await s.read(["x"], now) == [5]
    assert await s.release("r1", now)
    assert await s.read(["x"], now) == [0]
    await s.aclose()


async def test_partial_settle_then_final(redis_url, redis_prefix):
    s = RedisStore(redis_url, prefix=redis_prefix)
    now = time.time()
    checks = [Check(("g",), "g", 100, 150, now + 60), Check(("k",), "k", 4, None, now + 60, hold=True)]
    assert (await s.acquire("r1", checks, now + 30, now)).ok
    await s.raise_to("g", 120, now + 60, now)  # someone else used 20 meanwhile
    live, (applied,) = await s.settle("r1", [Adjust("g", 140, now + 60, clamp=150, span=("g",))], now, final=False)
    assert live and applied == 130  # clamp: 150 - (120 - 100 held by us)
    assert await s.read(["g", "k", "k#h"], now) == [150, 4, 4]
    live, _ = await s.settle("r1", [], now, final=True)  # undoes what is still held
    assert live and await s.read(["g", "k", "k#h"], now) == [150, 0, 0]
    await s.aclose()


async def test_sweep_charges_reservations_written_by_the_old_json_format(redis_url, redis_prefix):
    s = RedisStore(redis_url, prefix=redis_prefix)
    now = time.time()
    c = RespClient(redis_url)
    p = redis_prefix
    await c.execute("SET", p + "w", 5)
    await c.execute("SET", p + "b", 7)
    await c.execute("SET", p + "b#h", 7)
    await c.execute("SET", p + "res:old1", json.dumps([["w", 5, 0], ["b", 7, 1]]))
    await c.execute("ZADD", p + "resexp", now - 1, "old1")
    assert await s.sweep(now) == 1
    assert await s.read(["w", "b", "b#h"], now) == [5, 7, 0]  # charged at the reserved amounts; holds end
    assert await c.execute("EXISTS", p + "res:old1") == 0
    c.close()
    await s.aclose()


async def test_script_cache_flush_falls_back_to_eval(redis_url, redis_prefix):
    s = RedisStore(redis_url, prefix=redis_prefix)
    now = time.time()
    assert (await s.acquire("r1", [Check(("x",), "x", 1, 10, now + 60)], now + 30, now)).ok
    c = RespClient(redis_url)
    await c.execute("SCRIPT", "FLUSH")
    c.close()
    assert (await s.acquire("r2", [Check(("x",), "x", 1, 10, now + 60)], now + 30, now)).totals == (2,)
    await s.aclose()


async def test_a_redis_py_client_that_decodes_replies_works_too(redis_url, redis_prefix):
    import redis.asyncio as aioredis

    s = RedisStore(redis_url, prefix=redis_prefix, client=aioredis.from_url(redis_url, decode_responses=True))
    now = time.time()
    acq = await s.acquire("r1", [Check(("x",), "x", 4, 10, now + 60)], now + 30, now)
    assert acq.ok and acq.totals == (4,)
    assert not (await s.acquire("r2", [Check(("x",), "x", 7, 10, now + 60)], now + 30, now)).ok
    assert await s.settle("r1", [Adjust("x", 3, now + 60)], now) == (True, [3])
    assert await s.read(["x"], now) == [3]
    await s.aclose()
