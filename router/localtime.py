"""Recurring local-time windows ("HH:MM"-"HH:MM" in a zone, on some weekdays, within
absolute bounds), used by `router.pricing.TimeDiscount`. Pure; zone files are read
lazily (stdlib zoneinfo) and cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["check_hhmm", "weekdays", "zone", "in_window"]

_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def check_hhmm(v: str) -> str:
    """`v` if it is "HH:MM" (00:00 to 24:00), else ValueError."""
    m = _HHMM.match(v)
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"expected HH:MM, got {v!r}")
    return v


def weekdays(v: Iterable[Any] | None) -> tuple[int, ...] | None:
    """["sat", "sunday", 0] -> (5, 6, 0) (Monday is 0); ValueError on an unknown name."""
    if v is None:
        return None
    out = []
    for d in v:
        if isinstance(d, str):
            if d.lower()[:3] not in _DAYS:
                raise ValueError(f"unknown weekday {d!r}")
            out.append(_DAYS[d.lower()[:3]])
        else:
            out.append(int(d))
    return tuple(out)


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@lru_cache(maxsize=256)
def _parse_hhmm(v: str) -> time | None:
    h, m = int(v[:2]), int(v[3:])
    return None if h == 24 else time(h, m)


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """"UTC", "+08:00" or an IANA name -> tzinfo; ValueError on an unknown zone."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    m = _OFFSET.match(name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}") from e


def in_window(at: datetime, start: str, end: str, tz: str, days: tuple[int, ...] | None,
              valid_from: datetime | None, valid_until: datetime | None) -> bool:
    """Whether `at` (naive = UTC) falls in the window: end "24:00" means midnight, end <
    start wraps past midnight, `days` are weekdays of the local date."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if valid_from and at < _aware(valid_from):
        return False
    if valid_until and at >= _aware(valid_until):
        return False
    local = at.astimezone(zone(tz))
    if days is not None and local.weekday() not in days:
        return False
    t = local.time().replace(tzinfo=None)
    s, e = _parse_hhmm(start), _parse_hhmm(end)
    if e is None:  # "24:00"
        return t >= s
    if e < s:
        return t >= s or t < e
    return s <= t < e
