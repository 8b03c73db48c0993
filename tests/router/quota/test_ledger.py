"""Ledger behaviour, run against every store (memory, a real SQLite file, a real redis-server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from router.errors import BudgetExceeded
from router.errors import PoolUnavailable
from router.quota.ledger import Ledger
from router.quota.spec import load_quota_config
from router.types import RateLimitSnapshot, Usage

# Logical time for the tests. Redis expires keys by its *own* clock, so logical time is
# kept ahead of the wall clock: a module-level "now" taken at import would be in the
# past by the time a late test runs in a full suite, and Redis would drop a 12 s
# cool-down key at once (a flaky failure seen in full runs).
NOW = (datetime.now(timezone.utc) + timedelta(minutes=30)).replace(microsecond=0)
D = Decimal


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-py"])
def make_ledger(request, tmp_path):
    stores = []

    def make(quotas=(), budgets=(), **kw):
        pools, bud = load_quota_config({"quotas": list(quotas), "budgets": list(budgets)}, file="t.yaml",
                                       include_defaults=False)
        if request.param == "memory":
            from router.quota.memory_store import MemoryStore

            store = MemoryStore()
        elif request.param == "sqlite":
            from router.quota.sqlite_store import SQLiteStore

            store = SQLiteStore(str(tmp_path / f"l{len(stores)}.sqlite"))
        else:
            from router.quota.redis_store import RedisStore

            url = request.getfixturevalue("redis_url")
            store = RedisStore(url, prefix=request.getfixturevalue("redis_prefix") + f"{len(stores)}:",
                               transport="resp" if request.param == "redis" else "redis-py")
        stores.append(store)
        return Ledger(store, pools, bud, **kw)

    request.node._stores = stores  # closed by `_close` on the test's own loop
    yield make


@pytest.fixture(autouse=True)
async def _close(request):
    yield
    for s in getattr(request.node, "_stores", []):
        await s.aclose()


OR_FREE = {"id": "orfree", "models": ["openrouter:*:free"], "free": True,
           "limits": [{"per": "minute", "requests": 20}, {"per": "day", "requests": 3, "reset": "calendar"}]}


async def test_free_pool_first_then_blocks_until_reset(make_ledger):
    L = make_ledger([OR_FREE])
    for _ in range(3):
        r = await L.reserve("openrouter:a:free", tokens=10, now=NOW)
        assert r.free_pool == "orfree"
        s = await L.commit(r, Usage(input_tokens=4, output_tokens=6), D(0), NOW)
        assert (s.free_pool, s.billed_usd, s.free_tokens) == ("orfree", D(0), 10)
    with pytest.raises(PoolUnavailable) as ei:
        await L.reserve("openrouter:b:free", tokens=10, now=NOW)  # the pool is account-wide
    assert ei.value.pool_id == "orfree" and ei.value.resets_at == (NOW + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    v = await L.view(NOW)
    pv = v.pools_for("openrouter:never-seen:free")[0]  # glob resolution for unseen models
    assert pv.remaining_requests == 0 and v.blocked("openrouter:x:free", NOW) is pv
    assert (await L.reserve("openrouter:a:free", tokens=10, now=ei.value.resets_at)).free_pool == "orfree"


async def test_token_grant_partial_cover_bills_rest_pro_rata_exactly(make_ledger):
    L = make_ledger([{"id": "g", "provider": "deepseek", "free": True, "on_exhaust": "paid", "grant": {"tokens": 1000}}],
                    [{"id": "all", "limit_usd": "10"}])
    r = await L.reserve("deepseek:chat", tokens=800, cost_usd=D("0.002"), now=NOW)
    assert r.free_pool == "g"
    s = await L.commit(r, Usage(input_tokens=500, output_tokens=700), D("0.0024"), NOW)
    assert s.free_tokens == 1000 and s.billed_usd == D("0.0024") * 200 / 1200 == D("0.0004")
    r2 = await L.reserve("deepseek:chat", tokens=800, cost_usd=D("0.002"), now=NOW)
    assert r2.free_pool is None  # grant used up: paid
    s2 = await L.commit(r2, Usage(input_tokens=500, output_tokens=300), D("0.0013"), NOW)
    assert s2.billed_usd == D("0.0013") and s2.free_pool is None
    v = await L.view(NOW)
    assert v.pools["g"].remaining_tokens == 0
    assert v.budgets[0].spent_usd == D("0.0017") and v.budgets[0].reserved_usd == 0


async def test_money_grant_and_credit_balance(make_ledger):
    L = make_ledger([{"id": "mg", "provider": "moonshot", "free": True, "on_exhaust": "paid", "grant": {"usd": "0.001"}},
                     {"id": "cred", "provider": "openai", "credit_usd": "0.005"}])
    r = await L.reserve("moonshot:kimi", tokens=100, cost_usd=D("0.0008"), now=NOW)
    s = await L.commit(r, Usage(input_tokens=100, output_tokens=100), D("0.0024"), NOW)
    assert s.free_usd == D("0.001") and s.billed_usd == D("0.0014")
    r = await L.reserve("openai:gpt", tokens=10, cost_usd=D("0.004"), now=NOW)
    assert r.free_pool is None
    await L.commit(r, Usage(input_tokens=5, output_tokens=5), D("0.004"), NOW)
    with pytest.raises(PoolUnavailable) as ei:
        await L.reserve("openai:gpt", tokens=10, cost_usd=D("0.002"), now=NOW)
    assert ei.value.reason == "credit balance"
    assert (await L.view(NOW)).pools["cred"].remaining_usd == D("0.001")


async def test_hard_budget_raises_before_the_call_and_soft_only_flags(make_ledger, caplog):
    L = make_ledger([], [{"id": "hard", "scope": "key", "match": "k1", "period": "day", "limit_usd": "0.01"},
                         {"id": "soft", "scope": "global", "limit_usd": "0.005", "hard": False}])
    r1 = await L.reserve("openai:gpt", tokens=1, cost_usd=D("0.006"), scope={"key": "k1"}, now=NOW)
    assert r1.soft_exceeded == ("soft",) and "soft budget soft exceeded" in caplog.text
    with pytest.raises(BudgetExceeded) as ei:
        await L.reserve("openai:gpt", tokens=1, cost_usd=D("0.005"), scope={"key": "k1"}, now=NOW)
    assert ei.value.budget_id == "hard" and ei.value.limit_usd == D("0.01")
    await L.reserve("openai:gpt", tokens=1, cost_usd=D("0.005"), scope={"key": "k2"}, now=NOW)  # other key: fine
    await L.release(r1, NOW)
    await L.reserve("openai:gpt", tokens=1, cost_usd=D("0.005"), scope={"key": "k1"}, now=NOW)
    tomorrow = NOW + timedelta(days=1)
    await L.reserve("openai:gpt", tokens=1, cost_usd=D("0.009"), scope={"key": "k1"}, now=tomorrow)


@pytest.mark.parametrize("scope, budget", [
    ({"user": "ann"}, {"scope": "user", "match": "ann"}),
    ({"tags": ["x", "teamA"]}, {"scope": "tag", "match": "team*"}),
    ({"team": "blue"}, {"scope": "team", "match": "blue"}),
    ({}, {"scope": "model", "match": "openai:*"}),
    ({}, {"scope": "provider", "match": "openai"}),
])
async def test_budget_scopes(make_ledger, scope, budget):
    L = make_ledger([], [{"id": "b", "limit_usd": "1", **budget}])
    with pytest.raises(BudgetExceeded):
        await L.reserve("openai:gpt", tokens=1, cost_usd=D("1.01"), scope=scope, now=NOW)
    await L.reserve("anthropic:claude", tokens=1, cost_usd=D("1.01"), scope={}, now=NOW)


async def test_expiry_charges_the_reserved_amounts_and_a_late_commit_corrects_them(make_ledger):
    # The crash rule: an expired reservation's call may have reached the vendor, so it
    # stays charged at what it reserved (never released to zero); a late commit replaces
    # the reserved amounts with the actual ones, a late release gives them back.
    L = make_ledger([{"id": "p", "provider": "groq", "limits": [{"per": "day", "requests": 3, "tokens": 1000}]}],
                    [{"id": "b", "period": "total", "limit_usd": "1"}])
    r1 = await L.reserve("groq:m", tokens=100, cost_usd=D("0.1"), now=NOW, ttl_s=30)
    r2 = await L.reserve("groq:m", tokens=100, cost_usd=D("0.1"), now=NOW, ttl_s=30)
    await L.reserve("groq:m", tokens=100, cost_usd=D("0.1"), now=NOW, ttl_s=30)
    with pytest.raises(PoolUnavailable):
        await L.reserve("groq:m", tokens=100, now=NOW + timedelta(seconds=29))
    later = NOW + timedelta(seconds=31)
    v = await L.view(later)
    assert v.pools["p"].remaining_requests == 0 and v.pools["p"].remaining_tokens == 700
    assert v.budgets[0].spent_usd == D("0.3") and v.budgets[0].reserved_usd == 0
    with pytest.raises(PoolUnavailable):
        await L.reserve("groq:m", tokens=100, now=later)
    s = await L.commit(r1, Usage(input_tokens=50, output_tokens=70), D("0.05"), later)
    assert s.live is False
    v = await L.view(later)
    assert v.pools["p"].remaining_requests == 0 and v.pools["p"].remaining_tokens == 680  # 100 replaced by 120
    assert v.budgets[0].spent_usd == D("0.25")
    assert await L.release(r2, later) is True  # provably not billed: given back
    v = await L.view(later)
    assert v.pools["p"].remaining_requests == 1 and v.pools["p"].remaining_tokens == 780
    assert v.budgets[0].spent_usd == D("0.15") and v.budgets[0].reserved_usd == 0


async def test_input_output_token_windows(make_ledger):
    L = make_ledger([{"id": "p", "provider": "x", "limits": [
        {"per": "minute", "tokens": 100, "count": "input"}, {"per": "minute", "tokens": 50, "count": "output"}]}])
    r = await L.reserve("x:m", tokens=120, input_tokens=90, now=NOW)
    await L.commit(r, Usage(input_tokens=80, output_tokens=20), D(0), NOW)
    v = await L.view(NOW)
    assert v.pools["p"].remaining_tokens == 20  # min(100-80, 50-20)
    with pytest.raises(PoolUnavailable):
        await L.reserve("x:m", tokens=40, input_tokens=30, now=NOW)


async def test_mark_exhausted_and_cooldown(make_ledger):
    L = make_ledger([{"id": "gem", "models": ["gemini:flash"], "free": True, "limits": [
        {"per": "minute", "requests": 5}, {"per": "day", "requests": 20, "tz": "America/Los_Angeles"}]}])
    until = await L.mark_exhausted("gemini:flash", NOW)
    from router.quota.windows import calendar_bounds

    assert until == calendar_bounds("day", "America/Los_Angeles", NOW)[1]
    with pytest.raises(PoolUnavailable) as ei:
        await L.reserve("gemini:flash", tokens=1, now=NOW)
    assert ei.value.reason == "exhausted"
    v = await L.view(NOW)
    assert v.pools["gem"].exhausted_until == until and v.blocked("gemini:flash", NOW) is not None
    await L.reserve("gemini:flash", tokens=1, now=until)
    # a model with no configured pool gets a synthetic one
    cd = await L.cooldown("groq:llama", 12, NOW)
    with pytest.raises(PoolUnavailable) as ei:
        await L.reserve("groq:llama", tokens=1, now=NOW)
    assert ei.value.reason == "cooldown"
    v = await L.view(NOW)
    assert v.pools["model:groq:llama"].cooldown_until == cd and v.blocked("groq:llama", NOW)
    await L.reserve("groq:llama", tokens=1, now=NOW + timedelta(seconds=13))
    await L.mark_exhausted("deepseek:chat", NOW, until=NOW + timedelta(minutes=5))
    with pytest.raises(PoolUnavailable):
        await L.reserve("deepseek:chat", tokens=1, now=NOW + timedelta(minutes=4))


async def test_observe_rate_limit_headers(make_ledger):
    L = make_ledger([{"id": "g", "models": ["groq:m"], "free": True, "limits": [
        {"per": "minute", "requests": 30}, {"per": "day", "requests": 1000, "reset": "calendar"}]}])
    await L.observe("groq:m", RateLimitSnapshot(limit_requests=1000, remaining_requests=10, reset_requests_s=3000), NOW)
    v = await L.view(NOW)
    assert v.pools["g"].remaining_requests == 10
    await L.observe("openai:x", RateLimitSnapshot(remaining_requests=0, reset_requests_s=7, retry_after_s=None), NOW)
    with pytest.raises(PoolUnavailable):
        await L.reserve("openai:x", tokens=1, now=NOW + timedelta(seconds=5))
    await L.reserve("openai:x", tokens=1, now=NOW + timedelta(seconds=8))


async def test_optional_grant_falls_through_to_paid_and_block_pool_still_applies(make_ledger):
    L = make_ledger([{"id": "g", "provider": "z", "free": True, "on_exhaust": "paid", "grant": {"tokens": 50}},
                     {"id": "rpm", "provider": "z", "limits": [{"per": "minute", "requests": 2}]}],
                    [{"id": "b", "limit_usd": "1"}])
    r = await L.reserve("z:m", tokens=100, cost_usd=D("0.5"), now=NOW)  # grant too small: paid
    assert r.free_pool is None and set(r.pools) == {"rpm"}
    r2 = await L.reserve("z:m", tokens=40, cost_usd=D("0.9"), now=NOW)  # fits the grant: budget not charged
    assert r2.free_pool == "g"
    with pytest.raises(PoolUnavailable):
        await L.reserve("z:m", tokens=1, cost_usd=D(0), now=NOW)
    v = await L.view(NOW)
    assert v.budgets[0].reserved_usd == D("0.5")


async def test_key_scoped_pool_and_per_model_pools(make_ledger):
    L = make_ledger([
        {"id": "acct-a", "provider": "groq", "key": "a", "limits": [{"per": "day", "requests": 1}]},
        {"id": "mis", "models": ["mistral:*"], "per_model": True, "free": True, "limits": [{"per": "minute", "requests": 1}]},
    ])
    await L.reserve("groq:m", tokens=1, scope={"upstream_key": "a"}, now=NOW)
    with pytest.raises(PoolUnavailable):
        await L.reserve("groq:m", tokens=1, scope={"upstream_key": "a"}, now=NOW)
    await L.reserve("groq:m", tokens=1, scope={"upstream_key": "b"}, now=NOW)  # another account: not this pool
    r1 = await L.reserve("mistral:small", tokens=1, now=NOW)
    r2 = await L.reserve("mistral:large", tokens=1, now=NOW)  # its own copy of the pool
    assert (r1.free_pool, r2.free_pool) == ("mis@mistral:small", "mis@mistral:large")
    with pytest.raises(PoolUnavailable):
        await L.reserve("mistral:small", tokens=1, now=NOW)
    v = await L.view(NOW, ["mistral:medium"])
    assert [p.pool_id for p in v.pools_for("mistral:medium")] == ["mis@mistral:medium"]
    assert v.pools["mis@mistral:small"].remaining_requests == 0
