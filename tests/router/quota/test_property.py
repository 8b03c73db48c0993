"""Hypothesis: whatever the interleaving of reserve/commit/release/expiry and time,
what the ledger granted never exceeds any limit (per rolling minute, per calendar
day, tokens per day, hard budget)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from router.errors import BudgetExceeded
from router.errors import PoolUnavailable
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import load_quota_config
from router.quota.windows import calendar_bounds
from router.types import Usage

RPM, RPD, TPD, BUDGET = 4, 9, 900, Decimal("0.05")
START = datetime(2026, 3, 7, 23, 58, tzinfo=timezone.utc)

op = st.one_of(
    st.tuples(st.just("reserve"), st.integers(1, 200), st.sampled_from(["0.001", "0.004", "0.01"])),
    st.tuples(st.just("commit"), st.integers(0, 30), st.floats(0, 1)),
    st.tuples(st.just("release"), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("wait"), st.sampled_from([1, 7, 30, 61, 600, 3600]), st.just(0)),
)


async def run(ops, store) -> None:
    pools, budgets = load_quota_config(
        {"quotas": [{"id": "p", "provider": "v", "limits": [
            {"per": "minute", "requests": RPM},
            {"per": "day", "requests": RPD, "tokens": TPD, "reset": "calendar", "tz": "America/Los_Angeles"}]}],
         "budgets": [{"id": "b", "period": "total", "limit_usd": str(BUDGET)}]},
        file="prop", include_defaults=False)
    L = Ledger(store, pools, budgets, default_ttl_s=90)
    now = START
    open_: list = []
    final: list[dict] = []  # every grant: time, tokens finally charged, cost, state
    for kind, a, b in ops:
        if kind == "reserve":
            try:
                r = await L.reserve("v:m", tokens=a, cost_usd=Decimal(b), now=now)
            except (PoolUnavailable, BudgetExceeded):
                continue
            g = {"t": now, "tokens": a, "cost": Decimal(b), "state": "held", "exp": now + timedelta(seconds=90)}
            final.append(g)
            open_.append((r, g))
        elif kind in ("commit", "release") and open_:
            r, g = open_.pop(a % len(open_))
            if now >= g["exp"]:
                g["state"] = "expired"  # swept: charged at what it reserved; do not settle late here
                continue
            if kind == "commit":
                used = int(g["tokens"] * b)
                await L.commit(r, Usage(input_tokens=used), g["cost"], now)
                g.update(state="committed", tokens=used)
            else:
                await L.release(r, now)
                g["state"] = "released"
        elif kind == "wait":
            now += timedelta(seconds=a)
    for g in final:
        if g["state"] == "held" and now >= g["exp"]:
            g["state"] = "expired"
    # an expired grant stays charged at what it reserved (its call may have reached the vendor)
    counted = [g for g in final if g["state"] in ("committed", "held", "expired")]
    # per rolling minute (true sliding window), counting every grant that held capacity
    times = sorted(g["t"] for g in counted)
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < timedelta(seconds=60)) <= RPM
    # per calendar day in Los Angeles (the run crosses the 2026-03-08 DST change)
    days: dict = {}
    for g in counted:
        days.setdefault(calendar_bounds("day", "America/Los_Angeles", g["t"])[0], []).append(g)
    for gs in days.values():
        assert len(gs) <= RPD
        assert sum(g["tokens"] for g in gs) <= TPD
    assert sum(g["cost"] for g in counted) <= BUDGET
    await L.aclose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=60))
def test_granted_never_exceeds_limits_memory(ops):
    asyncio.run(run(ops, MemoryStore()))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_granted_never_exceeds_limits_sqlite(tmp_path_factory, ops):
    from router.quota.sqlite_store import SQLiteStore

    asyncio.run(run(ops, SQLiteStore(str(tmp_path_factory.mktemp("p") / "l.sqlite"))))
