"""Per-deployment health: circuit breaker, latency EWMA, in-flight counts, bad keys.

A *deployment* is one model behind one API key: id ``"provider:model@KEY_ID"``
(``"provider:model"`` when the router has no key information). A key marked bad
(AuthFailed) has its own entry under the key id.

Breaker: ``failure_threshold`` consecutive failures open the circuit for
``cooloff_s`` seconds; after that the deployment is *half-open*: one probe request
may go through (no other request while it is in flight); success closes the
circuit, failure re-opens it with a doubled cool-off (capped at ``max_cooloff_s``).

The executor mutates a `HealthBook`; the pure engine only reads the entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Health", "HealthBook", "deployment_id"]


def deployment_id(model_id: str, key_id: str | None) -> str:
    return f"{model_id}@{key_id}" if key_id else model_id


@dataclass(slots=True)
class Health:
    consecutive_failures: int = 0
    open_until: datetime | None = None
    cooloff_s: float = 0.0  # the current (possibly doubled) cool-off
    latency_ewma_ms: float | None = None
    requests: int = 0
    failures: int = 0
    in_flight: int = 0
    bad: bool = False  # a key that failed authentication
    bad_reason: str = ""

    def state(self, now: datetime) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def available(self, now: datetime) -> bool:
        """May a request go to this deployment now? (half-open: one probe at a time)"""
        if self.bad:
            return False
        if self.open_until is None:
            return True
        if now < self.open_until:
            return False
        return self.in_flight == 0


class HealthBook(Mapping[str, Health]):
    """Mutable health registry (a Mapping, so `choose()` can read it directly)."""

    def __init__(self, *, failure_threshold: int = 3, cooloff_s: float = 30.0, max_cooloff_s: float = 600.0,
                 ewma_alpha: float = 0.2) -> None:
        self.failure_threshold = failure_threshold
        self.base_cooloff_s = cooloff_s
        self.max_cooloff_s = max_cooloff_s
        self.alpha = ewma_alpha
        self._h: dict[str, Health] = {}
        self.get = self._h.get  # type: ignore[method-assign]  # C-speed lookups for the engine

    # Mapping
    def __getitem__(self, key: str) -> Health:
        return self._h[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._h)

    def __len__(self) -> int:
        return len(self._h)

    def get(self, key: str, default: Health | None = None) -> Health | None:  # type: ignore[override]
        return self._h.get(key, default)

    def entry(self, key: str) -> Health:
        h = self._h.get(key)
        if h is None:
            h = self._h[key] = Health()
        return h

    # events
    def started(self, dep: str) -> None:
        self.entry(dep).in_flight += 1

    def finished(self, dep: str) -> None:
        h = self.entry(dep)
        h.in_flight = max(0, h.in_flight - 1)

    def success(self, dep: str, latency_ms: float | None, now: datetime) -> None:
        h = self.entry(dep)
        h.requests += 1
        h.consecutive_failures = 0
        h.open_until = None
        h.cooloff_s = 0.0
        if latency_ms is not None:
            h.latency_ewma_ms = latency_ms if h.latency_ewma_ms is None else (
                self.alpha * latency_ms + (1 - self.alpha) * h.latency_ewma_ms)

    def failure(self, dep: str, now: datetime) -> bool:
        """Record a failure; returns True when this opened (or re-opened) the circuit."""
        h = self.entry(dep)
        h.requests += 1
        h.failures += 1
        h.consecutive_failures += 1
        half_open = h.open_until is not None and now >= h.open_until
        if half_open or h.consecutive_failures >= self.failure_threshold:
            h.cooloff_s = min(self.max_cooloff_s, h.cooloff_s * 2 if half_open and h.cooloff_s else self.base_cooloff_s)
            h.open_until = now + timedelta(seconds=h.cooloff_s)
            h.in_flight = 0  # a stream abandoned without close must not block the half-open probe forever
            return True
        return False

    def mark_bad(self, key_id: str, reason: str = "authentication failed") -> None:
        h = self.entry(key_id)
        h.bad = True
        h.bad_reason = reason

    def clear_bad(self, key_id: str) -> None:
        h = self._h.get(key_id)
        if h is not None:
            h.bad = False
            h.bad_reason = ""

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {k: {"failures": v.failures, "consecutive_failures": v.consecutive_failures,
                    "open_until": v.open_until.isoformat() if v.open_until else None,
                    "latency_ewma_ms": v.latency_ewma_ms, "requests": v.requests, "bad": v.bad}
                for k, v in self._h.items()}
