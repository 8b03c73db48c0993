"""SQLite cache of live-benchmark calls, keyed by (model, item, repeat).

A re-run skips calls whose row is *final* (answered and scored, or failed in a way
that would fail again, e.g. a 400). Calls that hit a quota, a budget stop or a
transient error are stored as non-final and are retried on the next run. Money is
stored as Decimal text, never as float.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from decimal import Decimal

from router._sqlite import enable_wal

__all__ = ["CallRecord", "ResultCache"]


@dataclass
class CallRecord:
    model: str
    item_id: str
    repeat: int
    task: str
    prompt: str = ""
    item_hash: str = ""
    status: str = "ok"  # ok | error | quota | budget | rate_limited | unavailable
    final: bool = True
    quality: float | None = None
    score_detail: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)  # billed (0 when a free quota covered it)
    list_cost_usd: Decimal = Decimal(0)  # the same usage at list price
    free_quota: bool = False
    judge_cost_usd: Decimal = Decimal(0)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    retries: int = 0
    error_type: str = ""
    error: str = ""
    answer: str = ""
    created_at: float = 0.0


_COLS = [f.name for f in fields(CallRecord)]
_DECIMAL = {"cost_usd", "list_cost_usd", "judge_cost_usd"}
_BOOL = {"final", "free_quota"}


class ResultCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path)
        enable_wal(self._db, 30)
        cols = ", ".join(
            f"{c} TEXT" if c in _DECIMAL else f"{c}" for c in _COLS
        )
        self._db.execute(f"CREATE TABLE IF NOT EXISTS calls ({cols}, PRIMARY KEY (model, item_id, repeat))")
        self._db.commit()

    def get(self, model: str, item_id: str, repeat: int) -> CallRecord | None:
        cur = self._db.execute(
            f"SELECT {', '.join(_COLS)} FROM calls WHERE model=? AND item_id=? AND repeat=?", (model, item_id, repeat))
        row = cur.fetchone()
        return self._decode(row) if row else None

    def done(self, model: str, item_id: str, repeat: int, item_hash: str) -> CallRecord | None:
        """The cached final record for this call, if the item has not changed since."""
        rec = self.get(model, item_id, repeat)
        if rec is None or not rec.final or (item_hash and rec.item_hash != item_hash):
            return None
        return rec

    def put(self, rec: CallRecord) -> None:
        if not rec.created_at:
            rec.created_at = time.time()
        d = asdict(rec)
        vals = [str(d[c]) if c in _DECIMAL else (int(d[c]) if c in _BOOL else d[c]) for c in _COLS]
        self._db.execute(f"INSERT OR REPLACE INTO calls ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})",
                         vals)
        self._db.commit()

    def all(self, models: list[str] | None = None) -> list[CallRecord]:
        cur = self._db.execute(f"SELECT {', '.join(_COLS)} FROM calls ORDER BY model, item_id, repeat")
        recs = [self._decode(r) for r in cur.fetchall()]
        return [r for r in recs if models is None or r.model in models]

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _decode(row: tuple[object, ...]) -> CallRecord:
        d = dict(zip(_COLS, row))
        for c in _DECIMAL:
            d[c] = Decimal(str(d[c])) if d[c] is not None else Decimal(0)
        for c in _BOOL:
            d[c] = bool(d[c])
        return CallRecord(**d)  # type: ignore[arg-type]
