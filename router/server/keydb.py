"""Proxy keys created at run time (`POST /admin/keys`, `quotaroute keys`), kept in a
table every worker and replica reads: SQLite (the spend log's file, the embedded
default) or PostgreSQL (`server.store: postgres`, shared by replicas).

Each key row holds the scrypt hash of its secret (the secret itself is shown once, at
creation or rotation, and never stored), an 8-character hint of the token's SHA-256 so
a presented token is checked against one row, and the key's limits. Every write bumps
`keys_version` in the same transaction. `RuntimeKeys` polls that one number every
`poll_s` (0.25 s) and reloads the rows when it moved, so a change reaches every worker
and replica within a second without a restart. Config-file keys are not in the table
and always win an id clash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from router._sqlite import enable_wal
from router.errors import redact
from router.extras import need
from router.server import pgstore  # psycopg itself is imported only when a PostgreSQL store is opened
from router.server.auth import KeyStore, ProxyKey

__all__ = ["KeyTable", "RuntimeKeys", "KeyExists", "FIELDS", "row_to_key", "public_row"]

log = logging.getLogger("quotaroute.server")

# stored per key, besides id/hash/hint and the timestamps
FIELDS = ("budget_usd", "budget_period", "models", "rpm", "tpm", "user", "tags", "expires_at")
_COLS = ("id", "hash", "hint", "budget_usd", "budget_period", "models", "rpm", "tpm", "user_scope", "tags",
         "expires_at", "created_at", "updated_at")

_SQLITE_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (2, "runtime keys", """
CREATE TABLE IF NOT EXISTS quotaroute_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL, hint TEXT NOT NULL, budget_usd TEXT, budget_period TEXT,
  models TEXT, rpm INTEGER, tpm INTEGER, user_scope TEXT, tags TEXT, expires_at REAL,
  created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quotaroute_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO quotaroute_meta (name, value) VALUES ('keys_version', 0) ON CONFLICT (name) DO NOTHING;
"""),
)


class KeyExists(Exception):
    """A key with this id already exists (409)."""


def _encode(rec: dict[str, Any]) -> dict[str, Any]:
    """Python values -> column values (money as exact text, lists as JSON)."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        col = "user_scope" if k == "user" else k
        if k == "budget_usd":
            v = None if v is None else format(Decimal(v), "f")
        elif k in ("models", "tags"):
            v = None if v is None else json.dumps(list(v))
        out[col] = v
    return out


def _decode(row: tuple[Any, ...]) -> dict[str, Any]:
    r = dict(zip(_COLS, row))
    return {"id": r["id"], "hash": r["hash"], "hint": r["hint"],
            "budget_usd": None if r["budget_usd"] is None else Decimal(r["budget_usd"]),
            "budget_period": r["budget_period"],
            "models": None if r["models"] is None else tuple(json.loads(r["models"])),
            "rpm": r["rpm"], "tpm": r["tpm"], "user": r["user_scope"],
            "tags": None if r["tags"] is None else tuple(json.loads(r["tags"])),
            "expires_at": r["expires_at"], "created_at": r["created_at"], "updated_at": r["updated_at"]}


def row_to_key(r: dict[str, Any], default_period: str = "month") -> ProxyKey:
    return ProxyKey(id=r["id"], hash=r["hash"], budget_usd=r["budget_usd"],
                    budget_period=r["budget_period"] or default_period, models=r["models"], rpm=r["rpm"],
                    tpm=r["tpm"], user=r["user"], tags=r["tags"], expires_at=r["expires_at"], runtime=True,
                    hint=r["hint"])


def public_row(r: dict[str, Any]) -> dict[str, Any]:
    """A key as the admin API shows it: never the hash or its hint."""
    out = {k: v for k, v in r.items() if k not in ("hash", "hint")}
    for k in ("models", "tags"):
        if out.get(k) is not None:
            out[k] = list(out[k])
    if out.get("budget_usd") is not None:
        out["budget_usd"] = format(out["budget_usd"], "f")
    out["object"] = "key"
    return out


