"""Response cache in a SQLite file (WAL): shared by the workers of one host, bounded
and expiring. Every call runs in a worker thread, never on the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from router._sqlite import enable_wal

__all__ = ["SqliteCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
  k TEXT PRIMARY KEY, v BLOB NOT NULL, expires REAL NOT NULL, used REAL NOT NULL, size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_used ON cache(used);
"""


class SqliteCache:
    """At most `max_entries` rows and `max_bytes` of values: after each write, expired
    rows go, then the least recently used until both bounds hold. `clock` is injectable."""

    def __init__(self, path: str | Path, *, ttl_s: float = 3600.0, max_entries: int = 10_000,
                 max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.ttl_s, self.max_entries, self.max_bytes = ttl_s, max_entries, max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            enable_wal(con, 30)
            con.execute("PRAGMA synchronous=NORMAL")
            con.executescript(_SCHEMA)
            self._con = con
        return self._con

    # ------------------------------------------------------------ sync halves
    def get_sync(self, key: str) -> bytes | None:
        now = self._clock()
        with self._lock:
            con = self._db()
            row = con.execute("SELECT v, expires FROM cache WHERE k = ?", (key,)).fetchone()
            if row is None:
                return None
            if row[1] <= now:
                con.execute("DELETE FROM cache WHERE k = ?", (key,))
                return None
            con.execute("UPDATE cache SET used = ? WHERE k = ?", (now, key))
            return bytes(row[0])

    def put_sync(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        now = self._clock()
        with self._lock:
            con = self._db()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("INSERT OR REPLACE INTO cache (k, v, expires, used, size) VALUES (?, ?, ?, ?, ?)",
                            (key, value, now + self.ttl_s, now, len(value)))
                con.execute("DELETE FROM cache WHERE expires <= ?", (now,))
                n, size = con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cache").fetchone()
                while n > self.max_entries or size > self.max_bytes:
                    drop = max(1, n - self.max_entries) if n > self.max_entries else max(1, n // 10)
                    con.execute("DELETE FROM cache WHERE k IN (SELECT k FROM cache ORDER BY used LIMIT ?)", (drop,))
                    n, size = con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cache").fetchone()
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def count(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM cache").fetchone()[0])

    # ------------------------------------------------------------ async face
    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get_sync, key)

    async def put(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self.put_sync, key, value)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
