"""Normalized request/response/stream/usage model shared by every adapter.

`ChatRequest` is a superset of OpenAI chat completions; adapters translate it to
their own wire format. Streaming and non-streaming responses are both reduced
to a `ChatResponse` by the single pure function `accumulate(events)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "TASK_KINDS",
    "MAX_TOKENS_LIMIT",
    "ADAPTER_OWNED",
    "CacheControl",
    "TextPart",
    "ImagePart",
    "DocumentPart",
    "ThinkingPart",
    "RedactedThinkingPart",
    "ContentPart",
    "ToolCall",
    "Message",
    "Tool",
    "ResponseFormat",
    "REASONING_EFFORTS",
    "Reasoning",
    "ChatRequest",
    "Usage",
    "RateLimitSnapshot",
    "ChatResponse",
    "TextDelta",
    "ReasoningDelta",
    "ToolCallDelta",
    "UsageEvent",
    "FinishEvent",
    "StreamEvent",
    "FinishReason",
    "accumulate",
]

# The task kinds the router knows (features, task-fit profiles, benchmarks all use these names).
TASK_KINDS: tuple[str, ...] = (
    "code",
    "math",
    "reasoning",
    "extraction",
    "summarization",
    "translation",
    "creative",
    "chat",
)

# The largest token limit a request may ask for: a signed 32-bit int, what vendors'
# APIs accept at all. A limit above the chosen model's own max output is clamped to
# it (router.executor), so this bound only refuses nonsense early.
MAX_TOKENS_LIMIT = 2**31 - 1

# Body fields the adapters build themselves: never taken from `extra_body`, so a
# passthrough cannot change the model, the token limit, the stream's usage report
# or the number of answers (and so what is billed).
ADAPTER_OWNED = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "max_output_tokens",
                           "stream", "stream_options", "n"})

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]

# Reasoning effort levels, lowest first ("none" = thinking off). Each vendor accepts a subset;
# providers.params maps a level to the nearest one the chosen model takes.
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class CacheControl(_Model):
    """A prompt-cache breakpoint (Anthropic `cache_control`, Bedrock `cachePoint`): the prompt up
    to and including the block that carries it is cached. Vendors without one ignore it."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] | None = None


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str
    cache_control: CacheControl | None = None


class ImagePart(_Model):
    """An image given by URL or as a data: URL (base64)."""

    type: Literal["image_url"] = "image_url"
    url: str
    detail: Literal["auto", "low", "high"] | None = None
    media_type: str | None = None  # e.g. image/png when known
    cache_control: CacheControl | None = None


class DocumentPart(_Model):
    """A document (Anthropic `document` block): base64 `data` (a PDF), plain `text`, or a `url`."""

    type: Literal["document"] = "document"
    source: Literal["base64", "text", "url"]
    media_type: str | None = None  # application/pdf, text/plain
    data: str | None = None  # base64 (source "base64") or the text itself (source "text")
    url: str | None = None
    title: str | None = None
    context: str | None = None
    citations: bool | None = None
    cache_control: CacheControl | None = None

    def as_text(self) -> str | None:
        """A plain-text document as text (its title first), for vendors without documents; else None."""
        if self.source != "text":
            return None
        return f"{self.title}\n\n{self.data or ''}" if self.title else self.data or ""


class ThinkingPart(_Model):
    """A thinking block of an earlier assistant turn, sent back unchanged with its signature."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


class RedactedThinkingPart(_Model):
    """An encrypted thinking block of an earlier assistant turn, sent back unchanged."""

    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


ContentPart = Annotated[Union[TextPart, ImagePart, DocumentPart, ThinkingPart, RedactedThinkingPart],
                        Field(discriminator="type")]


class ToolCall(_Model):
    id: str
    name: str
    arguments: str = ""  # JSON text, exactly as the model produced it
    cache_control: CacheControl | None = None


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None  # for role == "tool"
    cache_control: CacheControl | None = None  # for role == "tool": on the tool result

    def text(self) -> str:
        """All text parts joined (images, documents and thinking ignored)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def images(self) -> list[ImagePart]:
        if isinstance(self.content, list):
            return [p for p in self.content if isinstance(p, ImagePart)]
        return []


