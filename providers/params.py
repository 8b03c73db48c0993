"""Parameters translated across vendors, never forwarded blindly.

A `ChatRequest` carries one normalized reasoning setting (`router.types.Reasoning`), one
structured-output setting (`response_format`) and the sampling knobs by their OpenAI
names. Each adapter asks this module how its vendor and model take them:

  openai_fields(req, row)       OpenAI-compatible rows: the style in `VendorRow.reasoning`
  anthropic_fields(req, ...)    Anthropic Messages: thinking / output_config / top_k
  gemini_fields(req)            Gemini generationConfig: thinkingConfig, seed, penalties, topK
  bedrock_fields(req)           Bedrock Converse: additionalModelRequestFields, outputConfig

Every function returns a `Wire`: the body fields to send, the request fields to leave out
(`skip`) and human notes. The executor calls `fit(req, card, provider)` before each attempt:
the same functions, so the notes it puts in the route reason say exactly what was sent.

Drop or refuse (the rule): what the client needs to read the answer is essential and
makes a model that cannot honour it ineligible (tools, images and a JSON response
format are routing needs, `router.tasks`). Everything else is a hint: reasoning on a
model that does not reason, a level the model lacks, a sampling knob the vendor rejects
(or ignores), `logprobs` (the proxy does not return them), is dropped or mapped to the
nearest level, with a note. Facts and their sources: docs/providers.md, "Parameters
across vendors"; per-vendor rows in `providers.vendors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.types import REASONING_EFFORTS, ChatRequest, FinishEvent, Reasoning, TextDelta

__all__ = ["Wire", "EFFORT_BUDGET", "KNOBS", "JSON_TOOL", "effort_of", "nearest", "budget_of", "openai_fields",
           "anthropic_model", "anthropic_fields", "gemini_fields", "bedrock_fields", "fit", "unwrap_json_tool",
           "aunwrap_json_tool", "schema_of"]

# effort -> thinking budget in tokens. low/medium/high are Google's published mapping of
# reasoning_effort on Gemini's OpenAI-compatible endpoint (ai.google.dev/gemini-api/docs/openai:
# 1K / 8K / 24K); the others extend it (minimal: half of low; xhigh/max: 32K/64K). A budget
# is clamped to what the chosen model accepts (Anthropic >= 1024 and < max_tokens).
EFFORT_BUDGET: dict[str, int] = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                                 "xhigh": 32768, "max": 65536}
DEFAULT_EFFORT = "medium"  # "think, the model decides" where a vendor needs a number
# Sampling knobs with the same meaning everywhere they exist (OpenAI names).
KNOBS = ("seed", "frequency_penalty", "presence_penalty", "top_k", "logit_bias", "logprobs", "top_logprobs",
         "parallel_tool_calls", "verbosity")
JSON_TOOL = "json_answer"  # the forced tool that carries a JSON-schema answer (Anthropic/Bedrock fallback)
_SAMPLING = ("temperature", "top_p", "top_k")


@dataclass
class Wire:
    fields: dict[str, Any] = field(default_factory=dict)  # body fields to add (merged by the adapter)
    skip: set[str] = field(default_factory=set)  # ChatRequest fields the adapter must not send
    notes: list[str] = field(default_factory=list)
    # how a JSON response format is honoured: "native" | "json_object" (JSON mode + the schema as an
    # instruction) | "tool" (a forced tool call) | "instruction" (None: no response format)
    structured: str | None = None

    def drop(self, name: str, why: str) -> None:
        self.skip.add(name)
        self.notes.append(f"{name} dropped ({why})")


# ------------------------------------------------------------------ reasoning levels


def effort_of(r: Reasoning) -> str | None:
    """The level of `r`: its effort, else the level nearest its budget (log scale); None when
    neither is set (the model decides)."""
    if r.effort is not None:
        return r.effort
    if r.budget_tokens is None:
        return None
    if r.budget_tokens == 0:
        return "none"
    b = math.log(r.budget_tokens)
    return min((k for k in EFFORT_BUDGET if k != "none"), key=lambda k: abs(math.log(EFFORT_BUDGET[k]) - b))


def nearest(level: str, levels: Sequence[str]) -> str:
    """`level` if the model takes it, else the nearest level it takes (ties go up)."""
    if level in levels or not levels:
        return level
    order = {k: i for i, k in enumerate(REASONING_EFFORTS)}
    known = [x for x in levels if x in order]
    if not known:
        return levels[0]
    i = order.get(level, order[DEFAULT_EFFORT])
    return min(known, key=lambda x: (abs(order[x] - i), -order[x]))


def budget_of(r: Reasoning, lo: int = 0, hi: int | None = None) -> int:
    """A token budget for `r`, clamped to [lo, hi]."""
    b = r.budget_tokens if r.budget_tokens is not None else EFFORT_BUDGET[r.effort or DEFAULT_EFFORT]
    b = max(lo, b)
    return min(b, hi) if hi is not None else b


def _levels(table: Sequence[tuple[str, tuple[str, ...]]], model: str) -> tuple[str, ...] | None:
    """Levels for `model` from a (model prefix, levels) table; None when no row matches."""
    m = model.lower()
    for prefix, levels in table:
        if m.startswith(prefix) or ("/" + prefix) in m:
            return levels
    return None


def _level_note(r: Reasoning, lv: str, sent: str, where: str) -> str | None:
    """A note when the level sent is not the one asked (a budget always says what it became)."""
    if r.effort is None and r.budget_tokens is not None:
        return f"reasoning budget {r.budget_tokens} sent as effort {sent} ({where})"
    return None if lv == sent else f"reasoning {lv} sent as {sent} ({where})"


# ------------------------------------------------------------------ structured output


def schema_of(req: ChatRequest) -> dict[str, Any] | None:
    rf = req.response_format
    if rf is None or rf.type != "json_schema":
        return None
    s = (rf.json_schema or {}).get("schema")
    return s if isinstance(s, dict) else None


def _schema_name(req: ChatRequest) -> str:
    name = ((req.response_format.json_schema or {}).get("name") if req.response_format else None) or "answer"
    return str(name)[:64]


def _json_tool_ok(req: ChatRequest) -> bool:
    """A forced tool can carry the answer only when the client declared no tools itself."""
    return not req.tools


# ------------------------------------------------------------------ OpenAI-compatible rows


def _knobs(req: ChatRequest, accepted: frozenset[str], w: Wire, vendor: str) -> None:
    for k in KNOBS:
        v = getattr(req, k)
        if v is None or k in w.skip:
            continue
        if k in ("logprobs", "top_logprobs"):
            w.drop(k, "the proxy does not return token logprobs")
        elif k in accepted:
            w.fields[k] = v
        else:
            w.drop(k, f"{vendor} does not take it")


def openai_fields(req: ChatRequest, row: Any, *, thinks: bool | None = None) -> Wire:
    """Reasoning, knobs and structured output for an OpenAI-compatible `row` (providers.vendors).
    `thinks`: the card says the model reasons (None: unknown, trust the request)."""
    w = Wire()
    r = req.reasoning
    found = _levels(row.efforts, req.model)
    levels = found or ()
    if thinks is None:  # no card (a provider used directly): for reasoning_effort rows a model without levels
        thinks = found is not None if row.reasoning == "openai" and row.efforts else True  # does not reason
    on_and_drops = thinks is not False and row.reasoning_drops
    if r is not None and thinks is not False:
        _OPENAI_STYLES.get(row.reasoning, _style_none)(r, row, levels, w, req)
    turned_off = r is not None and r.off and ("none" in levels or row.reasoning != "openai")
    if on_and_drops and not turned_off:
        for k in sorted(row.reasoning_drops):
            if getattr(req, k, None) is not None:
                w.drop(k, f"{row.title} reasoning models reject or ignore it")
    _knobs(req, row.params, w, row.title)
    rf = req.response_format
    if rf is not None and rf.type != "text":
        if rf.type == "json_object" or row.json_mode == "json_schema":
            w.structured = "native" if row.json_mode != "none" else "instruction"
        else:
            w.structured = "json_object" if row.json_mode == "json_object" else "instruction"
    return w


def _style_none(r: Reasoning, row: Any, levels: tuple[str, ...], w: Wire, req: ChatRequest) -> None:
    w.notes.append(f"reasoning dropped ({row.title} has no reasoning control; the model's default applies)")


def _style_openai(r: Reasoning, row: Any, levels: tuple[str, ...], w: Wire, req: ChatRequest) -> None:
    """`reasoning_effort` (OpenAI, Azure, Groq, Together, Ollama, vLLM, ...)."""
    lv = effort_of(r)
    if lv is None:
        return  # the model decides: its default
    if not levels:
        w.notes.append(f"reasoning dropped (no reasoning control known for this {row.title} model)")
        return
    if "default" in levels:  # on/off models (Groq qwen3: none | default)
        sent = "none" if lv == "none" and "none" in levels else "default"
    else:
        sent = nearest(lv, levels)
    w.fields["reasoning_effort"] = sent
    note = _level_note(r, lv, sent, row.title)
    if note:
        w.notes.append(note)


def _style_thinking_type(r: Reasoning, row: Any, levels: tuple[str, ...], w: Wire, req: ChatRequest) -> None:
    """`thinking: {type: enabled|disabled}` plus `reasoning_effort` where the model has levels
    (DeepSeek, Zhipu GLM, Moonshot Kimi, Volcengine Ark)."""
    lv = effort_of(r)
    if lv == "none":
        w.fields["thinking"] = {"type": "disabled"}
        return
    if lv is None:
        return
    w.fields["thinking"] = {"type": "enabled"}
    if levels:
        sent = nearest(lv, levels)
        w.fields["reasoning_effort"] = sent
        note = _level_note(r, lv, sent, row.title)
        if note:
            w.notes.append(note)


def _style_qwen(r: Reasoning, row: Any, levels: tuple[str, ...], w: Wire, req: ChatRequest) -> None:
    """`enable_thinking` + `thinking_budget` (DashScope Qwen, SiliconFlow)."""
    if r.off:
        w.fields["enable_thinking"] = False
        return
    if "thinking_stream_only" in row.quirks and not req.stream:
        w.fields["enable_thinking"] = False
        w.notes.append(f"reasoning dropped ({row.title} thinks only in streamed calls)")
        return
    w.fields["enable_thinking"] = True
    if r.effort is not None or r.budget_tokens is not None:
        w.fields["thinking_budget"] = budget_of(r, lo=1)


def _style_openrouter(r: Reasoning, row: Any, levels: tuple[str, ...], w: Wire, req: ChatRequest) -> None:
    """OpenRouter's unified `reasoning` object."""
    if r.off:
        w.fields["reasoning"] = {"enabled": False}
    elif r.budget_tokens is not None:
        w.fields["reasoning"] = {"max_tokens": r.budget_tokens}
    elif r.effort is not None:
        w.fields["reasoning"] = {"effort": r.effort}
    else:
        w.fields["reasoning"] = {"enabled": True}


