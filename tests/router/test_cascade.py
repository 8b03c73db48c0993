"""Answer-agreement cascades through the SDK and the executor, with scripted FakeProviders
(no HTTP): agreement, escalation, failed and out-of-quota stages, reservations for every
call, lazy-majority's third call, streams, selection by model, rule and default."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest

from providers.fake import FakeProvider, Script, reply
from router.cascade import Cascade, CascadePlan, Stage
from router.catalog import Catalog
from router.errors import BadRequest, ConfigError, NoRouteAvailable, QuotaExhausted, Unavailable, UnknownModel
from router.policies import Policy, Rule
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec, PoolSpec
from router.sdk import Router
from tests.router.routing_helpers import NOW, card

# two cheap models, a third cheap one (a replacement), a strong one; prices per 1M tokens
A = card("pa:a", "1", "2", q=0.60)
B = card("pb:b", "2", "4", q=0.65)
D = card("pd:d", "3", "6", q=0.62)
C = card("pc:c", "10", "20", q=0.95)
CAT = Catalog([A, B, D, C])
# a 10-in/5-out reply costs: a 0.00002, b 0.00004, d 0.00006, c 0.0002
COST = {"pa": Decimal("0.00002"), "pb": Decimal("0.00004"), "pd": Decimal("0.00006"), "pc": Decimal("0.0002")}


class Num:
    """A tiny stand-in extractor: the last integer in the text; equal when identical."""

    def extract(self, text: str | None) -> str | None:
        m = re.findall(r"-?\d+", text or "")
        return m[-1] if m else None

    def same(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and a == b


def cascade(*stages: Stage, name: str = "agree", **kw: Any) -> Cascade:
    return Cascade(name, "number", stages, using=Num(), **kw)


TWO_THEN_C = cascade(Stage("consensus", k=2, m=2, models=("pa:a", "pb:b"), policy="cheapest"),
                     Stage("single", models=("pc:c",)))


class CountingLedger(Ledger):
    """A ledger that counts reservations and how each was settled."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.reserved = self.committed = self.released = 0

    async def reserve(self, *a: Any, **kw: Any) -> Any:
        r = await super().reserve(*a, **kw)
        self.reserved += 1
        return r

    async def commit(self, *a: Any, **kw: Any) -> Any:
        self.committed += 1
        return await super().commit(*a, **kw)

    async def release(self, *a: Any, **kw: Any) -> Any:
        self.released += 1
        return await super().release(*a, **kw)


def fp(name: str, *scripts: Script) -> FakeProvider:
    return FakeProvider(name=name, scripts=list(scripts) or [reply("unused")], repeat_last=False)


def make(provs: dict[str, FakeProvider], cascades: Any = (TWO_THEN_C,), *, pools: Any = (), budgets: Any = (),
         policy: Any = "cheapest", rules: Any = ()) -> tuple[Router, CountingLedger]:
    ledger = CountingLedger(MemoryStore(), list(pools), list(budgets))
    for p in ("pa", "pb", "pc", "pd"):
        provs.setdefault(p, fp(p))
    r = Router(catalog=CAT, providers=provs, ledger=ledger, policy=policy, rules=rules, cascades=cascades,
               clock=lambda: NOW)
    return r, ledger


async def ask(r: Router, model: str = "cascade:agree", text: str = "What is 6 * 7?", **kw: Any) -> Any:
    return await r.achat(text, model=model, **kw)


async def test_agreement_returns_the_cheapest_agreeing_reply_and_bills_both_calls():
    provs = {"pa": fp("pa", reply("It is 42.")), "pb": fp("pb", reply("The answer: 42"))}
    r, ledger = make(provs)
    out = await ask(r)
    assert out.response.text == "It is 42." and out.route.model_id == "pa:a"
    assert provs["pc"].calls == []  # stage 2 never ran
    c = out.route.cascade
    assert c.calls == 2 and c.stages_run == 1 and c.accepted_stage == 1 and c.agreement
    assert c.agreed == ["pa:a", "pb:b"] and c.answer == "42"
    assert out.route.cost_usd == COST["pa"] + COST["pb"]
    assert [a.stage for a in out.route.attempts] == [1, 1] and [a.answer for a in out.route.attempts] == ["42", "42"]
    assert "2/2 agree (pa:a, pb:b)" in out.route.reason and "2 calls, 1 stage" in out.route.reason
    assert out.route.policy == "cascade:agree"
    assert (ledger.reserved, ledger.committed, ledger.released) == (2, 2, 0)


