"""Backends for the live benchmark: how one pinned-model call is made and billed.

* `RouterBackend` sends each call through the SDK `Router` with the model pinned
  (`achat(req, model="provider:model")` / `astream`), so the ledger's free quotas,
  rate limits and budgets are respected and free quota is used first.
* `DirectBackend` calls `Provider`s directly (adapters from
  `providers.registry.build_provider`, or scripted fakes) and bills with the
  catalog price; an optional ledger-like object is consulted for free pools.

Both stream when they can, to measure time to first token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from benchmarks.live import CallOutcome
from router.catalog import load_catalog
from router.errors import (ConfigError, NoRouteAvailable, PoolUnavailable, ProviderError, QuotaExhausted, RateLimited,
                           UnknownModel, UnknownPrice)
from router.pricing import cost
from router.tokens import estimate_request_tokens
from router.types import ChatRequest, Usage, accumulate

__all__ = ["SimplePrice", "DirectBackend", "RouterBackend", "price_cost", "estimate_usd", "request_tokens",
           "resolve_prices"]


class SimplePrice:
    """USD per 1M input/output tokens (for fakes and `--price` overrides)."""

    def __init__(self, input: Decimal | str | int, output: Decimal | str | int) -> None:
        self.input, self.output = Decimal(str(input)), Decimal(str(output))

    def __repr__(self) -> str:
        return f"SimplePrice(in={self.input}, out={self.output})"


def price_cost(price: Any, usage: Usage, at: datetime | None = None) -> Decimal:
    """Exact USD cost of `usage` at `price` (router.pricing.Price or SimplePrice); `at`
    applies time-of-day discounts (e.g. DeepSeek off-peak)."""
    if isinstance(price, SimplePrice):
        return (Decimal(usage.input_tokens) * price.input + Decimal(usage.output_tokens) * price.output) / 1_000_000
    return cost(usage, price, at=at).usd


def estimate_usd(price: Any, input_tokens: int, output_tokens: int) -> Decimal:
    return price_cost(price, Usage(input_tokens=input_tokens, output_tokens=output_tokens))


def request_tokens(req: ChatRequest) -> int:
    """A conservative estimate of the prompt size (over- rather than under-)."""
    text = req.system_text() + "".join(m.text() for m in req.messages)
    fallback = len(text.encode("utf-8")) // 3 + 8 * (len(req.messages) + 1)
    try:
        return max(int(estimate_request_tokens(req)), len(text) // 3)
    except Exception:  # noqa: BLE001 - an estimate must never stop the run
        return fallback


def resolve_prices(models: list[str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`provider:model` -> price, from overrides then the catalog. Unknown -> ConfigError."""
    out: dict[str, Any] = {}
    overrides = overrides or {}
    catalog = None
    for m in models:
        if m in overrides:
            out[m] = overrides[m]
            continue
        try:
            if catalog is None:
                catalog = load_catalog()
            price = catalog.get(m).price
        except (UnknownModel, KeyError):
            price = None
        if price is None:
            raise ConfigError(f"no known price for {m}; give one with --price {m}=IN,OUT (USD per 1M tokens)",
                              key="--models")
        out[m] = price
    return out


