"""What every endpoint does after it has an answer or an error: the shared headers,
the spend-log row and metrics for a finished request (`finish`), the body `model` a
client sees (`response_model`), redacted reasons, small JSON sends.

Used by handlers.py (POST endpoints), stream_out.py (SSE) and info.py (GET endpoints).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

from router.errors import ANTHROPIC_TYPES, redact
from router.result import Attempt, RouteInfo
from router.server import anthropic_wire as aw
from router.server.auth import ProxyKey
from router.server.context import Handed, Scope, Send
from router.server.errors import Failure, ascii_header, failure_from, route_headers, send_failure
from router.server.settings import ServerSettings
from router.types import ChatRequest, Usage

__all__ = [
    "JSON_HEADER", "SSE_HEADERS", "header_of", "upstream_s", "response_model", "note_dropped", "app_log",
    "cascade_headers", "write_timeout_s", "billed_usage", "failure_type", "safe_text", "finish", "send_json",
    "guarded",
]


JSON_HEADER = (b"content-type", b"application/json")
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no")]


def header_of(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def upstream_s(route: RouteInfo, elapsed: float) -> float:
    """Time spent waiting on vendors: the attempts' latencies, else the call minus the router's own overhead."""
    s = sum(a.latency_ms for a in route.attempts) / 1000 if route.attempts else 0.0
    if s <= 0:
        s = elapsed - (route.overhead_ms or 0.0) / 1000
    return min(max(s, 0.0), elapsed)


def response_model(model_id: str, settings: ServerSettings) -> str:
    """The body's `model`: the vendor's model id (`gpt-5-nano`, what clients' own cost
    tracking knows); the qualified `provider:model` goes in x-quotaroute-model, and in the
    body too with `server.response_model: qualified`."""
    if settings.qualified_model_ids:
        return model_id
    return model_id.split(":", 1)[1] if ":" in model_id else model_id


def note_dropped(h: Handed, req: ChatRequest, route: RouteInfo) -> None:
    """Name in the route reason what of a Messages request the chosen vendor had no equivalent for."""
    gone = aw.dropped(req, h.router.wire_of(route.provider))
    if gone:
        route.reason = f"{route.reason}; dropped for {route.provider}: {', '.join(gone)}"


def app_log(e: BaseException) -> None:
    logging.getLogger("quotaroute.server").warning("request failed: %s", redact(repr(e))[:500])


def cascade_headers(route: RouteInfo) -> list[tuple[bytes, bytes]]:
    """What an answer-agreement cascade did (none for a single-model route): its name, the
    vendor calls made, the stages run, the stage that answered, the models that agreed."""
    c = route.cascade
    if c is None:
        return []
    return [(b"x-quotaroute-cascade", ascii_header(c.name, 64)), (b"x-quotaroute-calls", str(c.calls).encode()),
            (b"x-quotaroute-stages", str(c.stages_run).encode()),
            (b"x-quotaroute-accepted-stage", str(c.accepted_stage or 0).encode()),
            (b"x-quotaroute-agreed", ascii_header(",".join(c.agreed) or "-", 512)),
            (b"x-quotaroute-agreement", b"yes" if c.agreement else b"no")]


def write_timeout_s(settings: ServerSettings) -> float:
    """`limits.stream_write_timeout_s` of the server settings (default 30 s)."""
    v = settings.limits.stream_write_timeout_s
    return float(v) if v else 30.0


def billed_usage(route: RouteInfo) -> Usage | None:
    """The sum of the usage billed on the route's attempts; None when none was."""
    billed = [a.usage for a in route.attempts if a.usage is not None]
    return sum(billed, Usage()) if billed else None


def failure_type(f: Failure) -> str:
    return ANTHROPIC_TYPES.get(f.status, "api_error")


_REASONS: dict[str, str] = {}


def safe_text(reason: str | None) -> str | None:
    """Redacted, bounded route reason for the log (memoized: reasons repeat)."""
    if not reason:
        return None
    if len(reason) > 1024:  # only short reasons are memoized (a reason may quote a client's string)
        return redact(reason)[:500]
    v = _REASONS.get(reason)
    if v is None:
        if len(_REASONS) > 4096:
            _REASONS.clear()
        v = _REASONS[reason] = redact(reason)[:500]
    return v


def finish(h: Handed, key: ProxyKey | None, endpoint: str, req: Any, route: RouteInfo | None,
            usage: Usage | None, status: int, t0: float, overhead_ms: float | None, error: str | None, stream: bool,
            *, model: str = "", provider: str = "", attempts: list[Attempt] | None = None, log: bool = True) -> None:
    now = time.time()
    latency_s = time.perf_counter() - t0
    cost = Decimal(0)
    reason, chain = "", ""
    if route is not None:
        model, provider, cost, reason = route.model_id or model, route.provider or provider, route.cost_usd, route.reason
        attempts = route.attempts
        if usage is None or not usage.total_tokens:
            usage = sum((a.usage for a in attempts if a.usage is not None), Usage())
    if attempts:
        chain = ",".join(a.model_id for a in attempts)
    usage = usage or Usage()
    if key is not None and key.tpm:
        h.gate.count_tokens(key, usage.input_tokens + usage.output_tokens)
    if h.tracing is not None:  # the request span's outcome (router.server.tracing)
        h.tracing.finish(route, usage, status, error, req, stream, cost, model, provider)
    h.metrics.observe(endpoint=endpoint, model=model, provider=provider, status=status, latency_s=latency_s,
                        overhead_s=overhead_ms / 1000 if overhead_ms is not None else None,
                        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        cost_usd=float(cost), attempts=attempts or ())
    if h.spend is not None and log:
        h.spend.record((
            now, time.strftime("%Y-%m-%d", time.gmtime(now)), key.id if key is not None else None, endpoint,
            req.model if req is not None else None, model or None, provider or None, usage.input_tokens,
            usage.output_tokens, usage.cache_read_tokens, usage.reasoning_tokens, format(cost, "f"),
            round(latency_s * 1000, 3), round(overhead_ms, 3) if overhead_ms is not None else None,
            safe_text(reason), chain or None, status, redact(error)[:500] if error else None,
            1 if stream else 0,
        ))


# ---------------------------------------------------------------- other endpoints

async def send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None, *,
                     t0: float | None = None, reason: str = "") -> None:
    """A JSON response; with `t0`, a /v1 response: the x-quotaroute-* headers too (no
    model answered: `-`, cost 0, `reason` says what was served)."""
    headers = [JSON_HEADER, (b"content-length", str(len(body)).encode())] + (extra or [])
    if t0 is not None:
        headers += route_headers("-", "-", None, reason, (time.perf_counter() - t0) * 1000)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def guarded(send: Send, t0: float, coro: Awaitable[None]) -> None:
    try:
        await coro
    except Exception as e:  # noqa: BLE001
        await send_failure(send, failure_from(e), anthropic=False, t0=t0)
