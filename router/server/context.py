"""What the proxy's handlers are handed: the typed router, the key gate and the app's
bookkeeping, passed down once. Handlers read these and return values; nothing calls
back up into the app.

    ProxyRouter   what the proxy needs of a router (`router.sdk.Router` is one)
    Handed        router + gate + settings + metrics + spend log + model list + load + response store
    ModelList     the /v1/models bodies, built once
    Scope, Receive, Send   the ASGI callables, typed
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson


if TYPE_CHECKING:
    from router.health import HealthBook
    from router.quota.view import LedgerView
    from router.result import RoutedResponse, RouteInfo
    from router.server.keygate import KeyGate
    from router.server.metrics import Metrics
    from router.server.cache import ProxyCache
    from router.server.responses_store import ResponseStore
    from router.server.settings import ServerSettings
    from router.server.spendlog import SpendLog
    from router.tokens import TokenCount
    from router.types import ChatRequest, StreamEvent

__all__ = ["ProxyRouter", "ProxyStream", "Handed", "Load", "ModelList", "models_of", "Scope", "Receive", "Send"]

log = logging.getLogger("quotaroute.server")

# ASGI, as the handlers use it
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ProxyStream(Protocol):
    """A routed stream as the proxy reads it (`router.streaming.RoutedStream` is one)."""

    route: RouteInfo

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


class ProxyRouter(Protocol):
    """The router the proxy serves: `router.sdk.Router` in production, a FakeRouter in
    tests, a one-adapter passthrough in the overhead benchmark."""

    @property
    def catalog(self) -> Any: ...  # the model catalog (cards with `id` and `provider`)

    @property
    def ledger(self) -> Any: ...  # the quota ledger (key budgets and rpm live there); None: none

    @property
    def health(self) -> HealthBook | None: ...

    @property
    def policy_name(self) -> str: ...

    @property
    def model_ids(self) -> tuple[str, ...]: ...  # the models it can serve (listed on /v1/models)

    async def achat(self, request: ChatRequest, *, scope: Mapping[str, Any] | None = None) -> RoutedResponse: ...

    async def astream(self, request: ChatRequest, *, scope: Mapping[str, Any] | None = None) -> ProxyStream: ...

    async def aexplain(self, request: ChatRequest) -> Any: ...

    def wire_of(self, provider: str) -> str: ...  # "anthropic", "bedrock", "gemini", a vendor row name; "" unknown

    async def acount_tokens(self, request: ChatRequest) -> TokenCount: ...

    async def aembed(self, request: Any, *, scope: Mapping[str, Any] | None = None) -> Any: ...  # RoutedEmbeddings

    async def quota_view(self, now: datetime) -> LedgerView | None: ...

    async def aclose(self) -> None: ...


class ModelList:
    """The /v1/models bodies: the virtual models, then the served models (built once)."""

    def __init__(self, router: ProxyRouter, settings: ServerSettings) -> None:
        self._router, self._settings = router, settings
        self._json: bytes | None = None
        self._models: dict[str, dict[str, Any]] = {}

    def json(self) -> bytes:
        if self._json is None:
            self._models = {m["id"]: m for m in models_of(self._router, self._settings)}
            self._json = orjson.dumps({"object": "list", "data": list(self._models.values())})
        return self._json

    def one(self, model_id: str) -> bytes | None:
        self.json()
        m = self._models.get(model_id)
        return orjson.dumps(m) if m is not None else None


_DESCRIPTIONS = {"auto:cheap": "cheapest model that fits", "auto:cheapest": "cheapest model that fits",
                 "auto:best": "best quality for the task", "auto:free": "free quota only",
                 "auto:balanced": "best quality per dollar", "auto:cascade": "cheap first, escalate on a failed check"}


def models_of(router: ProxyRouter, settings: ServerSettings) -> list[dict[str, Any]]:
    """The virtual names, then the models this router can serve (`router.model_ids`:
    configured providers only, after models.include/exclude), never the whole catalog."""
    policy = router.policy_name
    out: list[dict[str, Any]] = []
    for v in settings.virtual_models:
        desc = f"the configured policy ({policy or 'default'})" if v == "auto" else _DESCRIPTIONS.get(
            v, "answer-agreement cascade" if v.startswith("cascade:") else "virtual model")
        out.append({"id": v, "object": "model", "created": 0, "owned_by": "quotaroute", "description": desc})
    for mid in router.model_ids:
        out.append({"id": mid, "object": "model", "created": 0, "owned_by": mid.split(":", 1)[0]})
    return out


@dataclass(slots=True)
class Load:
    """Requests in flight and whether the app is shutting down (kept by the app, read by /healthz)."""

    in_flight: int = 0
    closed: bool = False


@dataclass(slots=True, eq=False)
class Handed:
    """Everything a handler may use."""

    router: ProxyRouter
    gate: KeyGate
    settings: ServerSettings
    metrics: Metrics
    spend: SpendLog | None
    models: ModelList
    load: Load = field(default_factory=Load)
    responses: ResponseStore | None = None  # the Responses store (None: store off)
    cache: ProxyCache | None = None  # the response cache (None: `cache.enabled` is false)
    tracing: Any = None  # router.server.tracing.Tracing (None: tracing off, nothing imported)
