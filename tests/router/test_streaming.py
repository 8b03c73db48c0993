"""Routed streams that break: truncated finishes, errors after content, callers that
close, answers finished by a fallback model (assistant prefill), and what each is billed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from providers.fake import FakeProvider, Script, reply
from router import Router
from router.catalog import Catalog
from router.errors import BadRequest, ContentFiltered, Timeout, Unavailable
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec
from router.streaming import delivered_tokens
from router.types import FinishEvent, TextDelta, ToolCallDelta, Usage, UsageEvent
from tests.router.routing_helpers import NOW, card

CAT = Catalog([card("pa:a", "1", "2", q=0.8), card("pb:b", "2", "4", q=0.95)])
WORDS = [f"w{i} " for i in range(60)]  # 60 words; a cut after 20 or 40 of them


def texts(words: list[str]) -> list[Any]:
    return [TextDelta(text=w) for w in words]


def make(pa: Script | list[Script], pb: Script | list[Script] | None = None, *, pb_prefill: bool = True
         ) -> tuple[Router, dict[str, FakeProvider], Ledger]:
    provs = {"pa": FakeProvider(name="pa", scripts=pa if isinstance(pa, list) else [pa]),
             "pb": FakeProvider(name="pb", scripts=pb if isinstance(pb, list) else [pb or reply("from b")],
                                prefill=pb_prefill)}
    ledger = Ledger(MemoryStore(), [], [BudgetSpec(id="g", scope="global", limit_usd=Decimal("100"))])
    return Router(catalog=CAT, providers=provs, ledger=ledger, policy="cheapest", clock=lambda: NOW), provs, ledger


async def spent(ledger: Ledger) -> Decimal:
    view = await ledger.view(NOW, ("pa:a", "pb:b"))
    return next(b.spent_usd for b in view.budgets if b.budget_id == "g")


async def drain(s: Any) -> str:
    return "".join([e.text async for e in s if e.kind == "text"])


def price(usage: Usage, inp: str, out: str) -> Decimal:
    return (usage.input_tokens * Decimal(inp) + usage.output_tokens * Decimal(out)) / 1_000_000


# ---------------------------------------------------------------- truncated answers


async def test_error_finish_before_any_content_falls_back():
    router, provs, _ = make(Script(events=[UsageEvent(usage=Usage(input_tokens=7)), FinishEvent(finish_reason="error")]))
    s = await router.astream("hi")
    assert s.route.model_id == "pb:b" and await drain(s) == "from b"
    assert [a.error_type for a in s.route.attempts] == ["TruncatedResponse", None]


async def test_error_finish_after_content_raises_when_nothing_can_finish_it():
    cut = Script(events=[*texts(WORDS[:20]), FinishEvent(finish_reason="error")])
    router, provs, ledger = make(cut, pb_prefill=False)
    s = await router.astream("hi")
    got: list[str] = []
    with pytest.raises(Unavailable, match="ended the answer early"):
        async for e in s:
            got.append(e.text)
    assert "".join(got) == "".join(WORDS[:20])
    assert s.response is not None and s.response.finish_reason != "stop"  # never a complete answer
    a = s.route.attempts
    assert [x.error_type for x in a] == ["TruncatedResponse", "NoPrefill"] and provs["pb"].calls == []
    assert a[0].usage.output_tokens == delivered_tokens("".join(WORDS[:20])) > 0
    assert s.route.cost_usd > 0 and await spent(ledger) == s.route.cost_usd


async def test_sdk_error_finish_without_fallback_raises_in_sync_iteration():
    router, _, _ = make(Script(events=[*texts(WORDS[:5]), FinishEvent(finish_reason="error")]), pb_prefill=False)
    with pytest.raises(Unavailable):
        with router.stream("hi") as s:
            list(s)
    router.close()


# ---------------------------------------------------------------- billing of broken streams


async def test_failure_after_40_tokens_is_billed_as_delivered():
    sent = "".join(WORDS[:40])
    router, _, ledger = make(Script(events=texts(WORDS[:40]), error=Unavailable("connection reset")),
                             pb_prefill=False)
    s = await router.astream("hi")
    with pytest.raises(Unavailable, match="connection reset"):
        await drain(s)
    u = s.route.attempts[0].usage
    assert u is not None and u.output_tokens == delivered_tokens(sent) >= 40
    assert u.input_tokens > 0  # the prompt, as the router counted it
    assert s.route.cost_usd == price(u, "1", "2") > 0
    assert await spent(ledger) == s.route.cost_usd


async def test_client_close_is_billed_by_the_same_rule():
    router, _, ledger = make(Script(events=texts(WORDS)), pb_prefill=False)
    s = await router.astream("hi")
    got = []
    async for e in s:
        got.append(e.text)
        if len(got) == 40:
            break
    await s.aclose()
    u = s.route.attempts[0].usage
    assert u.output_tokens == delivered_tokens("".join(got)) and s.route.attempts[0].error_type == "Cancelled"
    assert s.route.cost_usd == price(u, "1", "2") > 0 and await spent(ledger) == s.route.cost_usd


async def test_vendor_reported_usage_wins_when_it_is_higher():
    cut = Script(events=[*texts(WORDS[:10]), UsageEvent(usage=Usage(input_tokens=500, output_tokens=300))],
                 error=Unavailable("reset"))
    router, _, _ = make(cut, pb_prefill=False)
    s = await router.astream("hi")
    with pytest.raises(Unavailable):
        await drain(s)
    assert s.route.attempts[0].usage == Usage(input_tokens=500, output_tokens=300)


async def test_vendor_reported_input_only_still_bills_delivered_output():
    cut = Script(events=[UsageEvent(usage=Usage(input_tokens=500, output_tokens=1)), *texts(WORDS[:30])],
                 error=Unavailable("reset"))
    router, _, _ = make(cut, pb_prefill=False)
    s = await router.astream("hi")
    with pytest.raises(Unavailable):
        await drain(s)
    u = s.route.attempts[0].usage
    assert u.input_tokens == 500 and u.output_tokens == delivered_tokens("".join(WORDS[:30]))


# ---------------------------------------------------------------- finishing a cut answer


async def test_cut_stream_is_finished_by_the_fallback_with_a_prefill():
    first, rest = "".join(WORDS[:20]), "".join(WORDS[20:])
    cut = Script(events=[*texts(WORDS[:20]), FinishEvent(finish_reason="error")])
    fin = reply(" " + rest.rstrip(), input_tokens=80, output_tokens=40, chunks=4)
    router, provs, ledger = make(cut, fin)
    s = await router.astream("count to sixty")
    assert await drain(s) == first + rest.rstrip()  # one answer, no doubled space at the seam
    call = provs["pb"].calls[0]
    assert call.messages[-1].role == "assistant" and call.messages[-1].content == first.rstrip()
    a = s.route.attempts
    assert [(x.model_id, x.ok) for x in a] == [("pa:a", False), ("pb:b", True)]
    assert a[0].usage.output_tokens == delivered_tokens(first) and a[1].usage == Usage(input_tokens=80,
                                                                                       output_tokens=40)
    assert s.route.cost_usd == price(a[0].usage, "1", "2") + price(a[1].usage, "2", "4")
    assert await spent(ledger) == s.route.cost_usd
    assert "finished by pb:b" in s.route.reason and s.route.model_id == "pa:a"  # the headers named pa:a
    assert s.response.text == first + rest.rstrip() and s.response.finish_reason == "stop"
    assert s.response.usage == a[0].usage + a[1].usage


async def test_stall_mid_answer_is_finished_too():
    router, provs, _ = make(Script(events=texts(WORDS[:10]), error=Timeout("no chunk for 30 s")), reply("end."))
    s = await router.astream("hi")
    assert await drain(s) == "".join(WORDS[:10]) + "end."
    assert [x.error_type for x in s.route.attempts] == ["Timeout", None]


async def test_fallback_that_rejects_the_prefill_ends_with_the_original_error():
    router, provs, ledger = make(Script(events=texts(WORDS[:10]), error=Unavailable("reset")),
                                 Script(error=BadRequest("assistant prefill is not supported", status=400)))
    s = await router.astream("hi")
    with pytest.raises(Unavailable, match="reset"):
        await drain(s)
    assert [x.error_type for x in s.route.attempts] == ["Unavailable", "BadRequest"]
    assert s.route.attempts[1].usage is None  # nothing billed for the refusal; its reservation was released
    assert await spent(ledger) == s.route.cost_usd > 0


async def test_no_continuation_after_a_tool_call_or_a_content_filter():
    tool = Script(events=[ToolCallDelta(index=0, id="c1", name="f", arguments='{"a":')], error=Unavailable("reset"))
    router, provs, _ = make(tool)
    s = await router.astream("hi")
    with pytest.raises(Unavailable):
        async for _ in s:
            pass
    assert provs["pb"].calls == []
    router, provs, _ = make(Script(events=texts(WORDS[:3]), error=ContentFiltered("flagged")))
    s = await router.astream("hi")
    with pytest.raises(ContentFiltered):
        await drain(s)
    assert provs["pb"].calls == []


async def test_second_cut_goes_on_down_the_plan():
    cat = Catalog([card("pa:a", "1", "2"), card("pb:b", "2", "4"), card("pc:c", "3", "6")])
    provs = {"pa": FakeProvider(name="pa", scripts=[Script(events=texts(["one "]), error=Unavailable("x"))]),
             "pb": FakeProvider(name="pb", scripts=[Script(events=texts(["two "]), error=Unavailable("y"))],
                                prefill=True),
             "pc": FakeProvider(name="pc", scripts=[reply("three")], prefill=True)}
    router = Router(catalog=cat, providers=provs, ledger=Ledger(MemoryStore()), policy="cheapest", clock=lambda: NOW)
    s = await router.astream("hi")
    assert await drain(s) == "one two three"
    assert provs["pc"].calls[0].messages[-1].content == "one two"
    assert [x.ok for x in s.route.attempts] == [False, False, True]
    assert all(x.usage is not None for x in s.route.attempts)
