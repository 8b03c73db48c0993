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
