"""The PostgreSQL store against a real server: versioned migrations that run once (also
when several processes start together), the spend log's batched COPY writes, and the
same `summarize` rows as the SQLite log for the same requests."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from router.server import pgstore
from router.server.spendlog import COLUMNS, SpendLog
from tests.router.server.pgserver import pg_dsn, pg_server  # noqa: F401 - fixtures (a real PostgreSQL)


def _row(i: int, key: str = "team-a", cost: str = "0.000123", status: int = 200) -> tuple[Any, ...]:
    ts = 1_790_000_000.0 + i
    day = time.strftime("%Y-%m-%d", time.gmtime(ts))
    return (ts, day, key, "chat", "auto", "openai:gpt-4o-mini", "openai", 10 + i, 20, 0, 0, cost, 12.5, 1.25,
            "cheapest", "openai:gpt-4o-mini", status, None if status < 400 else "boom", 0)


def test_migrations_are_versioned_and_idempotent(pg_dsn: str) -> None:
    con = pgstore.connect(pg_dsn)
    try:
        assert pgstore.migrate(con) == [v for v, _, _ in pgstore.MIGRATIONS]
        assert pgstore.migrate(con) == []
        got = con.execute("SELECT version, name FROM quotaroute_migrations ORDER BY version").fetchall()
        assert got == [(v, n) for v, n, _ in pgstore.MIGRATIONS]
    finally:
        con.close()


def test_replicas_starting_together_migrate_once(pg_dsn: str) -> None:
    applied: list[list[int]] = []

    def one() -> None:
        con = pgstore.connect(pg_dsn)
        try:
            applied.append(pgstore.migrate(con))
        finally:
            con.close()

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(a) for a in applied) == [0, 0, 0, 0, len(pgstore.MIGRATIONS)]


def test_spend_log_round_trip_matches_sqlite(pg_dsn: str, tmp_path: Any) -> None:
    rows = [_row(i) for i in range(300)] + [_row(i, key="team-b", cost="1.5", status=500) for i in range(7)]
    rows.append(_row(400, key=None, cost="0"))  # type: ignore[arg-type]
    rows.append(_row(401, key="k" * 500))  # clipped like the SQLite log
    pg, lite = pgstore.PgSpendLog(pg_dsn, interval_s=0.05), SpendLog(tmp_path / "spend.sqlite", interval_s=0.05)
    try:
        for r in rows:
            assert len(r) == len(COLUMNS)
            pg.record(r)
            lite.record(r)
        pg.flush()
        lite.flush()
        for by in ("day", "model", "key", "provider"):
            assert pg.summarize(by=by) == lite.summarize(by=by), by
        assert pg.summarize(by="key", key_id="team-b")[0]["cost_usd"] == Decimal("10.5")
        assert pg.summarize(by="day", since=1_790_000_000.0 + 299) == lite.summarize(by="day", since=1_790_000_000.0 + 299)
        assert pg.spent_since("team-a", 0) == lite.spent_since("team-a", 0) == Decimal("0.000123") * 300
    finally:
        pg.close()
        lite.close()
    with pytest.raises(ValueError):
        pgstore.summarize(pg_dsn, by="nope")


def test_close_drains_the_queue(pg_dsn: str) -> None:
    log = pgstore.PgSpendLog(pg_dsn, interval_s=60)  # never wakes on its own
    for i in range(50):
        log.record(_row(i))
    log.close()
    assert sum(r["requests"] for r in pgstore.summarize(pg_dsn)) == 50


def test_a_failed_batch_is_kept_and_written_once(pg_dsn: str) -> None:
    log = pgstore.PgSpendLog(pg_dsn, interval_s=60)
    try:
        log.record(_row(1))
        log.flush()
        log._con.close()  # the server went away under the writer: the next COPY fails and is retried
        log._con = _Broken()
        log.record(_row(2))
        log.flush()
        assert log.errors == 1 and len(log._rows) == 1
        log.flush()
        assert sum(r["requests"] for r in log.summarize()) == 2
    finally:
        log.close()


class _Broken:
    closed = False

    def transaction(self) -> Any:
        import psycopg

        raise psycopg.OperationalError("server closed the connection")

    def close(self) -> None:
        self.closed = True


def test_select_reads_like_sqlite(pg_dsn: str, tmp_path: Any) -> None:
    """The dashboard's reads (`select` with `?` placeholders) give the SQLite log's rows."""
    pg, lite = pgstore.PgSpendLog(pg_dsn), SpendLog(tmp_path / "spend.sqlite")
    try:
        for i in range(5):
            for log in (pg, lite):
                log.record(_row(i, cost="0.25", status=200 if i else 500))
        pg.flush()
        lite.flush()
        sql = "SELECT key_id, cost_usd, status FROM spend WHERE ts >= ? AND route_reason LIKE ? ORDER BY ts"
        import sqlite3

        con = sqlite3.connect(str(tmp_path / "spend.sqlite"))
        want = con.execute(sql, (0, "%cheap%")).fetchall()
        con.close()
        assert pg.select(sql, (0, "%cheap%")) == want and len(want) == 5
    finally:
        pg.close()
        lite.close()