class KeyTable:
    """The runtime key rows. Blocking calls: run them in a thread (`asyncio.to_thread`)."""

    def __init__(self, kind: str, target: str | Path) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"unknown key store {kind!r}")
        self.kind = kind
        self.target = target
        self._pg: Any = None
        self._lock = threading.Lock()
        self._migrated = False

    @classmethod
    def sqlite(cls, path: str | Path) -> KeyTable:
        return cls("sqlite", Path(path))

    @classmethod
    def postgres(cls, dsn: str) -> KeyTable:
        return cls("postgres", dsn)

    # -------------------------------------------------------------- connections
    def _run(self, fn: Callable[[Any, Callable[[str], str]], Any], *, write: bool = False) -> Any:
        """fn(conn, sql) inside one transaction; `sql` adapts `?` placeholders to the driver."""
        with self._lock:
            if self.kind == "postgres":
                return self._run_pg(fn)
            return self._run_sqlite(fn, write)

    def _run_sqlite(self, fn: Callable[[Any, Callable[[str], str]], Any], write: bool) -> Any:
        path = Path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        try:
            if not self._migrated:
                enable_wal(con, 30)
                self._migrate_sqlite(con)
                self._migrated = True
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # a poll never blocks the spend writer
            try:
                out = fn(con, lambda q: q)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return out
        finally:
            con.close()

    @staticmethod
    def _migrate_sqlite(con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("CREATE TABLE IF NOT EXISTS quotaroute_migrations (version INTEGER PRIMARY KEY, "
                        "name TEXT NOT NULL, applied_at REAL NOT NULL)")
            have = {r[0] for r in con.execute("SELECT version FROM quotaroute_migrations")}
            for version, name, sql in _SQLITE_MIGRATIONS:
                if version not in have:
                    for stmt in filter(str.strip, sql.split(";")):
                        con.execute(stmt)
                    con.execute("INSERT INTO quotaroute_migrations VALUES (?, ?, ?)", (version, name, time.time()))
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _run_pg(self, fn: Callable[[Any, Callable[[str], str]], Any]) -> Any:
        psycopg = need("psycopg", extra="postgres", purpose="the PostgreSQL store")
        for attempt in (0, 1):
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = pgstore.connect(str(self.target))
                    if not self._migrated:
                        pgstore.migrate(self._pg)
                        self._migrated = True
                with self._pg.transaction():
                    return fn(self._pg, lambda q: q.replace("?", "%s"))
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if attempt:
                    raise
                self._pg = None  # the server restarted or dropped us: reconnect once
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None

    # -------------------------------------------------------------- reads
    def version(self) -> int:
        return int(self._run(lambda c, q: c.execute(q("SELECT value FROM quotaroute_meta WHERE name = ?"),
                                                    ("keys_version",)).fetchone()[0]))

    def snapshot(self, known: int | None = None) -> tuple[int, list[dict[str, Any]] | None]:
        """(version, rows), rows None when the version is still `known` (one transaction)."""
        def go(c: Any, q: Callable[[str], str]) -> tuple[int, list[dict[str, Any]] | None]:
            v = int(c.execute(q("SELECT value FROM quotaroute_meta WHERE name = ?"), ("keys_version",)).fetchone()[0])
            if v == known:
                return v, None
            rows = c.execute(f"SELECT {', '.join(_COLS)} FROM quotaroute_keys ORDER BY id").fetchall()
            return v, [_decode(tuple(r)) for r in rows]
        return self._run(go)

    def rows(self) -> list[dict[str, Any]]:
        return self.snapshot()[1] or []

    def get(self, key_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rows() if r["id"] == key_id), None)

    # -------------------------------------------------------------- writes (each bumps keys_version)
    @staticmethod
    def _bump(c: Any, q: Callable[[str], str]) -> None:
        c.execute(q("UPDATE quotaroute_meta SET value = value + 1 WHERE name = ?"), ("keys_version",))

    def create(self, key_id: str, hash_: str, hint: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        rec = {"id": key_id, "hash": hash_, "hint": hint, **_encode({k: fields.get(k) for k in FIELDS}),
               "created_at": now, "updated_at": now}

        def go(c: Any, q: Callable[[str], str]) -> None:
            if c.execute(q("SELECT 1 FROM quotaroute_keys WHERE id = ?"), (key_id,)).fetchone():
                raise KeyExists(key_id)
            c.execute(q(f"INSERT INTO quotaroute_keys ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})"),
                      tuple(rec[k] for k in _COLS))
            self._bump(c, q)
        self._run(go, write=True)
        return _decode(tuple(rec[k] for k in _COLS))

    def update(self, key_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Change some fields (and/or `hash`/`hint`, a rotation); None when there is no such key."""
        enc = _encode(fields)
        enc["updated_at"] = time.time()

        def go(c: Any, q: Callable[[str], str]) -> bool:
            sets = ", ".join(f"{k} = ?" for k in enc)
            cur = c.execute(q(f"UPDATE quotaroute_keys SET {sets} WHERE id = ?"), (*enc.values(), key_id))
            if cur.rowcount == 0:
                return False
            self._bump(c, q)
            return True
        return self.get(key_id) if self._run(go, write=True) else None

    def delete(self, key_id: str) -> bool:
        def go(c: Any, q: Callable[[str], str]) -> bool:
            cur = c.execute(q("DELETE FROM quotaroute_keys WHERE id = ?"), (key_id,))
            if cur.rowcount == 0:
                return False
            self._bump(c, q)
            return True
        return bool(self._run(go, write=True))


class RuntimeKeys:
    """Keeps a `KeyStore`'s runtime keys in step with the table: `refresh()` now, and a
    poll every `poll_s` while `run()` is going. `on_change(keys)` gets every key that is
    new or changed (to put its budget on the ledger)."""

    def __init__(self, table: KeyTable, keys: KeyStore, *, default_period: str = "month", poll_s: float = 0.25,
                 on_change: Callable[[list[ProxyKey]], Any] | None = None) -> None:
        self.table = table
        self.keys = keys
        self.default_period = default_period
        self.poll_s = poll_s
        self.on_change = on_change
        self.version: int | None = None
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._refresh_lock: asyncio.Lock | None = None

    async def refresh(self) -> bool:
        """Reload when the table's version moved; True when something was applied."""
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            version, rows = await asyncio.to_thread(self.table.snapshot, self.version)
            if rows is None:
                return False
            keys = [row_to_key(r, self.default_period) for r in rows]
            sig = {k.id: (k.hash, k.budget_usd, k.budget_period) for k in keys}
            changed = [k for k in keys if self._seen.get(k.id) != sig[k.id]]
            self.keys.set_runtime(keys)
            self.version, self._seen = version, sig
            if changed and self.on_change is not None:
                res = self.on_change(changed)
                if asyncio.iscoroutine(res):
                    await res
            return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="quotaroute-runtime-keys")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
                if self._failing:
                    log.info("runtime keys: store reachable again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - keep serving the keys we have; say so once
                if not self._failing:
                    log.warning("runtime keys: cannot read the key store (keeping the last keys): %s",
                                redact(str(e))[:300])
                self._failing = True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        await asyncio.to_thread(self.table.close)