_OPENAI_STYLES = {"openai": _style_openai, "thinking_type": _style_thinking_type, "qwen": _style_qwen,
                  "openrouter": _style_openrouter, "none": _style_none}


# ------------------------------------------------------------------ Anthropic (and Claude on Bedrock)


@dataclass(frozen=True)
class ClaudeModel:
    prefix: str
    thinking: str  # "adaptive" (thinking: {type: adaptive} + output_config.effort) | "budget" (budget_tokens)
    efforts: tuple[str, ...] = ()  # output_config.effort levels; () = no effort parameter
    sampling: bool = True  # False: temperature / top_p / top_k are refused (400)
    native_json: bool = False  # output_config.format (structured outputs, GA)


# Sources: platform.claude.com docs "Adaptive thinking", "Effort", "Structured outputs"
# (as quoted by docs.qcode.cc/en/docs/usage/adaptive-thinking, doc.tonyhub.xyz mirror of
# build-with-claude/structured-outputs); Sonnet 5: openrouter.ai Claude 5 Sonnet migration
# guide, developersdigest.tech Sonnet 5 guide. First matching prefix wins.
CLAUDE_MODELS: tuple[ClaudeModel, ...] = (
    ClaudeModel("claude-opus-4-7", "adaptive", ("low", "medium", "high", "xhigh", "max"), sampling=False,
                native_json=True),
    ClaudeModel("claude-sonnet-5", "adaptive", ("low", "medium", "high", "xhigh", "max"), sampling=False),
    ClaudeModel("claude-opus-4-6", "adaptive", ("low", "medium", "high", "max"), native_json=True),
    ClaudeModel("claude-sonnet-4-6", "adaptive", ("low", "medium", "high"), native_json=True),
    ClaudeModel("claude-opus-4-5", "budget", ("low", "medium", "high"), native_json=True),
    ClaudeModel("claude-sonnet-4-5", "budget", native_json=True),
    ClaudeModel("claude-haiku-4-5", "budget", native_json=True),
    ClaudeModel("", "budget"),  # older or unknown Claude models: budget thinking, JSON via a forced tool
)
ANTHROPIC_MIN_BUDGET = 1024


