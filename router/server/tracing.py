"""OpenTelemetry traces of the proxy (docs/tracing.md). Off by default: with `tracing:
{enabled: false}` nothing here is imported and the request path is the untraced one.

    tracing = Tracing.from_config(cfg)      # imports opentelemetry-sdk + the OTLP exporter (extra `otel`)
    app = create_app(router, settings, tracing=tracing)

One trace per proxied request (GenAI semantic conventions, see docs/tracing.md for the version):

    POST /v1/chat/completions        SERVER   http.*, gen_ai.* (request, answer, tokens), quotaroute.cost_usd
      route                          INTERNAL the routing decision (choose): policy, reason, candidates
      ledger.reserve                 INTERNAL one per attempt: model, expected cost (BudgetExceeded: error)
      chat gpt-5-nano                CLIENT   one per upstream attempt: gen_ai.*, cost, attempt index, error.type
      ledger.commit / ledger.release INTERNAL what was billed, or the hold given back

A client's `traceparent` (W3C Trace Context) makes the request span its child. A stream's
request span ends when the stream does, with the final usage and cost. Attributes carry
ids, counts, money, reasons and error types: never prompt or completion text, never a key
(the route reason and error text are redacted first).

The Router's parts are wrapped on install (`Tracing.install`): its executor's providers
and ledger, and its planning step, each in a thin wrapper that opens a span; an untraced
Router is never touched.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from router.server.tracing_wrap import _REQ, TracedLedger, TracedProvider, _safe, in_request, traced_plan

__all__ = ["Tracing", "GENAI_PROVIDER", "in_request", "otlp_exporter"]

# our provider names -> gen_ai.provider.name well-known values (others pass through as they are)
GENAI_PROVIDER = {"gemini": "gcp.gemini", "vertex": "gcp.vertex_ai", "bedrock": "aws.bedrock", "xai": "x_ai",
                  "mistral": "mistral_ai", "azure": "azure.ai.openai", "watsonx": "ibm.watsonx.ai"}
_UNTRACED = frozenset({"/healthz", "/metrics"})


def _route_of(path: str) -> str:
    """The low-cardinality route of a path (`http.route`, the span name)."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    if path.startswith("/v1/responses/"):
        return "/v1/responses/{response_id}"
    return path


def _genai_provider(name: str) -> str:
    return GENAI_PROVIDER.get(name, name)


class _Call:
    """One upstream attempt's span, ended when the request span ends (so the route's
    cost and attempt index, known only then, can be put on it)."""

    __slots__ = ("span", "provider", "model", "end_ns", "annotated", "deferred")

    def __init__(self, span: Any, provider: str, model: str) -> None:
        self.span, self.provider, self.model = span, provider, model
        self.end_ns: int | None = None
        self.annotated = False
        self.deferred = False  # True: ended with the request span


class _Request:
    """The request being traced: its span, its status and its upstream calls."""

    __slots__ = ("span", "status", "calls")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.status = 0
        self.calls: list[_Call] = []


