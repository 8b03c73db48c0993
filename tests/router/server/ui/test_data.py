"""What the dashboard reads: exact per-bucket sums, the top groups plus "other",
the latest decisions, and the fallback/error rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from router.server.spendlog import SpendLog
from router.server.ui.data import TOP, recent, series, trouble

T0 = 1_800_000_000.0  # a bucket boundary of 3600 s


def row(ts: float, model: str, cost: str, *, key: str = "k", status: int = 200, chain: str | None = None) -> tuple:
    return (ts, "2027-01-15", key, "chat", "auto", model, model.split(":")[0], 1, 1, 0, 0, cost, 5.0, 0.1,
            f"reason for {model}", chain or model, status, "boom" if status >= 400 else None, 0)


def test_series_sums_each_bucket_exactly() -> None:
    rows = [(T0 + 10, "a:x", "p", "k1", "0.1"), (T0 + 20, "a:x", "p", "k1", "0.2"),
            (T0 + 3700, "a:x", "p", "k2", "0.1"), (T0 + 3800, "b:y", "q", "k2", "0.7"),
            (T0 - 5, "a:x", "p", "k1", "9")]  # before the window: left out
    s = series(rows, T0, 3600, T0 + 7300, "model")
    assert s.xs == [T0, T0 + 3600, T0 + 7200]
    assert s.groups == {"b:y": [0, Decimal("0.7"), 0], "a:x": [Decimal("0.3"), Decimal("0.1"), 0]}
    assert series(rows, T0, 3600, T0 + 7300, "key").groups["k1"][0] == Decimal("0.3")  # exact, not 0.30000000000000004
    assert series(rows, T0, 3600, T0 + 7300, "provider").plain()["series"][0] == {"label": "q", "y": [0.0, 0.7, 0.0]}


def test_series_keeps_the_largest_groups_and_folds_the_rest() -> None:
    rows = [(T0 + i, f"m:{i}", "p", "k", str(i + 1)) for i in range(TOP + 3)]
    s = series(rows, T0, 3600, T0 + 100, "model")
    assert list(s.groups)[:2] == [f"m:{TOP + 2}", f"m:{TOP + 1}"] and len(s.groups) == TOP + 1
    assert s.groups["other"] == [Decimal(1 + 2 + 3)]


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