class Tool(_Model):
    """A function tool (OpenAI `tools[].function`)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    cache_control: CacheControl | None = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None  # {"name":..., "schema":..., "strict":...}


# Sampling knobs that are ChatRequest fields (an `extra_body` key of the same name is lifted into them).
_KNOB_FIELDS = ("seed", "frequency_penalty", "presence_penalty", "top_k", "logit_bias", "logprobs", "top_logprobs",
                "parallel_tool_calls", "verbosity")
_LIFTED = frozenset(_KNOB_FIELDS) | {"reasoning_effort", "thinking"}


class Reasoning(_Model):
    """One reasoning setting for every vendor (translated by `providers.params`).

    `effort` is a level (`REASONING_EFFORTS`; "none" turns thinking off) and
    `budget_tokens` a thinking-token budget; either, both or neither may be set.
    Neither set means "think, the model decides how much" (Anthropic adaptive thinking,
    Gemini `thinkingBudget: -1`). A request without `reasoning` leaves the vendor's default.
    Filled from OpenAI `reasoning_effort`, Anthropic `thinking` and Gemini `thinkingConfig`
    (the `from_*` constructors; the wire modules check the fields first).
    """

    effort: ReasoningEffort | None = None
    budget_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS_LIMIT, strict=True)

    @property
    def off(self) -> bool:
        return self.effort == "none" or (self.effort is None and self.budget_tokens == 0)

    @classmethod
    def from_openai(cls, effort: Any) -> "Reasoning":
        """OpenAI `reasoning_effort` (also the Responses API's `reasoning.effort`)."""
        return cls(effort=effort)

    @classmethod
    def from_anthropic(cls, thinking: Any, effort: Any = None) -> "Reasoning":
        """Anthropic `thinking` ({type: enabled, budget_tokens} | {type: adaptive} | {type: disabled})
        and `output_config.effort`."""
        if not isinstance(thinking, dict):
            raise ValueError("thinking must be an object")
        kind = thinking.get("type")
        if kind == "disabled":
            return cls(effort="none")
        if kind == "enabled":
            return cls(budget_tokens=thinking.get("budget_tokens"), effort=effort)
        if kind == "adaptive":
            return cls(effort=effort)
        raise ValueError("thinking.type must be enabled, adaptive or disabled")

    @classmethod
    def from_gemini(cls, config: Any) -> "Reasoning":
        """Gemini `generationConfig.thinkingConfig` ({thinkingBudget} | {thinkingLevel}):
        budget 0 = off, -1 = dynamic."""
        if not isinstance(config, dict):
            raise ValueError("thinkingConfig must be an object")
        level, budget = config.get("thinkingLevel"), config.get("thinkingBudget")
        if level is not None and budget is not None:
            raise ValueError("thinkingConfig takes thinkingLevel or thinkingBudget, not both")
        if level is not None:
            return cls(effort=str(level).lower())
        if budget == -1 or budget is None:
            return cls()
        return cls(budget_tokens=budget)


class ChatRequest(_Model):
    """Normalized chat request. `model` is the concrete vendor model id once routed
    (or a routing target such as "auto" before)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "auto"
    messages: list[Message]
    system: str | None = None  # extra system prompt (Anthropic style); merged before messages
    # the same system prompt as blocks, when they carry cache breakpoints (Anthropic, Bedrock use these)
    system_parts: list[TextPart] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    # strict: a bool, float or string is refused, not coerced
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT, strict=True)
    reasoning: Reasoning | None = None  # None: the vendor's default (see `Reasoning`)
    # Sampling knobs (OpenAI names; top_k from Anthropic/Gemini). Each vendor gets the ones it
    # honours; the others are dropped with a note in the route reason (providers.params).
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    top_k: int | None = Field(default=None, ge=0)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    parallel_tool_calls: bool | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    stop: list[str] | None = None
    stream: bool = False
    user: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # vendor passthrough

    @field_validator("extra_body")
    @classmethod
    def _not_owned(cls, v: dict[str, Any]) -> dict[str, Any]:
        owned = sorted(ADAPTER_OWNED.intersection(v))
        if owned:
            raise ValueError(f"{', '.join(owned)} cannot be set through extra_body (the adapter sets it)")
        return v

    @model_validator(mode="after")
    def _lift_passthrough(self) -> "ChatRequest":
        """`reasoning_effort` / `thinking` and the sampling knobs given as a vendor passthrough
        become the normalized fields, so they are translated for the chosen vendor (or dropped
        with a note) instead of forwarded blindly."""
        eb = self.extra_body
        if not eb.keys() & _LIFTED:
            return self
        eb = dict(eb)
        if "reasoning_effort" in eb or "thinking" in eb:
            effort, thinking = eb.pop("reasoning_effort", None), eb.pop("thinking", None)
            if self.reasoning is None:
                self.reasoning = (Reasoning.from_anthropic(thinking, effort) if thinking is not None
                                  else Reasoning.from_openai(effort))
        knobs = {k: eb.pop(k) for k in _KNOB_FIELDS if k in eb}
        self.extra_body = eb
        if knobs:  # validated as fields (a wrong type is refused, not forwarded)
            upd = {k: v for k, v in knobs.items() if getattr(self, k) is None}
            checked = ChatRequest.model_validate({"messages": [], **upd})
            for k in upd:
                setattr(self, k, getattr(checked, k))
        return self

    def system_text(self) -> str:
        parts = [self.system] if self.system else []
        parts += [m.text() for m in self.messages if m.role in ("system", "developer")]
        return "\n\n".join(p for p in parts if p)


class Usage(_Model):
    """Token counts as the vendor billed them.

    `input_tokens` is the total prompt size *including* cached reads and cache writes
    (OpenAI semantics); `cache_read_tokens`/`cache_write_tokens` say how many of those
    were billed at the cache prices. `output_tokens` includes `reasoning_tokens`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those written with a 1-hour TTL

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )


