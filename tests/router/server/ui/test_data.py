"""What the dashboard reads: exact per-bucket sums, the top groups plus "other",
the latest decisions, and the fallback/error rows."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from router.server.spendlog import SpendLog, summarize
from router.server.ui.data import TOP, Snapshot, _read_spend, _select, aggregate, recent, trouble
from tests.router.server.ui.seed import seed_spend

T0 = 1_800_000_000.0  # a bucket boundary of 3600 s


def row(ts: float, model: str, cost: str, *, key: str = "k", status: int = 200, chain: str | None = None) -> tuple:
    return (ts, "2027-01-15", key, "chat", "auto", model, model.split(":")[0], 1, 1, 0, 0, cost, 5.0, 0.1,
            f"reason for {model}", chain or model, status, "boom" if status >= 400 else None, 0)


def agg_row(ts: float, model: str, provider: str, key: str | None, cost: str, status: int = 200) -> tuple:
    return (ts, model, provider, key, cost, status, 3, 4)


def test_aggregate_sums_each_bucket_exactly() -> None:
    rows = [agg_row(T0 + 10, "a:x", "p", "k1", "0.1"), agg_row(T0 + 20, "a:x", "p", "k1", "0.2", 500),
            agg_row(T0 + 3700, "a:x", "p", "k2", "0.1"), agg_row(T0 + 3800, "b:y", "q", "k2", "0.7"),
            agg_row(T0 + 3900, "b:y", "q", None, "0"),
            agg_row(T0 - 5, "a:x", "p", "k1", "9")]  # before the window: left out
    xs, charts, totals = aggregate(rows, T0, 3600, T0 + 7300)
    assert xs == [T0, T0 + 3600, T0 + 7200] and charts["model"].xs == xs
    assert charts["model"].groups == {"b:y": [0, Decimal("0.7"), 0], "a:x": [Decimal("0.3"), Decimal("0.1"), 0]}
    assert charts["key"].groups["k1"][0] == Decimal("0.3")  # exact, not 0.30000000000000004
    assert charts["key"].groups["-"] == [0, 0, 0]  # rows without a key
    assert charts["provider"].plain()["series"][0] == {"label": "q", "y": [0.0, 0.7, 0.0]}
    assert totals["model"] == [
        {"model": "b:y", "requests": 2, "errors": 0, "tokens": 14, "cost_usd": Decimal("0.7")},
        {"model": "a:x", "requests": 3, "errors": 1, "tokens": 21, "cost_usd": Decimal("0.4")}]


def test_aggregate_keeps_the_largest_groups_and_folds_the_rest() -> None:
    rows = [agg_row(T0 + i, f"m:{i}", "p", "k", str(i + 1)) for i in range(TOP + 3)]
    _, charts, totals = aggregate(rows, T0, 3600, T0 + 100)
    groups = charts["model"].groups
    assert list(groups)[:2] == [f"m:{TOP + 2}", f"m:{TOP + 1}"] and len(groups) == TOP + 1
    assert groups["other"] == [Decimal(1 + 2 + 3)]
    assert len(totals["model"]) == TOP + 3  # the tables list every group


def test_totals_match_summarize(tmp_path: Any) -> None:
    """The dashboard's one-pass totals (grouped by SQLite, or over raw rows for another
    engine's `select`) are the numbers of `quotaroute spend` / GET /v1/spend."""
    path = tmp_path / "s.sqlite"
    now = time.time()
    seed_spend(path, hostile=True, now=now)
    log = SpendLog(path)

    class OtherEngine:  # a spend log that only offers select(): raw rows, grouped in Python
        def flush(self) -> None:
            pass

        def select(self, sql: str, args: tuple) -> list[tuple]:
            return _select(log, sql, args)

    try:
        for spend in (log, OtherEngine()):
            snap = Snapshot(window="24h", since=now - 86400, now=datetime.now(timezone.utc))
            _read_spend(spend, snap, 3600)
            for dim in ("model", "provider", "key"):
                want = {r[dim]: (r["requests"], r["errors"], r["input_tokens"] + r["output_tokens"], r["cost_usd"])
                        for r in summarize(path, by=dim, since=now - 86400)}
                got = {r[dim]: (r["requests"], r["errors"], r["tokens"], r["cost_usd"]) for r in snap.totals[dim]}
                assert got == want
            assert sum(sum(s.plain()["series"][0]["y"]) > 0 for s in snap.charts.values()) == 3
            assert snap.fallbacks == 15 and len(snap.decisions) == 30
    finally:
        log.close()


def test_recent_and_trouble(tmp_path: Any) -> None:
    log = SpendLog(tmp_path / "s.sqlite")
    log.record(row(T0, "a:x", "0.1"))
    log.record(row(T0 + 1, "a:x", "0", status=503))
    log.record(row(T0 + 2, "b:y", "0.2", chain="a:x,b:y"))
    log.record(row(T0 + 3, "b:y", "0.2"))
    log.close()
    assert [r["ts"] for r in recent(log, limit=3)] == [T0 + 3, T0 + 2, T0 + 1]
    got = trouble(log, T0)
    assert [(r["status"], r["fallback_chain"]) for r in got] == [(200, "a:x,b:y"), (503, "a:x")]
    assert trouble(log, T0 + 2) == got[:1]
    empty = SpendLog(tmp_path / "empty.sqlite")
    empty.close()
    assert recent(empty) == [] and trouble(empty, 0) == []
