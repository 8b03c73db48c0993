"""What the dashboard shows, read from the spend log and the router's ledger view.

    Snapshot = await snapshot(handed, window)     # everything one page needs

Spend over time and the totals per model, provider and key come from one pass over
the window's rows, grouped by SQLite (`aggregate` does the same over raw rows):
requests, errors, tokens and exact `Decimal` money per (bucket, model, provider, key),
then per dimension; the same numbers `summarize()`
(behind `GET /v1/spend` and `quotaroute spend`) gives, which a test pins, read once
instead of three times. Each chart keeps the `TOP` largest groups and folds the rest
into "other", and draws the exact sums as floats. Free pools and budgets come from
`router.quota_view(now)` (the data behind `GET /v1/quota`), upstream keys cooling off
from the router's health book.

A spend log that is not the SQLite one may offer `select(sql, args) -> list[tuple]`;
the dashboard then sends it only plain SQL (SELECT ... WHERE ... ORDER BY ... LIMIT,
`?` placeholders, no grouping or engine functions) and groups in Python.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["WINDOWS", "Snapshot", "Series", "snapshot", "aggregate", "recent", "trouble", "TOP", "ROWS"]

# name -> (seconds shown, bucket seconds)
WINDOWS = {"24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400)}
TOP = 8  # groups drawn per chart; the rest is "other"
ROWS = 30  # rows in the decision and trouble tables
DIMENSIONS = ("model", "provider", "key")
_COL = {"model": 1, "provider": 2, "key": 3}  # positions in an aggregate() cell key
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
    totals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # dimension -> one row per group
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


def _axis(since: float, bucket_s: int, now: float) -> tuple[int, int, list[int]]:
    start = int(since // bucket_s * bucket_s)
    n = max(1, int((now - start) // bucket_s) + 1)
    return start, n, [start + i * bucket_s for i in range(n)]


Cells = dict[tuple[Any, ...], list[Any]]  # (bucket, model, provider, key) -> [requests, errors, tokens, [cost text]]


def _cells(rows: Iterable[tuple[Any, ...]], start: int, n: int, bucket_s: int) -> Cells:
    cells: Cells = {}
    for ts, model, provider, key, cost, status, inp, out in rows:
        i = int((ts - start) // bucket_s)
        if not 0 <= i < n:
            continue
        c = cells.get((i, model, provider, key))
        if c is None:
            c = cells[(i, model, provider, key)] = [0, 0, 0, []]
        c[0] += 1
        if (status or 0) >= 400:
            c[1] += 1
        c[2] += (inp or 0) + (out or 0)
        c[3].append(cost)
    return cells


def _cells_sqlite(path: Path, since: float, start: int, n: int, bucket_s: int) -> Cells:
    """`_cells` grouped by SQLite itself (the costs come back as one text per group, summed
    exactly here): a fraction of the rows cross into Python."""
    sql = ("SELECT CAST((ts - ?) / ? AS INTEGER), model, provider, key_id, COUNT(*), "
           "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)), "
           "GROUP_CONCAT(cost_usd, ' ') FROM spend WHERE ts >= ? GROUP BY 1, 2, 3, 4")
    return {(i, m, p, k): [reqs, errs, toks, costs.split(" ")]
            for i, m, p, k, reqs, errs, toks, costs in _select_sqlite(path, sql, (start, bucket_s, since)) if 0 <= i < n}


def aggregate(rows: Iterable[tuple[Any, ...]], since: float, bucket_s: int, now: float
              ) -> tuple[list[int], dict[str, Series], dict[str, list[dict[str, Any]]]]:
    """One pass over (ts, model, provider, key, cost, status, input, output) rows: the
    bucket start times, one chart per dimension and the totals per group (requests,
    errors, tokens, exact cost), largest cost first. Money is summed as `Decimal` once
    per (bucket, model, provider, key) group."""
    start, n, xs = _axis(since, bucket_s, now)
    return (xs, *_fold(_cells(rows, start, n, bucket_s), xs))


def _fold(cells: Cells, xs: list[int]) -> tuple[dict[str, Series], dict[str, list[dict[str, Any]]]]:
    n = len(xs)
    charts: dict[str, Series] = {}
    totals: dict[str, list[dict[str, Any]]] = {}
    summed = [(k, c[0], c[1], c[2], sum(map(Decimal, c[3]), Decimal(0))) for k, c in cells.items()]
    for dim in DIMENSIONS:
        col = _COL[dim]
        per: dict[str, list[Decimal]] = {}
        tot: dict[str, dict[str, Any]] = {}
        for k, reqs, errs, toks, cost in summed:
            g = k[col] or "-"
            ys = per.get(g)
            if ys is None:
                ys = per[g] = [Decimal(0)] * n
                tot[g] = {dim: g, "requests": 0, "errors": 0, "tokens": 0, "cost_usd": Decimal(0)}
            ys[k[0]] += cost
            t = tot[g]
            t["requests"] += reqs
            t["errors"] += errs
            t["tokens"] += toks
            t["cost_usd"] += cost
        order = sorted(tot, key=lambda g: (-tot[g]["cost_usd"], -tot[g]["requests"], g))
        groups = {g: per[g] for g in order[:TOP]}
        if len(order) > TOP:
            groups["other"] = [sum(col_, Decimal(0)) for col_ in zip(*(per[g] for g in order[TOP:]))]
        charts[dim] = Series(xs, groups)
        totals[dim] = [tot[g] for g in order]
    return charts, totals


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


def _read_spend(spend: Any, snap: Snapshot, bucket_s: int) -> None:
    spend.flush()
    now = time.time()
    if getattr(spend, "select", None) is not None:
        rows = _select(spend, "SELECT ts, model, provider, key_id, cost_usd, status, input_tokens, output_tokens "
                              "FROM spend WHERE ts >= ?", (snap.since,))
        _, snap.charts, snap.totals = aggregate(rows, snap.since, bucket_s, now)
    else:
        start, n, xs = _axis(snap.since, bucket_s, now)
        snap.charts, snap.totals = _fold(_cells_sqlite(Path(spend.path), snap.since, start, n, bucket_s), xs)
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
