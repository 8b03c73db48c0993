"""Answer-agreement cascades through the proxy (the real app over the real Router, with
FakeProviders behind it): the accepted answer, the x-quotaroute-* headers, one spend row
per request counting every call, stream requests (buffer and single), the Messages API."""

from __future__ import annotations

import inspect
import re
import sqlite3
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai

from providers.fake import FakeProvider, reply
from router.cascade import Cascade, Stage
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from tests.router.routing_helpers import card
from tests.router.server.conftest import make_app

CAT = Catalog([card("pa:a", "1", "2", q=0.6), card("pb:b", "2", "4", q=0.65), card("pc:c", "10", "20", q=0.95)])
MSG = [{"role": "user", "content": "What is 6 * 7?"}]
# a 10-in/5-out reply: a 0.00002, b 0.00004, c 0.0002


class Num:
    def extract(self, text: str | None) -> str | None:
        m = re.findall(r"-?\d+", text or "")
        return m[-1] if m else None

    def same(self, a: str | None, b: str | None) -> bool:
        return a is not None and a == b


def router(a: str, b: str, c: str = "42", *, stream: str = "buffer") -> Router:
    provs = {"pa": FakeProvider(name="pa", scripts=[reply(a)]), "pb": FakeProvider(name="pb", scripts=[reply(b)]),
             "pc": FakeProvider(name="pc", scripts=[reply(c)])}
    cas = Cascade("agree", "number", (Stage("consensus", k=2, m=2, models=("pa:a", "pb:b"), policy="cheapest"),
                                      Stage("single", models=("pc:c",))), using=Num(), stream=stream,
                  fallback_policy="cheapest")
    return Router(catalog=CAT, providers=provs, ledger=Ledger(MemoryStore(), []), policy="cheapest", cascades=[cas])


def clients(app: Any) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return (openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=hc, max_retries=0),
            anthropic.AsyncAnthropic(api_key="x", base_url="http://t", http_client=hc, max_retries=0))


def spend_rows(app: Any, path: Any) -> list[dict[str, Any]]:
    app.spend.flush()
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("SELECT * FROM spend ORDER BY id")]


async def test_agreement_through_the_openai_wire_with_headers_and_one_spend_row(spend_path: Any) -> None:
    app = make_app(router("It is 42", "42"), spend_path)
    o, _ = clients(app)
    raw = await o.chat.completions.with_raw_response.create(model="cascade:agree", messages=MSG)
    assert raw.parse().choices[0].message.content == "It is 42"
    h = raw.headers
    assert h["x-quotaroute-model"] == "pa:a" and h["x-quotaroute-cascade"] == "agree"
    assert h["x-quotaroute-calls"] == "2" and h["x-quotaroute-stages"] == "1" and h["x-quotaroute-accepted-stage"] == "1"
    assert h["x-quotaroute-agreed"] == "pa:a,pb:b" and h["x-quotaroute-agreement"] == "yes"
    assert Decimal(h["x-quotaroute-cost-usd"]) == Decimal("0.00006")  # both calls
    assert h["x-quotaroute-route-reason"].startswith("cascade:agree: stage 1 consensus 2 of 2: 2/2 agree")
    (row,) = spend_rows(app, spend_path)
    assert row["requested_model"] == "cascade:agree" and row["model"] == "pa:a" and row["status"] == 200
    assert Decimal(row["cost_usd"]) == Decimal("0.00006") and row["fallback_chain"] == "pa:a,pb:b"
    assert row["input_tokens"] == 20 and row["output_tokens"] == 10  # every call's tokens
    assert "2 calls, 1 stage" in row["route_reason"]
    await app.aclose()


async def test_escalation_through_the_messages_wire(spend_path: Any) -> None:
    app = make_app(router("41", "42", "the answer is 42"), spend_path)
    _, a = clients(app)
    raw = await a.messages.with_raw_response.create(model="cascade:agree", max_tokens=50, messages=MSG)
    msg = raw.parse()
    if inspect.isawaitable(msg):
        msg = await msg
    assert msg.content[0].text == "the answer is 42"
    h = raw.headers
    assert h["x-quotaroute-model"] == "pc:c" and h["x-quotaroute-calls"] == "3" and h["x-quotaroute-stages"] == "2"
    assert h["x-quotaroute-accepted-stage"] == "2" and h["x-quotaroute-agreement"] == "no"
    assert Decimal(h["x-quotaroute-cost-usd"]) == Decimal("0.00026")
    (row,) = spend_rows(app, spend_path)
    assert row["endpoint"] == "messages" and row["fallback_chain"] == "pa:a,pb:b,pc:c"
    assert Decimal(row["cost_usd"]) == Decimal("0.00026")
    await app.aclose()


async def test_stream_buffer_sends_the_accepted_answer_as_sse(spend_path: Any) -> None:
    app = make_app(router("x = 42", "42"), spend_path)
    o, a = clients(app)
    raw = await o.chat.completions.with_raw_response.create(model="cascade:agree", messages=MSG, stream=True,
                                                            stream_options={"include_usage": True})
    assert raw.headers["x-quotaroute-calls"] == "2" and Decimal(raw.headers["x-quotaroute-cost-usd"]) == Decimal(
        "0.00006")  # the cascade ran before the first byte: the cost is final
    chunks = [c async for c in raw.parse()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "x = 42"
    assert chunks[-1].usage.total_tokens == 30  # every call's tokens, as billed
    (row,) = spend_rows(app, spend_path)
    assert row["stream"] == 1 and Decimal(row["cost_usd"]) == Decimal("0.00006")
    await app.aclose()
    app = make_app(router("41", "42", "so 42"), spend_path)
    _, a = clients(app)
    async with a.messages.stream(model="cascade:agree", max_tokens=20, messages=MSG) as st:
        assert (await st.get_final_message()).content[0].text == "so 42"
    await app.aclose()


async def test_stream_single_routes_stream_requests_to_one_model(spend_path: Any) -> None:
    app = make_app(router("42", "42", stream="single"), spend_path)
    o, _ = clients(app)
    raw = await o.chat.completions.with_raw_response.create(model="cascade:agree", messages=MSG, stream=True)
    chunks = [c async for c in raw.parse()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "42"
    # the cascade's fallback_policy (cheapest, with the math floor: only pc:c meets it)
    assert raw.headers["x-quotaroute-model"] == "pc:c" and "x-quotaroute-cascade" not in raw.headers
    assert "(stream: single)" in raw.headers["x-quotaroute-route-reason"]
    await app.aclose()


async def test_an_unknown_cascade_is_a_404(spend_path: Any) -> None:
    app = make_app(router("42", "42"), spend_path)
    o, _ = clients(app)
    try:
        await o.chat.completions.create(model="cascade:nope", messages=MSG)
    except openai.NotFoundError as e:
        assert "no such cascade" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected a 404")
    await app.aclose()
