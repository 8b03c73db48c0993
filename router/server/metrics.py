"""Prometheus metrics on a private registry (no process-global state, several apps
per process are fine in tests). Labelled children are cached so the hot path is
a dict lookup and an increment.

Only model ids, provider names, endpoints and status codes become labels: never
keys, user ids or prompt text.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("quotaroute_requests", "Proxied requests", ["endpoint", "model", "provider", "status"],
                                registry=r)
        self.tokens = Counter("quotaroute_tokens", "Tokens billed by vendors", ["model", "kind"], registry=r)
        self.cost = Counter("quotaroute_cost_usd", "Money spent (USD; exact figures are in the spend log)",
                            ["model", "provider"], registry=r)
        self.fallbacks = Counter("quotaroute_fallbacks", "Attempts that failed over to another model",
                                 ["from_model", "error"], registry=r)
        self.free_requests = Gauge("quotaroute_free_quota_remaining_requests", "Requests left in a free pool",
                                   ["pool"], registry=r)
        self.free_tokens = Gauge("quotaroute_free_quota_remaining_tokens", "Tokens left in a free pool", ["pool"],
                                 registry=r)
        self.in_flight = Gauge("quotaroute_in_flight_requests", "Requests being served", registry=r)
        self.latency = Histogram("quotaroute_request_latency_seconds", "End-to-end request latency",
                                 ["endpoint"], buckets=_BUCKETS, registry=r)
        self.overhead = Histogram("quotaroute_overhead_seconds", "Time spent inside the proxy (upstream excluded)",
                                  ["endpoint"], buckets=_OVERHEAD_BUCKETS, registry=r)
        self.bad_keys = Gauge("quotaroute_upstream_key_bad",
                              "1 while an upstream key (or key@model pair) is cooling off after a 401/403",
                              ["key"], registry=r)
        self.circuit_open = Gauge("quotaroute_circuit_open", "1 while a deployment's circuit breaker is open",
                                  ["deployment"], registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._health_labels: dict[Any, set[str]] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        k = (id(metric), labels)
        c = self._children.get(k)
        if c is None:
            c = self._children[k] = metric.labels(*labels)
        return c

    def observe(self, *, endpoint: str, model: str, provider: str, status: int, latency_s: float,
                overhead_s: float | None, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0,
                attempts: list[Any] = ()) -> None:  # type: ignore[assignment]
        self._child(self.requests, endpoint, model or "-", provider or "-", str(status)).inc()
        self._child(self.latency, endpoint).observe(latency_s)
        if overhead_s is not None:
            self._child(self.overhead, endpoint).observe(max(0.0, overhead_s))
        if input_tokens:
            self._child(self.tokens, model, "input").inc(input_tokens)
        if output_tokens:
            self._child(self.tokens, model, "output").inc(output_tokens)
        if cost_usd:
            self._child(self.cost, model, provider).inc(cost_usd)
        for a in attempts:
            if not getattr(a, "ok", True):
                self._child(self.fallbacks, a.model_id, a.error_type or "error").inc()

    def set_quota(self, view: Any) -> None:
        """Refresh the free-quota gauges from a LedgerView (at scrape time)."""
        pools = getattr(view, "pools", None) or {}
        for pid, p in pools.items():
            if not getattr(p, "free", False):
                continue
            if p.remaining_requests is not None:
                self.free_requests.labels(pid).set(p.remaining_requests)
            if p.remaining_tokens is not None:
                self.free_tokens.labels(pid).set(p.remaining_tokens)

    def set_health(self, health: Any, now: Any) -> None:
        """Refresh the bad-key and open-circuit gauges from a HealthBook (at scrape time):
        key ids (configured names, never a secret) and deployment ids only."""
        bad = {k for k, h in health.items() if h.bad}
        opened = {k for k, h in health.items() if h.open_until is not None and now < h.open_until}
        for gauge, now_set in ((self.bad_keys, bad), (self.circuit_open, opened)):
            for gone in self._health_labels.get(gauge, set()) - now_set:
                gauge.remove(gone)
            for k in now_set:
                gauge.labels(k).set(1)
            self._health_labels[gauge] = now_set

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
