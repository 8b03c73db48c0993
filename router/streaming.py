"""Streaming execution: fall back only before the first token, never emit a second
partial answer.

`open_stream()` walks the plan until a deployment produces its first content event
(text, reasoning, tool call or finish; usage-only events are buffered), then returns
a `RoutedStream` whose `route` already names the model, so a proxy can send its
headers before any token. After the first token a failure propagates to the caller
and whatever the vendor billed (`ProviderError.billed_usage`, or usage events
already received) is committed. Final cost is on `route` once iteration ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from router.engine import PlanStep, RoutePlan
from router.errors import MalformedResponse, ProviderError
from router.executor import Executor, Walk
from router.limits import calling
from router.result import Attempt, RouteInfo
from router.types import ChatResponse, RateLimitSnapshot, Usage, accumulate

__all__ = ["RoutedStream", "open_stream"]

log = logging.getLogger("quotaroute.executor")
_CONTENT = ("text", "reasoning", "tool_call", "finish")


class _Cancelled(Exception):
    pass


class RoutedStream:
    """Async iterator of `StreamEvent`s from the chosen model. `route` is set before
    the first event is yielded; `response` (accumulated) and the final cost after
    the end."""

    def __init__(self, ex: Executor, plan: RoutePlan, step: PlanStep, res: Any, it: AsyncIterator[Any],
                 buffered: list[Any], attempts: list[Attempt], t0: float) -> None:
        self._ex, self._plan, self._step, self._res, self._it = ex, plan, step, res, it
        self._pending = buffered
        self._events: list[Any] = []
        self._attempt = Attempt(model_id=step.model_id, provider=step.provider, ok=True,
                                latency_ms=(time.perf_counter() - t0) * 1000)  # time to first event, for now
        attempts.append(self._attempt)
        self._t0 = t0
        self.route: RouteInfo = ex.route_info(plan, step, attempts, final=False)
        self.response: ChatResponse | None = None
        self.done = False

    def __aiter__(self) -> "RoutedStream":
        return self

    async def __aenter__(self) -> "RoutedStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def __anext__(self) -> Any:
        if self._pending:
            ev = self._pending.pop(0)
            self._events.append(ev)
            return ev
        if self.done:
            raise StopAsyncIteration
        try:
            ev = await self._it.__anext__()
        except StopAsyncIteration:
            await self._finish(None)
            raise
        except ProviderError as e:
            await self._finish(e)
            raise
        except BaseException as e:
            await self._finish(e)
            raise
        self._events.append(ev)
        return ev

    async def _finish(self, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        ex, step = self._ex, self._step
        latency = (time.perf_counter() - self._t0) * 1000
        now = ex.clock()
        ex.health.finished(step.deployment)
        resp = accumulate(self._events, provider=step.provider, model=step.card.model)
        self.response = resp
        att = self._attempt
        att.latency_ms = latency
        usage: Usage | None = resp.usage if resp.usage_reported else None
        rl = resp.provider_details.get("rate_limits") if resp.provider_details else None
        if isinstance(rl, dict) and ex.ledger is not None:  # adapters put stream headers on the finish event
            try:
                await ex.ledger.observe(step.model_id, RateLimitSnapshot.model_validate(rl), now)
            except Exception:  # pragma: no cover - learning must never break the stream
                pass
        if error is None:
            ex.health.success(step.deployment, latency, now)
            if usage is None:  # the vendor sent no usage: bill an estimate rather than $0
                usage = _estimate(self._plan, resp)
                att.error_message = "usage not reported by the vendor; estimated"
        else:
            att.ok = False
            att.error_type = type(error).__name__
            att.error_message = str(error) or att.error_type
            if isinstance(error, ProviderError):
                if error.billed_usage is not None:
                    usage = error.billed_usage
                await ex.on_error(step, error)
            elif usage is None and self._events:  # cancelled/closed by the caller mid-answer
                usage = _estimate(self._plan, resp)
                att.error_type = "Cancelled"
                att.error_message = "closed by the caller; usage estimated"
        await ex.settle(step, self._res, usage, att)
        ex.costs(self.route)

    async def aclose(self) -> None:
        if not self.done:
            close = getattr(self._it, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # pragma: no cover
                    pass
            await self._finish(_Cancelled("stream closed by the caller"))


def _estimate(plan: RoutePlan, resp: ChatResponse) -> Usage:
    from router.tasks import fast_estimate_tokens

    out = fast_estimate_tokens(resp.text) + fast_estimate_tokens(resp.reasoning) + sum(
        fast_estimate_tokens(t.arguments) for t in resp.tool_calls)
    return Usage(input_tokens=plan.features.input_tokens, output_tokens=out)


async def open_stream(ex: Executor, plan: RoutePlan, req: Any, *, scope: Mapping[str, Any] | None = None
                      ) -> RoutedStream:
    walk = Walk()
    for step in plan.steps:
        if step.card.context_window <= walk.min_ctx:
            continue
        provider = ex.provider_for(step)
        if provider is None:
            walk.attempts.append(Attempt(model_id=step.model_id, provider=step.provider, ok=False,
                                         error_type="NoProvider"))
            continue
        ok, res = await ex.open_step(step, plan, scope, walk)
        if not ok:
            continue
        ex.health.started(step.deployment)
        t0 = time.perf_counter()
        it = provider.stream(ex.request_for(step, req))
        buffered: list[Any] = []
        try:
            while True:
                try:
                    with calling(step.card):  # the stream reads the card's time limits when it opens
                        ev = await it.__anext__()
                except StopAsyncIteration:
                    raise MalformedResponse("stream ended before any content", provider=step.provider,
                                            model=step.card.model,
                                            billed_usage=_usage_of(buffered)) from None
                buffered.append(ev)
                if ev.kind in _CONTENT:
                    break
        except ProviderError as e:
            ex.health.finished(step.deployment)
            await _aclose(it)
            billed = e.billed_usage if e.billed_usage is not None else _usage_of(buffered)
            if not await ex.step_failed(plan, step, res, e, t0, billed, walk):
                raise
            continue
        except Exception as e:  # an adapter bug, not a mapped vendor error: log it, fall back
            ex.health.finished(step.deployment)
            await _aclose(it)
            await ex.adapter_bug(step, res, e, t0, walk)
            continue
        except BaseException:  # cancelled: give the reservation back
            ex.health.finished(step.deployment)
            await _aclose(it)
            if res is not None:
                await ex.ledger.release(res, ex.clock())
            raise
        return RoutedStream(ex, plan, step, res, it, buffered, walk.attempts, t0)
    raise ex.exhausted(plan, walk)


def _usage_of(events: list[Any]) -> Usage | None:
    u = None
    for ev in events:
        if ev.kind == "usage":
            u = ev.usage if u is None else Usage(**{k: max(getattr(u, k), getattr(ev.usage, k))
                                                    for k in Usage.model_fields})
    return u


async def _aclose(it: Any) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # pragma: no cover
            pass