async def test_disagreement_escalates_and_every_call_is_billed():
    provs = {"pa": fp("pa", reply("41")), "pb": fp("pb", reply("42")), "pc": fp("pc", reply("so 42"))}
    r, ledger = make(provs)
    out = await ask(r)
    assert out.response.text == "so 42" and out.route.model_id == "pc:c"
    c = out.route.cascade
    assert c.calls == 3 and c.stages_run == 2 and c.accepted_stage == 2 and not c.agreement
    assert out.route.cost_usd == COST["pa"] + COST["pb"] + COST["pc"]
    assert "no agreement (pa:a: '41', pb:b: '42'), escalated" in out.route.reason
    assert [a.stage for a in out.route.attempts] == [1, 1, 2]
    assert (ledger.reserved, ledger.committed, ledger.released) == (3, 3, 0)
    # the spend every call made is on the ledger's budgets too
    view = await ledger.view(NOW)
    assert view is not None


async def test_calls_within_a_stage_run_concurrently():
    gate = asyncio.Event()
    started: list[str] = []

    class Waiting(FakeProvider):
        async def complete(self, req: Any) -> Any:
            started.append(self.name)
            if len(started) == 2:
                gate.set()
            await asyncio.wait_for(gate.wait(), 5)  # only returns once both calls are in flight
            return await super().complete(req)

    provs = {"pa": Waiting(name="pa", scripts=[reply("7")]), "pb": Waiting(name="pb", scripts=[reply("7")])}
    r, _ = make(provs)  # type: ignore[arg-type]
    out = await ask(r)
    assert sorted(started) == ["pa", "pb"] and out.route.cascade.agreement


async def test_a_failed_call_is_replaced_once_by_the_stages_next_model():
    cas = cascade(Stage("consensus", k=2, m=2, models=("pa:a", "pb:b", "pd:d"), policy="cheapest"),
                  Stage("single", models=("pc:c",)))
    provs = {"pa": fp("pa", reply("42")), "pb": fp("pb", Script(error=Unavailable("down", provider="pb"))),
             "pd": fp("pd", reply("42"))}
    r, ledger = make(provs, [cas])
    out = await ask(r)
    assert out.route.cascade.agreed == ["pa:a", "pd:d"] and provs["pc"].calls == []
    assert [(a.model_id, a.ok, a.stage) for a in out.route.attempts] == [
        ("pa:a", True, 1), ("pb:b", False, 1), ("pd:d", True, 1)]
    assert out.route.cost_usd == COST["pa"] + COST["pd"]  # the failed call was released, not billed
    assert (ledger.reserved, ledger.committed, ledger.released) == (3, 2, 1)


async def test_a_stage_that_fails_is_a_missing_vote_and_escalates():
    provs = {"pa": fp("pa", reply("42")), "pb": fp("pb", Script(error=Unavailable("down", provider="pb"))),
             "pc": fp("pc", reply("42"))}
    r, _ = make(provs)
    out = await ask(r)
    assert out.route.model_id == "pc:c" and out.route.cascade.accepted_stage == 2
    assert "1/2" not in out.route.reason and "no agreement (pa:a: '42')" in out.route.reason


async def test_a_stage_out_of_quota_is_a_missing_vote_then_skipped():
    # one free request a day for both cheap models, blocking when used up
    pool = PoolSpec(id="cheap-free", models=("pa:a", "pb:b"), free=True, limits=({"per": "day", "requests": 1},))
    provs = {"pa": fp("pa", reply("42")), "pb": fp("pb", reply("42")), "pc": fp("pc", reply("42"), reply("42"))}
    r, ledger = make(provs, pools=[pool])
    first = await ask(r)  # one cheap call takes the free request; the ledger refuses the other before any call
    assert [a.error_type for a in first.route.attempts] == [None, "PoolUnavailable", None]
    assert first.route.model_id == "pc:c" and first.route.cascade.calls == 2 and first.route.cascade.stages_run == 2
    assert len(provs["pa"].calls) + len(provs["pb"].calls) == 1
    second = await ask(r)  # the pool is used up: the stage has no model and is skipped
    assert second.route.model_id == "pc:c" and second.route.cascade.stages_run == 1
    assert "stage 1 skipped (no model fits: pool cheap-free unavailable" in second.route.reason
    # a vendor's QuotaExhausted mid-call is a missing vote; the next stage answers; the ledger learns it
    provs2 = {"pa": fp("pa", Script(error=QuotaExhausted("gone", provider="pa"))), "pb": fp("pb", reply("42")),
              "pc": fp("pc", reply("42"))}
    r2, ledger2 = make(provs2)
    out = await ask(r2)
    assert out.route.model_id == "pc:c" and out.route.attempts[0].error_type == "QuotaExhausted"
    view = await ledger2.view(NOW, ["pa:a"])
    assert view.blocked("pa:a", NOW) is not None