def anthropic_model(model: str) -> ClaudeModel:
    m = model.lower()
    for c in CLAUDE_MODELS:
        if c.prefix and c.prefix in m:
            return c
    return CLAUDE_MODELS[-1]


def anthropic_fields(req: ChatRequest, *, default_max_tokens: int, where: str = "Anthropic",
                     structured: bool = True) -> Wire:
    """Anthropic Messages fields: `thinking`, `output_config`, `max_tokens` (> budget), `top_k`,
    `disable_parallel_tool_use`, structured output. `structured=False`: the caller (Bedrock)
    encodes the response format itself."""
    w = Wire()
    cm = anthropic_model(req.model)
    forced_tool = req.tool_choice == "required" or isinstance(req.tool_choice, dict)
    if structured and req.response_format is not None and req.response_format.type != "text":
        if schema_of(req) is not None and cm.native_json:
            w.structured = "native"
            w.fields["output_config"] = {"format": {"type": "json_schema", "schema": schema_of(req)}}
        elif schema_of(req) is not None and _json_tool_ok(req):
            w.structured = "tool"
            forced_tool = True
        else:
            w.structured = "instruction"
    r = req.reasoning
    thinking = False
    if r is not None:
        lv = effort_of(r)
        if r.off:
            w.fields["thinking"] = {"type": "disabled"}
        elif forced_tool:
            w.notes.append(f"reasoning dropped ({where} does not allow thinking with a forced tool call)")
        elif cm.thinking == "adaptive":
            thinking = True
            w.fields["thinking"] = {"type": "adaptive"}
            if lv is not None and cm.efforts:
                sent = nearest(lv, cm.efforts)
                w.fields.setdefault("output_config", {})["effort"] = sent
                note = _level_note(r, lv, sent, f"{where} effort")
                if note:
                    w.notes.append(note)
        else:
            cap = req.max_tokens
            b = budget_of(r, lo=ANTHROPIC_MIN_BUDGET)
            if cap is not None and b >= cap:
                b = cap - 1
            if b < ANTHROPIC_MIN_BUDGET:
                w.notes.append(f"reasoning dropped (max_tokens {cap} leaves no room for {where}'s minimum "
                               f"thinking budget of {ANTHROPIC_MIN_BUDGET})")
            else:
                thinking = True
                w.fields["thinking"] = {"type": "enabled", "budget_tokens": b}
                if cap is None:  # thinking counts within max_tokens: keep the usual room for the answer
                    w.fields["max_tokens"] = default_max_tokens + b
                if r.budget_tokens is None:
                    w.notes.append(f"reasoning {lv or 'on'} sent as thinking.budget_tokens {b}")
    if not cm.sampling:
        for k in _SAMPLING:
            if getattr(req, k) is not None:
                w.drop(k, f"{req.model} refuses sampling parameters")
    elif thinking:
        if req.temperature is not None and req.temperature != 1:
            w.drop("temperature", f"{where} thinking needs the default temperature")
        if req.top_k is not None:
            w.drop("top_k", f"{where} thinking does not allow top_k")
        if req.top_p is not None and req.top_p < 0.95:
            w.drop("top_p", f"{where} thinking needs top_p >= 0.95")
    if req.top_k is not None and "top_k" not in w.skip:
        w.fields["top_k"] = req.top_k
    for k in KNOBS:
        if k in ("top_k", "parallel_tool_calls") or getattr(req, k) is None:
            continue
        w.drop(k, "the proxy does not return token logprobs" if "logprobs" in k else f"{where} does not take it")
    if req.parallel_tool_calls is False and req.tools:
        w.fields["disable_parallel_tool_use"] = True  # the adapter puts it in tool_choice
    return w


