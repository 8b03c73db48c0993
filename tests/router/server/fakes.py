"""A test double with the Router interface the proxy uses (`router.server.context.ProxyRouter`:
achat, astream, aexplain, aclose, catalog, ledger, health, policy_name, model_ids,
quota_view), with a FakeProvider behind it. Also importable by a
`quotaroute serve --router-factory tests.router.server.fakes:build` subprocess."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from providers.fake import FakeProvider, reply
from router.errors import NoRouteAvailable, UnknownModel
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.view import BudgetView, LedgerView, PoolView
from router.result import Attempt, RoutedResponse, RouteInfo
from router.tokens import TokenCount, estimate_request_tokens
from router.types import ChatRequest

VIRTUAL = ("auto", "auto:cheap", "auto:best", "auto:free")
PRICE = Decimal("0.000002")  # USD per token, in and out


class FakeStream:
    def __init__(self, gen: Any, first: Any, route: RouteInfo, router: "FakeRouter") -> None:
        self._gen, self._first, self.route, self._router = gen, first, route, router
        self.closed = False

    def __aiter__(self) -> "FakeStream":
        return self

    async def __anext__(self) -> Any:
        if self._first is not None:
            ev, self._first = self._first, None
            self._see(ev)
            return ev
        try:
            ev = await self._gen.__anext__()
        except StopAsyncIteration:
            self._settle()
            raise
        self._see(ev)
        return ev

    def _see(self, ev: Any) -> None:
        if ev.kind == "usage":
            self._usage = ev.usage

    def _settle(self) -> None:
        u = getattr(self, "_usage", None)
        if u is not None and not self.route.attempts[0].usage:
            self.route.attempts[0].usage = u
            self.route.cost_usd = self.route.attempts[0].cost_usd = PRICE * u.total_tokens
        res, self._res = getattr(self, "_res", None), None
        if res is not None:  # the ledger settles like the real executor's: commit billed usage, else release
            led, now = self._router.ledger, datetime.now(timezone.utc)
            coro = led.commit(res, u, PRICE * u.total_tokens, now) if u is not None else led.release(res, now)
            task = asyncio.ensure_future(coro)
            self._router._tasks.add(task)
            task.add_done_callback(self._router._tasks.discard)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._settle()  # bill what the vendor reported so far
            await self._gen.aclose()
            self._router.stream_closed += 1


class FakeRouter:
    policy_name = "free-first"
    health = None  # no HealthBook: /healthz and /metrics leave the upstream-key section out

    def __init__(self, provider: FakeProvider | None = None, models: tuple[str, ...] = ("fake:small", "fake:large"),
                 ledger: Any = None):
        self.provider = provider or FakeProvider()
        # Reserve -> commit/release on a ledger like the real executor (the proxy's key budgets live there).
        self.ledger = ledger if ledger is not None else Ledger(MemoryStore())
        self._tasks: set[Any] = set()
        self.models = models
        self.model_ids = models
        self.scopes: list[Any] = []
        self.closed = False
        self.stream_closed = 0
        self.catalog = SimpleNamespace(all=lambda: [SimpleNamespace(id=m, provider=m.split(":")[0]) for m in models])

    def _pick(self, req: ChatRequest) -> str:
        if req.model == "nowhere":
            raise NoRouteAvailable("every candidate is out of quota")
        if req.model in VIRTUAL:
            return self.models[0]
        if req.model in self.models:
            return req.model
        raise UnknownModel(req.model)

    def _route(self, model_id: str) -> RouteInfo:
        return RouteInfo(model_id=model_id, provider="fake", policy=self.policy_name,
                         reason="free-first: fake pool (99/100 left) – cheapest", estimated_cost_usd=Decimal("0.00003"))

    async def _reserve(self, model_id: str, scope: Any) -> Any:
        return await self.ledger.reserve(model_id, provider="fake", tokens=15, cost_usd=Decimal("0.00003"),
                                         scope=dict(scope or {}), now=datetime.now(timezone.utc))

    async def achat(self, req: ChatRequest, *, scope: Any = None) -> RoutedResponse:
        self.scopes.append(scope)
        model_id = self._pick(req)
        t = time.perf_counter()
        res = await self._reserve(model_id, scope)
        try:
            resp = await self.provider.complete(req.model_copy(update={"model": model_id.split(":", 1)[1]}))
        except BaseException:
            await self.ledger.release(res, datetime.now(timezone.utc))
            raise
        route = self._route(model_id)
        cost = PRICE * resp.usage.total_tokens
        await self.ledger.commit(res, resp.usage, cost, datetime.now(timezone.utc))
        route.attempts = [Attempt(model_id=model_id, provider="fake", ok=True, usage=resp.usage, cost_usd=cost,
                                  latency_ms=(time.perf_counter() - t) * 1000)]
        route.cost_usd = cost
        return RoutedResponse(response=resp, route=route)

    async def astream(self, req: ChatRequest, *, scope: Any = None) -> FakeStream:
        self.scopes.append(scope)
        model_id = self._pick(req)
        res = await self._reserve(model_id, scope)
        gen = self.provider.stream(req.model_copy(update={"model": model_id.split(":", 1)[1]}))
        try:
            first = await gen.__anext__()  # errors before the first token raise here
        except BaseException:
            await self.ledger.release(res, datetime.now(timezone.utc))
            raise
        route = self._route(model_id)
        route.attempts = [Attempt(model_id=model_id, provider="fake", ok=True)]
        st = FakeStream(gen, first, route, self)
        st._res = res
        return st

    async def aexplain(self, req: ChatRequest) -> str:
        return self._pick(req)

    wire = ""  # what `wire_of` answers: "" unknown (nothing named as dropped); tests set e.g. "openai"

    def wire_of(self, provider: str) -> str:
        return self.wire

    async def acount_tokens(self, req: ChatRequest) -> TokenCount:
        return TokenCount(estimate_request_tokens(req), False, "estimate", self._pick(req))

    async def aembed(self, req: Any, *, scope: Any = None) -> Any:
        raise NoRouteAvailable("the fake router serves no embeddings")

    async def quota_view(self, now: datetime) -> LedgerView:
        pool = PoolView("fake:free-daily", "free", True, remaining_requests=99, remaining_tokens=99000,
                        resets_at=now + timedelta(hours=3))
        budget = BudgetView("global", "global", "*", "month", Decimal("10"), Decimal("1.25"))
        return LedgerView(pools={pool.pool_id: pool}, model_pools={"fake:small": (pool.pool_id,)}, budgets=(budget,))

    async def aclose(self) -> None:
        self.closed = True


def build(config_path: str | None = None) -> FakeRouter:
    """Factory for `quotaroute serve --router-factory`: a slow-ish streaming fake."""
    return FakeRouter(FakeProvider(scripts=[reply("Hello from the fake upstream!", chunks=6, per_event_s=0.01)]))


__all__ = ["FakeRouter", "FakeStream", "build"]


def track_stream(provider: Any, closed: list[int]) -> None:
    """Wrap `provider.stream` so that, when the generator closes, the number of
    events it yielded is appended to `closed` (to see an upstream stopped early)."""
    orig = provider.stream

    async def tracked(req: Any) -> Any:
        n = 0
        try:
            async for ev in orig(req):
                n += 1
                yield ev
        finally:
            closed.append(n)

    provider.stream = tracked


def hang_up_mid_stream(port: int, body: bytes, marker: bytes, count: int = 1) -> bytes:
    """POST a streaming chat request over a raw socket, read until `marker` was seen
    `count` times, then hang up. Returns the bytes read (headers included)."""
    import socket

    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while got.count(marker) < count:
            got += s.recv(65536)
        return got
    finally:
        s.close()