async def test_budget_reservations_cover_every_call_even_concurrent_ones():
    r0, _ = make({})
    plan = await r0.aexplain("What is 6 * 7?", model="cascade:agree")
    exp_a, exp_b = (s.expected_cost_usd for s in plan.stages[0].steps)
    # room for either cheap call alone, not both at once, and not for the strong model
    cap = exp_b + exp_a / 2
    budget = BudgetSpec(id="cap", scope="global", limit_usd=cap)
    slow = {"latency_s": 0.01}  # both calls in flight at once: the first one's reservation holds the budget
    provs = {"pa": fp("pa", reply("42", **slow)), "pb": fp("pb", reply("42", **slow))}
    r, ledger = make(provs, budgets=[budget])
    out = await ask(r)
    # one call was reserved and made; the other was refused by the ledger before any vendor saw it
    made = [a for a in out.route.attempts if a.ok]
    refused = [a for a in out.route.attempts if a.error_type == "BudgetExceeded"]
    assert len(made) == 1 and len(refused) == 1
    assert len(provs["pa"].calls) + len(provs["pb"].calls) == 1 and provs["pc"].calls == []
    assert out.route.cascade.calls == 1 and not out.route.cascade.agreement
    assert "returned the strongest earlier answer" in out.route.reason
    view = await ledger.view(NOW)
    assert view.budgets[0].spent_usd == out.route.cost_usd


async def test_lazy_majority_calls_a_third_model_only_on_disagreement():
    lazy = cascade(Stage("lazy-majority", models=("pa:a", "pb:b", "pd:d"), policy="cheapest"),
                   Stage("single", models=("pc:c",)))
    provs = {"pa": fp("pa", reply("42")), "pb": fp("pb", reply("42"))}
    r, ledger = make(provs, [lazy])
    out = await ask(r)
    assert out.route.cascade.calls == 2 and provs["pd"].calls == [] and out.route.cascade.agreement
    provs = {"pa": fp("pa", reply("41")), "pb": fp("pb", reply("42")), "pd": fp("pd", reply("42"))}
    r, ledger = make(provs, [lazy])
    out = await ask(r)
    assert out.route.cascade.calls == 3 and out.route.cascade.agreed == ["pb:b", "pd:d"]
    assert out.response.text == "42" and out.route.model_id == "pb:b" and provs["pc"].calls == []
    assert out.route.cost_usd == COST["pa"] + COST["pb"] + COST["pd"]
    provs = {"pa": fp("pa", reply("1")), "pb": fp("pb", reply("2")), "pd": fp("pd", reply("3")),
             "pc": fp("pc", reply("4"))}
    r, ledger = make(provs, [lazy])
    out = await ask(r)
    assert out.route.model_id == "pc:c" and out.route.cascade.calls == 4 and ledger.reserved == 4


async def test_a_last_stage_without_agreement_returns_its_strongest_reply():
    only = cascade(Stage("consensus", k=3, m=2, models=("pa:a", "pb:b", "pd:d"), policy="cheapest"))
    provs = {"pa": fp("pa", reply("1")), "pb": fp("pb", reply("2")), "pd": fp("pd", reply("no number"))}
    r, _ = make(provs, [only])
    out = await ask(r)
    assert out.route.model_id == "pb:b"  # quality 0.65 beats 0.62 and 0.60
    assert "returned the strongest, pb:b" in out.route.reason and not out.route.cascade.agreement
    assert [a.answer for a in out.route.attempts] == ["1", "2", None]  # no number: never agrees


async def test_an_error_that_must_not_fall_back_stops_with_every_call_on_the_route():
    provs = {"pa": fp("pa", reply("42")), "pb": fp("pb", Script(error=BadRequest("bad", provider="pb")))}
    r, ledger = make(provs)
    with pytest.raises(BadRequest) as ei:
        await ask(r)
    route = ei.value.route
    assert sorted(a.model_id for a in route.attempts) == ["pa:a", "pb:b"] and route.cost_usd == COST["pa"]
    assert route.cascade is not None and route.cascade.calls == 2
    assert ledger.reserved == 2 and provs["pc"].calls == []


