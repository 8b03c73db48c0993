"""The runner through the SDK Router with the model pinned (ledger, free pools,
exact billing by the executor), over real adapters and respx-faked HTTP."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import respx

from benchmarks.live import run_live
from benchmarks.live_backends import RouterBackend, resolve_prices
from benchmarks.live_cache import ResultCache
from providers.registry import build_provider
from providers.retry import NO_RETRY
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import PoolSpec, WindowSpec
from router.sdk import Router

from .conftest import FakeClock, fast_options
from .test_http import KEYS, Vendor, deepseek_402_after_two, rate_limit_first_two

A, B = "openai:gpt-4o-mini", "deepseek:deepseek-flash"


async def test_router_backend_free_first_then_paid_and_quota_stop(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    va = Vendor(mini_suite, KEYS["va"], rate_limit_first_two)
    vb = Vendor(mini_suite, KEYS["vb"], deepseek_402_after_two)
    pools = [PoolSpec(id="openai-trial", models=(A,), free=True, on_exhaust="paid",
                      limits=(WindowSpec(per="day", requests=2),))]
    clk = FakeClock()
    clk.t = time.time()

    def now() -> datetime:  # the Router's ledger clock follows the fast fake sleep
        return datetime.fromtimestamp(clk.t, timezone.utc)

    async with httpx.AsyncClient() as client:
        provs = {
            "openai": build_provider("openai", api_key=KEYS["va"], base_url="https://vendor-a.test/v1", client=client,
                                     retry=NO_RETRY),
            "deepseek": build_provider("deepseek", api_key=KEYS["vb"], base_url="https://vendor-b.test/v1",
                                       client=client, retry=NO_RETRY),
        }
        router = Router(providers=provs, ledger=Ledger(MemoryStore(), pools), models=[A, B],
                        clock=now)
        backend = RouterBackend(router, resolve_prices([A, B]), now=now)
        with respx.mock(assert_all_called=True) as mock:
            mock.post("https://vendor-a.test/v1/chat/completions").mock(side_effect=va)
            mock.post("https://vendor-b.test/v1/chat/completions").mock(side_effect=vb)
            s = await run_live(mini_suite, [A, B], backend, ResultCache(str(tmp_path / "c")),
                               fast_options(clk, concurrency=1))
        await router.aclose()
    ra = [r for r in s.records if r.model == A]
    rb = [r for r in s.records if r.model == B]
    assert len(ra) == 4 and all(r.quality == 1.0 for r in ra)
    assert 3.0 in clk.slept and s.rate_limit_waits[A] >= 1  # the 429's Retry-After was waited out
    free = [r for r in ra if r.free_quota]
    assert len(free) == 2 and all(r.cost_usd == 0 and r.list_cost_usd > 0 for r in free)
    assert all(r.cost_usd == r.list_cost_usd > 0 for r in ra if not r.free_quota)
    assert len(rb) == 2 and s.model_events[B].startswith("quota")
    assert s.spent_usd == sum((r.cost_usd for r in s.records), Decimal(0))
    assert (ra[0].input_tokens, ra[0].output_tokens) == (21, 9) and ra[0].ttft_ms is not None


def test_cli_with_config_goes_through_the_router(mini_suite, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from router.cli import main

    monkeypatch.setenv("BENCH_TEST_OPENAI_KEY", KEYS["va"])
    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text(
        "providers:\n"
        "  openai:\n"
        "    api_key_env: BENCH_TEST_OPENAI_KEY\n"
        "    base_url: https://vendor-a.test/v1\n"
        "quotas:\n"
        "  - id: bench-trial\n"
        "    models: ['openai:gpt-4o-mini']\n"
        "    free: true\n"
        "    on_exhaust: paid\n"
        "    limits: [{per: day, requests: 1}]\n", encoding="utf-8")
    va = Vendor(mini_suite, KEYS["va"])
    with respx.mock(assert_all_called=True) as mock:
        mock.post("https://vendor-a.test/v1/chat/completions").mock(side_effect=va)
        rc = main(["bench", "live", "--suite", mini_suite.path, "--models", A, "--config", str(cfg),
                   "--out", str(tmp_path / "o"), "--json", "--no-plots", "--concurrency", "1"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(capsys.readouterr().out)
    d = rep["per_model"][A]
    assert d["answered"] == 4 and d["quality"] == 1.0 and d["free_calls"] == 1
    assert Decimal(d["cost_usd"]) < Decimal(d["list_cost_usd"])
    assert KEYS["va"] not in json.dumps(rep)
