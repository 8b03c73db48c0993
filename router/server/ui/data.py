"""What the dashboard shows, read from the spend log and the router's ledger view.

    Snapshot = await snapshot(handed, window)     # everything one page needs

Totals per model, provider and key come from `summarize()` (the same function behind
`GET /v1/spend` and `quotaroute spend`): exact `Decimal` money. The charts add a time
axis: one pass over the window's rows (`ts`, model, provider, key, cost) sums each
bucket exactly, keeps the `TOP` largest groups per dimension and folds the rest into
"other"; the chart draws those sums as floats. Free pools and budgets come from
`router.quota_view(now)` (the data behind `GET /v1/quota`), upstream keys cooling off
from the router's health book.

The SQL is plain (SELECT ... WHERE ... ORDER BY ... LIMIT, `?` placeholders). A spend
log that is not the SQLite one may offer `select(sql, args) -> list[tuple]` (and
`summarize(by=, since=)`); the dashboard then reads through those.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.server.spendlog import summarize

__all__ = ["WINDOWS", "Snapshot", "Series", "snapshot", "series", "recent", "trouble", "TOP", "ROWS"]

# name -> (seconds shown, bucket seconds)
WINDOWS = {"24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400)}
TOP = 8  # groups drawn per chart; the rest is "other"
ROWS = 30  # rows in the decision and trouble tables
DIMENSIONS = ("model", "provider", "key")
_COL = {"model": 1, "provider": 2, "key": 3}
_ROW_COLS = ("ts, key_id, endpoint, requested_model, model, provider, cost_usd, latency_ms, route_reason, "
             "fallback_chain, status, error, stream")


@dataclass
class Series:
    """One chart: bucket start times (unix s) and, per group, the cost of each bucket."""

    xs: list[int]
    groups: dict[str, list[Decimal]]

    def plain(self) -> dict[str, Any]:
        return {"x": self.xs, "series": [{"label": g, "y": [float(v) for v in ys]} for g, ys in self.groups.items()]}


@dataclass
class Snapshot:
    window: str
    since: float
    now: datetime
    spend_enabled: bool = True
    totals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dimension -> summarize() rows
    charts: dict[str, Series] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    trouble: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: int = 0  # requests in the window that needed more than one attempt
    pools: list[Any] = field(default_factory=list)  # PoolView
    budgets: list[Any] = field(default_factory=list)  # BudgetView
    bad_keys: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, shown on the page


def _select_sqlite(path: Path, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        con.close()


def _select(spend: Any, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    sel = getattr(spend, "select", None)
    if sel is not None:
        return list(sel(sql, args))
    return _select_sqlite(Path(spend.path), sql, args)


def series(rows: list[tuple[Any, ...]], since: float, bucket_s: int, now: float, dim: str) -> Series:
    """Exact per-bucket sums of (ts, model, provider, key, cost) rows for one dimension."""
    start = int(since // bucket_s * bucket_s)
    n = max(1, int((now - start) // bucket_s) + 1)
    xs = [start + i * bucket_s for i in range(n)]
    col = _COL[dim]
    per: dict[str, list[Decimal]] = {}
    total: dict[str, Decimal] = {}
    for r in rows:
        i = int((r[0] - start) // bucket_s)
        if not 0 <= i < n:
            continue
        g = r[col] or "-"
        cost = Decimal(r[4])
        ys = per.get(g)
        if ys is None:
            ys = per[g] = [Decimal(0)] * n
            total[g] = Decimal(0)
        ys[i] += cost
        total[g] += cost
    order = sorted(per, key=lambda g: (-total[g], g))
    groups = {g: per[g] for g in order[:TOP]}
    if len(order) > TOP:
        other = [Decimal(0)] * n
        for g in order[TOP:]:
            other = [a + b for a, b in zip(other, per[g])]
        groups["other"] = other
    return Series(xs, groups)


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(("ts", "key_id", "endpoint", "requested_model", "model", "provider", "cost_usd", "latency_ms",
                     "route_reason", "fallback_chain", "status", "error", "stream"), r))


def recent(spend: Any, limit: int = ROWS) -> list[dict[str, Any]]:
    """The latest requests, newest first."""
    return [_row(r) for r in _select(spend, f"SELECT {_ROW_COLS} FROM spend ORDER BY ts DESC LIMIT ?", (limit,))]


def trouble(spend: Any, since: float, limit: int = ROWS) -> list[dict[str, Any]]:
    """The latest failed requests and requests that fell back (more than one attempt), newest first."""
    sql = (f"SELECT {_ROW_COLS} FROM spend WHERE ts >= ? AND (status >= 400 OR fallback_chain LIKE ?) "
           "ORDER BY ts DESC LIMIT ?")
    return [_row(r) for r in _select(spend, sql, (since, "%,%", limit))]


def _totals(spend: Any, by: str, since: float) -> list[dict[str, Any]]:
    own = getattr(spend, "summarize", None)
    if own is not None:
        return list(own(by=by, since=since))
    return summarize(spend.path, by=by, since=since)


def _read_spend(spend: Any, snap: Snapshot, bucket_s: int) -> None:
    spend.flush()
    now = time.time()
    rows = _select(spend, "SELECT ts, model, provider, key_id, cost_usd FROM spend WHERE ts >= ?", (snap.since,))
    for dim in DIMENSIONS:
        snap.charts[dim] = series(rows, snap.since, bucket_s, now, dim)
        snap.totals[dim] = sorted(_totals(spend, dim, snap.since), key=lambda r: (-r["cost_usd"], str(r[dim])))
    snap.decisions = recent(spend)
    snap.trouble = trouble(spend, snap.since)
    got = _select(spend, "SELECT COUNT(*) FROM spend WHERE ts >= ? AND fallback_chain LIKE ?", (snap.since, "%,%"))
    snap.fallbacks = int(got[0][0]) if got else 0


async def snapshot(h: Any, window: str) -> Snapshot:
    """Everything the page shows for `window` (a key of WINDOWS). Parts that cannot be
    read leave a note instead of failing the page."""
    span, bucket_s = WINDOWS[window]
    now = datetime.now(timezone.utc)
    snap = Snapshot(window=window, since=now.timestamp() - span, now=now)
    if h.spend is None:
        snap.spend_enabled = False
    else:
        try:
            await asyncio.to_thread(_read_spend, h.spend, snap, bucket_s)
        except Exception as e:  # noqa: BLE001 - the rest of the page still renders
            snap.notes.append(f"spend log unreadable: {type(e).__name__}")
    try:
        view = await h.router.quota_view(now)
    except Exception as e:  # noqa: BLE001
        view = None
        snap.notes.append(f"quota ledger unreadable: {type(e).__name__}")
    if view is not None:
        snap.pools = sorted(view.pools.values(), key=lambda p: (not p.free, p.pool_id))
        snap.budgets = sorted(view.budgets, key=lambda b: (b.scope, b.match, b.budget_id))
    hb = h.router.health
    if hb is not None:
        try:
            snap.bad_keys = [{"id": k, **v} for k, v in hb.bad_entries().items()]
        except Exception as e:  # noqa: BLE001
            snap.notes.append(f"health book unreadable: {type(e).__name__}")
    return snap
