"""Runs a `RoutePlan`: reserve on the ledger, call, fall back, bill. All I/O is here.

Fallback down the plan on RateLimited, QuotaExhausted, Unavailable, Timeout,
ContextTooLong (only to models with a larger window), MalformedResponse and an answer
the vendor cut short (finish_reason "error": TruncatedResponse); stop on
BadRequest, ContentFiltered and AuthFailed (a 401 marks the key bad for a cool-off,
a 403 only the key + model pair; see `router.health`). Only the vendor's failures
(Unavailable, Timeout, MalformedResponse) count against a model's health; a request
that cannot be encoded (UnencodableRequest) and an adapter's own bug never do. Retrying the
*same* deployment for transient errors happens at one layer only: inside the
adapters (`providers.retry.RetryPolicy`); the executor never retries, it switches.

Billing: every attempt holds a reservation; an attempt the vendor billed (a
response, or an error carrying `billed_usage`) is committed at the exact price,
an unbilled failure is released. Streams live in `router.streaming`; the cascade
answer check in `router.checks`.

One proxy request, read downward: server/app.py -> server/handlers.py -> server/<wire> -> sdk.py ->
executor.py (`walk_plan`: reserve, call, fall back, bill) -> next: providers/<adapter>.py.
A streamed request reads the same walk through streaming.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from providers.params import fit as fit_params
from router.checks import Verifier, check_response
from router.errors import (
    AuthFailed,
    BudgetExceeded,
    ContextTooLong,
    NoRouteAvailable,
    PoolUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    TruncatedResponse,
    UnencodableRequest,
    Unavailable,
    UnknownPrice,
)
from router.health import HealthBook, set_single_attempt
from router.limits import calling
from router.plan import PlanStep, RoutePlan
from router.pricing import cost
from router.result import Attempt, RouteInfo, RoutedResponse
from router.tasks import fast_estimate_tokens
from router.types import ChatRequest, ChatResponse, Usage

__all__ = ["Executor", "Called", "StepCall", "Walk", "estimate_usage", "truncated", "DEFAULT_COOLDOWN_S"]

log = logging.getLogger("quotaroute.executor")
DEFAULT_COOLDOWN_S = 20.0  # a 429 without Retry-After
_ZERO = Decimal(0)

StepCall = Callable[[Any, PlanStep], Awaitable[Any]]  # (provider, step) -> what the consumer reads


class Called(NamedTuple):
    """A step of the walk whose call returned: what `Executor.walk_plan` yields."""

    index: int  # in plan.steps
    step: PlanStep
    reservation: Any  # the ledger's, to settle (None without a ledger)
    result: Any  # what the StepCall returned (a ChatResponse; a stream's opening)
    t0: float  # perf_counter when the call started


class Walk:
    """State of one walk down a plan: the attempts so far, the context window a
    fallback must exceed (after ContextTooLong), the last error and a BudgetExceeded."""

    __slots__ = ("attempts", "min_ctx", "last_error", "budget_error")

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.min_ctx = 0
        self.last_error: BaseException | None = None
        self.budget_error: BudgetExceeded | None = None


class Executor:
    """Runs plans against `providers` (key id -> Provider; a provider name works as
    its own key id), recording on `ledger` (may be None) and `health`."""

    def __init__(self, providers: Mapping[str, Any], *, ledger: Any = None, health: HealthBook | None = None,
                 clock: Callable[[], datetime], fx: Any = None, verifier: Verifier | None = None) -> None:
        self.providers = providers
        self.ledger = ledger
        self.health = health if health is not None else HealthBook()
        self.clock = clock
        self.fx = fx
        self.verifier = verifier
        self.version = 0  # bumped whenever the ledger/health learned something (view caches key on it)
        self._natives: dict[int, tuple[Decimal, str]] = {}  # id(attempt) -> billed amount in the price currency

    # ------------------------------------------------------------------ helpers
    def provider_for(self, step: PlanStep) -> Any:
        p = self.providers.get(step.key_id) if step.key_id else None
        return p if p is not None else self.providers.get(step.provider)

    @staticmethod
    def request_for(step: PlanStep, req: ChatRequest, provider: Any = None) -> ChatRequest:
        """The request as this step's vendor gets it: its model id, a max_tokens above the
        model's max output clamped to it (the limit the route was priced with), and the
        parameters translated for its vendor (`providers.params.fit`; what changed is noted
        on the step and shown in the route reason)."""
        upd: dict[str, Any] = {"model": step.card.model}
        cap = getattr(step.card, "max_output", None)
        if cap and req.max_tokens is not None and req.max_tokens > cap:
            upd["max_tokens"] = cap
        out = req.model_copy(update=upd)
        if provider is not None:
            out, step.param_notes = fit_params(out, step.card, provider)
        return out

    async def reserve(self, step: PlanStep, plan: RoutePlan, scope: Mapping[str, Any] | None) -> Any:
        if self.ledger is None:
            return None
        f = plan.features
        sc = dict(scope or {})
        if step.key_id:
            sc.setdefault("upstream_key", step.key_id)
        if f.user and "user" not in sc:
            sc["user"] = f.user
        if f.tags and "tags" not in sc:
            sc["tags"] = list(f.tags)
        return await self.ledger.reserve(
            step.model_id, provider=step.provider, tokens=f.input_tokens + f.expected_output_tokens,
            input_tokens=f.input_tokens, cost_usd=_ZERO if step.free else step.expected_cost_usd, scope=sc,
            now=self.clock())

    @staticmethod
    def unpriced(step: PlanStep) -> UnknownPrice | None:
        """UnknownPrice when the step's model has no known price and is not local (such a
        step is never called: its bill could not be computed, and $0 would be a lie)."""
        card = step.card
        if card.price is None and "local" not in (card.regions or ()):
            return UnknownPrice(f"no known price for {step.model_id}; set one in config (models: {{overrides: "
                                f"{{{step.model_id}: {{price: {{input: ..., output: ...}}}}}}}}); not called")
        return None

    def price(self, step: PlanStep, usage: Usage, now: datetime) -> tuple[Decimal, Decimal | None, str]:
        """Exact cost of `usage` on the step's model. Raises UnknownPrice for a model with
        no known price (never billed as $0); local models cost 0."""
        price = step.card.price
        if price is None:
            e = self.unpriced(step)
            if e is not None:
                raise e
            return _ZERO, None, "USD"
        c = cost(usage, price, at=now, fx=self.fx)
        return c.usd, c.native, c.currency

    async def settle(self, step: PlanStep, res: Any, usage: Usage | None, att: Attempt) -> None:
        """Commit billed usage (exact price; the ledger says what a free pool covered)
        or release the reservation when nothing was billed."""
        now = self.clock()
        if usage is None:
            if res is not None:
                await self.ledger.release(res, now)
            return
        usd, native, cur = self.price(step, usage, now)
        att.usage = usage
        if res is None:
            att.cost_usd = _ZERO if step.free else usd
            att.free_pool = step.pool_id if step.free else None
        else:
            s = await self.ledger.commit(res, usage, usd, now)
            att.cost_usd = s.billed_usd
            att.free_pool = s.free_pool
        if native is not None:
            billed = att.cost_usd
            self._natives[id(att)] = (native if billed == usd else (native * billed / usd if usd else _ZERO), cur)

    def costs(self, route: RouteInfo, *, final: bool = True) -> None:
        """Fill the route's totals from its attempts: USD, and the native amount when
        every billed attempt was priced in one currency (e.g. CNY)."""
        billed = [a for a in route.attempts if a.usage is not None]
        route.cost_usd = sum((a.cost_usd for a in billed), _ZERO)
        route.free_quota_used = any(a.free_pool for a in route.attempts)
        nat = [self._natives.get(id(a)) for a in billed]
        if nat and all(n is not None for n in nat) and len({n[1] for n in nat}) == 1:  # type: ignore[index]
            route.cost_native = sum((n[0] for n in nat), _ZERO)  # type: ignore[index]
            route.currency = nat[0][1]  # type: ignore[index]
        else:
            route.cost_native, route.currency = None, "USD"
        if final:
            for a in route.attempts:
                self._natives.pop(id(a), None)

    async def on_error(self, step: PlanStep, e: ProviderError) -> None:
        """Learn from a failed attempt (ledger cool-downs/exhaustion, health)."""
        now = self.clock()
        led = self.ledger
        self.version += 1
        if e.rate_limits is not None and led is not None:
            try:
                await led.observe(step.model_id, e.rate_limits, now)
            except Exception:  # pragma: no cover - learning must never break the call
                log.exception("ledger.observe failed")
        if isinstance(e, QuotaExhausted):
            if led is not None:
                await led.mark_exhausted(step.model_id, now)
        elif isinstance(e, RateLimited):
            if led is not None:
                await led.cooldown(step.model_id, e.retry_after if e.retry_after is not None else DEFAULT_COOLDOWN_S,
                                   now)
        elif isinstance(e, AuthFailed):
            if e.status == 403:  # authenticated, but this key may not use this model: only the pair
                self.health.mark_bad(step.deployment, "model not permitted for this key (HTTP 403)", now)
            else:
                self.health.mark_bad(step.key_id or step.provider, f"authentication failed (HTTP {e.status})", now)
        elif isinstance(e, (Unavailable, Timeout)):  # incl. MalformedResponse, TruncatedResponse
            if getattr(e, "vendor_fault", True):
                self.health.failure(step.deployment, now)

    # ------------------------------------------------------------------ the walk down a plan
    # One walk (`walk_plan`), two ways to consume it: `run()` below completes, and
    # `router.streaming.open_stream` streams. Both call a step through `call_step`.
    async def open_step(self, step: PlanStep, plan: RoutePlan, scope: Mapping[str, Any] | None,
                        walk: Walk) -> tuple[bool, Any]:
        """(True, reservation) when the step may be called; (False, None) when it is
        skipped (unpriced, over budget, or its free pool emptied since the plan was made),
        recorded on `walk`."""
        up = self.unpriced(step)
        if up is not None:  # a plan not made by choose() (which drops such models)
            walk.attempts.append(_skip(step, up))
            walk.last_error = up
            return False, None
        skipped: Exception
        try:
            res = await self.reserve(step, plan, scope)
        except BudgetExceeded as e:
            walk.budget_error = skipped = e
        except PoolUnavailable as e:  # the pool emptied since the plan was made
            skipped = e
        else:
            # Claim the call on the health book (no await between this and `started()`): a
            # circuit that opened, or a probe another request took since the plan was made,
            # skips the step; a probe is made as one attempt, never retried.
            probe = self.health.admit(step.deployment, step.key_id or step.provider, self.clock())
            if probe is not None:
                set_single_attempt(probe)
                return True, res
            if res is not None:
                await self.ledger.release(res, self.clock())
            walk.attempts.append(Attempt(model_id=step.model_id, provider=step.provider, ok=False,
                                         error_type="CircuitOpen",
                                         error_message=f"{step.deployment} not available now (circuit open, key cooling "
                                                       "off, or a probe in flight)"))
            return False, None
        self.version += 1
        walk.attempts.append(_skip(step, skipped))
        return False, None

    async def next_step(self, plan: RoutePlan, scope: Mapping[str, Any] | None, walk: Walk, start: int = 0, *,
                        accept: Callable[[Any], str | None] | None = None) -> tuple[int, PlanStep, Any, Any] | None:
        """The first step at or after index `start` that may be called, as (index, step,
        provider, reservation); None when the plan is exhausted. Steps below the context
        window a fallback needs are passed over; steps without a provider, refused by
        `accept(provider)` (which returns the reason, e.g. "NoPrefill"), unpriced or over
        budget are recorded on `walk` and passed over."""
        steps = plan.steps
        for i in range(start, len(steps)):
            step = steps[i]
            if step.card.context_window <= walk.min_ctx:
                continue
            provider = self.provider_for(step)
            why = "NoProvider" if provider is None else accept(provider) if accept is not None else None
            if why:
                msg = f"no provider for {step.deployment}" if provider is None else f"passed over ({why})"
                walk.attempts.append(Attempt(model_id=step.model_id, provider=step.provider, ok=False, error_type=why,
                                             error_message=msg))
                continue
            ok, res = await self.open_step(step, plan, scope, walk)
            if ok:
                return i, step, provider, res
        return None

    async def call_step(self, plan: RoutePlan, step: PlanStep, provider: Any, res: Any, walk: Walk,
                        call: StepCall) -> tuple[Any, float] | None:
        """Call one step: `(await call(provider, step), start time)`, or None when it failed
        and the walk goes on (recorded, billed and learned from on `walk`). Raises a vendor
        error that must not fall back (it carries `route`) and cancellation (the reservation
        given back). On success the step stays in flight on the health book until the
        consumer calls `health.finished` (a stream, when it ends)."""
        dep = step.deployment
        self.health.started(dep)
        t0 = time.perf_counter()
        try:
            with calling(step.card):  # the card's time limits for this attempt
                out = await call(provider, step)
        except ProviderError as e:
            self.health.finished(dep)
            if not await self.step_failed(plan, step, res, e, t0, e.billed_usage, walk):
                raise
            return None
        except Exception as e:  # an adapter bug, not a mapped vendor error: log it, fall back
            self.health.finished(dep)
            await self.adapter_bug(step, res, e, t0, walk, plan=plan)
            return None
        except BaseException:  # cancelled: give the reservation back
            self.health.finished(dep)
            if res is not None:
                await self.ledger.release(res, self.clock())
            raise
        finally:
            set_single_attempt(False)
        return out, t0

    async def walk_plan(self, plan: RoutePlan, scope: Mapping[str, Any] | None, walk: Walk, call: StepCall, *,
                        start: int = 0, accept: Callable[[Any], str | None] | None = None
                        ) -> AsyncIterator[Called]:
        """THE walk down a plan, shared by `run()` (complete) and `router.streaming` (stream):
        yields a `Called` (index, step, reservation, result of `call`, start time) for each
        step whose call returned, in plan order from `start`; failed and skipped steps are recorded on
        `walk` and passed. The consumer returns on an answer it keeps, or reads on (a cut
        answer, a cascade check that failed). Use it under `contextlib.aclosing`."""
        while (nx := await self.next_step(plan, scope, walk, start, accept=accept)) is not None:
            i, step, provider, res = nx
            start = i + 1
            got = await self.call_step(plan, step, provider, res, walk, call)
            if got is not None:
                yield Called(i, step, res, got[0], got[1])

    async def step_failed(self, plan: RoutePlan, step: PlanStep, res: Any, e: ProviderError, t0: float,
                          billed: Usage | None, walk: Walk) -> bool:
        """Record a mapped vendor error, bill what the vendor `billed` (else release), learn
        from it. True: fall back to the next step; False: the caller re-raises `e`
        (it carries `route`)."""
        att = _failed(step, e, (time.perf_counter() - t0) * 1000)
        walk.attempts.append(att)
        await self.settle(step, res, billed, att)
        await self.on_error(step, e)
        walk.last_error = e
        if isinstance(e, ContextTooLong):
            walk.min_ctx = max(walk.min_ctx, step.card.context_window)
            return True
        if not e.fallback:
            e.route = self.route_info(plan, None, walk.attempts)
            return False
        return True

    async def adapter_bug(self, step: PlanStep, res: Any, e: Exception, t0: float, walk: Walk, *,
                          plan: RoutePlan | None = None) -> None:
        """An adapter raised something that is not a mapped vendor error. A request that
        cannot be encoded (too deep, not JSON) is the client's mistake: raised as
        UnencodableRequest (400, no fallback: every model would fail the same way). Anything
        else is our bug: logged, the reservation released, the caller falls back. Neither
        counts against the model's health: only the vendor's failures do."""
        err: ProviderError
        if isinstance(e, (RecursionError, orjson.JSONEncodeError)):
            err = UnencodableRequest(f"the request could not be encoded for the vendor ({type(e).__name__})",
                                     provider=step.provider, model=step.card.model)
        else:
            log.exception("provider %s raised an unmapped error", step.deployment)
            err = Unavailable(f"unexpected {type(e).__name__} from the adapter", provider=step.provider,
                              model=step.card.model)
        walk.attempts.append(_failed(step, err, (time.perf_counter() - t0) * 1000))
        await self.settle(step, res, None, walk.attempts[-1])
        walk.last_error = e
        if isinstance(err, UnencodableRequest):
            walk.last_error = err
            if plan is not None:
                err.route = self.route_info(plan, None, walk.attempts)
            raise err from e

    def exhausted(self, plan: RoutePlan, walk: Walk) -> Exception:
        """The error to raise when no step answered: BudgetExceeded when the budget was the
        only reason, else NoRouteAvailable (both carry `route`)."""
        info = self.route_info(plan, None, walk.attempts)
        budget_error = walk.budget_error
        if budget_error is not None and all(a.error_type == "BudgetExceeded" for a in walk.attempts):
            budget_error.route = info
            budget_error.attempts = walk.attempts
            return budget_error
        err = _no_route(plan, walk.attempts, walk.last_error)
        err.route = info
        return err

    # ------------------------------------------------------------------ complete
    async def run(self, plan: RoutePlan, req: ChatRequest, *, scope: Mapping[str, Any] | None = None,
                  verifier: Verifier | None = None) -> RoutedResponse:
        walk = Walk()
        attempts = walk.attempts
        verifier = verifier or self.verifier
        cascade = plan.policy == "cascade"
        escalations = 0
        max_escalations = plan.policy_obj.cascade_max_steps
        last_ok: tuple[ChatResponse, PlanStep, str] | None = None
        steps = plan.steps

        async def complete(provider: Any, step: PlanStep) -> ChatResponse:
            return await provider.complete(self.request_for(step, req, provider))

        async with aclosing(self.walk_plan(plan, scope, walk, complete)) as answers:
            async for i, step, res, resp, t0 in answers:
                att = await self.answered(plan, step, res, resp, t0, walk)
                if att is None:
                    continue
                if cascade and i < len(steps) - 1 and escalations < max_escalations:
                    why = await check_response(resp, req, verifier)
                    if why is not None:
                        att.ok, att.error_type, att.error_message = False, "CheckFailed", why
                        escalations += 1
                        last_ok = (resp, step, why)
                        continue
                return RoutedResponse(response=resp, route=self.route_info(plan, step, attempts))
        if last_ok is not None:  # cascade: nothing passed the check; the last answer is the best we have
            resp, step, why = last_ok
            info = self.route_info(plan, step, attempts)
            info.reason += f"; cascade: no answer passed the check (last: {why})"
            return RoutedResponse(response=resp, route=info)
        raise self.exhausted(plan, walk)

    async def answered(self, plan: RoutePlan, step: PlanStep, res: Any, resp: ChatResponse, t0: float,
                       walk: Walk) -> Attempt | None:
        """Book a step whose `complete` call returned: an answer the vendor cut short
        (finish_reason "error") is a failure (recorded, billed, None: read on); else the
        attempt, recorded on `walk`, learned from and billed."""
        dep = step.deployment
        self.health.finished(dep)
        if resp.finish_reason == "error":  # the vendor cut the answer short: a failure, never "complete"
            cut = truncated(step, resp, plan)
            await self.step_failed(plan, step, res, cut, t0, cut.billed_usage, walk)  # always falls back
            return None
        latency = (time.perf_counter() - t0) * 1000
        now = self.clock()
        self.health.success(dep, latency, now)
        if resp.rate_limits is not None and self.ledger is not None:
            await self.ledger.observe(step.model_id, resp.rate_limits, now)
        att = Attempt(model_id=step.model_id, provider=step.provider, ok=True, latency_ms=latency)
        walk.attempts.append(att)
        await self.settle(step, res, resp.usage, att)
        return att

    def route_info(self, plan: RoutePlan, step: PlanStep | None, attempts: list[Attempt], *,
                   final: bool = True) -> RouteInfo:
        total = _ZERO
        reason = plan.reason
        if step is not None and plan.steps and step is not plan.steps[0]:
            failed = [f"{a.model_id} ({a.error_type})" for a in attempts if not a.ok]
            reason = f"{reason}; fell back to {step.model_id} after {', '.join(failed)}"
        if step is not None and step.param_notes:
            reason = f"{reason}; params: {'; '.join(step.param_notes)}"
        info = RouteInfo.model_construct(
            model_id=step.model_id if step else "", provider=step.provider if step else "",
            policy=plan.policy, reason=reason, task=plan.features.task, candidates=plan.candidates(),
            estimated_cost_usd=plan.estimated_cost_usd, cost_usd=total, cost_native=None, currency="USD",
            free_quota_used=False, attempts=attempts, overhead_ms=None)
        self.costs(info, final=final)
        return info


def estimate_usage(plan: RoutePlan, resp: ChatResponse) -> Usage:
    """The prompt plus the tokens in `resp`: what to bill when the vendor reported nothing."""
    out = fast_estimate_tokens(resp.text) + fast_estimate_tokens(resp.reasoning) + sum(
        fast_estimate_tokens(t.arguments) for t in resp.tool_calls)
    return Usage(input_tokens=plan.features.input_tokens, output_tokens=out)


def truncated(step: PlanStep, resp: ChatResponse, plan: RoutePlan) -> TruncatedResponse:
    """A response that ended with finish_reason "error", as the failure it is: billed at
    the usage the vendor reported (else an estimate of what it produced)."""
    det = resp.provider_details or {}
    raw = str(det.get("finish_reason_raw") or det.get("finish_reason") or det.get("stop_reason") or "error")[:64]
    usage = resp.usage if resp.usage_reported else estimate_usage(plan, resp)
    return TruncatedResponse(f"the vendor ended the answer early (finish reason {raw!r})", provider=step.provider,
                             model=step.card.model, code=raw, billed_usage=usage, rate_limits=resp.rate_limits,
                             vendor_fault=not det.get("model_error"))


def _skip(step: PlanStep, e: BaseException) -> Attempt:
    return Attempt(model_id=step.model_id, provider=step.provider, ok=False, error_type=type(e).__name__,
                   error_message=str(e))


def _failed(step: PlanStep, e: ProviderError, latency_ms: float) -> Attempt:
    return Attempt(model_id=step.model_id, provider=step.provider, ok=False, error_type=type(e).__name__,
                   error_message=str(e), latency_ms=latency_ms)


def _no_route(plan: RoutePlan, attempts: list[Attempt], last: BaseException | None) -> NoRouteAvailable:
    if not plan.steps:
        msg = plan.reason
    else:
        tried = ", ".join(f"{a.model_id}: {a.error_type}" for a in attempts) or "nothing could be tried"
        msg = f"all {len(attempts)} attempts failed ({tried})"
    err = NoRouteAvailable(msg, plan=plan, attempts=attempts, last_error=last)
    if last is not None:
        err.__cause__ = last
    return err
