"""SQLite store: the embedded default for the proxy (one file, several processes).

* WAL journal: readers never block the writer; a writer holds the lock only for
  one short transaction.
* `synchronous=NORMAL` (default, `synchronous="FULL"` selectable): in WAL mode a
  committed transaction survives a crash or SIGKILL of the process (the WAL is in
  the OS page cache); only an OS crash or power cut can lose the last few
  transactions, and never corrupts the file. Losing a few ms of usage counts on
  power loss is an acceptable trade for ~10x cheaper commits; pick FULL if not.
* Every check-and-reserve is one `BEGIN IMMEDIATE` transaction (the write lock is
  taken before reading), so concurrent processes cannot both see the same room.
* The event loop never waits for a lock: each transaction first tries the write
  lock inline with a zero busy timeout (uncontended: ~100 us, no thread hop); if
  another process holds it, the transaction runs on a dedicated worker thread
  that waits for the lock (busy timeout) off the loop.
* A reservation that holds nothing (every check's amount is 0: a paid model with
  no pool or budget) writes nothing: its checks are read without the write lock
  and it is remembered in process memory (there is nothing another process could
  undo). Its settle/release touch the file only if they record a non-zero amount;
  it is swept (expired: no longer live) when this process sweeps, like a stored one.
* An expired reservation is charged at its reserved amounts (the crash rule in
  `router.quota.store`): the sweep drops its in-flight holds and rewrites its row as
  a tombstone (`items` = `{"c": [...]}`, `expires_at` + `GRACE_S`) that a late
  commit settles against; the next sweep after the grace deletes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from router._sqlite import enable_wal

from router.quota.store import GRACE_S, HOLD_SUFFIX, Acquired, Adjust, Check

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expire_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, expires_at REAL NOT NULL, items TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_exp ON reservations (expires_at);
"""
_UPSERT = (
    "INSERT INTO counters (key, value, expire_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
    "value = CASE WHEN counters.expire_at <= ?4 THEN excluded.value ELSE counters.value + excluded.value END, "
    "expire_at = CASE WHEN counters.expire_at <= ?4 THEN excluded.expire_at ELSE max(counters.expire_at, excluded.expire_at) END"
)
_SUB = "UPDATE counters SET value = value - ? WHERE key = ? AND expire_at > ?"
_GC_EVERY = 2000


