"""The thin wrappers `router.server.tracing.Tracing.install` puts around a Router's parts
when tracing is on: each does what it wraps and opens one span. Nothing here is imported
with tracing off.

    TracedProvider   Provider protocol: complete / stream -> a CLIENT span per upstream attempt
    TracedLedger     reserve / commit / release -> an INTERNAL span each (other calls pass through)
    traced_plan      the Router's planning step -> the `route` span
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from router.errors import redact

__all__ = ["TracedProvider", "TracedLedger", "traced_plan", "in_request"]

# the request being traced (router.server.tracing._Request), set by `Tracing.serve`
_REQ: contextvars.ContextVar[Any] = contextvars.ContextVar("quotaroute_trace", default=None)


def in_request() -> bool:
    """True inside a traced request: the wrappers open spans only there."""
    return _REQ.get() is not None


def _safe(text: Any, n: int = 500) -> str:
    """Redacted (no key) and bounded text for an attribute."""
    return redact(str(text))[:n]


class TracedProvider:
    """A Provider whose calls are CLIENT spans (the request's model, the vendor's answer
    model, tokens, finish reason, error type; never the prompt or the answer)."""

    def __init__(self, inner: Any, tracing: Any, provider_name: str) -> None:
        self._inner = inner
        self._t = tracing
        self._pname = provider_name

    def __getattr__(self, name: str) -> Any:  # name, prefill, capabilities ...: the adapter's own
        return getattr(self._inner, name)

    async def complete(self, req: Any) -> Any:
        if not in_request():  # e.g. the start-up warm-up: no trace
            return await self._inner.complete(req)
        call = self._t.call_span(self._pname, req.model)
        try:
            resp = await self._inner.complete(req)
        except BaseException as e:
            self._t.call_done(call, error=e)
            raise
        self._t.call_done(call, resp_model=resp.model or req.model, usage=resp.usage if resp.usage_reported else None,
                          finish=resp.finish_reason, resp_id=resp.id)
        return resp

    def stream(self, req: Any) -> AsyncIterator[Any]:
        return self._stream(req) if in_request() else self._inner.stream(req)

    async def _stream(self, req: Any) -> AsyncIterator[Any]:
        """The adapter's stream; the span lasts until the stream ends (or is closed)."""
        call = self._t.call_span(self._pname, req.model)
        it = self._inner.stream(req)
        usage = finish = None
        error: BaseException | None = None
        try:
            async for ev in it:
                k = ev.kind
                if k == "usage":
                    usage = ev.usage
                elif k == "finish":
                    finish = ev.finish_reason
                yield ev
        except BaseException as e:
            error = e if not isinstance(e, GeneratorExit) else None
            raise
        finally:
            close = getattr(it, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001 - closing is best effort, as router.streaming does
                    pass
            self._t.call_done(call, resp_model=req.model, usage=usage, finish=finish, error=error)

    async def aclose(self) -> None:
        await self._inner.aclose()


class TracedLedger:
    """The ledger, with reserve / commit / release as spans (the money they moved)."""

    def __init__(self, inner: Any, tracing: Any) -> None:
        self._inner = inner
        self._t = tracing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def reserve(self, model_id: str, **kw: Any) -> Any:
        if not in_request():
            return await self._inner.reserve(model_id, **kw)
        attrs = {"quotaroute.model_id": model_id, "quotaroute.cost_usd": float(kw.get("cost_usd") or 0),
                 "quotaroute.tokens": int(kw.get("tokens") or 0)}
        with self._t.internal("ledger.reserve", attrs) as span:
            try:
                res = await self._inner.reserve(model_id, **kw)
            except Exception as e:
                self._t.fail(span, e)
                raise
            pool = getattr(res, "free_pool", None)
            if pool:
                span.set_attribute("quotaroute.free_pool", str(pool))
            return res

    async def commit(self, res: Any, usage: Any, cost_usd: Any, now: Any) -> Any:
        if not in_request():
            return await self._inner.commit(res, usage, cost_usd, now)
        attrs = {"quotaroute.model_id": str(getattr(res, "model_id", "") or ""),
                 "gen_ai.usage.input_tokens": usage.input_tokens, "gen_ai.usage.output_tokens": usage.output_tokens}
        with self._t.internal("ledger.commit", attrs) as span:
            try:
                s = await self._inner.commit(res, usage, cost_usd, now)
            except Exception as e:
                self._t.fail(span, e)
                raise
            billed = getattr(s, "billed_usd", None)
            span.set_attribute("quotaroute.cost_usd", float(billed if billed is not None else cost_usd))
            if getattr(s, "free_pool", None):
                span.set_attribute("quotaroute.free_pool", str(s.free_pool))
            return s

    async def release(self, res: Any, now: Any) -> Any:
        if not in_request():
            return await self._inner.release(res, now)
        with self._t.internal("ledger.release", {"quotaroute.model_id": str(getattr(res, "model_id", "") or "")}) \
                as span:
            try:
                return await self._inner.release(res, now)
            except Exception as e:
                self._t.fail(span, e)
                raise


def traced_plan(plan: Callable[..., Awaitable[Any]], tracing: Any) -> Callable[..., Awaitable[Any]]:
    """The Router's `_plan` as the `route` span: policy, reason, steps and candidates kept."""

    async def traced(req: Any, scope: Any, fallbacks: Any = ()) -> Any:
        if not in_request():  # aexplain at start-up, and any call outside a traced request
            return await plan(req, scope, fallbacks)
        with tracing.internal("route", {"gen_ai.request.model": _safe(req.model or "auto", 200)}) as span:
            try:
                p = await plan(req, scope, fallbacks)
            except Exception as e:
                tracing.fail(span, e)
                raise
            span.set_attribute("quotaroute.policy", str(getattr(p, "policy", "") or ""))
            span.set_attribute("quotaroute.route_reason", _safe(getattr(p, "reason", "") or ""))
            steps = getattr(p, "steps", None)
            if steps is not None:
                span.set_attribute("quotaroute.plan_steps", len(steps))
                if steps:
                    span.set_attribute("quotaroute.model_id", steps[0].model_id)
            return p

    return traced
