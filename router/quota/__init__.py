"""Free-quota and budget ledger: pools (free tiers, grants, credit, rate limits),
budgets, and the memory / SQLite / Redis stores. Names load lazily (nothing at import)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Ledger",
    "Reservation",
    "Settlement",
    "PoolUnavailable",
    "PoolSpec",
    "WindowSpec",
    "GrantSpec",
    "BudgetSpec",
    "load_quota_config",
    "default_pools",
    "LedgerView",
    "PoolView",
    "BudgetView",
    "LedgerUnavailable",
    "build_store",
    "MemoryStore",
    "SQLiteStore",
    "RedisStore",
]

_WHERE = {
    "Ledger": "ledger", "Reservation": "records", "Settlement": "records", "PoolUnavailable": "router.errors",
    "PoolSpec": "spec", "WindowSpec": "spec", "GrantSpec": "spec", "BudgetSpec": "spec",
    "load_quota_config": "spec", "default_pools": "spec", "LedgerView": "view", "PoolView": "view",
    "BudgetView": "view", "LedgerUnavailable": "router.errors", "build_store": "stores", "MemoryStore": "memory_store",
    "SQLiteStore": "sqlite_store", "RedisStore": "redis_store",
}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'router.quota' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod if "." in mod else f"router.quota.{mod}"), name)
    globals()[name] = value
    return value
