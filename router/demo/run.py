"""Drive the demo: for each strategy start the real proxy, send the test prompts
through it with the official `openai` client (several at a time, as an
application would), and show live where each request went and why."""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.demo.proxy import DemoProxy, free_port
from router.demo.world import BEST_MODEL, World
from router.policies import Policy
from router.quota.ledger import Ledger
from router.quota.sqlite_store import SQLiteStore
from router.sdk import Router

__all__ = ["Strategy", "Request", "RunResult", "STRATEGIES", "strategies", "run_strategy"]


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str
    policy: Any  # str or router.policies.Policy, the proxy's configured policy
    model: str  # what the application sends as `model`


def strategies() -> list[Strategy]:
    return [
        Strategy("free-first", "quotaroute free-first (within 0.10 of the best)",
                 Policy("free-first", quality_floors={}, default_floor=0.5, quality_margin=0.10), "auto"),
        Strategy("balanced", "quotaroute balanced (lambda 0.005)", Policy("balanced", cost_weight=0.005), "auto"),
        Strategy("cheapest", "cheapest (quality floor 0.5)", Policy("cheapest", quality_floors={}, default_floor=0.5), "auto"),
        Strategy("always-best", f"always the best model ({BEST_MODEL})", "free-first", BEST_MODEL),
    ]


STRATEGIES = ["free-first", "balanced", "cheapest", "always-best"]


@dataclass
class Request:
    index: int
    prompt_id: str
    task: str
    model: str = ""
    provider: str = ""
    cost_usd: Decimal = Decimal(0)
    reason: str = ""
    free: bool = False
    quality: float = 0.0
    overhead_ms: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None


@dataclass
class RunResult:
    strategy: Strategy
    requests: list[Request] = field(default_factory=list)
    seconds: float = 0.0
    pool_remaining: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> list[Request]:
        return [r for r in self.requests if r.error is None]

    @property
    def quality(self) -> float:
        return sum(r.quality for r in self.ok) / max(1, len(self.requests))

    @property
    def cost_usd(self) -> Decimal:
        return sum((r.cost_usd for r in self.ok), Decimal(0))

    @property
    def free_requests(self) -> int:
        return sum(1 for r in self.ok if r.free)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.requests if r.error is not None)

    def model_mix(self) -> Counter[str]:
        return Counter(r.model for r in self.ok)

    def overhead_p50(self) -> float:
        vals = [r.overhead_ms for r in self.ok]
        return statistics.median(vals) if vals else 0.0


def _make_router(world: World, strategy: Strategy, folder: Path) -> Any:
    ledger = Ledger(SQLiteStore(str(folder / "ledger.sqlite")), world.pools)
    return Router(catalog=world.catalog, providers=world.providers, ledger=ledger, policy=strategy.policy,
                  predictor=world.predictor)


async def _poll_quota(proxy: DemoProxy, into: dict[str, Any], stop: asyncio.Event) -> None:
    import httpx  # lazy: import time (httpx)

    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            try:
                r = await http.get(proxy.base_url + "/quota", headers={"Authorization": f"Bearer {proxy.admin_key}"})
                if r.status_code == 200:
                    into.update(r.json().get("pools", {}))
            except httpx.HTTPError:
                pass
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except asyncio.TimeoutError:
                pass


async def _drive(world: World, strategy: Strategy, proxy: DemoProxy, concurrency: int, ui: Any) -> RunResult:
    import openai  # lazy: optional extra [demo] (checked up front by the command)

    result = RunResult(strategy)
    test = world.test
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=proxy.client_key, max_retries=0, timeout=60)
    sem = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    poller = asyncio.ensure_future(_poll_quota(proxy, result.pool_remaining, stop))

    async def one(i: int) -> None:
        req = Request(i, test.prompt_ids[i], str(test.tasks[i]))
        async with sem:
            t0 = time.perf_counter()
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model=strategy.model, messages=[{"role": "user", "content": test.prompts[i]}]
                )
                raw.parse()
                h = raw.headers
                req.model = h.get("x-quotaroute-model", "")
                req.provider = h.get("x-quotaroute-provider", "")
                req.cost_usd = Decimal(h.get("x-quotaroute-cost-usd") or "0")
                req.reason = h.get("x-quotaroute-route-reason", "")
                req.overhead_ms = float(h.get("x-quotaroute-overhead-ms") or 0)
                card = world.catalog.get(req.model)
                req.free = req.cost_usd == 0 and card.price is not None and card.price.input > 0
                req.quality = world.quality_of(i, req.model)
            except openai.APIError as e:
                req.error = f"{type(e).__name__}: {getattr(e, 'message', e)}"
            req.latency_ms = (time.perf_counter() - t0) * 1000
        result.requests.append(req)
        ui.update(result, req)

    t0 = time.perf_counter()
    try:
        # mixed traffic, as an application would send it (the split is ordered by task)
        order = list(range(test.n_prompts))
        random.Random(0).shuffle(order)
        await asyncio.gather(*(one(i) for i in order))
    finally:
        result.seconds = time.perf_counter() - t0
        stop.set()
        await poller
        await client.close()
    return result


def run_strategy(world: World, strategy: Strategy, *, concurrency: int, port: int, ui: Any,
                 workdir: Path | None = None) -> RunResult:
    """Start a fresh proxy (its own SQLite ledger and spend log), run every test
    prompt through it, stop it. Nothing keeps running afterwards."""
    with tempfile.TemporaryDirectory(prefix="quotaroute-demo-", dir=workdir) as tmp:
        folder = Path(tmp)
        proxy = DemoProxy(lambda: _make_router(world, strategy, folder), folder=folder, port=port or free_port())
        with proxy:
            ui.start_run(strategy, world.test.n_prompts)
            try:
                result = asyncio.run(_drive(world, strategy, proxy, concurrency, ui))
            finally:
                ui.end_run()
    return result