class Tracing:
    """A tracer provider (OTLP exporter, or the span processor given) and the hooks the
    app and the Router's wrappers call. Build it with `from_config` (OTLP) or pass a
    `processor` (tests: a SimpleSpanProcessor over an InMemorySpanExporter)."""

    def __init__(self, cfg: Any, *, processor: Any = None) -> None:
        from opentelemetry import context, trace  # lazy: the `otel` extra, only with tracing on
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.cfg = cfg
        self._trace, self._context = trace, context
        self._kind = trace.SpanKind
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR
        self.provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name}),
                                       sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)))
        if processor is None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor  # lazy: the `otel` extra

            processor = BatchSpanProcessor(otlp_exporter(cfg))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("quotaroute")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_config(cls, cfg: Any) -> "Tracing":
        """Tracing with the OTLP exporter of `cfg` (a `tracing:` section). Raises
        `MissingExtra` (one line naming the `otel` extra) when a package is not installed."""
        from router.extras import need  # lazy: import time

        need("opentelemetry.sdk.trace", extra="otel", purpose="tracing (tracing.enabled)")
        pkg = "grpc" if cfg.protocol == "grpc" else "http"
        need(f"opentelemetry.exporter.otlp.proto.{pkg}.trace_exporter", extra="otel",
             purpose=f"tracing over OTLP ({cfg.protocol})")
        return cls(cfg)

    # ------------------------------------------------------------------ the request span
    def traced(self, path: str) -> bool:
        return path not in _UNTRACED

    async def serve(self, handler: Callable[..., Awaitable[None]], handed: Any, scope: Mapping[str, Any],
                    receive: Any, send: Any, t0: float) -> None:
        """Run `handler` inside the request's SERVER span (the parent from `traceparent`)."""
        carrier = {}
        for k, v in scope["headers"]:
            if k == b"traceparent" or k == b"tracestate":
                carrier[k.decode()] = v.decode("latin-1")
        parent = self._propagator.extract(carrier) if carrier else None
        method, path = scope["method"], scope["path"]
        route = _route_of(path)
        attrs: dict[str, Any] = {"http.request.method": method, "url.path": _safe(path, 200), "http.route": route,
                                 "url.scheme": scope.get("scheme", "http")}
        server = scope.get("server")
        if server:
            attrs["server.address"] = str(server[0])
            if server[1]:
                attrs["server.port"] = int(server[1])
        client = scope.get("client")
        if client:
            attrs["client.address"] = str(client[0])
        span = self.tracer.start_span(f"{method} {route}", context=parent, kind=self._kind.SERVER, attributes=attrs)
        if not span.is_recording():  # not sampled: nothing below is recorded either
            await handler(handed, scope, receive, send, t0)
            return
        rec = _Request(span)
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        rtoken = _REQ.set(rec)

        async def traced_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                rec.status = msg["status"]
            await send(msg)

        try:
            await handler(handed, scope, receive, traced_send, t0)
        except BaseException as e:
            span.set_attribute("error.type", type(e).__name__)
            raise
        finally:
            _REQ.reset(rtoken)
            self._context.detach(token)
            self._end(rec)

    def _end(self, rec: _Request) -> None:
        span = rec.span
        if rec.status:
            span.set_attribute("http.response.status_code", rec.status)
            if rec.status >= 500:
                span.set_status(self._status(self._error))
                span.set_attribute("error.type", str(rec.status))
        for c in rec.calls:
            c.span.end(end_time=c.end_ns)
        span.end()

    def finish(self, route: Any, usage: Any, status: int, error: str | None, req: Any, stream: bool,
               cost: Any, model: str, provider: str) -> None:
        """The request's outcome (called by the handlers' bookkeeping, inside the request
        span): the answer, tokens and cost on the request span; each attempt's cost, index
        and error on its upstream span."""
        rec = _REQ.get()
        if rec is None:
            return
        span = rec.span
        span.set_attribute("quotaroute.stream", stream)
        if req is not None and getattr(req, "model", None):
            span.set_attribute("gen_ai.request.model", _safe(req.model, 200))
        if model:
            span.set_attribute("gen_ai.response.model", model.split(":", 1)[1] if ":" in model else model)
            span.set_attribute("quotaroute.model_id", model)
        if provider:
            span.set_attribute("gen_ai.provider.name", _genai_provider(provider))
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        span.set_attribute("quotaroute.cost_usd", float(cost))
        if error:
            span.set_attribute("quotaroute.error", _safe(error))
            if status >= 400:
                span.set_attribute("error.type", str(status))
        if route is None:
            return
        if route.reason:
            span.set_attribute("quotaroute.route_reason", _safe(route.reason))
        span.set_attribute("quotaroute.policy", route.policy or "")
        called = [a for a in route.attempts if a.latency_ms > 0]
        span.set_attribute("quotaroute.attempts", len(called))
        span.set_attribute("quotaroute.fallback", len(called) > 1)
        free = [c for c in rec.calls if not c.annotated]
        for i, a in enumerate(called):
            c = _match(free, a)
            if c is None:
                continue
            free.remove(c)
            c.annotated = True
            s = c.span
            s.set_attribute("quotaroute.attempt", i)
            s.set_attribute("quotaroute.model_id", a.model_id)
            s.set_attribute("quotaroute.cost_usd", float(a.cost_usd))
            s.set_attribute("quotaroute.route_reason", _safe(route.reason))
            if a.free_pool:
                s.set_attribute("quotaroute.free_pool", a.free_pool)
            if a.usage is not None:  # what was billed (a stream cut short: the delivered tokens)
                s.set_attribute("gen_ai.usage.input_tokens", a.usage.input_tokens)
                s.set_attribute("gen_ai.usage.output_tokens", a.usage.output_tokens)
            if not a.ok and a.error_type:
                s.set_attribute("error.type", a.error_type)
                s.set_status(self._status(self._error, _safe(a.error_message or a.error_type, 200)))

    # ------------------------------------------------------------------ spans the wrappers open
    def call_span(self, provider: str, model: str, operation: str = "chat") -> _Call:
        span = self.tracer.start_span(f"{operation} {model}", kind=self._kind.CLIENT, attributes={
            "gen_ai.operation.name": operation, "gen_ai.provider.name": _genai_provider(provider),
            "gen_ai.system": _genai_provider(provider), "gen_ai.request.model": model,
            "quotaroute.provider": provider})
        call = _Call(span, provider, model)
        rec = _REQ.get()
        if rec is not None:  # ended with the request span (its cost and index come last); else
            rec.calls.append(call)  # (outside a traced request, e.g. the warm-up) when the call is
            call.deferred = True
        return call

    def call_done(self, call: _Call, *, resp_model: str | None = None, usage: Any = None,
                  finish: str | None = None, resp_id: str | None = None, error: BaseException | None = None) -> None:
        s = call.span
        if resp_model:
            s.set_attribute("gen_ai.response.model", resp_model)
        if resp_id:
            s.set_attribute("gen_ai.response.id", resp_id[:200])
        if finish:
            s.set_attribute("gen_ai.response.finish_reasons", [finish])
        if usage is not None:
            s.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            s.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if usage.cache_read_tokens:
                s.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
            if usage.reasoning_tokens:
                s.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
        if error is not None:
            s.set_attribute("error.type", type(error).__name__)
            s.set_status(self._status(self._error, _safe(error, 200)))
        if call.deferred:
            call.end_ns = time.time_ns()
        else:
            s.end()

    def internal(self, name: str, attributes: dict[str, Any]) -> Any:
        """A current INTERNAL span (context manager) under the request span."""
        return self.tracer.start_as_current_span(name, kind=self._kind.INTERNAL, attributes=attributes,
                                                 record_exception=False, set_status_on_exception=False)

    def fail(self, span: Any, e: BaseException) -> None:
        span.set_attribute("error.type", type(e).__name__)
        span.set_status(self._status(self._error, _safe(e, 200)))

    # ------------------------------------------------------------------ wiring
    def install(self, router: Any) -> None:
        """Wrap a real Router's providers, ledger and planning step (see the module doc);
        any other router (a test double, the benchmark's passthrough) gets the request span only."""
        from router.sdk import Router  # lazy: import time

        if not isinstance(router, Router):
            return
        ex = router.executor
        names = {k: name for name, ks in (router._keys or {}).items() for k in ks}
        ex.providers = {k: TracedProvider(p, self, names.get(k, getattr(p, "name", k))) for k, p in ex.providers.items()}
        if ex.ledger is not None:
            ex.ledger = TracedLedger(ex.ledger, self)
        router._plan = traced_plan(router._plan, self)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.provider.shutdown)  # flushes the batch

    def force_flush(self) -> bool:
        return bool(self.provider.force_flush())


