"""The proxy's own store of Responses (`store: true`, `previous_response_id`,
`GET`/`DELETE /v1/responses/{id}`): SQLite (WAL), bounded and expiring.

    store = ResponseStore(path, ttl_s=30 * 86400, max_items=10_000, max_bytes=256 << 20)
    await store.put(owner, rid, context, response)   # context: the chat messages so far
    got = await store.get(owner, rid)                 # None: unknown, expired or another key's

Each row belongs to the proxy key that created it (`owner`, the key id; "" when the
proxy has no keys): every read and delete matches on the owner as well as the id, so a
key can never read, continue or delete another key's responses, nor learn that they
exist. Rows expire after `ttl_s`; past `max_items` rows or `max_bytes` of stored JSON
the oldest go first; one response larger than `max_bytes / 8` is not stored (a later
`previous_response_id` to it gets the same 400 as an unknown id).

`ResponsesCall` is one request's glue between the handler and this store: it parses
the body (router.server.responses_wire), loads the stored conversation, builds the
answer and saves it before the last byte is sent (so a client that chains at once
finds it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from router._sqlite import enable_wal
from router.errors import Failure, WireError, redact
from router.server.responses_events import ResponsesEncoder
from router.server.responses_wire import (ResponsesRequest, assistant_message, new_id, output_items,
                                          parse_responses_request, response_body, status_of, to_chat_request)
from router.types import ChatRequest, ChatResponse

__all__ = ["ResponseStore", "Stored", "ResponsesCall", "owner_of"]

log = logging.getLogger("quotaroute.server")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  id TEXT NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL, size INTEGER NOT NULL,
  context BLOB NOT NULL, response BLOB NOT NULL, PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS responses_created ON responses(created);
"""


def owner_of(key: Any) -> str:
    """The store's owner of a request: the proxy key's id ("" when the proxy has no keys)."""
    return getattr(key, "id", None) or ""


@dataclass(frozen=True, slots=True)
class Stored:
    context: list[dict[str, Any]]  # chat messages: the inputs so far and the answers, without instructions
    response: dict[str, Any]  # the response object as it was sent


class ResponseStore:
    def __init__(self, path: Path | str, *, ttl_s: float = 30 * 86400, max_items: int = 10_000,
                 max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.ttl_s, self.max_items, self.max_bytes = float(ttl_s), int(max_items), int(max_bytes)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _con(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            enable_wal(db, 30)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    # ------------------------------------------------------------------ sync halves (run in a thread)
    def put_sync(self, owner: str, rid: str, context: bytes, response: bytes, now: float | None = None) -> bool:
        size = len(context) + len(response)
        if size > self.max_bytes // 8:
            log.info("response %s not stored: %d bytes (limit %d)", rid, size, self.max_bytes // 8)
            return False
        now = time.time() if now is None else now
        with self._lock:
            db = self._con()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM responses WHERE expires <= ?", (now,))
                db.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?)",
                           (rid, owner, now, now + self.ttl_s, size, context, response))
                n, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses").fetchone()
                while n > self.max_items or total > self.max_bytes:
                    drop = max(n - self.max_items, 1)
                    rows = db.execute("SELECT owner, id, size FROM responses ORDER BY created LIMIT ?",
                                      (drop,)).fetchall()
                    db.executemany("DELETE FROM responses WHERE owner = ? AND id = ?", [(o, i) for o, i, _ in rows])
                    n -= len(rows)
                    total -= sum(s for _, _, s in rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def get_sync(self, owner: str, rid: str, now: float | None = None) -> Stored | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._con().execute("SELECT context, response FROM responses WHERE owner = ? AND id = ? "
                                      "AND expires > ?", (owner, rid, now)).fetchone()
        if row is None:
            return None
        return Stored(orjson.loads(row[0]), orjson.loads(row[1]))

    def delete_sync(self, owner: str, rid: str) -> bool:
        with self._lock:
            cur = self._con().execute("DELETE FROM responses WHERE owner = ? AND id = ?", (owner, rid))
        return cur.rowcount > 0

    def count(self) -> int:
        with self._lock:
            return int(self._con().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # ------------------------------------------------------------------ async API
    async def put(self, owner: str, rid: str, context: list[dict[str, Any]], response: dict[str, Any]) -> bool:
        return await asyncio.to_thread(self.put_sync, owner, rid, orjson.dumps(context), orjson.dumps(response))

    async def get(self, owner: str, rid: str) -> Stored | None:
        return await asyncio.to_thread(self.get_sync, owner, rid)

    async def delete(self, owner: str, rid: str) -> bool:
        return await asyncio.to_thread(self.delete_sync, owner, rid)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _not_found(rid: str) -> WireError:
    return WireError(f"Previous response with id '{redact(rid)[:200]}' not found.", param="previous_response_id",
                     code="previous_response_not_found")


class ResponsesCall:
    """One /v1/responses request, as the chat handler drives it: parse -> (route) ->
    response() or encoder() -> save() before the last byte -> failed() on a broken stream."""

    endpoint = "responses"

    def __init__(self, store: ResponseStore | None) -> None:
        self.store = store
        self.owner = ""
        self.r: ResponsesRequest | None = None
        self.history: list[dict[str, Any]] = []
        self.rid = new_id("resp")
        self._final: dict[str, Any] | None = None
        self._enc: ResponsesEncoder | None = None

    @property
    def storing(self) -> bool:
        return self.store is not None and self.r is not None and self.r.store

    async def parse(self, data: Any, key: Any) -> ChatRequest:
        self.r = r = parse_responses_request(data)
        self.owner = owner_of(key)
        if r.previous_response_id is not None:
            if self.store is None:
                raise Failure(400, "previous_response_id needs the proxy's response store, which is off "
                                   "(server.responses.db: off).", param="previous_response_id",
                              code="unsupported_parameter")
            got = await self.store.get(self.owner, r.previous_response_id)
            if got is None:
                raise _not_found(r.previous_response_id)
            self.history = got.context
        return to_chat_request(r, self.history)

    def response(self, resp: ChatResponse, model: str) -> bytes:
        assert self.r is not None
        status, incomplete = status_of(resp.finish_reason)
        self._final = response_body(self.r, rid=self.rid, created_at=int(time.time()), model=model, status=status,
                                    output=output_items(resp), usage=resp.usage, store=self.storing,
                                    incomplete=incomplete)
        return orjson.dumps(self._final)

    def encoder(self, model: str) -> ResponsesEncoder:
        assert self.r is not None
        self._enc = ResponsesEncoder(self.r, model, rid=self.rid, store=self.storing)
        return self._enc

    async def save(self) -> None:
        """Store the answer (when asked to); a store failure is logged, never the client's."""
        final = self._final if self._enc is None else self._enc.final
        if not self.storing or final is None or self.store is None or self.r is None:
            return
        context = self.history + self.r.messages + [assistant_message(final["output"])]
        try:
            await self.store.put(self.owner, self.rid, context, final)
        except Exception as e:  # noqa: BLE001
            log.warning("response %s not stored: %s", self.rid, redact(repr(e))[:300])