# ------------------------------------------------------------------ Gemini


# (model prefix, thinking style, levels or (min, max) budget, can turn thinking off).
# Sources: ai.google.dev/gemini-api/docs/thinking (thinkingBudget 0 off, -1 dynamic; ranges
# 2.5 Pro 128-32768 not off, Flash 0-24576, Flash-Lite 512-24576; Gemini 3 thinkingLevel,
# 3 Pro low/high, 3 Flash minimal/low/medium/high; level and budget are exclusive).
GEMINI_MODELS: tuple[tuple[str, str, tuple[Any, ...], bool], ...] = (
    ("gemini-3.1-pro", "level", ("low", "medium", "high"), False),
    ("gemini-3-pro", "level", ("low", "high"), False),
    ("gemini-3", "level", ("minimal", "low", "medium", "high"), False),
    ("gemini-2.5-pro", "budget", (128, 32768), False),
    ("gemini-2.5-flash-lite", "budget", (512, 24576), True),
    ("gemini-2.5-flash", "budget", (1, 24576), True),
    ("", "budget", (1, 24576), True),
)


def _gemini_model(model: str) -> tuple[str, str, tuple[Any, ...], bool]:
    m = model.lower().removeprefix("models/")
    for row in GEMINI_MODELS:
        if m.startswith(row[0]):
            return row
    return GEMINI_MODELS[-1]


