"""Gemini API error mapping (google.rpc status, ErrorInfo / QuotaFailure / RetryInfo
details) for `providers.gemini`: `map_error`, and `seconds_to_pacific_midnight` for the
free tier's daily reset. Pure.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from providers import _http
from router.errors import (
    AuthFailed,
    BadRequest,
    ContextTooLong,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)

__all__ = ["map_error", "seconds_to_pacific_midnight"]

# google.rpc status -> class (https://ai.google.dev/gemini-api/docs/troubleshooting)
_STATUS: dict[str, type[ProviderError]] = {
    "INVALID_ARGUMENT": BadRequest,
    "FAILED_PRECONDITION": BadRequest,
    "NOT_FOUND": BadRequest,
    "OUT_OF_RANGE": BadRequest,
    "UNAUTHENTICATED": AuthFailed,
    "PERMISSION_DENIED": AuthFailed,
    "RESOURCE_EXHAUSTED": RateLimited,
    "INTERNAL": Unavailable,
    "UNAVAILABLE": Unavailable,
    "UNKNOWN": Unavailable,
    "ABORTED": Unavailable,
    "CANCELLED": Unavailable,
    "DEADLINE_EXCEEDED": Timeout,
}

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def seconds_to_pacific_midnight(now: float) -> float | None:
    """Free-tier daily quotas reset at midnight Pacific time."""
    try:
        tz = ZoneInfo("America/Los_Angeles")
    except Exception:  # no tz database on this machine
        return None
    t = datetime.fromtimestamp(now, tz)
    nxt = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(0.0, nxt.timestamp() - now)


def map_error(status: int | None, obj: Any, *, call: _http.Call, headers: Any = None, now: float | None = None,
              billed_usage: Any = None, fallback_message: str = "") -> ProviderError:
    """`error.status` (google.rpc code) and details first, then the HTTP status; message
    matching only for context length (same INVALID_ARGUMENT status as other bad input)."""
    err = obj.get("error") if isinstance(obj, dict) and isinstance(obj.get("error"), dict) else {}
    gstatus = err.get("status") if isinstance(err.get("status"), str) else None
    message = str(err.get("message") or fallback_message or gstatus or "")
    if status is None and isinstance(err.get("code"), int):
        status = err["code"]
    reasons, quota_ids, delay = set(), [], None
    for d in err.get("details") or []:
        if not isinstance(d, dict):
            continue
        kind = str(d.get("@type", ""))
        if kind.endswith("ErrorInfo"):
            reasons.add(d.get("reason"))
        elif kind.endswith("QuotaFailure"):
            quota_ids += [str(v.get("quotaId", "")) for v in d.get("violations") or [] if isinstance(v, dict)]
        elif kind.endswith("RetryInfo"):
            m = _DELAY.match(str(d.get("retryDelay", "")))
            delay = float(m.group(1)) if m else None
    cls = _STATUS.get(gstatus or "") or _http.status_class(status)
    low = message.lower()
    if "API_KEY_INVALID" in reasons or "API_KEY_SERVICE_BLOCKED" in reasons:
        cls = AuthFailed
    elif cls is RateLimited or status == 429:
        cls = QuotaExhausted if any("PerDay" in q for q in quota_ids) or "limit: 0," in message else RateLimited
    elif issubclass(cls, BadRequest) and "token count" in low and "exceeds the maximum" in low:
        cls = ContextTooLong
    info = _http.ErrorInfo(status=status, code=gstatus, message=message, raw=obj if err else None)
    e = _http.make_error(cls, info, call=call, headers=headers, now=now, billed_usage=billed_usage)
    if cls is RateLimited and delay is not None:
        e.retry_after = delay
    elif cls is QuotaExhausted:
        e.retry_after = seconds_to_pacific_midnight(now if now is not None else __import__("time").time())
    if e.rate_limits is not None and e.rate_limits.retry_after_s is None and delay is not None:
        e.rate_limits.retry_after_s = delay
    return e
