"""Window arithmetic: which counter a moment falls into, and when it resets.

Calendar windows start at the top of the minute/hour, at local midnight or on the
first of the month *in the vendor's time zone* (a DST day in America/Los_Angeles
is 23 or 25 hours long: the arithmetic is done on local dates, then converted).

Rolling windows are kept as `ROLLING_BUCKETS` sub-buckets: a request is counted
while any part of its bucket lies inside the last `per`, so the count is never
lower than the true rolling count (never over-grants) and capacity comes back at
most one bucket (1/10 of the window) late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "ROLLING_BUCKETS",
    "calendar_bounds",
    "period_bounds",
    "Slot",
    "Window",
    "to_ts",
    "from_ts",
]

ROLLING_BUCKETS = 10
_LENGTH = {"minute": 60, "hour": 3600, "day": 86400}
UTC = timezone.utc


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (e.g. datetime.now(timezone.utc))")
    return dt.timestamp()


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    # fold=0: if midnight were ambiguous/skipped, zoneinfo picks the earlier offset.
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def calendar_bounds(per: str, tz: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar window containing `now`, as UTC datetimes."""
    z = _zone(tz)
    local = now.astimezone(z)
    if per == "minute":
        start = local.replace(second=0, microsecond=0)
        s = start.astimezone(UTC)
        return s, s + timedelta(minutes=1)
    if per == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        s = start.astimezone(UTC)
        return s, s + timedelta(hours=1)  # elapsed-time arithmetic in UTC: DST-safe
    if per == "day":
        d = local.date()
        return (
            _local_midnight(d, z).astimezone(UTC),
            _local_midnight(d + timedelta(days=1), z).astimezone(UTC),
        )
    if per == "month":
        d = local.date().replace(day=1)
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return _local_midnight(d, z).astimezone(UTC), _local_midnight(nxt, z).astimezone(UTC)
    raise ValueError(f"unknown period {per!r}")


def period_bounds(period: str, tz: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Budget periods: day/month are calendar windows; "total" never resets."""
    if period == "total":
        return None, None
    return calendar_bounds(period, tz, now)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a moment falls in a window.

    charge: the counter suffix a new reservation is added to
    span: counter suffixes whose sum is the window's current usage
    expire_at: unix time after which the `charge` counter no longer matters
    resets_at: unix time of the next reset (calendar end; for rolling, the next bucket edge)
    """

    charge: str
    span: tuple[str, ...]
    expire_at: float
    resets_at: float


@dataclass(slots=True)
class Window:
    """A window of a pool; caches the current slot so the hot path is one compare."""

    per: str
    mode: str  # "rolling" | "calendar"
    tz: str = "UTC"
    _cache: tuple[float, float, Slot] | None = field(default=None, repr=False)

    def slot(self, ts: float) -> Slot:
        c = self._cache
        if c is not None and c[0] <= ts < c[1]:
            return c[2]
        if self.mode == "rolling":
            b = _LENGTH[self.per] / ROLLING_BUCKETS
            idx = int(ts // b)
            lo, hi = idx * b, (idx + 1) * b
            span = tuple(f"r{k}" for k in range(idx - ROLLING_BUCKETS, idx + 1))
            s = Slot(charge=f"r{idx}", span=span, expire_at=(idx + ROLLING_BUCKETS + 1) * b, resets_at=hi)
        else:
            start, end = calendar_bounds(self.per, self.tz, from_ts(ts))
            lo, hi = start.timestamp(), end.timestamp()
            s = Slot(charge=f"c{int(lo)}", span=(f"c{int(lo)}",), expire_at=hi, resets_at=hi)
        self._cache = (lo, hi, s)
        return s

    def bucket_drop_time(self, suffix: str) -> float:
        """For a rolling bucket suffix "r<k>": when it stops being counted."""
        b = _LENGTH[self.per] / ROLLING_BUCKETS
        return (int(suffix[1:]) + ROLLING_BUCKETS + 1) * b
