"""Parameters across vendors, end to end: the official anthropic and openai SDKs against the
proxy over the real Router, with OpenAI and Anthropic faked at the HTTP level (respx).

The case that broke: an Anthropic-style `thinking` request routed to an OpenAI model was
sent `thinking` unchanged; the real OpenAI API answers 400 to it, and a 400 stops fallback.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import respx

from providers.anthropic import AnthropicProvider
from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from router.types import ChatRequest
from tests.providers._native_helpers import FIXTURES
from tests.router.routing_helpers import card
from tests.router.server.conftest import make_app

OAI_URL = "https://api.openai.com/v1/chat/completions"
ANT_URL = "https://api.anthropic.com/v1/messages"
MSG = [{"role": "user", "content": "hi"}]
REASONING = ("tools", "json_schema", "reasoning")


def fx(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def router(*cards: Any) -> Router:
    once = RetryPolicy(max_attempts=1)
    provs = {"openai": OpenAIProvider(api_key="sk-o", client=httpx.AsyncClient(), retry=once),
             "anthropic": AnthropicProvider(api_key="sk-a", client=httpx.AsyncClient(), retry=once)}
    return Router(catalog=Catalog(list(cards)), providers=provs, ledger=Ledger(MemoryStore(), [], []),
                  policy="cheapest")


def sdks(app: Any) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return (openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=hc, max_retries=0),
            anthropic.AsyncAnthropic(api_key="x", base_url="http://t", http_client=hc, max_retries=0))


def ok_json(path: str) -> httpx.Response:
    return httpx.Response(200, content=fx(path), headers={"content-type": "application/json"})


@respx.mock
async def test_anthropic_thinking_routed_to_openai_gets_reasoning_effort(spend_path: Any) -> None:
    oai = respx.post(OAI_URL).mock(return_value=ok_json("openai/reasoning_completion.json"))
    app = make_app(router(card("openai:gpt-5-mini", "0.25", "2", caps=REASONING),
                          card("anthropic:claude-haiku-4-5", "1", "5", caps=REASONING)), spend_path)
    _, a = sdks(app)
    raw = await a.messages.with_raw_response.create(
        model="auto", max_tokens=4000, messages=MSG, thinking={"type": "enabled", "budget_tokens": 2000},
        extra_body={"temperature": 1, "top_k": 5})
    assert raw.http_response.status_code == 200 and raw.headers["x-quotaroute-model"] == "openai:gpt-5-mini"
    body = json.loads(oai.calls.last.request.content)
    assert "thinking" not in body and "top_k" not in body and "temperature" not in body
    assert body["reasoning_effort"] == "low"  # a 2,000-token budget is nearest "low" (1,024)
    reason = raw.headers["x-quotaroute-route-reason"]
    # (the header is cut at reason_header_max; the spend log keeps 500 characters)
    assert "; params: reasoning budget 2000 sent as effort low (OpenAI); temperature dropped" in reason
    await app.aclose()


@respx.mock
async def test_fallback_still_works_and_each_vendor_gets_its_own_translation(spend_path: Any) -> None:
    oai = respx.post(OAI_URL).mock(return_value=httpx.Response(
        429, content=fx("openai/error_rate_limit.json"), headers={"content-type": "application/json"}))
    ant = respx.post(ANT_URL).mock(return_value=ok_json("anthropic/message_text.json"))
    app = make_app(router(card("openai:gpt-5-mini", "0.25", "2", caps=REASONING),
                          card("anthropic:claude-haiku-4-5", "1", "5", caps=REASONING)), spend_path)
    o, a = sdks(app)
    raw = await a.messages.with_raw_response.create(
        model="auto", max_tokens=4000, messages=MSG, thinking={"type": "enabled", "budget_tokens": 2000})
    assert raw.headers["x-quotaroute-model"] == "anthropic:claude-haiku-4-5"
    assert "reasoning_effort" in json.loads(oai.calls.last.request.content)
    sent = json.loads(ant.calls.last.request.content)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000} and sent["max_tokens"] == 4000
    assert "fell back to anthropic:claude-haiku-4-5" in raw.headers["x-quotaroute-route-reason"]
    # and the other way round: an OpenAI client's reasoning_effort reaches Anthropic as a thinking budget
    r = await o.chat.completions.with_raw_response.create(model="anthropic:claude-haiku-4-5", messages=MSG,
                                                           reasoning_effort="medium", seed=4)
    sent = json.loads(ant.calls.last.request.content)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8192} and "seed" not in sent
    assert sent["max_tokens"] == 4096 + 8192  # no client max_tokens: room for the answer besides the budget
    assert "seed dropped (Anthropic does not take it)" in r.headers["x-quotaroute-route-reason"]
    await app.aclose()


@respx.mock
async def test_reasoning_on_a_non_reasoning_model_is_dropped_with_a_note(spend_path: Any) -> None:
    oai = respx.post(OAI_URL).mock(return_value=ok_json("openai/chat_completion.json"))
    app = make_app(router(card("openai:gpt-4.1-mini", "0.4", "1.6", caps=("tools", "json_schema"))), spend_path)
    o, _ = sdks(app)
    r = await o.chat.completions.with_raw_response.create(model="auto", messages=MSG, reasoning_effort="high",
                                                           temperature=0.3)
    body = json.loads(oai.calls.last.request.content)
    assert "reasoning_effort" not in body and body["temperature"] == 0.3
    assert "reasoning dropped (openai:gpt-4.1-mini is not a reasoning model)" in r.headers[
        "x-quotaroute-route-reason"]
    await app.aclose()


@respx.mock
async def test_a_json_schema_is_essential_a_model_without_it_is_not_eligible(spend_path: Any) -> None:
    oai = respx.post(OAI_URL).mock(return_value=ok_json("openai/chat_completion.json"))
    # the cheaper model cannot do structured output: it is passed over, not sent the schema as a hope
    rt = router(card("anthropic:claude-3-haiku", "0.1", "0.2", caps=("tools",)),
                card("openai:gpt-4.1-mini", "0.4", "1.6", caps=("tools", "json_schema")))
    app = make_app(rt, spend_path)
    o, _ = sdks(app)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    r = await o.chat.completions.with_raw_response.create(
        model="auto", messages=MSG, response_format={"type": "json_schema",
                                                     "json_schema": {"name": "x", "schema": schema}})
    assert r.headers["x-quotaroute-model"] == "openai:gpt-4.1-mini"
    assert json.loads(oai.calls.last.request.content)["response_format"]["json_schema"]["schema"] == schema
    assert "structured output: native" in r.headers["x-quotaroute-route-reason"]
    plan = await rt.aexplain(ChatRequest(messages=MSG, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    dropped = {c.model_id: c.reason for c in plan.candidates() if not c.kept}
    assert dropped == {"anthropic:claude-3-haiku": "lacks json_schema"}
    await app.aclose()


@respx.mock
async def test_streamed_messages_with_output_config_reach_openai_translated(spend_path: Any) -> None:
    oai = respx.post(OAI_URL).mock(return_value=httpx.Response(
        200, content=fx("openai/chat_stream.sse"), headers={"content-type": "text/event-stream"}))
    app = make_app(router(card("openai:gpt-5.5", "1", "8", caps=REASONING)), spend_path)
    _, a = sdks(app)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    async with a.messages.stream(model="auto", max_tokens=3000, messages=MSG,
                                 extra_body={"thinking": {"type": "adaptive"},
                                             "output_config": {"effort": "max",
                                                               "format": {"type": "json_schema", "schema": schema}}}
                                 ) as st:
        await st.get_final_message()
    body = json.loads(oai.calls.last.request.content)
    assert body["reasoning_effort"] == "xhigh"  # Anthropic's "max" is gpt-5.5's highest level
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert "thinking" not in body and "output_config" not in body and body["stream"] is True
    await app.aclose()
