"""The store interface the ledger runs on: integer counters with expiry, and
reservations that hold amounts on counters until settled, released or expired.

Everything the ledger needs is built on three atomic operations:

* `acquire(res_id, checks, expires_at, now)`: for every check, `sum(span) + amount
  <= limit` (limit None = no check); if all fit, charge every amount to its
  `charge` counter and remember the reservation; else charge nothing.
  Expired reservations are swept first, so a crashed process cannot leak capacity.
* `settle(res_id, adjusts, now, final)`: replace what the reservation held on each
  adjusted counter with the actual amount (optionally clamped so the counter never
  passes a limit: grants); `final` drops the reservation and undoes what it still
  held. A reservation that already expired is settled by adding the full actual
  amounts: a late commit is never lost.
* `release(res_id, now)`: undo what the reservation holds (the call provably never
  reached a vendor, or the vendor billed nothing).
* `take(checks, now)`: check and charge like `acquire`, without a reservation
  (per-key request rate windows: a request counts once, whatever happens next).

The crash rule: a reservation that expires unsettled is **charged at its reserved
amounts**, never released to zero. Its call may have reached the vendor before the
process died (kill -9, OOM, power cut), and the vendor bills it either way. The sweep
drops only the in-flight holds and keeps the reservation as a tombstone for
`GRACE_S`, so a commit that arrives late replaces the reserved amounts with the
actual ones (not on top of them), and a late release still gives them back.

Money is kept as integer nano-USD; tokens and requests as integers. Flags
(exhausted-until, cool-down-until) are counters whose value is the end time in ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Check",
    "Adjust",
    "Acquired",
    "Store",
    "HOLD_SUFFIX",
    "GRACE_S",
]

HOLD_SUFFIX = "#h"  # counter holding in-flight (reserved, unsettled) amounts of a tracked check
GRACE_S = 86400.0  # how long an expired (charged) reservation is remembered for a late commit


@dataclass(frozen=True, slots=True)
class Check:
    span: tuple[str, ...]  # counters whose sum is the current usage
    charge: str  # counter the amount is added to
    amount: int
    limit: int | None  # None = charge without checking (soft budgets)
    expire_at: float  # unix time after which `charge` may be dropped
    hold: bool = False  # also track the in-flight amount on charge + HOLD_SUFFIX


@dataclass(frozen=True, slots=True)
class Adjust:
    charge: str
    actual: int
    expire_at: float
    clamp: int | None = None  # applied = max(0, min(actual, clamp - (sum(span) - held)))
    span: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Acquired:
    ok: bool
    failed: int = -1  # index of the first check that did not fit
    totals: tuple[int, ...] = ()  # per check: usage after charging (ok) / before (failed check)


@runtime_checkable
class Store(Protocol):
    async def acquire(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired: ...

    async def settle(
        self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True
    ) -> tuple[bool, list[int]]: ...

    async def release(self, res_id: str, now: float) -> bool: ...

    async def take(self, checks: Sequence[Check], now: float) -> Acquired: ...

    async def read(self, keys: Sequence[str], now: float) -> list[int]: ...

    async def raise_to(self, key: str, value: int, expire_at: float, now: float) -> None: ...

    async def sweep(self, now: float) -> int: ...

    async def aclose(self) -> None: ...
