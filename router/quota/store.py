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

from router.errors import LedgerUnavailable

__all__ = [
    "Check",
    "Adjust",
    "Acquired",
    "Store",
    "LedgerUnavailable",
    "HOLD_SUFFIX",
    "GRACE_S",
    "build_store",
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


_REDIS_OPTS = {"on_redis_error": str, "expected_replicas": int, "prefix": str, "transport": str,
               "retry_after_s": float, "socket_timeout_s": float}
_SQLITE_OPTS = {"synchronous": str, "mode": str, "busy_timeout_s": float}


def _split_options(url: str, known: dict[str, type]) -> tuple[str, dict[str, object]]:
    """Take our own options out of a URL's query string (`?on_redis_error=local_fallback`)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    opts: dict[str, object] = {}
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in known:
            try:
                opts[k] = known[k](v)
            except ValueError:
                raise ValueError(f"ledger store option {k}={v!r} is not a valid {known[k].__name__}") from None
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), opts


def build_store(url: str | None = None, **options: object) -> Store:
    """`memory://`, `sqlite:///path/ledger.sqlite` (or a bare path), `redis://host:port/db`.

    Store options may also ride on the URL's query string, e.g.
    `redis://10.0.0.5:6379/0?on_redis_error=local_fallback&expected_replicas=3` or
    `sqlite:///var/lib/quotaroute/ledger.sqlite?synchronous=FULL`; keyword options win.
    """
    if not url or url == "memory://":
        from router.quota.memory_store import MemoryStore

        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from router.quota.redis_store import RedisStore

        url, opts = _split_options(url, _REDIS_OPTS)
        return RedisStore(url, **{**opts, **options})  # type: ignore[arg-type]
    opts: dict[str, object] = {}
    if url.startswith("sqlite:///"):
        path, _, query = url[len("sqlite:///") :].partition("?")
        if query:
            _, opts = _split_options("x://h/?" + query, _SQLITE_OPTS)
        url = path
    from router.quota.sqlite_store import SQLiteStore

    return SQLiteStore(url, **{**opts, **options})  # type: ignore[arg-type]