class RateLimitSnapshot(_Model):
    """Normalized view of a vendor's rate-limit headers (None = not reported)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None  # seconds from `observed_at` until the request window resets
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None
    observed_at: float | None = None  # unix time when the headers were read

    def is_empty(self) -> bool:
        return all(v is None for k, v in self.__dict__.items() if k != "observed_at")


class ChatResponse(_Model):
    id: str = ""
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # signed thinking blocks, in order, when the vendor signs them (Anthropic, Bedrock): sent back unchanged
    thinking_blocks: list[ThinkingPart | RedactedThinkingPart] = Field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    usage_reported: bool = True  # False when the vendor sent no usage (stream cut, etc.)
    provider: str = ""
    model: str = ""  # the model that actually answered, as the vendor named it
    rate_limits: RateLimitSnapshot | None = None
    provider_details: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- stream events


class TextDelta(_Model):
    kind: Literal["text"] = "text"
    text: str


class ReasoningDelta(_Model):
    """Thinking text. `signature` closes the current thinking block (its text since the last
    close); `redacted` is a whole encrypted block."""

    kind: Literal["reasoning"] = "reasoning"
    text: str
    signature: str | None = None
    redacted: str | None = None


class ToolCallDelta(_Model):
    """A fragment of a tool call; fragments with the same `index` are concatenated."""

    kind: Literal["tool_call"] = "tool_call"
    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class UsageEvent(_Model):
    """Usage so far. Later events replace earlier ones field by field (max), since
    vendors (Anthropic) send input counts at start and output counts at the end."""

    kind: Literal["usage"] = "usage"
    usage: Usage


class FinishEvent(_Model):
    kind: Literal["finish"] = "finish"
    finish_reason: FinishReason = "stop"
    id: str | None = None
    model: str | None = None
    provider_details: dict[str, Any] = Field(default_factory=dict)


StreamEvent = Annotated[
    Union[TextDelta, ReasoningDelta, ToolCallDelta, UsageEvent, FinishEvent],
    Field(discriminator="kind"),
]


def _merge_usage(a: Usage | None, b: Usage) -> Usage:
    if a is None:
        return b.model_copy()
    return Usage(
        input_tokens=max(a.input_tokens, b.input_tokens),
        output_tokens=max(a.output_tokens, b.output_tokens),
        cache_read_tokens=max(a.cache_read_tokens, b.cache_read_tokens),
        cache_write_tokens=max(a.cache_write_tokens, b.cache_write_tokens),
        reasoning_tokens=max(a.reasoning_tokens, b.reasoning_tokens),
        cache_write_1h_tokens=max(a.cache_write_1h_tokens, b.cache_write_1h_tokens),
    )


def accumulate(
    events: Iterable[Any],
    *,
    provider: str = "",
    model: str = "",
    rate_limits: RateLimitSnapshot | None = None,
) -> ChatResponse:
    """Reduce stream events to one `ChatResponse` (pure; used by both paths).

    Adapters' non-streaming `complete()` produce the same events from the JSON body
    and call this, so the two paths cannot drift apart.
    """
    text: list[str] = []
    reasoning: list[str] = []
    blocks: list[ThinkingPart | RedactedThinkingPart] = []
    block_start = 0  # index in `reasoning` where the open thinking block began
    calls: dict[int, dict[str, Any]] = {}
    usage: Usage | None = None
    finish: FinishReason | None = None
    rid = ""
    details: dict[str, Any] = {}
    for ev in events:
        k = ev.kind
        if k == "text":
            text.append(ev.text)
        elif k == "reasoning":
            reasoning.append(ev.text)
            if ev.signature is not None:
                blocks.append(ThinkingPart(thinking="".join(reasoning[block_start:]), signature=ev.signature))
                block_start = len(reasoning)
            elif ev.redacted is not None:
                blocks.append(RedactedThinkingPart(data=ev.redacted))
                block_start = len(reasoning)
        elif k == "tool_call":
            c = calls.setdefault(ev.index, {"id": None, "name": None, "args": []})
            if ev.id:
                c["id"] = ev.id
            if ev.name:
                c["name"] = ev.name
            if ev.arguments:
                c["args"].append(ev.arguments)
        elif k == "usage":
            usage = _merge_usage(usage, ev.usage)
        elif k == "finish":
            finish = ev.finish_reason
            if ev.id:
                rid = ev.id
            if ev.model:
                model = ev.model
            details.update(ev.provider_details)
    tool_calls = [
        ToolCall(id=c["id"] or f"call_{i}", name=c["name"] or "", arguments="".join(c["args"]))
        for i, c in sorted(calls.items())
    ]
    return ChatResponse(
        id=rid,
        text="".join(text),
        reasoning="".join(reasoning),
        tool_calls=tool_calls,
        thinking_blocks=blocks,
        finish_reason=finish or "unknown",
        usage=usage or Usage(),
        usage_reported=usage is not None,
        provider=provider,
        model=model,
        rate_limits=rate_limits,
        provider_details=details,
    )
