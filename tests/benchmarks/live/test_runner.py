"""The runner against scripted providers: scoring, rate limits, quota exhaustion,
resume without repeated calls, and the hard budget cap."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from benchmarks.live import run_live
from benchmarks.live_backends import DirectBackend
from benchmarks.live_cache import ResultCache
from router.errors import BadRequest, QuotaExhausted, RateLimited, Unavailable

from .conftest import FakeClock, ItemProvider, fast_options, price


def backend(provs: dict, models: list[str], **kw) -> DirectBackend:  # type: ignore[no-untyped-def,type-arg]
    return DirectBackend(provs, {m: price() for m in models}, **kw)


async def test_scores_tokens_and_exact_cost(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = ItemProvider(mini_suite), ItemProvider(mini_suite, wrong_ids={"m1", "e1"})
    models = ["a:x", "b:y"]
    cache = ResultCache(str(tmp_path / "c.sqlite"))
    clk = FakeClock()
    s = await run_live(mini_suite, models, backend({"a": a, "b": b}, models), cache, fast_options(clk))
    assert s.calls_made == 8 and not s.budget_stop
    by = {(r.model, r.item_id): r for r in s.records}
    assert by[("a:x", "m1")].quality == 1.0 and by[("b:y", "m1")].quality == 0.0
    assert by[("b:y", "t1")].quality == 1.0
    r = by[("a:x", "e1")]
    assert (r.input_tokens, r.output_tokens) == (100, 50)
    assert r.cost_usd == Decimal("0.0002")  # 100*1/1M + 50*2/1M, exact
    assert r.ttft_ms is not None and r.latency_ms is not None
    assert s.spent_usd == Decimal("0.0016")


async def test_rate_limited_waits_retry_after_then_succeeds(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite, errors={1: RateLimited("slow down", retry_after=7.0),
                                         2: RateLimited("again", retry_after=500.0)})
    clk = FakeClock()
    s = await run_live(mini_suite, ["a:x"], backend({"a": a}, ["a:x"]), ResultCache(str(tmp_path / "c")),
                       fast_options(clk, concurrency=1, max_rate_wait_s=30))
    assert len(s.records) == 4 and all(r.quality == 1.0 for r in s.records)
    assert clk.slept[:2] == [7.0, 30.0]  # Retry-After honoured, and capped
    assert s.rate_limit_waits == {"a:x": 2}
    assert sum(r.retries for r in s.records) == 2


async def test_rate_limit_retries_are_bounded(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite, fail_after=0, fail_with=RateLimited("always", retry_after=1.0))
    clk = FakeClock()
    cache = ResultCache(str(tmp_path / "c"))
    s = await run_live(mini_suite, ["a:x"], backend({"a": a}, ["a:x"]), cache,
                       fast_options(clk, concurrency=1, max_rate_retries=2))
    assert s.records == [] and a.n == 4 * 3
    assert all(r.status == "rate_limited" and not r.final for r in cache.all())


async def test_quota_exhausted_mid_run_stops_that_model_only(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite, fail_after=2, fail_with=QuotaExhausted("Insufficient Balance", status=402))
    b = ItemProvider(mini_suite)
    models = ["a:x", "b:y"]
    s = await run_live(mini_suite, models, backend({"a": a, "b": b}, models), ResultCache(str(tmp_path / "c")),
                       fast_options(FakeClock(), concurrency=1))
    assert len([r for r in s.records if r.model == "a:x"]) == 2
    assert len([r for r in s.records if r.model == "b:y"]) == 4
    assert a.n == 3  # one failing call, then no more calls to the exhausted model
    assert s.model_events["a:x"].startswith("quota") and "Insufficient Balance" in s.model_events["a:x"]
    assert s.model_events["b:y"] == "" and s.skipped == 1


async def test_transient_errors_retry_then_record_and_bad_request_is_final(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite, errors={1: Unavailable("503"), 3: BadRequest("nope")})
    cache = ResultCache(str(tmp_path / "c"))
    s = await run_live(mini_suite, ["a:x"], backend({"a": a}, ["a:x"]), cache,
                       fast_options(FakeClock(), concurrency=1))
    errs = [r for r in s.records if r.status == "error"]
    assert len(errs) == 1 and errs[0].error_type == "BadRequest" and errs[0].quality == 0.0
    assert len(s.records) == 4


async def test_resume_calls_nothing_twice(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "c.sqlite")
    models = ["a:x", "b:y"]
    # first run is "interrupted": model b dies after one call (quota), a is fine
    a1, b1 = ItemProvider(mini_suite), ItemProvider(mini_suite, fail_after=1, fail_with=QuotaExhausted("gone"))
    s1 = await run_live(mini_suite, models, backend({"a": a1, "b": b1}, models), ResultCache(path),
                        fast_options(FakeClock(), concurrency=1, repeats=2))
    assert len(s1.records) == 8 + 1
    done_first = {(r.model, r.item_id, r.repeat) for r in s1.records}
    a2, b2 = ItemProvider(mini_suite), ItemProvider(mini_suite)
    s2 = await run_live(mini_suite, models, backend({"a": a2, "b": b2}, models), ResultCache(path),
                        fast_options(FakeClock(), concurrency=2, repeats=2))
    assert a2.n == 0 and b2.n == 7
    assert s2.cached == 9 and len(s2.records) == 16
    new = {(r.model, r.item_id, r.repeat) for r in s2.records} - done_first
    assert len(new) == 7
    # a third run makes no call at all
    a3, b3 = ItemProvider(mini_suite), ItemProvider(mini_suite)
    s3 = await run_live(mini_suite, models, backend({"a": a3, "b": b3}, models), ResultCache(path),
                        fast_options(FakeClock(), repeats=2))
    assert a3.n == b3.n == 0 and s3.calls_made == 0 and s3.spent_usd == s2.spent_usd


async def test_budget_cap_holds_before_the_call(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # each call: worst case 100-ish input tokens + max_tokens 512 output at $1/$2 per 1M ~ $0.00107;
    # actual 100/50 tokens = $0.0002. A $0.003 cap admits a few calls, never more than the cap.
    a = ItemProvider(mini_suite)
    models = ["a:x"]
    cache = ResultCache(str(tmp_path / "c"))
    s = await run_live(mini_suite, models, backend({"a": a}, models), cache,
                       fast_options(FakeClock(), concurrency=4, repeats=5, budget_usd=Decimal("0.003")))
    assert s.budget_stop and "budget cap" in s.budget_stop
    assert s.spent_usd <= Decimal("0.003")
    assert 0 < a.n < 20 and s.skipped == 20 - a.n
    # resuming with the same cap does not spend past it either (cached spend counts)
    a2 = ItemProvider(mini_suite)
    s2 = await run_live(mini_suite, models, backend({"a": a2}, models), ResultCache(str(tmp_path / "c")),
                        fast_options(FakeClock(), repeats=5, budget_usd=Decimal("0.003")))
    assert s2.spent_usd <= Decimal("0.003") and s2.budget_stop


async def test_budget_too_small_for_one_call(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite)
    s = await run_live(mini_suite, ["a:x"], backend({"a": a}, ["a:x"]), ResultCache(str(tmp_path / "c")),
                       fast_options(FakeClock(), budget_usd=Decimal("0.0000001")))
    assert a.n == 0 and s.spent_usd == 0 and s.budget_stop


async def test_free_quota_is_used_first_and_billed_zero(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = ItemProvider(mini_suite)
    be = DirectBackend({"a": a}, {"a:x": price()}, free_models={"a:x": 2})
    s = await run_live(mini_suite, ["a:x"], be, ResultCache(str(tmp_path / "c")),
                       fast_options(FakeClock(), concurrency=1))
    free = [r for r in s.records if r.free_quota]
    assert len(free) == 2 and all(r.cost_usd == 0 and r.list_cost_usd > 0 for r in free)
    assert s.spent_usd == Decimal("0.0004")


async def test_judge_cost_reported_separately(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.suite import load_suite

    p = tmp_path / "j.yaml"
    p.write_text("judge: {model: 'j:judge'}\nitems:\n  - {id: s1, task: summarization, prompt: sum it,"
                 " reference: ok, scorer: {type: judge}}\n", encoding="utf-8")
    suite = load_suite(p)
    a, j = ItemProvider(suite), ItemProvider(suite, usage=(1000, 10))
    be = DirectBackend({"a": a, "j": j}, {"a:x": price(), "j:judge": price("0.5", "1")})
    s = await run_live(suite, ["a:x"], be, ResultCache(str(tmp_path / "c")), fast_options(FakeClock()))
    r = s.records[0]
    assert r.quality == 0.8 and r.cost_usd == Decimal("0.0002")
    assert r.judge_cost_usd == Decimal("0.00051") and s.judge_usd == Decimal("0.00051")
    assert s.spent_usd == Decimal("0.00071")


async def test_ledger_free_pool_first_then_paid(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.quota.spec import PoolSpec, WindowSpec

    pool = PoolSpec(id="a-free", models=("a:x",), free=True, on_exhaust="paid",
                    limits=(WindowSpec(per="day", requests=3),))
    ledger = Ledger(MemoryStore(), [pool])
    a = ItemProvider(mini_suite)
    be = DirectBackend({"a": a}, {"a:x": price()}, ledger=ledger)
    s = await run_live(mini_suite, ["a:x"], be, ResultCache(str(tmp_path / "c")),
                       fast_options(FakeClock(), concurrency=1, repeats=2))
    free = [r for r in s.records if r.free_quota]
    assert len(free) == 3 and all(r.cost_usd == 0 for r in free)
    assert s.spent_usd == Decimal("0.0002") * 5 and len(s.records) == 8


async def test_ledger_blocking_free_tier_stops_model(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.quota.spec import PoolSpec, WindowSpec

    pool = PoolSpec(id="b-free", models=("b:y",), free=True, limits=(WindowSpec(per="day", requests=2),))
    ledger = Ledger(MemoryStore(), [pool])
    a, b = ItemProvider(mini_suite), ItemProvider(mini_suite)
    noon = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)  # far from the daily reset (within 2 min it is a wait)
    be = DirectBackend({"a": a, "b": b}, {"a:x": price(), "b:y": price()}, ledger=ledger, now=lambda: noon)
    s = await run_live(mini_suite, ["a:x", "b:y"], be, ResultCache(str(tmp_path / "c")),
                       fast_options(FakeClock(), concurrency=1))
    assert b.n == 2 and len([r for r in s.records if r.model == "b:y"]) == 2
    assert s.model_events["b:y"].startswith("quota") and "b-free" in s.model_events["b:y"]
    assert len([r for r in s.records if r.model == "a:x"]) == 4
    # the free calls cost nothing, so a $0 budget still admits them
    assert all(r.cost_usd == 0 for r in s.records if r.model == "b:y")


async def test_partial_answer_billed_by_the_vendor_is_counted(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from router.types import Usage

    cut = Unavailable("stream cut", billed_usage=Usage(input_tokens=100, output_tokens=20))
    a = ItemProvider(mini_suite, errors={1: cut})
    cache = ResultCache(str(tmp_path / "c"))
    s = await run_live(mini_suite, ["a:x"], backend({"a": a}, ["a:x"]), cache,
                       fast_options(FakeClock(), concurrency=1))
    # the cut call is recorded as failed-with-cost (retried next run); 3 items answered
    assert len(s.records) == 3
    assert s.spent_usd == Decimal("0.0002") * 3 + Decimal("0.00014")
    cut_rec = [r for r in cache.all() if r.status == "unavailable"]
    assert len(cut_rec) == 1 and cut_rec[0].cost_usd == Decimal("0.00014")


async def test_failed_judge_is_rescored_without_calling_the_model_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.suite import load_suite

    p = tmp_path / "j.yaml"
    p.write_text("judge: {model: 'j:judge'}\nitems:\n  - {id: s1, task: summarization, prompt: sum it,"
                 " reference: ok, scorer: {type: judge}}\n", encoding="utf-8")
    suite = load_suite(p)
    path = str(tmp_path / "c")
    a, j = ItemProvider(suite), ItemProvider(suite, errors={1: BadRequest("judge down")})
    be = DirectBackend({"a": a, "j": j}, {"a:x": price(), "j:judge": price()})
    s1 = await run_live(suite, ["a:x"], be, ResultCache(path), fast_options(FakeClock()))
    assert s1.records == [] and a.n == 1
    a2, j2 = ItemProvider(suite), ItemProvider(suite)
    be2 = DirectBackend({"a": a2, "j": j2}, {"a:x": price(), "j:judge": price()})
    s2 = await run_live(suite, ["a:x"], be2, ResultCache(path), fast_options(FakeClock()))
    assert a2.n == 0 and j2.n == 1 and s2.records[0].quality == 0.8
    assert s2.spent_usd == Decimal("0.0004")  # the answer (paid in run 1) + the judge