async def test_nothing_answered_raises_no_route_with_the_cascade_route():
    down = Script(error=Unavailable("down"))
    provs = {"pa": fp("pa", down), "pb": fp("pb", down), "pc": fp("pc", down)}
    r, _ = make(provs)
    with pytest.raises(NoRouteAvailable) as ei:
        await ask(r)
    assert len(ei.value.route.attempts) == 3 and ei.value.route.cascade.stages_run == 2


async def test_selection_by_rule_default_and_model_and_virtual_names_bypass_it():
    provs = {"pa": fp("pa", reply("42"), reply("42")), "pb": fp("pb", reply("42"), reply("42")),
             "pc": fp("pc", reply("hi"), reply("hi"))}
    rule = Rule(name="math-rule", task=frozenset({"math"}), cascade="agree")
    r, _ = make(provs, rules=[rule])
    out = await r.achat("hi", model="auto", metadata={"task": "math"})
    assert out.route.cascade is not None and "[math-rule]" in out.route.reason
    out = await r.achat("hello there", model="auto", metadata={"task": "chat"})
    assert out.route.cascade is None
    r, _ = make({"pa": fp("pa", reply("42")), "pb": fp("pb", reply("42")), "pc": fp("pc", reply("ok"))},
                policy=Policy("cheapest", cascade="agree"))
    assert r.policy_name == "cascade:agree"
    assert (await r.achat("what is 2+2", model="auto")).route.cascade is not None
    assert (await r.achat("what is 2+2", model="auto:best")).route.cascade is None  # an explicit name wins
    with pytest.raises(UnknownModel, match="no such cascade"):
        await r.achat("x", model="cascade:nope")


def test_config_errors_for_unknown_cascades_and_stages_without_models():
    with pytest.raises(ConfigError, match="unknown cascade 'nope'") as ei:
        Router(catalog=CAT, providers={"pb": fp("pb"), "pc": fp("pc")}, rules=[Rule(cascade="nope")],
               cascades=[TWO_THEN_C])
    assert ei.value.key == "rules[0].cascade"
    with pytest.raises(ConfigError, match="stage 2 of cascade 'agree' has no candidate") as ei:
        Router(catalog=CAT, providers={"pa": fp("pa"), "pb": fp("pb")}, cascades=[TWO_THEN_C])
    assert ei.value.key == "cascades.agree.stages[1].models"
    with pytest.raises(ValueError, match="m must be in 1..k"):
        Stage("consensus", k=2, m=3)
    with pytest.raises(ValueError, match="needs `extract:`"):
        Cascade("x", None, (Stage("single"),))


async def test_stream_buffer_runs_the_cascade_then_streams_the_accepted_answer():
    provs = {"pa": fp("pa", reply("x = 42")), "pb": fp("pb", reply("42"))}
    r, _ = make(provs)
    s = await r.astream("What is 6 * 7?", model="cascade:agree")
    assert s.route.cascade is not None and s.route.cost_usd == COST["pa"] + COST["pb"]  # final before any event
    events = [ev async for ev in s]
    assert "".join(e.text for e in events if e.kind == "text") == "x = 42" and events[-1].kind == "finish"


async def test_stream_single_routes_stream_requests_with_the_fallback_policy():
    single = cascade(Stage("consensus", k=2, models=("pa:a", "pb:b")), Stage("single", models=("pc:c",)),
                     stream="single", fallback_policy="best")
    provs = {"pc": fp("pc", reply("strong"))}
    r, _ = make(provs, [single])
    s = await r.astream("What is 6 * 7?", model="cascade:agree")
    text = "".join([ev.text async for ev in s if ev.kind == "text"])
    assert text == "strong" and s.route.model_id == "pc:c" and "(stream: single)" in s.route.reason
    assert provs["pa"].calls == [] and provs["pb"].calls == []


async def test_explain_shows_each_stages_models():
    r, _ = make({})
    plan = await r.aexplain("What is 6 * 7?", model="cascade:agree")
    assert [s.chosen() for s in plan.stages] == [["pa:a", "pb:b"], ["pc:c"]]
    d = plan.to_dict()
    assert d["policy"] == "cascade:agree" and [s["models"] for s in d["cascade"]["stages"]] == [
        ["pa:a", "pb:b"], ["pc:c"]]
    assert {p["stage"] for p in d["plan"]} == {1, 2}
