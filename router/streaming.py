"""Streaming execution: fall back freely before the first token; after it, finish a
cut answer from the next model (assistant prefill) or fail loudly, never mark a
truncated answer complete.

`open_stream()` walks the plan until a deployment produces its first content event
(text, reasoning, tool call or finish; usage-only events are buffered), then returns
a `RoutedStream` whose `route` already names the model, so a proxy can send its
headers before any token. A vendor finish of "error" (a truncated answer) counts as
a failure like a raised error.

When the answer breaks after content reached the caller (an error, a stall turned
into `Timeout` by the adapter, or a finish of "error"), the stream continues from
the next step of the plan whose provider accepts an assistant prefill (a provider's
`prefill` attribute; vendor data says which do), with the text delivered so far as
that prefill, so the caller receives one answer. When none can (no such step, a tool
call was already sent, the error must not fall back, or every continuation failed),
the original error is raised from the iterator.

Billing, one rule for every attempt that ended early (error, truncation, caller
closed the stream or stopped reading): what the vendor reported (usage events or
`ProviderError.billed_usage`), with output no lower than the tokens actually
handed to the caller; when it reported nothing, those delivered tokens (counted
with `router.tokens`) plus the prompt. Each attempt commits its own reservation.
Final cost is on `route` once iteration ends.

One proxy request, read downward: ... -> sdk.py (`astream`) -> streaming.py (`open_stream` consumes
`Executor.walk_plan`) -> next: providers/<adapter>.py `stream()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from router.errors import MalformedResponse, ProviderError, TruncatedResponse
from router.executor import Executor, StepCall, Walk
from router.plan import PlanStep, RoutePlan
from router.result import Attempt, RouteInfo
from router.splice import take_pending
from router.tokens import count_tokens_exact, estimate_tokens
from router.types import ChatRequest, ChatResponse, Message, RateLimitSnapshot, Usage, accumulate, text_delta

__all__ = ["RoutedStream", "open_stream", "delivered_tokens"]

log = logging.getLogger("quotaroute.executor")
_CONTENT = ("text", "reasoning", "tool_call", "finish")
_BIG = 32_000  # characters


class _Cancelled(Exception):
    pass


def delivered_tokens(text: str) -> int:
    """Tokens in `text` as the router counts them (exact cl100k when tiktoken's offline
    data is installed, else the calibrated estimate)."""
    if not text:
        return 0
    n = count_tokens_exact(text)
    return n if n is not None else estimate_tokens(text)


def truncated(step: PlanStep, events: list[Any], reason: str = "error") -> TruncatedResponse:
    """The error for a vendor that ended the answer early (finish_reason `error`)."""
    return TruncatedResponse(f"the vendor ended the answer early (finish_reason {reason}); the answer is incomplete",
                             provider=step.provider, model=step.card.model, billed_usage=_usage_of(events))


class RoutedStream:
    """Async iterator of `StreamEvent`s from the chosen model (and, when the answer was
    cut, from the models that finished it). `route` is set before the first event is
    yielded; `response` (the whole answer) and the final cost after the end."""

    def __init__(self, ex: Executor, plan: RoutePlan, req: ChatRequest, scope: Mapping[str, Any] | None,
                 walk: Walk, index: int, step: PlanStep, res: Any, it: AsyncIterator[Any], buffered: list[Any],
                 t0: float) -> None:
        self._ex, self._plan, self._req, self._scope, self._walk = ex, plan, req, scope, walk
        # every content event handed to the caller, all attempts; a text event is kept as its
        # `str` (not an object the garbage collector walks: a stream keeps ~100 of them for seconds)
        self._all: list[Any] = []
        self.route: RouteInfo = ex.route_info(plan, step, walk.attempts, final=False)
        self.response: ChatResponse | None = None
        self.done = False
        self._use(index, step, res, it, buffered, t0, prompt=plan.features.input_tokens)

    def _use(self, index: int, step: PlanStep, res: Any, it: AsyncIterator[Any], buffered: list[Any], t0: float, *,
             prompt: int) -> None:
        """Make (step, it) the attempt the stream reads from."""
        self._index, self._step, self._res, self._it = index, step, res, it
        self._pending = buffered
        self._events: list[Any] = []  # this attempt's events handed to the caller (texts as `str`)
        self._prompt = prompt
        self._t0 = t0
        self._settled = False
        self._attempt = Attempt(model_id=step.model_id, provider=step.provider, ok=True,
                                latency_ms=(time.perf_counter() - t0) * 1000)  # time to first event, for now
        self._walk.attempts.append(self._attempt)

    def __aiter__(self) -> "RoutedStream":
        return self

    async def __aenter__(self) -> "RoutedStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def __anext__(self) -> Any:
        while True:
            if self._pending:
                ev = self._pending.pop(0)
            elif self.done:
                raise StopAsyncIteration
            else:
                try:
                    ev = await self._it.__anext__()
                except StopAsyncIteration:
                    await self._settle(None)
                    self._close_out()
                    raise
                except Exception as e:  # a vendor error (or an adapter bug) mid-answer
                    self._take_spliced()
                    await self._fail(e)
                    continue
                except BaseException as e:  # cancelled
                    self._take_spliced()
                    await self._settle(e)
                    self._close_out()
                    raise
            if ev.kind == "finish" and ev.finish_reason == "error":
                self._pending.clear()
                await _aclose(self._it)
                await self._fail(truncated(self._step, self._events))
                continue
            k = ev.kind
            kept = ev.text if k == "text" else ev
            self._events.append(kept)
            if k != "usage":
                self._all.append(kept)
            return ev

    def _take_spliced(self) -> None:
        """Count text a splice wrote to the client that no event reported (it was cut off)."""
        text = take_pending()
        if text:
            self._events.append(text)
            self._all.append(text)

    async def _fail(self, e: Exception) -> None:
        """The current attempt broke after content was sent: bill it, then continue the
        answer on a fallback, or raise `e` (the stream is over)."""
        if not isinstance(e, ProviderError):
            log.error("provider %s raised an unmapped error mid-stream: %r", self._step.deployment, e)
        await self._settle(e)
        if await self._continue(e):
            return
        self._close_out()
        raise e

    async def _continue(self, e: Exception) -> bool:
        """Open the next step that can finish the answer; True when one produced content."""
        if isinstance(e, ProviderError) and not e.fallback:
            return False
        if any(not isinstance(ev, str) and ev.kind == "tool_call" for ev in self._all):  # cannot be prefilled
            return False
        ex, plan, walk = self._ex, self._plan, self._walk
        walk.last_error = e
        sent = "".join(ev for ev in self._all if isinstance(ev, str))
        kept = sent.rstrip()  # vendors refuse a prefill that ends in whitespace (Anthropic)
        req = self._req
        if kept:
            req = req.model_copy(update={"messages": [*req.messages, Message(role="assistant", content=kept)]})
        accept = _needs_prefill if kept else None
        walker = ex.walk_plan(plan, self._scope, walk, _opener(ex, req), start=self._index + 1, accept=accept)
        async with aclosing(walker) as opened:
            try:
                async for index, step, res, (it, buffered), t0 in opened:
                    if len(sent) > len(kept):  # the client already has the whitespace the prefill dropped
                        _trim_first_text(buffered)
                    self._use(index, step, res, it, buffered, t0,
                              prompt=plan.features.input_tokens + delivered_tokens(kept))
                    failed = ", ".join(f"{a.model_id} ({a.error_type})" for a in walk.attempts if not a.ok)
                    self.route.reason = f"{plan.reason}; answer finished by {step.model_id} after {failed}"
                    if step.param_notes:
                        self.route.reason += f"; params: {'; '.join(step.param_notes)}"
                    return True
            except ProviderError:  # e.g. the fallback rejected the prefill: the cut stands (recorded on walk)
                return False
        return False

    async def _delivered(self) -> Usage:
        """The tokens of this attempt handed to the caller, plus its prompt."""
        evs = self._events
        text = "".join(ev if isinstance(ev, str) else ev.text for ev in evs
                       if isinstance(ev, str) or ev.kind == "reasoning")
        text += "".join(ev.arguments for ev in evs if not isinstance(ev, str) and ev.kind == "tool_call")
        if len(text) > _BIG:  # exact counting of a long answer takes milliseconds: keep it off the loop
            n = await asyncio.to_thread(delivered_tokens, text)
        else:
            n = delivered_tokens(text)
        return Usage(input_tokens=self._prompt, output_tokens=n)

    async def _settle(self, error: BaseException | None) -> None:
        """Bill the current attempt (once) and learn from how it ended."""
        if self._settled:
            return
        self._settled = True
        ex, step = self._ex, self._step
        latency = (time.perf_counter() - self._t0) * 1000
        now = ex.clock()
        ex.health.finished(step.deployment)
        resp = accumulate(_as_events(self._events), provider=step.provider, model=step.card.model)
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
            if usage is None:  # the vendor sent no usage: bill the delivered tokens rather than $0
                usage = await self._delivered()
                att.error_message = "usage not reported by the vendor; counted from the delivered text"
        else:
            att.ok = False
            att.error_type = type(error).__name__
            att.error_message = str(error) or att.error_type
            if isinstance(error, ProviderError) and error.billed_usage is not None:
                usage = error.billed_usage
            if self._events or usage is not None:  # something was generated: never bill less than delivered
                usage = _at_least(usage, await self._delivered())
            if isinstance(error, ProviderError):
                await ex.on_error(step, error)
            elif isinstance(error, (_Cancelled, GeneratorExit)) or not isinstance(error, Exception):
                att.error_type = "Cancelled"
                att.error_message = "closed by the caller; billed as reported, else as delivered"
            else:  # an adapter bug mid-answer: ours to fix, not the vendor's failure (no breaker count)
                log.error("provider %s raised an unmapped error mid-stream: %r", step.deployment, error)
        await ex.settle(step, self._res, usage, att)
        ex.costs(self.route, final=False)

    def _close_out(self) -> None:
        """The stream is over: the whole answer and the final costs."""
        if self.done:
            return
        self.done = True
        resp = accumulate(_as_events(self._all), provider=self._step.provider, model=self._step.card.model)
        billed = [a.usage for a in self.route.attempts if a.usage is not None]
        if billed:
            resp.usage = sum(billed, Usage())
            resp.usage_reported = True
        self.response = resp
        self._ex.costs(self.route)

    async def aclose(self) -> None:
        if not self.done:
            await _aclose(self._it)
            await self._settle(_Cancelled("stream closed by the caller"))
            self._close_out()


def _needs_prefill(provider: Any) -> str | None:
    return None if getattr(provider, "prefill", False) else "NoPrefill"


def _trim_first_text(events: list[Any]) -> None:
    for i, ev in enumerate(events):
        if ev.kind == "text":
            events[i] = ev.model_copy(update={"text": ev.text.lstrip()})
            return


def _at_least(reported: Usage | None, delivered: Usage) -> Usage:
    """`reported`, with input and output no lower than `delivered`."""
    if reported is None:
        return delivered
    return reported.model_copy(update={"input_tokens": max(reported.input_tokens, delivered.input_tokens),
                                       "output_tokens": max(reported.output_tokens, delivered.output_tokens)})


async def _until_content(it: AsyncIterator[Any], step: PlanStep, buffered: list[Any]) -> None:
    """Read `it` into `buffered` up to its first content event."""
    while True:
        try:
            ev = await it.__anext__()
        except StopAsyncIteration:
            raise MalformedResponse("stream ended before any content", provider=step.provider,
                                    model=step.card.model, billed_usage=_usage_of(buffered)) from None
        if ev.kind == "finish" and ev.finish_reason == "error":
            raise truncated(step, buffered)
        buffered.append(ev)
        if ev.kind in _CONTENT:
            return


def _opener(ex: Executor, req: ChatRequest) -> StepCall:
    """How the stream consumes the plan walk: open a step's stream and read it up to its
    first content, as (iterator, buffered events). A step that fails first is closed; the
    usage it reported so far is what it billed."""

    async def call(provider: Any, step: PlanStep) -> tuple[AsyncIterator[Any], list[Any]]:
        it = provider.stream(ex.request_for(step, req, provider))
        buffered: list[Any] = []
        try:
            await _until_content(it, step, buffered)
        except BaseException as e:
            await _aclose(it)
            if isinstance(e, ProviderError) and e.billed_usage is None:
                e.billed_usage = _usage_of(buffered)
            raise
        return it, buffered

    return call


async def open_stream(ex: Executor, plan: RoutePlan, req: Any, *, scope: Mapping[str, Any] | None = None
                      ) -> RoutedStream:
    """Walk the plan (`Executor.walk_plan`) until a step produces content; the routed stream
    reads on from there."""
    walk = Walk()
    async with aclosing(ex.walk_plan(plan, scope, walk, _opener(ex, req))) as opened:
        async for index, step, res, (it, buffered), t0 in opened:
            return RoutedStream(ex, plan, req, scope, walk, index, step, res, it, buffered, t0)
    raise ex.exhausted(plan, walk)


def _as_events(kept: list[Any]) -> list[Any]:
    """Kept events as events again (a text kept as its `str` -> `TextDelta`)."""
    return [text_delta(ev) if isinstance(ev, str) else ev for ev in kept]


def _usage_of(events: list[Any]) -> Usage | None:
    u = None
    for ev in events:
        if not isinstance(ev, str) and ev.kind == "usage":
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