def gemini_fields(req: ChatRequest) -> Wire:
    """generationConfig fields: thinkingConfig, seed, presencePenalty, frequencyPenalty, topK."""
    w = Wire()
    r = req.reasoning
    if r is not None:
        _, style, spec, can_off = _gemini_model(req.model)
        lv = effort_of(r)
        if style == "level":
            if lv is not None:
                ask = "minimal" if lv == "none" else lv
                sent = nearest(ask, spec)
                w.fields["thinkingConfig"] = {"thinkingLevel": sent}
                if lv == "none":
                    w.notes.append(f"reasoning none sent as thinkingLevel {sent} (this Gemini model always thinks)")
                elif sent != lv:
                    w.notes.append(f"reasoning {lv} sent as thinkingLevel {sent}")
        elif r.off:
            if can_off:
                w.fields["thinkingConfig"] = {"thinkingBudget": 0}
            else:
                w.fields["thinkingConfig"] = {"thinkingBudget": spec[0]}
                w.notes.append(f"reasoning none sent as thinkingBudget {spec[0]} (this Gemini model always thinks)")
        elif lv is None:
            w.fields["thinkingConfig"] = {"thinkingBudget": -1}
        else:
            w.fields["thinkingConfig"] = {"thinkingBudget": budget_of(r, lo=spec[0], hi=spec[1])}
    names = {"seed": "seed", "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty",
             "top_k": "topK"}
    for k in KNOBS:
        v = getattr(req, k)
        if v is None:
            continue
        if k in names:
            w.fields[names[k]] = v
        elif k == "parallel_tool_calls":
            continue  # Gemini decides; nothing to send (not a change of meaning)
        else:
            w.drop(k, "the proxy does not return token logprobs" if "logprobs" in k else "Gemini does not take it")
    if req.response_format is not None and req.response_format.type != "text":
        w.structured = "native"
    return w


# ------------------------------------------------------------------ Bedrock Converse


# Converse structured output (outputConfig.textFormat json_schema, GA 2026-02) for these model
# ids; others get the schema as a forced tool (toolConfig). Source:
# docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html, API_runtime_OutputFormat.
BEDROCK_NATIVE_JSON = ("anthropic.claude-opus-4-7", "anthropic.claude-opus-4-6", "anthropic.claude-sonnet-4-6",
                       "anthropic.claude-opus-4-5", "anthropic.claude-sonnet-4-5", "anthropic.claude-haiku-4-5")


