"""Transient-error retries: one tenacity policy, used at ONE layer (the adapter call).

Public API
----------
``RetryPolicy(max_attempts=3, max_wait_s=30.0, base_s=0.5, sleep=asyncio.sleep, rand=random.random)``
    Frozen dataclass. ``max_attempts`` counts the first try (1 = never retry).

``await policy.run(factory)``
    ``factory`` is a zero-argument callable returning a fresh awaitable (a coroutine
    cannot be awaited twice). Retries only ``ProviderError`` instances whose
    ``retryable`` is true: ``RateLimited`` (429 rate limits), ``Unavailable`` (5xx, 529,
    409, transport errors). Never retries ``Timeout`` (a connect, first-byte or idle
    limit, 408, a vendor's 504 deadline: the attempt already spent its limit, so the
    router fails over at once instead of waiting as long again), ``QuotaExhausted``,
    ``AuthFailed``, ``BadRequest``, ``ContentFiltered`` or ``MalformedResponse`` (the
    router switches models instead).

    Wait before attempt n+1: the error's ``retry_after`` (Retry-After / retry-after-ms /
    reset headers) when given; if that exceeds ``max_wait_s`` we do NOT retry (waiting
    less than the vendor asked only burns an attempt; the router should switch).
    Otherwise jittered exponential backoff: ``base_s * 2**(n-1)`` scaled by a factor in
    [0.5, 1.0), capped at ``max_wait_s``.

``policy.stream(factory)`` -> async iterator
    ``factory`` returns a fresh async iterator of stream events. Errors raised before the
    first event was yielded are retried like ``run``; after the first event they
    propagate unchanged (the caller has already seen output).

A call made while `router.health.single_attempt()` is set (the executor sets it for a
circuit breaker's half-open probe, or a bad key's probe) gets one attempt only.

``NO_RETRY = RetryPolicy(max_attempts=1)``
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from router.errors import ProviderError, Timeout
from router.health import single_attempt

__all__ = ["RetryPolicy", "NO_RETRY", "is_retryable"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and bool(exc.retryable) and not isinstance(exc, Timeout)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    max_wait_s: float = 30.0
    base_s: float = 0.5
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    rand: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Jittered exponential wait after failed attempt number `attempt` (1-based)."""
        raw = self.base_s * (2 ** max(0, attempt - 1))
        return min(self.max_wait_s, raw * (0.5 + 0.5 * self.rand()))

    def _wait_for(self, exc: BaseException | None, attempt: int) -> float:
        ra = getattr(exc, "retry_after", None)
        if isinstance(ra, (int, float)) and ra >= 0:
            return float(ra)
        return self.backoff(attempt)

    def _should_retry(self, exc: BaseException | None) -> bool:
        if exc is None or not is_retryable(exc):
            return False
        ra = getattr(exc, "retry_after", None)
        return not (isinstance(ra, (int, float)) and ra > self.max_wait_s)

    def _retrying(self, done: int = 0) -> Any:
        """The tenacity loop for the attempts after the first `done` (already failed) ones."""
        policy = self

        def retry_pred(state: tenacity.RetryCallState) -> bool:
            o = state.outcome
            return o is not None and o.failed and policy._should_retry(o.exception())

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return policy._wait_for(exc, state.attempt_number + done)

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(max(1, self.max_attempts - done)),
            wait=wait,
            retry=retry_pred,
            sleep=self.sleep,
            reraise=True,
        )

    async def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        # The first attempt runs bare (the common case: no tenacity state is built);
        # only a retryable failure enters the tenacity loop for the remaining attempts.
        if self.max_attempts <= 1 or single_attempt():  # a breaker's probe: one attempt
            return await factory()
        try:
            return await factory()
        except BaseException as exc:
            if not self._should_retry(exc):
                raise
            await self.sleep(self._wait_for(exc, 1))
        async for attempt in self._retrying(done=1):
            with attempt:
                return await factory()
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, factory: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        return _Retried(self, factory)


class _Retried:
    """`RetryPolicy.stream`: the attempts run on the first `__anext__`; after the first event
    every `__anext__` is the winning iterator's own (no extra layer per event)."""

    __slots__ = ("_policy", "_factory", "_it", "_closed")

    def __init__(self, policy: RetryPolicy, factory: Callable[[], AsyncIterator[Any]]) -> None:
        self._policy, self._factory = policy, factory
        self._it: AsyncIterator[Any] | None = None
        self._closed = False

    def __aiter__(self) -> "_Retried":
        return self

    def __anext__(self) -> Any:
        it = self._it
        return it.__anext__() if it is not None else self._open()

    async def _open(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        policy = self._policy
        attempt = 0
        limit = 1 if single_attempt() else policy.max_attempts  # a breaker's probe: one attempt
        while True:
            attempt += 1
            it = self._factory()
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                self._closed = True
                raise
            except BaseException as exc:
                await _aclose(it)
                if attempt >= limit or not policy._should_retry(exc):
                    self._closed = True
                    raise
                await policy.sleep(policy._wait_for(exc, attempt))
                continue
            self._it = it
            return first

    async def aclose(self) -> None:
        self._closed = True
        it, self._it = self._it, None
        if it is not None:
            await _aclose(it)


async def _aclose(it: Any) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # pragma: no cover - closing a failed generator must not mask the error
            pass


NO_RETRY = RetryPolicy(max_attempts=1)
