"""Per-deployment health: circuit breaker, latency EWMA, in-flight counts, bad keys.

A *deployment* is one model behind one API key: id ``"provider:model@KEY_ID"``
(``"provider:model"`` when the router has no key information). A key that failed
authentication has its own entry under the key id.

Only the vendor's failures count (5xx, timeouts, transport errors, unparseable
answers); a client's mistake or our own bug never does (see `router.executor`).

Breaker: ``failure_threshold`` consecutive failures open the circuit for
``cooloff_s`` seconds (default 5); after that the deployment is *half-open*: one
probe request may go through, as a single attempt (no retry on the same model:
`single_attempt()`), and no other request while it is in flight. Success closes
the circuit; failure re-opens it with a doubled cool-off, capped at
``max_cooloff_s`` (default 10), so a model is back within ~10 s of its vendor
healing.

Bad keys (AuthFailed): a 401 marks the key bad for ``auth_cooloff_s`` (default
60 s), doubling on each failed probe up to ``max_auth_cooloff_s`` (default 15 min);
a 403 (the key may not use this model) marks only the (key, model) deployment. Once
the cool-off has passed one probe may go through; a success clears the mark.

The executor mutates a `HealthBook`; the pure engine only reads the entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Health", "HealthBook", "deployment_id", "single_attempt", "set_single_attempt"]

_SINGLE: ContextVar[bool] = ContextVar("quotaroute_single_attempt", default=False)


def set_single_attempt(on: bool) -> None:
    """The next upstream call made in this task is a probe: one attempt, no retry."""
    _SINGLE.set(on)


def single_attempt() -> bool:
    """True (once) when the call about to start is a probe (read by the retry layer)."""
    if _SINGLE.get():
        _SINGLE.set(False)
        return True
    return False


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
    bad: bool = False  # a key (or key + model) that failed authentication / permission
    bad_reason: str = ""
    bad_until: datetime | None = None  # None while bad: until cleared
    bad_cooloff_s: float = 0.0
    probing: bool = False  # a probe of this bad key / deployment is in flight
    key: str | None = None  # deployment entries: the key id they call with
    probe_key: str | None = None  # deployment entries: the bad key this call is probing

    def state(self, now: datetime) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def blocked(self, now: datetime) -> bool:
        """Marked bad and not yet due for a probe (or one is in flight)."""
        return self.bad and (self.bad_until is None or now < self.bad_until or self.probing)

    def available(self, now: datetime) -> bool:
        """May a request go to this deployment now? (half-open: one probe at a time)"""
        if self.bad and self.blocked(now):
            return False
        if self.open_until is None:
            return True
        if now < self.open_until:
            return False
        return self.in_flight == 0


class HealthBook(Mapping[str, Health]):
    """Mutable health registry (a Mapping, so `choose()` can read it directly)."""

    def __init__(self, *, failure_threshold: int = 3, cooloff_s: float = 5.0, max_cooloff_s: float = 10.0,
                 ewma_alpha: float = 0.2, auth_cooloff_s: float = 60.0, max_auth_cooloff_s: float = 900.0) -> None:
        self.failure_threshold = failure_threshold
        self.base_cooloff_s = cooloff_s
        self.max_cooloff_s = max(max_cooloff_s, cooloff_s)
        self.auth_cooloff_s = auth_cooloff_s
        self.max_auth_cooloff_s = max(max_auth_cooloff_s, auth_cooloff_s)
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
    def admit(self, dep: str, key: str | None, now: datetime) -> bool | None:
        """Claim a call to deployment `dep` (with key `key`) now: None when it may not go
        (circuit open, key or deployment marked bad, a probe in flight); True when this
        call is the probe (half-open breaker, or a bad key past its cool-off): make it a
        single attempt; False for an ordinary call. Call `started(dep)` right after (no
        await in between) and `finished(dep)` when done."""
        kh = self._h.get(key) if key else None
        if kh is not None and kh.bad and kh.blocked(now):
            return None
        dh = self._h.get(dep)
        if dh is not None and not dh.available(now):
            return None
        if dh is None:
            dh = self._h[dep] = Health()
        dh.key = key
        probe = False
        if kh is not None and kh.bad:
            kh.probing, dh.probe_key, probe = True, key, True
        if dh.bad:
            dh.probing = probe = True
        if dh.open_until is not None:  # half-open (available() said so)
            probe = True
        return probe

    def started(self, dep: str) -> None:
        self.entry(dep).in_flight += 1

    def finished(self, dep: str) -> None:
        h = self.entry(dep)
        h.in_flight = max(0, h.in_flight - 1)
        h.probing = False
        if h.probe_key is not None:
            kh = self._h.get(h.probe_key)
            if kh is not None:
                kh.probing = False
            h.probe_key = None

    def success(self, dep: str, latency_ms: float | None, now: datetime) -> None:
        h = self.entry(dep)
        h.requests += 1
        h.consecutive_failures = 0
        h.open_until = None
        h.cooloff_s = 0.0
        if h.bad:
            self.clear_bad(dep)
        if h.key is not None:
            kh = self._h.get(h.key)
            if kh is not None and kh.bad:
                self.clear_bad(h.key)
        if latency_ms is not None:
            h.latency_ewma_ms = latency_ms if h.latency_ewma_ms is None else (
                self.alpha * latency_ms + (1 - self.alpha) * h.latency_ewma_ms)

    def failure(self, dep: str, now: datetime) -> bool:
        """Record a vendor failure; returns True when this opened (or re-opened) the circuit."""
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

    def mark_bad(self, key_id: str, reason: str = "authentication failed", now: datetime | None = None) -> None:
        """Mark a key (or a key + model deployment) bad: for `auth_cooloff_s`, doubled on
        each failed probe (capped); with no `now`, until `clear_bad()`."""
        h = self.entry(key_id)
        h.bad = True
        h.bad_reason = reason
        h.probing = False
        if now is None:
            h.bad_until = None
            return
        h.bad_cooloff_s = min(self.max_auth_cooloff_s, h.bad_cooloff_s * 2 if h.bad_cooloff_s else self.auth_cooloff_s)
        h.bad_until = now + timedelta(seconds=h.bad_cooloff_s)

    def clear_bad(self, key_id: str) -> None:
        h = self._h.get(key_id)
        if h is not None:
            h.bad = False
            h.bad_reason = ""
            h.bad_until = None
            h.bad_cooloff_s = 0.0
            h.probing = False

    def bad_entries(self) -> dict[str, dict[str, object]]:
        """Keys and (key, model) deployments marked bad: ids only (never a secret)."""
        return {k: {"reason": v.bad_reason, "until": v.bad_until.isoformat() if v.bad_until else None}
                for k, v in self._h.items() if v.bad}

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {k: {"failures": v.failures, "consecutive_failures": v.consecutive_failures,
                    "open_until": v.open_until.isoformat() if v.open_until else None,
                    "latency_ewma_ms": v.latency_ewma_ms, "requests": v.requests, "bad": v.bad,
                    "bad_until": v.bad_until.isoformat() if v.bad_until else None}
                for k, v in self._h.items()}