def bedrock_fields(req: ChatRequest) -> Wire:
    """Converse: Claude models take thinking / effort / top_k in `additionalModelRequestFields`
    (Anthropic's own fields); structured output natively or as a forced tool."""
    w = Wire()
    model = req.model.lower()
    claude = "anthropic.claude" in model
    if req.response_format is not None and req.response_format.type != "text":
        schema = schema_of(req)
        if schema is not None and any(m in model for m in BEDROCK_NATIVE_JSON):
            w.structured = "native"
            w.fields["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
                "schema": json.dumps(schema, separators=(",", ":")), "name": _schema_name(req)}}}}
        elif schema is not None and _json_tool_ok(req):
            w.structured = "tool"
        else:
            w.structured = "instruction"
    if claude:
        sub = req.model_copy(update={"tool_choice": "required" if w.structured == "tool" else req.tool_choice,
                                     "response_format": None})
        a = anthropic_fields(sub, default_max_tokens=4096, where="Bedrock Claude", structured=False)
        extra = {k: v for k, v in a.fields.items() if k in ("thinking", "output_config", "top_k")}
        if "max_tokens" in a.fields:
            w.fields["maxTokens"] = a.fields["max_tokens"]
        if extra:
            w.fields["additionalModelRequestFields"] = extra
        w.skip |= a.skip
        w.notes += a.notes
        return w
    if req.reasoning is not None:
        w.notes.append("reasoning dropped (no reasoning control for this Bedrock model)")
    for k in KNOBS:
        if getattr(req, k) is not None and k != "parallel_tool_calls":
            w.drop(k, "the proxy does not return token logprobs" if "logprobs" in k else "Bedrock Converse "
                   "does not take it")
    return w


# ------------------------------------------------------------------ the forced JSON tool, unwrapped


def json_tool(req: ChatRequest) -> dict[str, Any]:
    """The tool a forced-tool structured output uses (name, description, input schema)."""
    return {"name": JSON_TOOL, "description": "Give the final answer as this JSON object.",
            "schema": schema_of(req) or {"type": "object"}}


def unwrap_json_tool(events: Iterable[Any]) -> list[Any]:
    """The forced JSON tool's call becomes the answer text (what the client asked for)."""
    tools: set[int] = set()
    return [x for ev in events for x in _unwrap(ev, tools)]


async def aunwrap_json_tool(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    tools: set[int] = set()
    async for ev in events:
        for x in _unwrap(ev, tools):
            yield x


def _unwrap(ev: Any, tools: set[int]) -> list[Any]:
    k = ev.kind
    if k == "tool_call":
        if ev.name == JSON_TOOL:
            tools.add(ev.index)
        if ev.index in tools:
            return [TextDelta(text=ev.arguments)] if ev.arguments else []
    elif k == "finish" and tools and ev.finish_reason == "tool_calls":
        return [FinishEvent(finish_reason="stop", id=ev.id, model=ev.model, provider_details=ev.provider_details)]
    return [ev]


# ------------------------------------------------------------------ what the executor calls


def wire_for(req: ChatRequest, provider: Any, thinks: bool | None = None) -> Wire | None:
    """The `Wire` the provider's adapter will build for `req` (None: an adapter this module
    does not know, e.g. a test double)."""
    vendor = getattr(provider, "vendor", None)
    if vendor is None:
        return None
    if not isinstance(vendor, str):
        return openai_fields(req, vendor, thinks=thinks)
    if vendor == "anthropic":
        return anthropic_fields(req, default_max_tokens=getattr(provider, "default_max_tokens", 4096))
    if vendor == "gemini":
        return gemini_fields(req)
    if vendor == "bedrock":
        return bedrock_fields(req)
    return None


_STRUCTURED = {"native": "native", "tool": "a forced tool call", "instruction": "an instruction in the prompt",
               "json_object": "json_object mode plus the schema as an instruction"}


def fit(req: ChatRequest, card: Any, provider: Any) -> tuple[ChatRequest, list[str]]:
    """The request as this model gets it, and what changed (notes for the route reason).
    Reasoning on a model whose card does not list `reasoning` is dropped here; the rest is
    decided by the adapter's own translation (`wire_for`)."""
    notes: list[str] = []
    caps = frozenset(getattr(card, "capabilities", None) or ())
    thinks = "reasoning" in caps
    if req.reasoning is not None and not thinks:
        notes.append(f"reasoning dropped ({card.id} is not a reasoning model)")
        req = req.model_copy(update={"reasoning": None})
    w = wire_for(req, provider, thinks=thinks)
    if w is not None:
        notes += w.notes
        if w.structured:
            notes.append(f"structured output: {_STRUCTURED[w.structured]}")
    return req, notes
