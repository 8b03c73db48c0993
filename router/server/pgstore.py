"""The shared store on PostgreSQL: the spend log and the runtime keys of every replica.

    server:
      store: postgres
      dsn_env: QUOTAROUTE_DATABASE_URL     # the variable holding the DSN (never the DSN itself)

Migrations run when a process opens the store: each is a numbered SQL script applied
once, in order, inside one transaction that holds a PostgreSQL advisory lock, so
replicas starting together apply each script exactly once (`quotaroute_migrations`
records what ran). Re-running is a no-op.

`PgSpendLog` keeps the SQLite log's interface (`record`, `flush`, `close`,
`spent_since`, `summarize`): `record()` is a deque append on the event loop; a writer
thread sends everything queued every `interval_s` with one COPY in one transaction.
A batch that fails (the server went away) is put back at the head of the queue and
retried on the next tick; it was rolled back, so no row is written twice. Money is
NUMERIC, summed as `Decimal`.

psycopg (3) is the optional extra `postgres`.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from router.extras import need
from router.server.spendlog import COLUMNS as _COLUMNS  # one row shape for both logs
from router.server.spendlog import BatchedWriter  # the writer thread both logs share
from router.server.spendlog import _clip  # the same per-column caps as the SQLite log

__all__ = ["connect", "migrate", "PgSpendLog", "MIGRATIONS", "MAX_QUEUE"]

log = logging.getLogger("quotaroute.server")

MAX_QUEUE = 200_000  # rows kept while the server is unreachable (the oldest are dropped beyond it)
_LOCK_ID = 0x71756F74  # advisory lock held while migrating ("quot")

# (version, what it does, SQL). Append only: never edit a script that has shipped.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "spend log", """
CREATE TABLE IF NOT EXISTS spend (
  id BIGSERIAL PRIMARY KEY,
  ts DOUBLE PRECISION NOT NULL, day TEXT NOT NULL, key_id TEXT, endpoint TEXT, requested_model TEXT,
  model TEXT, provider TEXT, input_tokens BIGINT, output_tokens BIGINT, cache_read_tokens BIGINT,
  reasoning_tokens BIGINT, cost_usd NUMERIC NOT NULL, latency_ms DOUBLE PRECISION, overhead_ms DOUBLE PRECISION,
  route_reason TEXT, fallback_chain TEXT, status INTEGER, error TEXT, stream INTEGER
);
CREATE INDEX IF NOT EXISTS spend_ts ON spend(ts);
CREATE INDEX IF NOT EXISTS spend_key_ts ON spend(key_id, ts);
"""),
    (2, "runtime keys", """
CREATE TABLE IF NOT EXISTS quotaroute_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL, hint TEXT NOT NULL, budget_usd TEXT, budget_period TEXT,
  models TEXT, rpm BIGINT, tpm BIGINT, user_scope TEXT, tags TEXT, expires_at DOUBLE PRECISION,
  created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS quotaroute_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO quotaroute_meta (name, value) VALUES ('keys_version', 0) ON CONFLICT (name) DO NOTHING;
