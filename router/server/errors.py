"""Every error the proxy returns, mapped in one place.

OpenAI shape `{"error": {"message", "type", "param", "code"}}` everywhere, and
Anthropic's `{"type": "error", "error": {"type", "message"}}` on /v1/messages.
Every string of a body (message, type, code, param) and every header passes through
`redact()`: no upstream key can leave the server.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from router.errors import (
    AuthFailed,
    BudgetExceeded,
    ContentFiltered,
    ContextTooLong,
    Failure,
    LedgerUnavailable,
    MalformedResponse,
    ModelNotServed,
    NoRouteAvailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    TruncatedResponse,
    UnencodableRequest,
    UnknownModel,
    UpstreamBusy,
    WireError,
    redact,
)
from router.server.openai_wire import WireError

__all__ = ["Failure", "failure_from", "send_failure", "route_headers", "ascii_header"]

_PRINTABLE = bytes(c if 32 <= c < 127 else 63 for c in range(256))


def failure_from(e: BaseException) -> Failure:
    """Map any exception to the response the client gets, with the route it took: the
    provider-qualified model last tried (as on successes), the vendors' time and cost."""
    f = _failure_from(e)
    route = e.route if isinstance(e, (ProviderError, NoRouteAvailable, BudgetExceeded)) else None
    attempts = list((route.attempts if route is not None else None) or getattr(e, "attempts", None) or ())
    if attempts:
        last = attempts[-1]
        f.model, f.provider = last.model_id or f.model, last.provider or f.provider
        f.upstream_ms = sum(a.latency_ms or 0.0 for a in attempts)
    elif isinstance(e, ProviderError) and e.provider and e.model and f.model == e.model:
        f.model = f"{e.provider}:{e.model}"
    if route is not None and route.cost_usd:
        f.cost_usd = route.cost_usd
    return f


def _failure_from(e: BaseException) -> Failure:
    if isinstance(e, Failure):
        return e
    if isinstance(e, WireError):
        return Failure(e.status, e.message, type=e.type, code=e.code, param=e.param)
    if isinstance(e, UnknownModel):
        return Failure(404, unknown_model_message(e), code="model_not_found", param="model")
    if isinstance(e, LedgerUnavailable):  # nothing is granted that cannot be counted: no vendor call was made
        return Failure(503, "The quota ledger is unavailable; no upstream call was made. Retry later.",
                       type="server_error", code="ledger_unavailable",
                       retry_after=e.retry_after if e.retry_after is not None else 5.0)
    if isinstance(e, BudgetExceeded):
        return Failure(429, str(e), type="insufficient_quota", code="insufficient_quota")
    if isinstance(e, NoRouteAvailable):
        if _budget_blocked(e):
            return Failure(429, f"Budget exhausted: {e}", type="insufficient_quota", code="insufficient_quota",
                           reason=str(e))
        busy = e.last_error if isinstance(e.last_error, UpstreamBusy) else None
        return Failure(503, f"No route available: {e}", type="server_error", code="no_route_available",
                       reason=str(e), retry_after=busy.retry_after if busy is not None else None)
    if isinstance(e, UnencodableRequest):  # found before any vendor saw it: the client's request
        return Failure(400, f"Invalid request: {e.message}", code="unencodable_request")
    if isinstance(e, ProviderError):
        kw = {"model": e.model, "provider": e.provider, "retry_after": e.retry_after}
        msg = f"Upstream {e.provider or 'provider'} error: {e.message}"
        if isinstance(e, QuotaExhausted):
            return Failure(429, msg, type="insufficient_quota", code="upstream_quota_exhausted", **kw)
        if isinstance(e, RateLimited):
            return Failure(429, msg, type="requests", code="rate_limit_exceeded", **kw)
        if isinstance(e, AuthFailed):  # our upstream credentials, not the caller's: a gateway error
            return Failure(502, msg, type="upstream_error", code="upstream_auth_failed", **kw)
        if isinstance(e, ContextTooLong):
            return Failure(400, msg, code="context_length_exceeded", param="messages", **kw)
        if isinstance(e, ContentFiltered):
            return Failure(400, msg, code="content_filter", **kw)
        if isinstance(e, UpstreamBusy):
            return Failure(503, msg, type="server_error", code="upstream_busy",
                           **{**kw, "retry_after": e.retry_after or 1.0})
        if isinstance(e, Timeout):
            return Failure(504, msg, type="upstream_error", code="upstream_timeout", **kw)
        if isinstance(e, TruncatedResponse):
            return Failure(503, msg, type="upstream_error", code="upstream_truncated_response", **kw)
        if isinstance(e, MalformedResponse):
            return Failure(502, msg, type="upstream_error", code="upstream_malformed_response", **kw)
        status = e.status if e.status and 400 <= e.status <= 599 else 502
        if status in (401, 403):
            status = 502
        return Failure(status, msg, type="invalid_request_error" if status < 500 else "upstream_error",
                       code=e.code if e.code and len(e.code) < 64 else None, **kw)
    return Failure(500, "Internal proxy error.", type="server_error", code="internal_error")


