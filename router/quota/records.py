"""The ledger's records and money units: integer nano-USD conversions, the compiled
pool/window/budget records `router.quota.ledger.Ledger` works on, and what it hands
out (`Reservation`, `Settlement`; it raises `router.errors.PoolUnavailable`).
Re-exported by `router.quota.ledger`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from router.quota.spec import BudgetSpec, PoolSpec
from router.quota.store import Check
from router.quota.windows import Window

__all__ = ["NANO", "FAR", "to_nano", "from_nano", "Reservation", "Settlement"]

NANO = Decimal(1_000_000_000)
FAR = 10 * 365 * 86400.0


def to_nano(usd: Decimal, rounding: str = ROUND_CEILING) -> int:
    return int((Decimal(usd) * NANO).to_integral_value(rounding=rounding))


def from_nano(n: int) -> Decimal:
    return Decimal(n) / NANO


@dataclass(slots=True)
class _Win:
    index: int
    window: Window
    requests: int | None
    tokens: int | None
    count: str  # total | input | output
    pool_id: str = ""
    _slot: Any = None
    _keys: tuple[tuple[str, ...], str, tuple[str, ...], str] | None = None

    def keys(self, ts: float) -> tuple[Any, tuple[str, ...], str, tuple[str, ...], str]:
        """(slot, request span, request charge, token span, token charge), cached per slot."""
        s = self.window.slot(ts)
        if s is not self._slot:
            r = f"w|{self.pool_id}|{self.index}|r|"
            t = f"w|{self.pool_id}|{self.index}|t|"
            self._keys = (tuple(r + k for k in s.span), r + s.charge, tuple(t + k for k in s.span), t + s.charge)
            self._slot = s
        return (s, *self._keys)  # type: ignore[misc]


@dataclass(slots=True)
class _Pool:
    spec: PoolSpec
    id: str
    wins: list[_Win]
    block: bool
    free_call: bool  # a call charged here costs nothing
    grant_unit: str | None = None  # "tokens" | "usd"
    grant_limit: int = 0
    grant_expires: float | None = None
    credit_limit: int | None = None

    def key(self, part: str) -> str:
        return f"{part}|{self.id}"


@dataclass(slots=True)
class _Budget:
    spec: BudgetSpec
    window: Window | None
    limit: int


@dataclass(slots=True)
class Reservation:
    id: str
    model_id: str
    provider: str
    tokens: int
    cost_usd: Decimal
    free_pool: str | None
    pools: tuple[str, ...]
    budgets: tuple[str, ...]
    expires_at: datetime
    soft_exceeded: tuple[str, ...] = ()  # soft budgets this call pushes past their cap
    settled: bool = False
    _checks: list[Check] = field(default_factory=list, repr=False)
    _meta: list[tuple[str, Any]] = field(default_factory=list, repr=False)

    @property
    def warned(self) -> bool:
        return bool(self.soft_exceeded)


@dataclass(frozen=True, slots=True)
class Settlement:
    free_pool: str | None
    billed_usd: Decimal
    free_tokens: int = 0
    free_usd: Decimal = Decimal(0)
    live: bool = True  # False: the reservation had expired; usage was added in full anyway
