"""The read-only snapshot of quota/budget state that the pure routing core sees.

The ledger (router/quota/ledger.py) builds a `LedgerView` with `ledger.view(now)`;
`router.engine.choose()` reads it and never does I/O. This file is the contract
between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = ["PoolView", "BudgetView", "LedgerView"]

PoolKind = Literal["free", "grant", "credit", "rate"]


@dataclass(frozen=True, slots=True)
class PoolView:
    """One quota pool (a free tier window, a one-time grant, a credit balance, or a
    plain rate limit). `free=True` means capacity with zero marginal cost."""

    pool_id: str
    kind: PoolKind
    free: bool
    # What happens to requests on this pool's models once it is empty:
    #   "block" -> the model cannot be used until `resets_at` (free-tier-only keys, :free models, rate limits)
    #   "paid"  -> the model is still usable, billed at its list price (a grant on a paid account)
    on_exhaust: Literal["block", "paid"] = "block"
    remaining_requests: int | None = None  # None = unlimited / not tracked
    remaining_tokens: int | None = None
    remaining_usd: Decimal | None = None  # money grants / credit balances
    resets_at: datetime | None = None  # next window reset (None = never, e.g. a grant)
    exhausted_until: datetime | None = None  # learned from QuotaExhausted
    cooldown_until: datetime | None = None  # learned from RateLimited retry_after

    def usable(self, now: datetime, tokens: int = 0, requests: int = 1) -> bool:
        """Can this pool take a request of `tokens` (input+expected output) now?"""
        if self.exhausted_until is not None and now < self.exhausted_until:
            return False
        if self.cooldown_until is not None and now < self.cooldown_until:
            return False
        if self.remaining_requests is not None and self.remaining_requests < requests:
            return False
        if self.remaining_tokens is not None and self.remaining_tokens < tokens:
            return False
        if self.remaining_usd is not None and self.remaining_usd <= 0:
            return False
        return True


@dataclass(frozen=True, slots=True)
class BudgetView:
    budget_id: str
    scope: Literal["key", "user", "tag", "model", "provider", "global"]
    match: str  # the key id / user / tag / model id / provider name ("*" for global)
    period: Literal["day", "month", "total"]
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal = Decimal(0)
    hard: bool = True
    resets_at: datetime | None = None

    def headroom(self) -> Decimal:
        return self.limit_usd - self.spent_usd - self.reserved_usd


@dataclass(frozen=True, slots=True)
class LedgerView:
    pools: Mapping[str, PoolView] = field(default_factory=dict)
    model_pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "provider:model" -> pool ids
    budgets: tuple[BudgetView, ...] = ()
    # pool id -> "provider:model" globs it applies to; used for models not listed in
    # `model_pools` (e.g. "openrouter:*:free" covers every :free model).
    pool_globs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def pools_for(self, model_id: str) -> list[PoolView]:
        ids = self.model_pools.get(model_id)
        if ids is None:
            ids = tuple(p for p, pats in self.pool_globs.items() if any(fnmatchcase(model_id, g) for g in pats))
        return [self.pools[p] for p in ids if p in self.pools]

    def blocked(self, model_id: str, now: datetime, tokens: int = 0) -> PoolView | None:
        """The first pool that blocks this model now (a rate limit, cool-down, or an
        empty block-on-exhaust pool), else None."""
        for p in self.pools_for(model_id):
            if p.on_exhaust == "block" and not p.usable(now, tokens):
                return p
        return None

    def free_pool(self, model_id: str, now: datetime, tokens: int = 0) -> PoolView | None:
        """A free pool with capacity for this request, if any (zero marginal cost)."""
        for p in self.pools_for(model_id):
            if p.free and p.usable(now, tokens):
                return p
        return None