async def _consume(stream: Any, clock: Callable[[], float], t0: float) -> tuple[list[Any], float | None]:
    events, ttft = [], None
    async for ev in stream:
        if ttft is None and ev.kind in ("text", "reasoning", "tool_call"):
            ttft = clock() - t0
        events.append(ev)
    return events, ttft


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DirectBackend:
    """Calls providers directly: `providers[provider_name]` answers `provider:model`.

    With a `ledger` (router.quota.ledger.Ledger) every call is reserved first and
    committed with its usage, so free pools are used first and billed $0, blocked
    pools stop the model (QuotaExhausted), and 429s/quota errors teach the ledger.
    """

    def __init__(self, providers: Mapping[str, Any], prices: Mapping[str, Any], *, stream: bool = True,
                 clock: Callable[[], float] = time.monotonic, free_models: Mapping[str, int] | None = None,
                 ledger: Any = None, now: Callable[[], datetime] = _utcnow) -> None:
        self.providers, self.prices, self.stream, self.clock = dict(providers), dict(prices), stream, clock
        # model -> free calls left (a simple free-quota counter for tests/fakes without a ledger)
        self.free_left = dict(free_models or {})
        self.ledger, self.now = ledger, now

    def _split(self, model_id: str) -> tuple[Any, str]:
        prov, _, model = model_id.partition(":")
        if prov not in self.providers:
            raise ConfigError(f"no provider configured for {model_id!r}", key="--models")
        return self.providers[prov], model

    def _price(self, model_id: str) -> Any:
        if model_id not in self.prices:
            raise UnknownPrice(f"no price for {model_id}")
        return self.prices[model_id]

    async def estimate_usd(self, model_id: str, req: ChatRequest) -> Decimal:
        if self.free_left.get(model_id, 0) > 0:
            return Decimal(0)
        tokens = request_tokens(req)
        if self.ledger is not None:
            now = self.now()
            view = await self.ledger.view(now, [model_id])
            if view.free_pool(model_id, now, tokens + (req.max_tokens or 4096)) is not None:
                return Decimal(0)
        return estimate_usd(self._price(model_id), tokens, req.max_tokens or 4096)

    async def call(self, model_id: str, req: ChatRequest) -> CallOutcome:
        prov, model = self._split(model_id)
        if self.ledger is None:
            try:
                return await self._call(prov, model_id, model, req, None)
            except ProviderError as e:
                if e.billed_usage is not None:
                    e.bench_cost_usd = price_cost(self._price(model_id), e.billed_usage, self.now())  # type: ignore[attr-defined]
                raise
        tokens_in = request_tokens(req)
        out_max = req.max_tokens or 4096
        now = self.now()
        try:
            res = await self.ledger.reserve(
                model_id, provider=model_id.partition(":")[0], tokens=tokens_in + out_max, input_tokens=tokens_in,
                cost_usd=estimate_usd(self._price(model_id), tokens_in, out_max), now=now)
        except PoolUnavailable as e:
            wait = (e.resets_at - now).total_seconds() if e.resets_at else None
            if e.reason in ("cooldown", "requests", "tokens") and wait is not None and wait <= 120:
                raise RateLimited(f"ledger: {e}", provider=model_id, retry_after=max(0.0, wait)) from e
            raise QuotaExhausted(f"ledger: {e}", provider=model_id) from e
        try:
            out = await self._call(prov, model_id, model, req, res)
        except QuotaExhausted:
            await self.ledger.release(res, self.now())
            await self.ledger.mark_exhausted(model_id, self.now())
            raise
        except RateLimited as e:
            await self.ledger.release(res, self.now())
            await self.ledger.cooldown(model_id, e.retry_after or 1.0, self.now())
            raise
        except ProviderError as e:
            if e.billed_usage is not None:  # the vendor billed a partial answer: record it
                st = await self.ledger.commit(res, e.billed_usage, price_cost(self._price(model_id), e.billed_usage,
                                                                                self.now()), self.now())
                e.bench_cost_usd = st.billed_usd  # type: ignore[attr-defined]
            else:
                await self.ledger.release(res, self.now())
            raise
        except BaseException:
            await self.ledger.release(res, self.now())
            raise
        return out

    async def _call(self, prov: Any, model_id: str, model: str, req: ChatRequest, res: Any) -> CallOutcome:
        req = req.model_copy(update={"model": model})
        t0 = self.clock()
        if self.stream:
            events, ttft = await _consume(prov.stream(req.model_copy(update={"stream": True})), self.clock, t0)
            resp = accumulate(events, provider=getattr(prov, "name", ""), model=model)
        else:
            resp, ttft = await prov.complete(req), None
        latency = self.clock() - t0
        list_cost = price_cost(self._price(model_id), resp.usage, self.now())
        note = "" if resp.usage_reported else "vendor reported no usage: tokens/cost are 0 (unknown)"
        if res is not None:
            st = await self.ledger.commit(res, resp.usage, list_cost, self.now())
            rl = resp.rate_limits or getattr(prov, "last_rate_limits", None)
            if rl is not None and not rl.is_empty():
                await self.ledger.observe(model_id, rl, self.now())
            return CallOutcome(response=resp, cost_usd=st.billed_usd, free_quota=st.free_pool is not None,
                               ttft_s=ttft, latency_s=latency, note=note, list_cost_usd=list_cost)
        free = self.free_left.get(model_id, 0) > 0
        if free:
            self.free_left[model_id] -= 1
        return CallOutcome(response=resp, cost_usd=Decimal(0) if free else list_cost, free_quota=free,
                           ttft_s=ttft, latency_s=latency, note=note, list_cost_usd=list_cost)

    async def aclose(self) -> None:
        for p in self.providers.values():
            await p.aclose()
        if self.ledger is not None and hasattr(self.ledger, "aclose"):
            await self.ledger.aclose()


