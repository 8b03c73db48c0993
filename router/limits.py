"""Per-attempt time limits: what one call to one model may spend before the router
moves on (see docs/providers.md, "Timeouts"). Pure values; no I/O, no httpx.

``Timeouts(connect_s=5, first_byte_s=15, idle_s=15)``
    A provider's limits (adapter keyword ``timeouts=``, config ``providers.<name>.timeouts``),
    optionally overridden per model (card field ``timeouts``, config
    ``models.overrides.<id>.timeouts``; a partial mapping, merged key by key).

``attempt_limits(base, *, stream, max_tokens) -> AttemptLimits``
    The limits of one attempt: ``base`` merged with the override of the model being called
    (named by the executor with ``calling(card)``), then the non-stream / reasoning rule:

    * stream: the first byte of the body (any byte: an SSE keep-alive comment, a reasoning
      delta) must come within ``first_byte_s`` of the request; then at most ``idle_s`` may pass
      between two chunks.
    * non-stream: the vendor sends nothing until the whole answer is written, so the answer
      must arrive within ``first_byte_s + max_tokens / NON_STREAM_TOKENS_PER_S`` seconds
      (``max_tokens`` unset counts as ``DEFAULT_OUTPUT_TOKENS``); for a reasoning model
      (card capability ``reasoning``) at least ``REASONING_FIRST_BYTE_S`` unless its card sets
      ``first_byte_s`` itself; never more than
      ``MAX_NON_STREAM_S`` unless ``first_byte_s`` itself is larger.

``calling(card)``
    Context manager the executor wraps around one attempt; adapters read it through
    ``attempt_limits`` (a context variable, so the Provider protocol stays ``complete(req)``).

``check_timeouts(value) -> dict[str, float]``
    Validate a (partial) ``{connect_s, first_byte_s, idle_s}`` mapping: known keys, finite
    numbers > 0 and <= 3600 s. Raises ValueError naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "Timeouts",
    "AttemptLimits",
    "ModelLimits",
    "TIMEOUT_KEYS",
    "DEFAULT_TIMEOUTS",
    "NON_STREAM_TOKENS_PER_S",
    "DEFAULT_OUTPUT_TOKENS",
    "REASONING_FIRST_BYTE_S",
    "MAX_NON_STREAM_S",
    "check_timeouts",
    "attempt_limits",
    "calling",
    "current_model",
]

TIMEOUT_KEYS = ("connect_s", "first_byte_s", "idle_s")
NON_STREAM_TOKENS_PER_S = 25.0  # a slow but healthy vendor's output rate
DEFAULT_OUTPUT_TOKENS = 4096  # what a non-stream call without max_tokens may write
REASONING_FIRST_BYTE_S = 180.0  # a thinking model's non-stream answer: floor
MAX_NON_STREAM_S = 600.0  # cap of the non-stream allowance
_MAX_S = 3600.0


def check_timeouts(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"timeouts must be a mapping of {', '.join(TIMEOUT_KEYS)} to seconds, got {value!r}")
    out: dict[str, float] = {}
    for k, v in value.items():
        if k not in TIMEOUT_KEYS:
            raise ValueError(f"unknown timeout {k!r}; allowed: {', '.join(TIMEOUT_KEYS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= _MAX_S:
            raise ValueError(f"timeouts.{k} must be a number of seconds > 0 and <= {_MAX_S:g}, got {v!r}")
        out[str(k)] = float(v)
    return out


@dataclass(frozen=True, slots=True)
class Timeouts:
    """connect: TCP (+TLS) connect; first_byte: request sent -> first byte of the answer
    (streams) or the whole answer (non-stream, see `attempt_limits`); idle: the longest gap
    between two chunks of a stream."""

    connect_s: float = 5.0
    first_byte_s: float = 15.0
    idle_s: float = 15.0

    def __post_init__(self) -> None:
        check_timeouts({k: getattr(self, k) for k in TIMEOUT_KEYS})

    @classmethod
    def coerce(cls, value: Any = None, *, timeout: float | None = None) -> "Timeouts":
        """An adapter's `timeouts=` (None, a Timeouts, a mapping of some keys, or a number)
        on top of the defaults. `timeout=N` (the older single number) sets first_byte_s and
        idle_s to N (connect_s to at most N); keys named in `timeouts` win."""
        base = cls()
        if timeout is not None:
            base = cls(connect_s=min(base.connect_s, float(timeout)), first_byte_s=float(timeout),
                       idle_s=float(timeout))
        if value is None:
            return base
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls.coerce(timeout=value)
        return base.merged(value)

    def merged(self, partial: Mapping[str, Any] | None) -> "Timeouts":
        if not partial:
            return self
        return replace(self, **check_timeouts(partial))

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in TIMEOUT_KEYS}


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """The limits of one attempt, in seconds (`first_byte_s` already includes the
    non-stream allowance)."""

    connect_s: float
    first_byte_s: float
    idle_s: float
    stream: bool


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What the executor says about the model it is calling."""

    override: Mapping[str, float] | None = None
    reasoning: bool = False


_MODEL: ContextVar[ModelLimits | None] = ContextVar("quotaroute_model_limits", default=None)


def current_model() -> ModelLimits | None:
    return _MODEL.get()


@contextmanager
def calling(card: Any) -> Iterator[None]:
    """Name the model card of the attempt made inside this block (its `timeouts` override
    and whether it reasons). A stream reads it when it opens, so wrap the first `__anext__`."""
    caps = getattr(card, "capabilities", None) or ()
    tok = _MODEL.set(ModelLimits(getattr(card, "timeouts", None), "reasoning" in caps))
    try:
        yield
    finally:
        _MODEL.reset(tok)


def attempt_limits(base: Timeouts, *, stream: bool, max_tokens: int | None = None,
                   model: ModelLimits | None = None) -> AttemptLimits:
    m = model if model is not None else _MODEL.get()
    t = base.merged(m.override) if m is not None and m.override else base
    first = t.first_byte_s
    if not stream:
        out = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
        first = min(first + out / NON_STREAM_TOKENS_PER_S, max(first, MAX_NON_STREAM_S))
        if m is not None and m.reasoning and "first_byte_s" not in (m.override or {}):
            first = max(first, REASONING_FIRST_BYTE_S)
    return AttemptLimits(connect_s=t.connect_s, first_byte_s=first, idle_s=t.idle_s, stream=stream)
