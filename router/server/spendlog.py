"""The spend log: one row per proxied request, in SQLite (WAL).

Writes never touch the event loop: `record()` appends a tuple to a deque and a
writer thread inserts the rows in batches (one transaction, a few multi-row
INSERTs per batch). `close()` drains the deque, so a graceful shutdown loses
nothing. Money is stored as exact
decimal text and summed with `Decimal`, never as floats. Text columns are cut to
a fixed length when written (`CLIP`: a requested model name keeps 256 characters,
an error 1,024), so no client string can grow the file by more than that.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from router._sqlite import enable_wal

__all__ = ["SpendLog", "BatchedWriter", "SpendRow", "summarize", "COLUMNS", "CLIP", "period_start", "parse_since"]

COLUMNS = (
    "ts", "day", "key_id", "endpoint", "requested_model", "model", "provider", "input_tokens", "output_tokens",
    "cache_read_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "overhead_ms", "route_reason",
    "fallback_chain", "status", "error", "stream",
)
SpendRow = tuple  # values in COLUMNS order
# longest text kept per column (the rest is replaced by "…"); numbers and money are never cut
CLIP = {"key_id": 128, "endpoint": 32, "requested_model": 256, "model": 256, "provider": 64, "route_reason": 512,
        "fallback_chain": 2048, "error": 1024}
_CLIP = tuple((COLUMNS.index(c), n) for c, n in CLIP.items())

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
  id INTEGER PRIMARY KEY,
  ts REAL NOT NULL, day TEXT NOT NULL, key_id TEXT, endpoint TEXT, requested_model TEXT,
  model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
  reasoning_tokens INTEGER, cost_usd TEXT NOT NULL, latency_ms REAL, overhead_ms REAL, route_reason TEXT,
  fallback_chain TEXT, status INTEGER, error TEXT, stream INTEGER
);
CREATE INDEX IF NOT EXISTS spend_ts ON spend(ts);
"""
_INSERT = f"INSERT INTO spend ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_INSERT_HEAD = f"INSERT INTO spend ({', '.join(COLUMNS)}) VALUES "
_ROW = "(" + ",".join("?" * len(COLUMNS)) + ")"
_CHUNKS = (128, 32, 8, 1)  # 128 rows x 19 columns stays far under SQLite's bound-variable limit
_SQL: dict[int, str] = {}


def _clip(row: SpendRow) -> Any:
    out = None
    for i, n in _CLIP:
        v = row[i]
        if v.__class__ is str and len(v) > n:
            if out is None:
                out = list(row)
            out[i] = v[:n - 1] + "…"
    return row if out is None else out


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    enable_wal(con, 30)
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(_SCHEMA)
    return con


def period_start(period: str, now: float | None = None) -> float:
    """Unix time when the current budget period began (UTC)."""
    if period == "total":
        return 0.0
    d = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    d = d.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        d = d.replace(day=1)
    return d.timestamp()


_MAX_SINCE_S = 36_600 * 86400  # ~100 years: a relative --since beyond it is a typo


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """`2026-11-01`, an ISO datetime, or a relative `7d` / `12h` / `30m` -> unix time (UTC)."""
    if not value:
        return None
    v = value.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    shown = value if len(value) <= 40 else value[:40] + "..."
    if v[-1:] in units and v[:-1].isdigit() and v.isascii():
        n = int(v[:-1]) if len(v) <= 12 else _MAX_SINCE_S
        if n * units[v[-1]] > _MAX_SINCE_S:
            raise ValueError(f"--since {shown!r} is too far back (at most {_MAX_SINCE_S // 86400}d)")
        return (time.time() if now is None else now) - n * units[v[-1]]
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"cannot read --since {shown!r}: use YYYY-MM-DD, an ISO datetime, or 7d/12h/30m") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    try:
        return d.timestamp()
    except (OverflowError, ValueError):
        raise ValueError(f"--since {shown!r} is out of range") from None