def unknown_model_message(e: UnknownModel) -> str:
    """One flat sentence: the name asked for, the closest served ids, where to look."""
    if e.model is None:  # raised without structure (e.g. a test double): its text is the name
        return f"The model `{redact(str(e))[:200]}` does not exist or you do not have access to it."
    name = redact(e.model)[:200]
    if isinstance(e, ModelNotServed):
        return f"The model `{name}` is not served here: {redact(str(e))[:300]}. GET /v1/models lists what is."
    hint = " Did you mean " + ", ".join(f"`{redact(s)[:200]}`" for s in e.suggestions) + "?" if e.suggestions else ""
    return f"The model `{name}` does not exist or you do not have access to it.{hint} GET /v1/models lists the models served here."


def _budget_blocked(e: NoRouteAvailable) -> bool:
    """Every candidate was stopped by a hard budget (the engine drops them before any
    call, or the ledger refused each reservation): a 429, not a 503."""
    if isinstance(e.last_error, BudgetExceeded):
        return True
    attempts = list(e.attempts or [])
    if attempts and all(getattr(a, "error_type", "") == "BudgetExceeded" for a in attempts):
        return True
    plan = e.plan
    if plan is None or getattr(plan, "steps", None):
        return False
    try:
        reasons = [r.to_model().reason for r in plan.reasons if not r.kept]
    except Exception:  # noqa: BLE001 - a plan of another shape: not a budget stop
        return False
    return bool(reasons) and all(r.startswith("budget ") for r in reasons)


def ascii_header(value: str, limit: int = 200) -> bytes:
    """A header value that is ASCII, printable and bounded."""
    return value.encode("ascii", "replace")[:limit].translate(_PRINTABLE)


def money(d: Decimal | None) -> bytes:
    return format(d or Decimal(0), "f").encode()


_HDR_CACHE: dict[tuple[str, int], bytes] = {}


def cached_header(value: str, limit: int) -> bytes:
    """`ascii_header(redact(value))`, memoized: model names and route reasons repeat a lot.
    Only short values are remembered (a reason may quote a client's string), 4,096 at most."""
    if len(value) > 512:
        return ascii_header(redact(value) or "-", limit)
    k = (value, limit)
    v = _HDR_CACHE.get(k)
    if v is None:
        v = ascii_header(redact(value) or "-", limit)
        if len(_HDR_CACHE) > 4096:
            _HDR_CACHE.clear()
        _HDR_CACHE[k] = v
    return v


def route_headers(model: str, provider: str, cost: Decimal | None, reason: str, overhead_ms: float,
                  limit: int = 200) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-quotaroute-model", cached_header(model or "-", 200)),
        (b"x-quotaroute-provider", cached_header(provider or "-", 100)),
        (b"x-quotaroute-cost-usd", money(cost)),
        (b"x-quotaroute-route-reason", cached_header(reason or "-", limit)),
        (b"x-quotaroute-overhead-ms", f"{max(0.0, overhead_ms):.3f}".encode()),
    ]


async def send_failure(send: Any, f: Failure, *, anthropic: bool, t0: float, extra: list[Any] | None = None) -> float:
    """Send the error response; returns the proxy's own overhead in ms (the time since
    `t0` minus the time spent waiting on vendors, as on successes)."""
    body = f.anthropic_body() if anthropic else f.openai_body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if f.retry_after is not None:
        headers.append((b"retry-after", str(max(1, int(f.retry_after + 0.999))).encode()))
    elapsed_ms = (time.perf_counter() - t0) * 1000
    overhead_ms = max(0.0, elapsed_ms - min(f.upstream_ms, elapsed_ms))
    headers += route_headers(f.model, f.provider, f.cost_usd, f.reason or f.message[:120], overhead_ms)
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": f.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return overhead_ms
