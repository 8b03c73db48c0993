"""What the proxy's handlers are handed: the typed router, the key gate and the app's
bookkeeping, passed down once. Handlers read these and return values; nothing calls
back up into the app.

    ProxyRouter   what the proxy needs of a router (`router.sdk.Router` is one)
    Handed        router + gate + settings + metrics + spend log + model list + load
    Scope, Receive, Send   the ASGI callables, typed
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from router.health import HealthBook
    from router.quota.view import LedgerView
    from router.result import RoutedResponse, RouteInfo
    from router.server.keygate import KeyGate
    from router.server.metrics import Metrics
    from router.server.settings import ServerSettings
    from router.server.spendlog import SpendLog
    from router.types import ChatRequest, StreamEvent

__all__ = ["ProxyRouter", "ProxyStream", "Handed", "Load", "Scope", "Receive", "Send"]

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
    def catalog(self) -> Any: ...  # `.all()` -> cards with `id` and `provider` (listed on /v1/models)

    @property
    def ledger(self) -> Any: ...  # the quota ledger (key budgets and rpm live there); None: none

    @property
    def health(self) -> HealthBook | None: ...

    @property
    def policy_name(self) -> str: ...

    @property
    def model_ids(self) -> tuple[str, ...]: ...

    async def achat(self, request: ChatRequest, *, scope: Mapping[str, Any] | None = None) -> RoutedResponse: ...

    async def astream(self, request: ChatRequest, *, scope: Mapping[str, Any] | None = None) -> ProxyStream: ...

    async def aexplain(self, request: ChatRequest) -> Any: ...

    async def quota_view(self, now: datetime) -> LedgerView | None: ...

    async def aclose(self) -> None: ...


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
    models: Any  # router.server.handlers.ModelList
    load: Load = field(default_factory=Load)
