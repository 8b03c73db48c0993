"""Quota-aware replay: the test prompts as one day of traffic against free quotas.

Each test prompt gets a timestamp spread over 24 h (sorted uniform draws, seeded) and
goes through the real ledger (`router.quota.Ledger` on a `MemoryStore`): reserve
before the call, commit the recorded usage and cost after it; the ledger's
`Settlement.billed_usd` is what the call really costs (free pool -> 0, grant ->
covered part free). Three strategies on the same router decisions:

* ``paid-only``       the router's choice, every call billed at list price;
* ``quota-oblivious`` the same choices, but calls that happen to land on a model with
  free capacity are free (what you get by just configuring the quotas);
* ``free-first``      per request: the paid choice when it has free capacity now,
  else the cheapest model with free capacity in a resetting window (daily free tier:
  use it or lose it) whose expected quality is within ``tolerance`` of the paid
  choice's, else the paid choice. One-time money grants only pay for the calls that
  land on them: substituting a dearer model to spend a grant saves nothing.

Money is summed as Decimal.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np

from benchmarks.datasets import MODEL_ID_MAP, Dataset
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import load_quota_config
from router.types import Usage

__all__ = ["DEMO_QUOTAS", "quota_replay"]

# The bundled demo quotas: a small daily free pool on two cheap vendors and a one-time
# grant on a third. Pools fall back to paid when empty (free tier on a paid account).
DEMO_QUOTAS: dict[str, Any] = {
    "quotas": [
        {"id": "mistral-free-daily", "models": ["mistral:*"], "free": True, "on_exhaust": "paid",
         "limits": [{"per": "day", "requests": 150, "reset": "calendar", "tz": "UTC"}]},
        {"id": "together-free-daily", "models": ["together:*"], "free": True, "on_exhaust": "paid",
         "limits": [{"per": "day", "requests": 100, "reset": "calendar", "tz": "UTC"}]},
        {"id": "openai-grant", "models": ["openai:*"], "free": True, "on_exhaust": "paid",
         "grant": {"usd": "0.50"}},
    ]
}


def _usd(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _free_now(view: Any, model_id: str, now: datetime, tokens: int, cost: float, *, grants: bool) -> bool:
    """A free pool can take this call now. `PoolView.usable` only checks that a money
    grant is above zero, so the call's own cost is checked here (else a nearly spent
    grant keeps attracting calls it cannot cover). With ``grants=False`` only
    use-it-or-lose-it pools count (windows that reset): a one-time money grant is as
    good as cash, so spending it on a substitute model saves nothing."""
    for pool in view.pools_for(model_id):
        if not pool.free or not pool.usable(now, tokens):
            continue
        if pool.remaining_usd is not None:
            if grants and pool.remaining_usd >= _usd(cost):
                return True
            continue
        if grants or pool.resets_at is not None:
            return True
    return False


async def _run(test: Dataset, strategy: str, paid_choice: Any, qhat: Any, pools: list[Any], stamps: list[datetime], tolerance: float) -> dict[str, Any]:
    ids = [MODEL_ID_MAP.get(m, m) for m in test.models]
    ledger = Ledger(MemoryStore(), pools)
    ledger.track(ids)
    billed = Decimal(0)
    listed = Decimal(0)
    free_calls = 0
    quality = np.zeros(test.n_prompts)
    for i, now in enumerate(stamps):
        j = int(paid_choice[i])
        if strategy == "free-first":
            view = await ledger.view(now, ids)
            tok = int(test.input_tokens[i].max() + test.output_tokens[i].max())
            if not _free_now(view, ids[j], now, tok, test.cost_usd[i, j], grants=True):
                free = [k for k, mid in enumerate(ids)
                        if qhat[i, k] >= qhat[i, j] - tolerance and _free_now(view, mid, now, tok, test.cost_usd[i, k], grants=False)]
            else:
                free = []
            if free:
                # the cheapest free candidate: spends money grants slowest
                j = min(free, key=lambda k: (test.cost_usd[i, k], -qhat[i, k]))
        cost = _usd(test.cost_usd[i, j])
        res = await ledger.reserve(ids[j], tokens=int(test.input_tokens[i, j] + test.output_tokens[i, j]),
                                   input_tokens=int(test.input_tokens[i, j]), cost_usd=cost, now=now)
        st = await ledger.commit(res, Usage(input_tokens=int(test.input_tokens[i, j]), output_tokens=int(test.output_tokens[i, j])), cost, now)
        bill = cost if strategy == "paid-only" else st.billed_usd
        billed += bill
        listed += cost
        free_calls += int(bill < cost)
        quality[i] = test.quality[i, j]
    await ledger.aclose()
    n = test.n_prompts
    return {
        "strategy": strategy,
        "quality": float(quality.mean()),
        "effective_cost_usd": str(billed.quantize(Decimal("0.000001"))),
        "list_cost_usd": str(listed.quantize(Decimal("0.000001"))),
        "effective_cost_per_1k_queries_usd": float(billed / n * 1000),
        "free_calls": free_calls,
        "n": n,
    }


def quota_replay(test: Dataset, paid_choice: Any, qhat: Any, *, config: dict[str, Any] | None = None,
                 config_file: str = "<demo quotas>", seed: int = 0, tolerance: float = 0.02,
                 day: datetime | None = None) -> dict[str, Any]:
    """Replay `test` in timestamp order; returns the three strategies' figures."""
    # only the configured pools: the catalog's default free tiers name today's models,
    # not the dataset's (and would silently change the replay)
    pools, _budgets = load_quota_config(config or DEMO_QUOTAS, file=config_file, include_defaults=False)
    start = day or datetime(2026, 1, 5, tzinfo=timezone.utc)
    secs = np.sort(np.random.default_rng(seed).uniform(0, 86400 - 1, test.n_prompts))
    order = np.random.default_rng(seed + 1).permutation(test.n_prompts)  # traffic order
    t = test.subset(order)
    pc, qh = np.asarray(paid_choice)[order], np.asarray(qhat)[order]
    stamps = [start + timedelta(seconds=float(s)) for s in secs]

    async def go() -> list[dict[str, Any]]:
        return [await _run(t, s, pc, qh, pools, stamps, tolerance) for s in ("paid-only", "quota-oblivious", "free-first")]

    rows = asyncio.run(go())
    return {"pools": [p.id for p in pools], "tolerance": tolerance, "strategies": rows}
