"""Subprocess worker for the multi-process ledger tests (run with -m from the repo root).

python -m tests.router.quota._worker race|hold STORE_URL PREFIX LIMIT BUDGET_USD N
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal

from router.errors import BudgetExceeded
from router.errors import PoolUnavailable
from router.quota.ledger import Ledger
from router.quota.spec import load_quota_config
from router.quota.stores import build_store
from router.types import Usage


def make_ledger(url: str, prefix: str, limit: int, budget: str) -> Ledger:
    pools, budgets = load_quota_config(
        {"quotas": [{"id": "p", "provider": "w", "limits": [{"per": "day", "requests": limit, "tokens": limit * 10}]}],
         "budgets": [{"id": "b", "period": "total", "limit_usd": budget}]},
        file="worker", include_defaults=False)
    opts = {"prefix": prefix} if url.startswith("redis") else {}
    return Ledger(build_store(url, **opts), pools, budgets)


async def race(L: Ledger, n: int) -> dict:
    granted = denied = committed = 0

    async def one() -> None:
        nonlocal granted, denied, committed
        try:
            r = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.001"), now=datetime.now(timezone.utc))
        except (PoolUnavailable, BudgetExceeded):
            denied += 1
            return
        granted += 1
        await asyncio.sleep(0)
        await L.commit(r, Usage(input_tokens=4, output_tokens=6), Decimal("0.001"), datetime.now(timezone.utc))
        committed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return {"granted": granted, "denied": denied, "committed": committed}


async def hold(L: Ledger, n: int) -> None:
    now = datetime.now(timezone.utc)
    res = [await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.001"), now=now, ttl_s=5) for _ in range(n)]
    for r in res[:4]:
        await L.commit(r, Usage(input_tokens=4, output_tokens=6), Decimal("0.001"), now)
    print(json.dumps({"ready": True, "held": n - 4, "committed": 4}), flush=True)
    time.sleep(120)  # parent SIGKILLs us while we hold n-4 reservations


async def main() -> None:
    mode, url, prefix, limit, budget, n = sys.argv[1:7]
    L = make_ledger(url, prefix, int(limit), budget)
    if mode == "race":
        out = await race(L, int(n))
        await L.aclose()
        print(json.dumps(out), flush=True)
    else:
        await hold(L, int(n))


if __name__ == "__main__":
    asyncio.run(main())
