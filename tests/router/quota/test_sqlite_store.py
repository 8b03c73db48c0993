"""SQLite specifics: WAL + synchronous setting, and a lock held by another process never blocks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from router.quota.sqlite_store import SQLiteStore
from router.quota.store import Check


async def test_wal_and_synchronous(tmp_path):
    st = SQLiteStore(str(tmp_path / "a.sqlite"), synchronous="FULL")
    await st.read(["x"], 0.0)
    db = sqlite3.connect(str(tmp_path / "a.sqlite"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    await st.aclose()
    with pytest.raises(ValueError):
        SQLiteStore(str(tmp_path / "b.sqlite"), synchronous="OFF")


async def test_locked_by_another_connection_waits_off_the_loop(tmp_path):
    path = str(tmp_path / "l.sqlite")
    st = SQLiteStore(path)
    now = time.time()
    assert (await st.acquire("r1", [Check(("k",), "k", 1, 5, now + 60)], now + 60, now)).ok
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    acq = asyncio.create_task(st.acquire("r2", [Check(("k",), "k", 1, 5, now + 60)], now + 60, now))
    await asyncio.sleep(0.3)
    assert not acq.done() and ticks >= 10  # waiting for the lock, loop still running
    other.execute("COMMIT")
    other.close()
    assert (await asyncio.wait_for(acq, 10)).ok
    t.cancel()
    assert await st.read(["k"], now) == [2]
    await st.aclose()


def _rows(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM reservations").fetchone()[0]
    finally:
        db.close()


async def test_a_reservation_holding_nothing_writes_nothing(tmp_path):
    from router.quota.store import Adjust

    path = str(tmp_path / "e.sqlite")
    st = SQLiteStore(path)
    now = time.time()
    flag = [Check(("cd|m",), "cd|m", 0, int(now * 1000), now + 1)]
    got = await st.acquire("e1", flag, now + 60, now)
    assert got.ok and got.totals == (0,) and _rows(path) == 0
    assert await st.settle("e1", [], now) == (True, [])
    assert await st.release("e1", now) is False  # settled: gone
    # a flag set -> the same checks fail, still without writing
    await st.raise_to("cd|m", int(now * 1000) + 5000, now + 10, now)
    got = await st.acquire("e2", flag, now + 60, now)
    assert not got.ok and got.failed == 0 and _rows(path) == 0
    # release, and a settle that records an amount on a counter
    assert (await st.acquire("e3", [Check(("x",), "x", 0, None, now + 60)], now + 60, now)).ok
    assert await st.release("e3", now) is True
    assert (await st.acquire("e4", [Check(("x",), "x", 0, None, now + 60)], now + 60, now)).ok
    assert await st.settle("e4", [Adjust("x", 7, now + 60)], now) == (True, [7])
    assert await st.read(["x"], now) == [7]
    # a mixed reservation (one non-zero amount) takes the stored path
    assert (await st.acquire("e5", [Check(("x",), "x", 2, 100, now + 60)], now + 60, now)).ok
    assert _rows(path) == 1
    await st.aclose()


@pytest.mark.parametrize("mode", ["auto", "thread"])  # thread: every reservation is stored
async def test_an_expired_empty_reservation_is_swept_like_a_stored_one(tmp_path, mode):
    st = SQLiteStore(str(tmp_path / "s.sqlite"), mode=mode)
    now = time.time()
    assert (await st.acquire("a", [], now + 30, now)).ok
    assert (await st.acquire("b", [], now + 90, now + 31)).ok  # sweeps "a"
    assert await st.settle("a", [], now + 31) == (False, [])  # expired before commit
    assert await st.settle("b", [], now + 32) == (True, [])
    await st.aclose()


async def test_settled_empty_reservations_leave_nothing_behind(tmp_path):
    """Memory stays bounded by the in-flight reservations (a soak found a per-call leak)."""
    st = SQLiteStore(str(tmp_path / "m.sqlite"))
    now = time.time()
    for i in range(200):
        assert (await st.acquire(f"r{i}", [], now + 600, now)).ok
        assert await st.settle(f"r{i}", [], now) == (True, [])
    assert st._empty == {} and len(vars(st)) < 20 and not any(
        isinstance(v, (list, dict)) and len(v) > 10 for v in vars(st).values())
    await st.aclose()