"""),
)


def connect(dsn: str, *, autocommit: bool = False) -> Any:
    psycopg = need("psycopg", extra="postgres", purpose="the PostgreSQL store")
    return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)


def migrate(con: Any) -> list[int]:
    """Apply the scripts not yet recorded; returns the versions applied by this call."""
    done: list[int] = []
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        con.execute("CREATE TABLE IF NOT EXISTS quotaroute_migrations (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        have = {r[0] for r in con.execute("SELECT version FROM quotaroute_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in have:
                continue
            con.execute(sql)
            con.execute("INSERT INTO quotaroute_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                        (version, name, time.time()))
            done.append(version)
    return done


_COPY = f"COPY spend ({', '.join(_COLUMNS)}) FROM STDIN"
_BY = {"day": "day", "model": "model", "key": "key_id", "provider": "provider"}


class PgSpendLog(BatchedWriter):
    """The spend log on PostgreSQL (same interface as `router.server.spendlog.SpendLog`):
    each batch is one COPY in one transaction; a failed batch is rolled back and queued
    again (at most `MAX_QUEUE` rows kept, the oldest dropped first)."""

    def __init__(self, dsn: str, *, interval_s: float = 0.25) -> None:
        self.dsn = dsn
        self.path = None  # no file: read with `summarize()`
        con = connect(dsn)
        try:
            migrate(con)
        finally:
            con.close()
        self._con: Any = None
        self.dropped = 0
        super().__init__(interval_s=interval_s, name="quotaroute-spendlog-pg")

    def _store(self, rows: list[Any]) -> None:
        try:
            if self._con is None or self._con.closed:
                self._con = connect(self.dsn)
            with self._con.transaction(), self._con.cursor() as cur, cur.copy(_COPY) as cp:
                for r in rows:
                    cp.write_row(_clip(r))
        except Exception as e:  # noqa: BLE001 - rolled back: queue the batch again, retry next tick
            self.errors += 1
            log.warning("spend log: PostgreSQL write failed (%d rows kept for retry): %s", len(rows),
                        type(e).__name__)
            try:
                if self._con is not None:
                    self._con.close()
            except Exception:  # noqa: BLE001
                pass
            self._con = None
            self._rows.extendleft(reversed(rows))
            over = len(self._rows) - MAX_QUEUE
            for _ in range(max(0, over)):
                self._rows.popleft()
                self.dropped += 1

    def _shut(self) -> None:
        if self._con is not None:
            self._con.close()

    # -------------------------------------------------------------- reads (own connection, any thread)
    def spent_since(self, key_id: str, since_ts: float) -> Decimal:
        con = connect(self.dsn, autocommit=True)
        try:
            row = con.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM spend WHERE key_id = %s AND ts >= %s",
                              (key_id, since_ts)).fetchone()
            return Decimal(row[0])
        finally:
            con.close()

    def summarize(self, *, by: str = "day", since: float | None = None,
                  key_id: str | None = None) -> list[dict[str, Any]]:
        return summarize(self.dsn, by=by, since=since, key_id=key_id)

    def select(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read-only query over the spend table written with `?` placeholders (the
        dashboard's reads); money comes back as exact decimal text, as from SQLite."""
        con = connect(self.dsn, autocommit=True)
        try:
            con.read_only = True
            rows = con.execute(sql.replace("%", "%%").replace("?", "%s"), args).fetchall()
        finally:
            con.close()
        return [tuple(format(v, "f") if isinstance(v, Decimal) else v for v in r) for r in rows]


def summarize(dsn: str, *, by: str = "day", since: float | None = None,
              key_id: str | None = None) -> list[dict[str, Any]]:
    """The rows of `router.server.spendlog.summarize`, grouped by PostgreSQL."""
    col = _BY.get(by)
    if col is None:
        raise ValueError(f"--by must be one of {', '.join(_BY)}")
    where, args = [], []
    if since is not None:
        where.append("ts >= %s")
        args.append(since)
    if key_id is not None:
        where.append("key_id = %s")
        args.append(key_id)
    sql = (f"SELECT COALESCE({col}, '-'), COUNT(*), COUNT(*) FILTER (WHERE status >= 400), "
           f"COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0), "
           f"COALESCE(AVG(COALESCE(latency_ms, 0)), 0) FROM spend")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " GROUP BY 1 ORDER BY 1"
    con = connect(dsn, autocommit=True)
    try:
        migrate(con)
        rows = con.execute(sql, args).fetchall()
    finally:
        con.close()
    rows.sort(key=lambda r: r[0])  # the same order as the SQLite report (Python's, not the collation's)
    return [{by: g, "requests": n, "errors": e, "input_tokens": int(i), "output_tokens": int(o),
             "cost_usd": Decimal(c), "mean_latency_ms": round(float(lat), 2)} for g, n, e, i, o, c, lat in rows]