class BatchedWriter:
    """The writer both spend logs share. `record()` is a deque append (atomic, wakes no
    thread); the writer thread wakes every `interval_s`, or on flush()/close(), and hands
    everything queued to `_store(rows)` (one transaction); `_shut()` runs on the writer
    thread after the last batch."""

    def __init__(self, *, interval_s: float, name: str) -> None:
        self._rows: deque[Any] = deque()
        self._interval = interval_s
        self._wake = threading.Event()
        self._lock = threading.Lock()  # serializes flush() callers with the writer
        self._stop = False
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- hot path
    def record(self, row: SpendRow) -> None:
        self._rows.append(row)

    # -------------------------------------------------------------- writer
    def _store(self, rows: list[Any]) -> None:
        raise NotImplementedError

    def _shut(self) -> None:
        return None

    def _write(self) -> None:
        with self._lock:
            rows = []
            pop = self._rows.popleft
            try:
                while True:
                    rows.append(pop())
            except IndexError:
                pass
            if rows:
                self._store(rows)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write()
        self._write()
        self._shut()

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything recorded so far (tests, admin reads, budget loads)."""
        if self._thread.is_alive():
            self._write()

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._stop = True
            self._wake.set()
            self._thread.join(timeout)


class SpendLog(BatchedWriter):
    """The spend log in SQLite: each batch is a few multi-row INSERTs in one transaction."""

    def __init__(self, path: str | Path, *, interval_s: float = 0.25) -> None:
        self.path = Path(path)
        self._con = _connect(self.path)
        super().__init__(interval_s=interval_s, name="quotaroute-spendlog")

    def _store(self, rows: list[Any]) -> None:
        try:
            with self._con:
                i = 0
                for size in _CHUNKS:  # a few fixed statement shapes, each prepared once
                    while len(rows) - i >= size:
                        self._insert(rows[i:i + size])
                        i += size
        except sqlite3.Error:
            self.errors += 1

    def _insert(self, rows: list[Any]) -> None:
        # One multi-row INSERT = one sqlite3_step = one GIL release/re-acquire for the whole
        # chunk; executemany() would hand the GIL back and forth per row, stalling the event
        # loop. Chunk sizes come from a fixed set: sqlite3 caches each prepared statement,
        # and one statement per batch length grew the process by ~70 MiB in a soak.
        sql = _SQL.get(len(rows))
        if sql is None:
            sql = _SQL[len(rows)] = _INSERT_HEAD + ",".join([_ROW] * len(rows))
        self._con.execute(sql, [v for r in rows for v in _clip(r)])

    def _shut(self) -> None:
        self._con.close()

    # -------------------------------------------------------------- reads
    def spent_since(self, key_id: str, since_ts: float) -> Decimal:
        con = sqlite3.connect(str(self.path), timeout=30)
        try:
            rows = con.execute("SELECT cost_usd FROM spend WHERE key_id = ? AND ts >= ?", (key_id, since_ts))
            return sum((Decimal(r[0]) for r in rows), Decimal(0))
        finally:
            con.close()


    def summarize(self, *, by: str = "day", since: float | None = None,
                  key_id: str | None = None) -> list[dict[str, Any]]:
        """`summarize()` of this log (the PostgreSQL log has the same method)."""
        return summarize(self.path, by=by, since=since, key_id=key_id)


_BY = {"day": "day", "model": "model", "key": "key_id", "provider": "provider"}


def summarize(path: str | Path, *, by: str = "day", since: float | None = None,
              key_id: str | None = None) -> list[dict[str, Any]]:
    """Group the log by day|model|key|provider: requests, errors, tokens, exact cost, mean latency."""
    col = _BY.get(by)
    if col is None:
        raise ValueError(f"--by must be one of {', '.join(_BY)}")
    p = Path(path)
    if not p.exists():
        return []
    con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30)
    try:
        where, args = [], []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if key_id is not None:
            where.append("key_id = ?")
            args.append(key_id)
        sql = f"SELECT {col}, cost_usd, input_tokens, output_tokens, status, latency_ms FROM spend"
        if where:
            sql += " WHERE " + " AND ".join(where)
        try:
            cur: Iterable[Any] = con.execute(sql, args)
        except sqlite3.OperationalError:
            return []
        groups: dict[str, dict[str, Any]] = {}
        for g, cost, inp, out, status, lat in cur:
            r = groups.setdefault(g or "-", {by: g or "-", "requests": 0, "errors": 0, "input_tokens": 0,
                                             "output_tokens": 0, "cost_usd": Decimal(0), "_lat": 0.0})
            r["requests"] += 1
            r["errors"] += 1 if (status or 0) >= 400 else 0
            r["input_tokens"] += inp or 0
            r["output_tokens"] += out or 0
            r["cost_usd"] += Decimal(cost)
            r["_lat"] += lat or 0.0
        out_rows = []
        for r in sorted(groups.values(), key=lambda x: x[by]):
            r["mean_latency_ms"] = round(r.pop("_lat") / r["requests"], 2) if r["requests"] else 0.0
            out_rows.append(r)
        return out_rows
    finally:
        con.close()