def _match(free: list[_Call], a: Any) -> _Call | None:
    """The attempt span of route attempt `a`: the first one of its provider and model,
    else the first of its provider."""
    model = a.model_id.split(":", 1)[1] if ":" in a.model_id else a.model_id
    first = None
    for c in free:
        if c.provider == a.provider:
            if c.model == model:
                return c
            first = first or c
    return first


def otlp_exporter(cfg: Any) -> Any:
    """The OTLP span exporter `cfg` names (headers from the variable `headers_env`)."""
    headers = _headers(os.environ.get(cfg.headers_env, "")) if cfg.headers_env else None
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # lazy: the `otel` extra (grpc)
            OTLPSpanExporter as GrpcExporter,
        )
        ep = cfg.endpoint
        insecure = None
        if ep and ep.startswith("http://"):
            insecure = True
        return GrpcExporter(endpoint=ep, headers=headers, timeout=cfg.timeout_s, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # lazy: the `otel` extra

    ep = cfg.endpoint
    if ep and "/" not in ep.split("://", 1)[-1]:  # a bare collector address: its traces path
        ep = ep.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=ep, headers=headers, timeout=cfg.timeout_s)


def _headers(raw: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS format: `k=v,k2=v2` (values URL-encoded)."""
    out = {}
    for part in raw.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            if k.strip():
                out[k.strip().lower()] = unquote(v.strip())
    return out

