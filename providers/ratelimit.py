"""Rate-limit headers -> `RateLimitSnapshot` (pure, no I/O, clock passed in).

Public API
----------
``parse_rate_limits(headers, now: float) -> RateLimitSnapshot``
    Reads every header family we know and returns one normalized snapshot
    (fields are None when not reported; ``observed_at = now``):

    * OpenAI / Groq / most OpenAI-compatible vendors:
      ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; resets are Go-style
      durations ("12ms", "6m0s", "1h2m3.5s") or plain seconds.
      Source: openai-python `_base_client.py`; OpenAI rate-limit guide (facts: openai.ratelimit_headers).
    * Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
      with RFC 3339 reset timestamps. When the combined ``tokens-*`` family is absent, the
      more constraining of input/output (lowest remaining) fills the token fields.
      Source: https://docs.claude.com/en/api/rate-limits (facts: anthropic.ratelimit_headers).
    * OpenRouter / Moonshot: ``X-RateLimit-{Limit,Remaining,Reset}`` (requests); Reset is a
      unix epoch in **milliseconds** for OpenRouter (https://openrouter.ai/docs/api-reference/limits);
      epoch seconds and plain durations are accepted too (told apart by magnitude).
    * ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date) -> ``retry_after_s``.

``retry_after_seconds(headers, now: float | None = None) -> float | None``
    ``retry-after-ms`` first, then ``retry-after`` (delta seconds or HTTP date), as the
    OpenAI SDK does. Negative values clamp to 0. ``now`` is only needed for HTTP dates
    (defaults to ``time.time()``).

``suggested_wait(snapshot) -> float | None``
    Best wait before retrying a 429: ``retry_after_s`` if given, else the reset time of an
    exhausted window (remaining == 0), else the shortest reported reset.

``parse_duration(text) -> float | None`` and ``parse_reset(text, now) -> float | None``
    The building blocks (seconds from ``now``; None when unparseable, never raises).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from router.types import RateLimitSnapshot

__all__ = [
    "parse_rate_limits",
    "retry_after_seconds",
    "suggested_wait",
    "parse_duration",
    "parse_reset",
]

_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class _Lowered(dict):  # type: ignore[type-arg]
    """Headers already passed through `_lower` (not lowered twice)."""


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    if type(headers) is _Lowered:
        return headers  # type: ignore[return-value]
    if not headers:
        return _Lowered()
    return _Lowered({str(k).lower(): str(v).strip() for k, v in headers.items()})


def _int(v: str | None) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(float(v))
    except (TypeError, ValueError, OverflowError):
        return None


def parse_duration(text: str | None) -> float | None:
    """'6m0s' -> 360.0, '12ms' -> 0.012, '1.5' -> 1.5; None when unparseable."""
    if text is None:
        return None
    t = text.strip()
    if not t:
        return None
    try:
        return max(0.0, float(t))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DUR.finditer(t):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total if pos == len(t) and pos > 0 else None


def _parse_rfc3339(text: str) -> float | None:
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


def parse_reset(text: str | None, now: float) -> float | None:
    """Seconds from `now` until a window resets.

    Accepts Go durations ('1m30s'), plain seconds ('20'), unix epoch seconds
    (> 1e9) or milliseconds (> 1e11, OpenRouter), and RFC 3339 timestamps (Anthropic).
    """
    if text is None or not text.strip():
        return None
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        v = None
    if v is not None:
        if v > 1e11:  # epoch milliseconds
            return max(0.0, v / 1000.0 - now)
        if v > 1e9:  # epoch seconds
            return max(0.0, v - now)
        return max(0.0, v)
    d = parse_duration(t)
    if d is not None:
        return d
    ts = _parse_rfc3339(t)
    if ts is not None:
        return max(0.0, ts - now)
    return None


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    h = _lower(headers)
    ms = h.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = h.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        dt = parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if now is None:
        now = time.time()
    return max(0.0, dt.timestamp() - now)


def _anthropic_tokens(h: dict[str, str], now: float) -> tuple[int | None, int | None, float | None]:
    p = "anthropic-ratelimit-"
    if p + "tokens-limit" in h or p + "tokens-remaining" in h:
        return _int(h.get(p + "tokens-limit")), _int(h.get(p + "tokens-remaining")), parse_reset(
            h.get(p + "tokens-reset"), now)
    best: tuple[int | None, int | None, float | None] = (None, None, None)
    for fam in ("input-tokens", "output-tokens"):
        lim, rem = _int(h.get(f"{p}{fam}-limit")), _int(h.get(f"{p}{fam}-remaining"))
        if lim is None and rem is None:
            continue
        cand = (lim, rem, parse_reset(h.get(f"{p}{fam}-reset"), now))
        if best == (None, None, None):
            best = cand
            continue
        # keep the more constraining family: lowest remaining fraction
        def frac(c: tuple[int | None, int | None, float | None]) -> float:
            if c[1] is None:
                return 2.0
            return c[1] / c[0] if c[0] else float(c[1])
        if frac(cand) < frac(best):
            best = cand
    return best


def parse_rate_limits(headers: Mapping[str, str] | None, now: float) -> RateLimitSnapshot:
    h = _lower(headers)
    snap: dict[str, object] = {}
    # OpenAI family (also Groq, DeepSeek-compatible vendors, Azure)
    snap["limit_requests"] = _int(h.get("x-ratelimit-limit-requests"))
    snap["remaining_requests"] = _int(h.get("x-ratelimit-remaining-requests"))
    snap["reset_requests_s"] = parse_reset(h.get("x-ratelimit-reset-requests"), now)
    snap["limit_tokens"] = _int(h.get("x-ratelimit-limit-tokens"))
    snap["remaining_tokens"] = _int(h.get("x-ratelimit-remaining-tokens"))
    snap["reset_tokens_s"] = parse_reset(h.get("x-ratelimit-reset-tokens"), now)
    # Anthropic family
    a = "anthropic-ratelimit-"
    if snap["limit_requests"] is None:
        snap["limit_requests"] = _int(h.get(a + "requests-limit"))
    if snap["remaining_requests"] is None:
        snap["remaining_requests"] = _int(h.get(a + "requests-remaining"))
    if snap["reset_requests_s"] is None:
        snap["reset_requests_s"] = parse_reset(h.get(a + "requests-reset"), now)
    if snap["limit_tokens"] is None and snap["remaining_tokens"] is None:
        lim, rem, rst = _anthropic_tokens(h, now)
        snap["limit_tokens"], snap["remaining_tokens"] = lim, rem
        if snap["reset_tokens_s"] is None:
            snap["reset_tokens_s"] = rst
    # OpenRouter / Moonshot: unsuffixed X-RateLimit-* describe requests
    if snap["limit_requests"] is None:
        snap["limit_requests"] = _int(h.get("x-ratelimit-limit"))
    if snap["remaining_requests"] is None:
        snap["remaining_requests"] = _int(h.get("x-ratelimit-remaining"))
    if snap["reset_requests_s"] is None:
        snap["reset_requests_s"] = parse_reset(h.get("x-ratelimit-reset"), now)
    snap["retry_after_s"] = retry_after_seconds(h, now)
    return RateLimitSnapshot(observed_at=now, **snap)  # type: ignore[arg-type]


def suggested_wait(snap: RateLimitSnapshot | None) -> float | None:
    if snap is None:
        return None
    if snap.retry_after_s is not None:
        return snap.retry_after_s
    exhausted = []
    if snap.remaining_requests == 0 and snap.reset_requests_s is not None:
        exhausted.append(snap.reset_requests_s)
    if snap.remaining_tokens == 0 and snap.reset_tokens_s is not None:
        exhausted.append(snap.reset_tokens_s)
    if exhausted:
        return max(exhausted)
    resets = [r for r in (snap.reset_requests_s, snap.reset_tokens_s) if r is not None]
    return min(resets) if resets else None
