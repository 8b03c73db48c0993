"""Explicit routes: fallback chains and weighted deployments (router.chains via the SDK)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from providers.fake import FakeProvider, Script, reply
from router import Router
from router.catalog import Catalog
from router.chains import Chains, Deployment, RouteError
from router.errors import NoRouteAvailable, RateLimited, Unavailable, UnknownModel
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from tests.router.routing_helpers import NOW, card

A = card("pa:a", "1", "2", q=0.8).model_copy(update={"aliases": ("alpha",)})
B = card("pb:b", "2", "4", q=0.95)
C = card("pc:c", "0.5", "1", q=0.5)
D = card("pd:d", "5", "9", q=0.9, ctx=1000)
CAT = Catalog([A, B, C, D])


def fakes(**scripts):
    return {p: FakeProvider(name=p, scripts=list(scripts.get(p) or [reply(f"from {p}")]), repeat_last=True)
            for p in ("pa", "pb", "pc", "pd")}


def make(providers=None, **kw):
    provs = providers or fakes()
    kw.setdefault("ledger", Ledger(MemoryStore()))
    kw.setdefault("policy", "cheapest")
    return Router(catalog=CAT, providers=provs, clock=lambda: NOW, **kw), provs


def err(e):
    return Script(error=e)


async def test_pinning_without_fallbacks_still_gives_no_fallback():
    router, _ = make(fakes(pb=[err(Unavailable("down", provider="pb", model="b"))]))
    with pytest.raises(NoRouteAvailable):
        await router.achat("hi", model="pb:b")


async def test_a_pinned_model_falls_back_along_its_list_in_order():
    provs = fakes(pb=[err(Unavailable("down", provider="pb", model="b"))])
    # C is cheaper and A is better than C, but the explicit order wins: b, then c, then a
    router, _ = make(provs, fallbacks={"pb:b": ["pc:c", "alpha"]})
    plan = await router.aexplain("hi", model="pb:b")
    assert [s.model_id for s in plan.steps] == ["pb:b", "pc:c", "pa:a"]
    assert plan.chain == ["pinned pb:b", "fallback 1: pc:c", "fallback 2: pa:a"]
    out = await router.achat("hi", model="pb:b")
    assert out.response.text == "from pc" and out.route.fallback_chain == ["pb:b", "pc:c"]
    assert "fell back to pc:c" in out.route.reason


async def test_fallbacks_are_transitive_and_pass_the_usual_checks():
    # c's own fallbacks follow it; d cannot take a 2,000-token prompt (context window 1,000)
    router, _ = make(fallbacks={"pb:b": ["pd:d", "pc:c"], "pc:c": ["pa:a"]})
    plan = await router.aexplain("word " * 2000, model="pb:b")
    assert [s.model_id for s in plan.steps] == ["pb:b", "pc:c", "pa:a"]
    assert any("pd:d [skipped: context window" in line for line in plan.chain), plan.chain


async def test_an_over_budget_fallback_is_skipped_with_its_reason():
    from router.policies import Policy

    router, _ = make(fallbacks={"pc:c": ["pd:d", "pa:a"]}, policy=Policy("cheapest", max_cost_usd="0.0005"))
    plan = await router.aexplain("hi", model="pc:c", max_tokens=100)
    assert [s.model_id for s in plan.steps] == ["pc:c", "pa:a"]
    assert any(line.startswith("fallback 1: pd:d [skipped: expected cost $") for line in plan.chain)


def test_cycles_and_unknown_ids_are_refused_with_their_path():
    with pytest.raises(RouteError) as e:
        Chains(CAT, {"pa:a": ["pb:b"], "pb:b": ["pc:c"], "pc:c": ["alpha"]})
    assert "cycle: pa:a -> pb:b -> pc:c -> pa:a" in str(e.value)
    with pytest.raises(RouteError) as e:
        Chains(CAT, {"pa:a": ["pb:b", "nope:x"]})
    assert e.value.key == "fallbacks.pa:a[1]" and "unknown model 'nope:x'" in str(e.value)
    with pytest.raises(RouteError) as e:
        Chains(CAT, {"auto": ["auto:cheap"]})
    assert e.value.key == "fallbacks.auto[0]"
    with pytest.raises(RouteError) as e:
        Chains(CAT, deployments={"x": [{"provider": "pa", "model": "a", "weight": 0}]})
    assert e.value.key == "deployments.x[0].weight"
    with pytest.raises(RouteError) as e:
        Chains(CAT, deployments={"x": [{"provider": "pb", "model": "pa:a"}]})
    assert e.value.key == "deployments.x[0].provider"


async def test_weighted_deployments_draw_by_weight_among_healthy_ones():
    deps = {"dual": [{"provider": "pa", "model": "a", "weight": 3}, {"provider": "pb", "model": "b", "weight": 1}]}
    router, _ = make(deployments=deps, rng=random.Random(7))
    firsts = Counter()
    for _ in range(2000):
        plan = await router.aexplain("hi", model="dual")
        assert {s.model_id for s in plan.steps} == {"pa:a", "pb:b"}  # the other one is the failover
        firsts[plan.steps[0].model_id] += 1
    assert 0.70 < firsts["pa:a"] / 2000 < 0.80, firsts
    assert plan.chain == ["pinned dual: pa:a weight 3 (75%), pb:b weight 1 (25%)"]
    # an open circuit takes a deployment out of the draw
    for _ in range(3):
        router.health.failure("pa:a@pa", NOW)
    for _ in range(20):
        plan = await router.aexplain("hi", model="dual")
        assert [s.model_id for s in plan.steps] == ["pb:b"]
    router.health.success("pa:a@pa", 1.0, NOW + timedelta(seconds=60))


async def test_the_draw_is_repeatable_with_a_seeded_rng_and_fails_over():
    deps = {"dual": [{"provider": "pa", "model": "a", "weight": 1}, {"provider": "pb", "model": "b", "weight": 1}]}
    seqs = []
    for _ in range(2):
        router, _ = make(deployments=deps, rng=random.Random(42))
        seqs.append([(await router.aexplain("hi", model="dual")).steps[0].model_id for _ in range(30)])
    assert seqs[0] == seqs[1] and len(set(seqs[0])) == 2
    failovers = 0
    for seed in range(6):  # pa always fails: whichever is drawn first, pb answers
        router, _ = make(fakes(pa=[err(RateLimited("slow", provider="pa", model="a"))]), deployments=deps,
                         rng=random.Random(seed))
        out = await router.achat("hi", model="dual")
        assert out.response.text == "from pb"
        failovers += out.route.fallback_chain == ["pa:a", "pb:b"]
    assert failovers >= 1


async def test_deployments_pin_a_key_and_a_model_entry_lists_its_deployments():
    k1, k2 = FakeProvider(name="pa", scripts=[reply("k1")]), FakeProvider(name="pa", scripts=[reply("k2")])
    provs = {**fakes(), "pa": {"K1": k1, "K2": k2}}
    deps = {"pa:a": [{"provider": "pa", "model": "a", "key": "K2", "weight": 1}, {"provider": "pc", "model": "c"}]}
    router, _ = make(provs, deployments=deps, rng=random.Random(3))
    plans = [await router.aexplain("hi", model="alpha") for _ in range(20)]
    assert {tuple(s.deployment for s in p.steps) for p in plans} == {("pa:a@K2", "pc:c@pc"), ("pc:c@pc", "pa:a@K2")}


async def test_a_virtual_model_tries_its_fallbacks_after_the_policy_plan():
    provs = fakes(pa=[err(Unavailable("down", provider="pa", model="a"))])
    # the router only routes among pa:a; auto's explicit fallback is pb:b
    router, _ = make(provs, models=["pa:a"], fallbacks={"auto": ["pb:b"]})
    plan = await router.aexplain("hi")
    assert [s.model_id for s in plan.steps] == ["pa:a", "pb:b"] and plan.chain == ["fallback 1: pb:b"]
    out = await router.achat("hi")
    assert out.response.text == "from pb"


async def test_per_call_fallbacks_and_unknown_names():
    provs = fakes(pa=[err(Unavailable("down", provider="pa", model="a"))])
    router, _ = make(provs)
    out = await router.achat("hi", model="pa:a", fallbacks=["pc:c"])
    assert out.response.text == "from pc" and out.route.fallback_chain == ["pa:a", "pc:c"]
    with pytest.raises(UnknownModel):
        await router.aexplain("hi", model="pa:a", fallbacks=["nope"])


def test_chain_links_expand_once_and_members_keep_keys():
    ch = Chains(CAT, {"pa:a": ["grp", "pb:b"]},
                {"grp": [Deployment("pc:c", 2.0), {"provider": "pb", "model": "b", "key": "KB"}]})
    links = ch.links("pa:a")
    assert [link.name for link in links] == ["pa:a", "grp", "pb:b"]
    assert links[1].members == (Deployment("pc:c", 2.0), Deployment("pb:b", 1.0, "KB"))
    assert ch.links("pc:c") is None and ch.links("auto") is None


async def test_a_stream_walks_the_chain_too():
    provs = fakes(pb=[err(Unavailable("down", provider="pb", model="b"))])
    router, _ = make(provs, fallbacks={"pb:b": ["pc:c"]})
    s = await router.astream("hi", model="pb:b")
    text = "".join([ev.text async for ev in s if getattr(ev, "text", None)])
    assert text == "from pc" and s.route.fallback_chain == ["pb:b", "pc:c"]


async def test_kept_reasons_follow_the_chain_order():
    router, _ = make(fallbacks={"pc:c": ["pd:d", "pb:b", "pa:a"]})
    plan = await router.aexplain("word " * 2000, model="pc:c")  # pd:d is too small: skipped
    kept = sorted((r for r in plan.reasons if r.kept), key=lambda r: r.rank)
    assert [r.model_id for r in kept] == ["pc:c", "pb:b", "pa:a"] and kept[0].reason == "rank 1: explicit route"
    assert [c.model_id for c in plan.candidates() if c.kept] == ["pc:c", "pb:b", "pa:a"]


async def test_a_model_served_only_through_its_deployments_elsewhere():
    # pd's own provider is not configured; its deployments entry serves it through pc
    provs = {p: f for p, f in fakes().items() if p != "pd"}
    router, _ = make(provs, deployments={"pd:d": [{"provider": "pc", "model": "c"}]})
    out = await router.achat("hi", model="pd:d")
    assert out.response.text == "from pc"
    router2, _ = make(provs)
    from router.errors import ModelNotServed

    with pytest.raises(ModelNotServed, match="provider pd is not configured"):
        await router2.achat("hi", model="pd:d")


async def test_a_deployment_names_a_key_variable_another_provider_reads_too():
    pa, pc = FakeProvider(name="pa", scripts=[reply("pa")]), FakeProvider(name="pc", scripts=[reply("pc")])
    provs = {"pa": {"SHARED": pa}, "pc": {"SHARED": pc}}
    deps = {"both": [{"provider": "pc", "model": "c", "key": "SHARED"}]}
    router, _ = make(provs, deployments=deps)
    plan = await router.aexplain("hi", model="both")
    assert [s.deployment for s in plan.steps] == ["pc:c@pc/SHARED"]
    assert (await router.achat("hi", model="both")).response.text == "pc" and len(pa.calls) == 0