class SQLiteStore:
    def __init__(self, path: str, *, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0,
                 mode: str = "auto") -> None:
        """mode "auto": try each short transaction inline on the event loop with a zero
        busy timeout; if another process holds the write lock, hand the transaction to
        the worker thread, which waits (up to `busy_timeout_s`) off the loop. The loop
        never blocks on a lock. mode "thread": always use the worker thread."""
        if mode not in ("auto", "thread"):
            raise ValueError("mode must be auto or thread")
        self.mode = mode
        self._inline: sqlite3.Connection | None = None
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = os.path.expanduser(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quotaroute-sqlite")
        self._ops = 0
        self._empty: dict[str, float] = {}  # reservation id -> expires_at, for reservations holding nothing
        self._empty_min = float("inf")  # <= the earliest expires_at in _empty (a lower bound)

    # -- worker-thread side ------------------------------------------------------
    def _open(self, busy_timeout_s: float) -> sqlite3.Connection:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        enable_wal(db, self.busy_timeout_s)
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        return db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open(self.busy_timeout_s)
        return self._db

    def _tx(self, fn: Any, *args: Any) -> Any:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        return self._finish_tx(db, fn, *args)

    @staticmethod
    def _finish_tx(db: sqlite3.Connection, fn: Any, *args: Any) -> Any:
        """`fn(db, *args)` inside the transaction just begun on `db`: COMMIT, or ROLLBACK and re-raise."""
        try:
            out = fn(db, *args)
            db.execute("COMMIT")
            return out
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _values(db: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, int]:
        out: dict[str, int] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i : i + 500]
            q = f"SELECT key, value FROM counters WHERE key IN ({','.join('?' * len(chunk))}) AND expire_at > ?"
            out.update(db.execute(q, (*chunk, now)).fetchall())
        return out

    @staticmethod
    def _undo(db: sqlite3.Connection, items: list[list[Any]], now: float) -> None:
        for key, amount, hold in items:
            if amount:
                db.execute(_SUB, (amount, key, now))
                if hold:
                    db.execute("UPDATE counters SET value = value - ? WHERE key = ?", (amount, key + HOLD_SUFFIX))

    @staticmethod
    def _items(raw: str) -> tuple[list[list[Any]], bool]:
        """(items, live) of a stored reservation row: a live list, or an expired tombstone."""
        v = json.loads(raw)
        return (v["c"], False) if isinstance(v, dict) else (v, True)

    def _sweep(self, db: sqlite3.Connection, now: float) -> int:
        rows = db.execute("SELECT id, items, expires_at FROM reservations WHERE expires_at <= ? LIMIT 500",
                          (now,)).fetchall()
        gone, charged = [], []
        for rid, raw, exp in rows:
            items, live = self._items(raw)
            if not live:  # a tombstone past its grace
                gone.append((rid,))
                continue
            for key, amount, hold in items:  # charged at the reserved amounts: only the holds end
                if hold and amount:
                    db.execute("UPDATE counters SET value = value - ? WHERE key = ?", (amount, key + HOLD_SUFFIX))
            charged.append((exp + GRACE_S, json.dumps({"c": [[k, a, 0] for k, a, _ in items]}), rid))
        if gone:
            db.executemany("DELETE FROM reservations WHERE id = ?", gone)
        if charged:
            db.executemany("UPDATE reservations SET expires_at = ?, items = ? WHERE id = ?", charged)
        self._ops += 1
        if self._ops % _GC_EVERY == 0:
            db.execute("DELETE FROM counters WHERE expire_at <= ?", (now,))
        return len(charged)

    def _fits(self, db: sqlite3.Connection, checks: Sequence[Check], now: float) -> Acquired:
        vals = self._values(db, [k for c in checks for k in c.span], now)
        totals = []
        for i, c in enumerate(checks):
            used = sum(vals.get(k, 0) for k in c.span)
            if c.limit is not None and used + c.amount > c.limit:
                return Acquired(False, i, tuple(totals) + (used,))
            totals.append(used + c.amount)
        return Acquired(True, -1, tuple(totals))

    def _take(self, db: sqlite3.Connection, checks: Sequence[Check], now: float) -> Acquired:
        got = self._fits(db, checks, now)
        if got.ok:
            db.executemany(_UPSERT, [(c.charge, c.amount, c.expire_at, now) for c in checks if c.amount])
        return got

    def _acquire(self, db: sqlite3.Connection, rid: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        self._sweep(db, now)
        got = self._fits(db, checks, now)
        if not got.ok:
            return got
        rows = []
        items = []
        for c in checks:
            if c.amount:
                rows.append((c.charge, c.amount, c.expire_at, now))
                if c.hold:
                    rows.append((c.charge + HOLD_SUFFIX, c.amount, max(c.expire_at, expires_at), now))
                items.append((c.charge, c.amount, c.hold))
        db.executemany(_UPSERT, rows)
        db.execute("INSERT INTO reservations (id, expires_at, items) VALUES (?, ?, ?)", (rid, expires_at, json.dumps(items)))
        return got

    def _settle(self, db: sqlite3.Connection, rid: str, adjusts: Sequence[Adjust], now: float, final: bool,
                local: bool | None = None) -> tuple[bool, list[int]]:
        """`local` (not None): an in-memory reservation holding nothing; True while live."""
        row = None if local is not None else db.execute("SELECT items FROM reservations WHERE id = ?", (rid,)).fetchone()
        items, live = self._items(row[0]) if row else ([], bool(local))
        held = {k: (a, h) for k, a, h in items}
        applied = []
        for adj in adjusts:
            h_amt, h_hold = held.pop(adj.charge, (0, False))
            actual = adj.actual
            if adj.clamp is not None:
                span = adj.span or (adj.charge,)
                others = sum(self._values(db, span, now).values()) - h_amt
                actual = max(0, min(actual, adj.clamp - others))
            if actual - h_amt:
                db.execute(_UPSERT, (adj.charge, actual - h_amt, adj.expire_at, now))
            if h_hold and h_amt:
                db.execute("UPDATE counters SET value = value - ? WHERE key = ?", (h_amt, adj.charge + HOLD_SUFFIX))
            applied.append(actual)
        if row is not None:
            rest = [[k, a, h] for k, (a, h) in held.items()]
            if final:
                self._undo(db, rest, now)
                db.execute("DELETE FROM reservations WHERE id = ?", (rid,))
            else:
                db.execute("UPDATE reservations SET items = ? WHERE id = ?",
                           (json.dumps(rest if live else {"c": rest}), rid))
        return live, applied

    def _release(self, db: sqlite3.Connection, rid: str, now: float) -> bool:
        row = db.execute("SELECT items FROM reservations WHERE id = ?", (rid,)).fetchone()
        if row is None:
            return False
        self._undo(db, self._items(row[0])[0], now)
        db.execute("DELETE FROM reservations WHERE id = ?", (rid,))
        return True

    def _raise_to(self, db: sqlite3.Connection, key: str, value: int, expire_at: float, now: float) -> None:
        db.execute(
            "INSERT INTO counters (key, value, expire_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN counters.expire_at <= ?4 THEN excluded.value ELSE max(counters.value, excluded.value) END, "
            "expire_at = CASE WHEN counters.expire_at <= ?4 THEN excluded.expire_at ELSE max(counters.expire_at, excluded.expire_at) END",
            (key, value, expire_at, now),
        )

    # -- async interface ---------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _txn(self, fn: Any, *args: Any) -> Any:
        """One short BEGIN IMMEDIATE transaction: inline if the write lock is free now,
        else on the worker thread (which may wait for it)."""
        if self.mode == "auto":
            if self._inline is None:
                self._inline = self._open(0.0)
            db = self._inline
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
            else:
                return self._finish_tx(db, fn, *args)
        return await self._run(self._tx, fn, *args)

    # -- reservations that hold nothing (kept in memory) -------------------------
    def _sweep_empty(self, now: float) -> None:
        # Settled ones are deleted at once, so `_empty` holds only the in-flight ones:
        # a scan (only once the earliest expiry may have passed) is short.
        if now < self._empty_min:
            return
        e = self._empty
        for rid in [r for r, exp in e.items() if exp <= now]:
            del e[rid]
        self._empty_min = min(e.values(), default=float("inf"))

    def _acquire_empty(self, rid: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired | None:
        """The checks of a reservation that holds nothing, read without the write lock;
        None when the full transaction must run (a sweep or GC is due, or the file is busy)."""
        if (self._ops + 1) % _GC_EVERY == 0 or self.mode != "auto":
            return None
        if self._inline is None:
            self._inline = self._open(0.0)
        db = self._inline
        try:
            db.execute("BEGIN")  # one read snapshot
            try:
                if db.execute("SELECT 1 FROM reservations WHERE expires_at <= ? LIMIT 1", (now,)).fetchone():
                    return None  # expired reservations to sweep: the write path does it
                vals = self._values(db, [k for c in checks for k in c.span], now)
            finally:
                db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            return None
        self._ops += 1
        totals = []
        for i, c in enumerate(checks):
            used = sum(vals.get(k, 0) for k in c.span)
            if c.limit is not None and used > c.limit:
                return Acquired(False, i, tuple(totals) + (used,))
            totals.append(used)
        self._empty[rid] = expires_at
        if expires_at < self._empty_min:
            self._empty_min = expires_at
        return Acquired(True, -1, tuple(totals))


    async def acquire(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        self._sweep_empty(now)
        if all(not c.amount for c in checks):
            got = self._acquire_empty(res_id, checks, expires_at, now)
            if got is not None:
                return got
        return await self._txn(self._acquire, res_id, checks, expires_at, now)

    async def settle(self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True) -> tuple[bool, list[int]]:
        if res_id in self._empty:  # live until swept, like a stored reservation
            if final:
                del self._empty[res_id]
            if all(not a.actual for a in adjusts):  # nothing to record
                return True, [0] * len(adjusts)
            return await self._txn(self._settle, res_id, adjusts, now, final, True)
        return await self._txn(self._settle, res_id, adjusts, now, final)

    async def release(self, res_id: str, now: float) -> bool:
        if self._empty.pop(res_id, None) is not None:
            return True
        return await self._txn(self._release, res_id, now)

    async def take(self, checks: Sequence[Check], now: float) -> Acquired:
        return await self._txn(self._take, checks, now)

    async def read(self, keys: Sequence[str], now: float) -> list[int]:
        def _read(db: sqlite3.Connection) -> list[int]:
            vals = self._values(db, keys, now)
            return [vals.get(k, 0) for k in keys]

        return await self._txn(_read)

    async def raise_to(self, key: str, value: int, expire_at: float, now: float) -> None:
        await self._txn(self._raise_to, key, value, expire_at, now)

    async def sweep(self, now: float) -> int:
        self._sweep_empty(now)
        return await self._txn(self._sweep, now)

    async def aclose(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(_close)
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        self._pool.shutdown(wait=True)