class RouterBackend:
    """Calls go through `router.sdk.Router` with the model pinned: the Router's ledger
    applies free pools first, its budgets, rate-limit cool-downs and exhausted marks.
    A pinned call that cannot run raises NoRouteAvailable; we translate it back to
    the error the runner acts on (RateLimited -> wait, QuotaExhausted -> model done)."""

    def __init__(self, router: Any, prices: Mapping[str, Any] | None = None, *, stream: bool = True,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = _utcnow) -> None:
        self.router, self.prices, self.stream, self.clock, self.now = router, dict(prices or {}), stream, clock, now

    async def _blocked(self, model_id: str) -> Any:
        ledger = getattr(self.router, "ledger", None)
        if ledger is None:
            return None, None
        now = self.now()
        view = await ledger.view(now, [model_id])
        return view, now

    async def estimate_usd(self, model_id: str, req: ChatRequest) -> Decimal:
        tokens = request_tokens(req)
        view, now = await self._blocked(model_id)
        if view is not None and view.free_pool(model_id, now, tokens + (req.max_tokens or 4096)) is not None:
            return Decimal(0)
        price = self.prices.get(model_id)
        if price is None:
            return Decimal("Infinity")  # unknown price: a budgeted run refuses to guess
        return estimate_usd(price, tokens, req.max_tokens or 4096)

    async def _translate(self, model_id: str, e: Exception) -> Exception:
        last = getattr(e, "last_error", None)
        if isinstance(last, ProviderError):
            return last
        view, now = await self._blocked(model_id)
        pool = view.blocked(model_id, now) if view is not None else None
        if pool is not None and pool.cooldown_until is not None and pool.cooldown_until > now:
            wait = (pool.cooldown_until - now).total_seconds()
            if wait <= 120:
                return RateLimited(f"ledger: {model_id} cooling down", provider=model_id, retry_after=wait)
        if pool is not None:
            return QuotaExhausted(f"ledger: pool {pool.pool_id} blocks {model_id}: {e}", provider=model_id)
        return e

    async def call(self, model_id: str, req: ChatRequest) -> CallOutcome:
        t0 = self.clock()
        ttft = None
        try:
            if self.stream:
                rs = await self.router.astream(req, model=model_id)
                events, ttft = await _consume(rs, self.clock, t0)
                resp = accumulate(events, provider=model_id.partition(":")[0], model=model_id.partition(":")[2])
                route = rs.route
            else:
                routed = await self.router.achat(req, model=model_id)
                resp, route = routed.response, routed.route
        except NoRouteAvailable as e:
            raise await self._translate(model_id, e) from e
        latency = self.clock() - t0
        billed = Decimal(route.cost_usd or 0)
        price = self.prices.get(model_id)
        list_cost = price_cost(price, resp.usage, self.now()) if price is not None else billed
        return CallOutcome(response=resp, cost_usd=billed, free_quota=bool(route.free_quota_used), ttft_s=ttft,
                           latency_s=latency, list_cost_usd=list_cost)

    async def aclose(self) -> None:
        await self.router.aclose()
