"""Parameters translated across vendors: the exact JSON each adapter sends for each setting
(respx against the vendors' real response fixtures), and the drop-with-a-note rule."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from providers import params as P
from providers.anthropic import AnthropicProvider
from providers.bedrock import BedrockProvider
from providers.gemini import GeminiProvider
from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from providers.vendors import get_vendor
from router.types import ChatRequest, Message, Reasoning, ResponseFormat, Tool

from ._native_helpers import FIXTURES, collect

KEY = "sk-test-params-0123456789"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
RF = ResponseFormat(type="json_schema", json_schema={"name": "place", "schema": SCHEMA, "strict": True})


def fx(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def req(model: str, **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="Where?")], **kw)


def once() -> RetryPolicy:
    return RetryPolicy(max_attempts=1)


def sent(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)


# ------------------------------------------------------------------ OpenAI-compatible rows

OAI = [
    # (vendor, model, setting, exact reasoning fields sent)
    ("openai", "gpt-5-mini", Reasoning(effort="high"), {"reasoning_effort": "high"}),
    ("openai", "gpt-5-mini", Reasoning(budget_tokens=1000), {"reasoning_effort": "low"}),
    ("openai", "gpt-5-mini", Reasoning(effort="none"), {"reasoning_effort": "minimal"}),  # gpt-5-mini cannot turn off
    ("openai", "gpt-5.5", Reasoning(effort="none"), {"reasoning_effort": "none"}),
    ("openai", "gpt-5.5", Reasoning(effort="max"), {"reasoning_effort": "xhigh"}),
    ("openai", "gpt-5-mini", Reasoning(), {}),  # "think, the model decides": the vendor's default
    ("azure", "gpt-5-mini", Reasoning(effort="low"), {"reasoning_effort": "low"}),
    ("deepseek", "deepseek-v4-pro", Reasoning(effort="medium"),
     {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
    ("deepseek", "deepseek-flash", Reasoning(effort="none"), {"thinking": {"type": "disabled"}}),
    ("zhipu", "glm-5", Reasoning(budget_tokens=4000), {"thinking": {"type": "enabled"}}),
    ("zhipu", "glm-5", Reasoning(effort="none"), {"thinking": {"type": "disabled"}}),
    ("moonshot", "kimi-k2.6", Reasoning(effort="none"), {"thinking": {"type": "disabled"}}),
    ("moonshot", "kimi-k3", Reasoning(effort="medium"), {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
    ("ark", "doubao-seed-2-0-pro-260215", Reasoning(effort="high"), {"thinking": {"type": "enabled"}}),
    ("ark", "doubao-seed-1.6-flash", Reasoning(effort="none"), {"thinking": {"type": "disabled"}}),
    ("dashscope", "qwen-plus", Reasoning(effort="low"), {"enable_thinking": True, "thinking_budget": 1024}),
    ("dashscope", "qwen-plus", Reasoning(effort="none"), {"enable_thinking": False}),
    ("siliconflow", "zai-org/GLM-4.5-Air", Reasoning(budget_tokens=2048),
     {"enable_thinking": True, "thinking_budget": 2048}),
    ("openrouter", "deepseek/deepseek-v3.2", Reasoning(effort="high"), {"reasoning": {"effort": "high"}}),
    ("openrouter", "deepseek/deepseek-v3.2", Reasoning(budget_tokens=3000), {"reasoning": {"max_tokens": 3000}}),
    ("openrouter", "deepseek/deepseek-v3.2", Reasoning(effort="none"), {"reasoning": {"enabled": False}}),
    ("groq", "openai/gpt-oss-120b", Reasoning(effort="minimal"), {"reasoning_effort": "low"}),
    ("groq", "qwen/qwen3-32b", Reasoning(effort="high"), {"reasoning_effort": "default"}),
    ("groq", "qwen/qwen3-32b", Reasoning(effort="none"), {"reasoning_effort": "none"}),
    ("together", "openai/gpt-oss-120b", Reasoning(effort="high"), {"reasoning_effort": "high"}),
    ("ollama", "qwen3:8b", Reasoning(effort="none"), {"reasoning_effort": "none"}),
    ("vllm", "gpt-oss", Reasoning(effort="xhigh"), {"reasoning_effort": "high"}),
    ("minimax", "MiniMax-M2", Reasoning(effort="high"), {}),  # no control: dropped with a note
]
_REASONING_KEYS = ("reasoning_effort", "thinking", "enable_thinking", "thinking_budget", "reasoning")


@pytest.mark.parametrize("vendor,model,setting,wire", OAI, ids=[f"{v}-{m}-{s!r}" for v, m, s, _ in OAI])
@respx.mock
async def test_openai_compatible_reasoning_wire(vendor: str, model: str, setting: Reasoning,
                                                wire: dict[str, Any]) -> None:
    row = get_vendor(vendor)
    base = row.base_url or "https://res.openai.azure.com"
    route = respx.post(url__startswith=base).mock(
        return_value=httpx.Response(200, content=fx("openai/chat_completion.json"),
                                    headers={"content-type": "application/json"}))
    p = OpenAIProvider(api_key=KEY, vendor=row, base_url=base, client=httpx.AsyncClient(), retry=once())
    await p.complete(req(model, reasoning=setting, stream=True))
    body = sent(route)
    assert {k: body[k] for k in _REASONING_KEYS if k in body} == wire


def test_dashscope_thinks_only_when_streamed() -> None:
    w = P.openai_fields(req("qwen-plus", reasoning=Reasoning(effort="high")), get_vendor("dashscope"))
    assert w.fields == {"enable_thinking": False} and "thinks only in streamed calls" in w.notes[0]


@respx.mock
async def test_openai_reasoning_model_drops_sampling_knobs_with_notes() -> None:
    route = respx.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(200, content=fx("openai/reasoning_completion.json"),
                                    headers={"content-type": "application/json"}))
    p = OpenAIProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    r = req("gpt-5-mini", reasoning=Reasoning(effort="low"), temperature=0.2, top_p=0.5, seed=7,
            frequency_penalty=0.1, logprobs=True, top_k=40, verbosity="low")
    await p.complete(r)
    body = sent(route)
    assert body["reasoning_effort"] == "low" and body["seed"] == 7 and body["verbosity"] == "low"
    for k in ("temperature", "top_p", "frequency_penalty", "logprobs", "top_k"):
        assert k not in body, k
    notes = P.openai_fields(r, get_vendor("openai")).notes
    assert any(n.startswith("temperature dropped") for n in notes)
    assert "logprobs dropped (the proxy does not return token logprobs)" in notes
    assert "top_k dropped (OpenAI does not take it)" in notes


@respx.mock
async def test_openai_non_reasoning_model_keeps_sampling_and_gpt_5_5_effort_none_keeps_temperature() -> None:
    route = respx.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(200, content=fx("openai/chat_completion.json"),
                                    headers={"content-type": "application/json"}))
    p = OpenAIProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    await p.complete(req("gpt-4.1-mini", temperature=0.2, presence_penalty=0.3))
    assert sent(route)["temperature"] == 0.2 and sent(route)["presence_penalty"] == 0.3
    await p.complete(req("gpt-5.5", temperature=0.2, reasoning=Reasoning(effort="none")))
    assert sent(route)["temperature"] == 0.2 and sent(route)["reasoning_effort"] == "none"


@pytest.mark.parametrize("vendor,model,expect", [
    ("openai", "gpt-4.1", {"response_format": {"type": "json_schema", "json_schema": RF.json_schema}}),
    ("deepseek", "deepseek-flash", {"response_format": {"type": "json_object"}}),  # + the schema as an instruction
])
@respx.mock
async def test_openai_compatible_structured_output(vendor: str, model: str, expect: dict[str, Any]) -> None:
    row = get_vendor(vendor)
    route = respx.post(url__startswith=row.base_url).mock(
        return_value=httpx.Response(200, content=fx("openai/chat_completion.json"),
                                    headers={"content-type": "application/json"}))
    p = OpenAIProvider(api_key=KEY, vendor=row, client=httpx.AsyncClient(), retry=once())
    await p.complete(req(model, response_format=RF))
    body = sent(route)
    assert body["response_format"] == expect["response_format"]
    has_instruction = body["messages"][0]["role"] == "system" and '"city"' in body["messages"][0]["content"]
    assert has_instruction is (vendor == "deepseek")


# ------------------------------------------------------------------ Anthropic

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


@pytest.mark.parametrize("model,setting,max_tokens,wire", [
    # budget models: thinking.budget_tokens, max_tokens > budget
    ("claude-haiku-4-5", Reasoning(effort="medium"), None,
     {"thinking": {"type": "enabled", "budget_tokens": 8192}, "max_tokens": 4096 + 8192}),
    ("claude-haiku-4-5", Reasoning(budget_tokens=2000), 1500,
     {"thinking": {"type": "enabled", "budget_tokens": 1499}, "max_tokens": 1500}),
    ("claude-haiku-4-5", Reasoning(effort="high"), 800, {"max_tokens": 800}),  # no room: dropped
    ("claude-haiku-4-5", Reasoning(effort="none"), None, {"thinking": {"type": "disabled"}, "max_tokens": 4096}),
    # adaptive models: thinking adaptive + output_config.effort (nearest level the model takes)
    ("claude-sonnet-4-6", Reasoning(effort="xhigh"), None,
     {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}, "max_tokens": 4096}),
    ("claude-opus-4-7", Reasoning(budget_tokens=30000), None,
     {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}, "max_tokens": 4096}),
    ("claude-opus-4-7", Reasoning(), None, {"thinking": {"type": "adaptive"}, "max_tokens": 4096}),
])
@respx.mock
async def test_anthropic_thinking_wire(model: str, setting: Reasoning, max_tokens: int | None,
                                       wire: dict[str, Any]) -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        200, content=fx("anthropic/message_text.json"), headers={"content-type": "application/json"}))
    p = AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    await p.complete(req(model, reasoning=setting, max_tokens=max_tokens))
    body = sent(route)
    assert {k: body[k] for k in ("thinking", "output_config", "max_tokens") if k in body} == wire


@respx.mock
async def test_anthropic_thinking_drops_what_it_does_not_allow() -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        200, content=fx("anthropic/message_text.json"), headers={"content-type": "application/json"}))
    p = AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    r = req("claude-haiku-4-5", reasoning=Reasoning(effort="low"), temperature=0.3, top_k=5, top_p=0.5, seed=1,
            parallel_tool_calls=False, tools=[Tool(name="f")])
    await p.complete(r)
    body = sent(route)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "temperature" not in body and "top_k" not in body and "top_p" not in body and "seed" not in body
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    notes = P.anthropic_fields(r, default_max_tokens=4096).notes
    assert "temperature dropped (Anthropic thinking needs the default temperature)" in notes
    assert "seed dropped (Anthropic does not take it)" in notes
    # a forced tool call: thinking is not allowed with it, so the hint goes, the tool choice stays
    r2 = req("claude-haiku-4-5", reasoning=Reasoning(effort="low"), tools=[Tool(name="f")], tool_choice="required")
    await p.complete(r2)
    assert "thinking" not in sent(route) and sent(route)["tool_choice"] == {"type": "any"}
    # Opus 4.7 refuses sampling parameters at all
    await p.complete(req("claude-opus-4-7", temperature=0.5, top_k=3))
    assert "temperature" not in sent(route) and "top_k" not in sent(route)
    await p.complete(req("claude-sonnet-4-6", temperature=0.5, top_k=3))
    assert sent(route)["temperature"] == 0.5 and sent(route)["top_k"] == 3


@respx.mock
async def test_anthropic_structured_output_native_where_the_model_has_it() -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        200, content=fx("anthropic/message_text.json"), headers={"content-type": "application/json"}))
    p = AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    await p.complete(req("claude-sonnet-4-6", response_format=RF, reasoning=Reasoning(effort="low")))
    body = sent(route)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}
    assert "system" not in body and "tools" not in body


_TOOL_MSG = {"id": "msg_json", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
             "content": [{"type": "tool_use", "id": "toolu_j", "name": P.JSON_TOOL, "input": {"city": "Paris"}}],
             "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 9}}


@respx.mock
async def test_anthropic_structured_output_as_a_forced_tool_becomes_the_answer_text() -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        200, json=_TOOL_MSG, headers={"content-type": "application/json"}))
    p = AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    resp = await p.complete(req("claude-3-5-haiku-latest", response_format=RF))
    body = sent(route)
    assert body["tools"] == [{"name": P.JSON_TOOL, "description": "Give the final answer as this JSON object.",
                              "input_schema": SCHEMA}]
    assert body["tool_choice"] == {"type": "tool", "name": P.JSON_TOOL} and "system" not in body
    assert json.loads(resp.text) == {"city": "Paris"} and resp.tool_calls == [] and resp.finish_reason == "stop"


@respx.mock
async def test_anthropic_forced_tool_answer_streams_as_text() -> None:
    sse = (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        '"role":"assistant","model":"claude-3-5-haiku","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":'
        f'{{"type":"tool_use","id":"toolu_1","name":"{P.JSON_TOOL}","input":{{}}}}}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        '{"type":"input_json_delta","partial_json":"{\\"city\\": "}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        '{"type":"input_json_delta","partial_json":"\\"Rome\\"}"}}\n\n'
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use"},'
        '"usage":{"output_tokens":7}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(
        200, content=sse.encode(), headers={"content-type": "text/event-stream"}))
    p = AnthropicProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    events = await collect(p, req("claude-3-5-haiku-latest", response_format=RF, stream=True))
    assert "".join(e.text for e in events if e.kind == "text") == '{"city": "Rome"}'
    assert not [e for e in events if e.kind == "tool_call"]
    assert [e.finish_reason for e in events if e.kind == "finish"] == ["stop"]


# ------------------------------------------------------------------ Gemini

GEMINI = "https://generativelanguage.googleapis.com/v1beta/models"


@pytest.mark.parametrize("model,setting,cfg", [
    ("gemini-2.5-flash", Reasoning(effort="high"), {"thinkingBudget": 24576}),
    ("gemini-2.5-flash", Reasoning(effort="none"), {"thinkingBudget": 0}),
    ("gemini-2.5-flash", Reasoning(), {"thinkingBudget": -1}),
    ("gemini-2.5-pro", Reasoning(effort="none"), {"thinkingBudget": 128}),  # Pro cannot turn thinking off
    ("gemini-2.5-pro", Reasoning(budget_tokens=90000), {"thinkingBudget": 32768}),
    ("gemini-2.5-flash-lite", Reasoning(budget_tokens=100), {"thinkingBudget": 512}),
    ("gemini-3.5-flash", Reasoning(effort="xhigh"), {"thinkingLevel": "high"}),
    ("gemini-3.5-flash", Reasoning(effort="none"), {"thinkingLevel": "minimal"}),
    ("gemini-3.1-pro-preview", Reasoning(budget_tokens=1000), {"thinkingLevel": "low"}),
])
@respx.mock
async def test_gemini_thinking_config_wire(model: str, setting: Reasoning, cfg: dict[str, Any]) -> None:
    route = respx.post(f"{GEMINI}/{model}:generateContent").mock(return_value=httpx.Response(
        200, content=fx("gemini/generate_text.json"), headers={"content-type": "application/json"}))
    p = GeminiProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    await p.complete(req(model, reasoning=setting))
    assert sent(route)["generationConfig"]["thinkingConfig"] == cfg


@respx.mock
async def test_gemini_knobs_and_native_schema() -> None:
    route = respx.post(f"{GEMINI}/gemini-2.5-flash:generateContent").mock(return_value=httpx.Response(
        200, content=fx("gemini/generate_text.json"), headers={"content-type": "application/json"}))
    p = GeminiProvider(api_key=KEY, client=httpx.AsyncClient(), retry=once())
    await p.complete(req("gemini-2.5-flash", seed=3, presence_penalty=0.5, frequency_penalty=0.25, top_k=20,
                         logit_bias={"1": 2}, response_format=RF))
    gen = sent(route)["generationConfig"]
    assert gen == {"seed": 3, "presencePenalty": 0.5, "frequencyPenalty": 0.25, "topK": 20,
                   "responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    assert "logit_bias" not in sent(route)


# ------------------------------------------------------------------ Bedrock

BEDROCK = "https://bedrock-runtime.eu-west-1.amazonaws.com/model"


def bedrock() -> BedrockProvider:
    return BedrockProvider(api_key="ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl", region="eu-west-1",
                           client=httpx.AsyncClient(), retry=once())


@respx.mock
async def test_bedrock_claude_thinking_and_native_json_via_converse_fields() -> None:
    model = "anthropic.claude-haiku-4-5-20251001-v1:0"
    route = respx.post(url__startswith=f"{BEDROCK}/").mock(return_value=httpx.Response(
        200, content=fx("bedrock/converse_text.json"), headers={"content-type": "application/json"}))
    await bedrock().complete(req(model, reasoning=Reasoning(effort="low"), top_k=4, temperature=0.5,
                                 response_format=RF))
    body = sent(route)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"] == {"maxTokens": 4096 + 1024}  # temperature and top_k dropped (thinking)
    assert body["outputConfig"] == {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
        "schema": json.dumps(SCHEMA, separators=(",", ":")), "name": "place"}}}}
    assert "system" not in body
    await bedrock().complete(req("anthropic.claude-sonnet-4-6", reasoning=Reasoning(effort="medium")))
    assert sent(route)["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"},
                                                           "output_config": {"effort": "medium"}}


@respx.mock
async def test_bedrock_forced_tool_json_for_other_models_and_reasoning_dropped() -> None:
    data = {"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t1", "name": P.JSON_TOOL, "input": {"city": "Oslo"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}}
    route = respx.post(url__startswith=f"{BEDROCK}/").mock(return_value=httpx.Response(
        200, json=data, headers={"content-type": "application/json"}))
    r = req("amazon.nova-pro-v1:0", response_format=RF, reasoning=Reasoning(effort="high"), seed=2)
    resp = await bedrock().complete(r)
    body = sent(route)
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": P.JSON_TOOL,
                                                          "description": "Give the final answer as this JSON object.",
                                                          "inputSchema": {"json": SCHEMA}}}],
                                  "toolChoice": {"tool": {"name": P.JSON_TOOL}}}
    assert "additionalModelRequestFields" not in body and "seed" not in body
    assert json.loads(resp.text) == {"city": "Oslo"} and resp.finish_reason == "stop"
    notes = P.bedrock_fields(r).notes
    assert "reasoning dropped (no reasoning control for this Bedrock model)" in notes
    assert "seed dropped (Bedrock Converse does not take it)" in notes


# ------------------------------------------------------------------ levels


def test_effort_and_budget_conversions() -> None:
    assert P.effort_of(Reasoning(budget_tokens=1000)) == "low"
    assert P.effort_of(Reasoning(budget_tokens=10000)) == "medium"
    assert P.effort_of(Reasoning(budget_tokens=0)) == "none"
    assert P.effort_of(Reasoning()) is None
    assert P.nearest("minimal", ("low", "medium", "high")) == "low"
    assert P.nearest("max", ("low", "medium", "high", "xhigh")) == "xhigh"
    assert P.nearest("medium", ("low", "high", "max")) == "high"  # ties go up
    assert P.budget_of(Reasoning(effort="high"), lo=1024, hi=10000) == 10000
