"""Normalized request/response/stream/usage model shared by every adapter.

`ChatRequest` is a superset of OpenAI chat completions; adapters translate it to
their own wire format. Streaming and non-streaming responses are both reduced
to a `ChatResponse` by the single pure function `accumulate(events)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "TASK_KINDS",
    "MAX_TOKENS_LIMIT",
    "ADAPTER_OWNED",
    "TextPart",
    "ImagePart",
    "ContentPart",
    "ToolCall",
    "Message",
    "Tool",
    "ResponseFormat",
    "ChatRequest",
    "Usage",
    "RateLimitSnapshot",
    "ChatResponse",
    "TextDelta",
    "text_delta",
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Model):
    """An image given by URL or as a data: URL (base64)."""

    type: Literal["image_url"] = "image_url"
    url: str
    detail: Literal["auto", "low", "high"] | None = None
    media_type: str | None = None  # e.g. image/png when known


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class ToolCall(_Model):
    id: str
    name: str
    arguments: str = ""  # JSON text, exactly as the model produced it


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None  # for role == "tool"

    def text(self) -> str:
        """All text parts joined (images ignored)."""
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


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None  # {"name":..., "schema":..., "strict":...}


class ChatRequest(_Model):
    """Normalized chat request. `model` is the concrete vendor model id once routed
    (or a routing target such as "auto" before)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "auto"
    messages: list[Message]
    system: str | None = None  # extra system prompt (Anthropic style); merged before messages
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    # strict: a bool, float or string is refused, not coerced
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT, strict=True)
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


_TEXT_FIELDS = {"text"}
_new, _set = BaseModel.__new__, object.__setattr__


def text_delta(text: str) -> TextDelta:
    """`TextDelta(text=text)` for a `str` the caller already checked, without validation (the
    stream path builds one per chunk)."""
    ev = _new(TextDelta)
    _set(ev, "__dict__", {"kind": "text", "text": text})
    _set(ev, "__pydantic_fields_set__", _TEXT_FIELDS)
    _set(ev, "__pydantic_extra__", None)
    _set(ev, "__pydantic_private__", None)
    return ev


class ReasoningDelta(_Model):
    kind: Literal["reasoning"] = "reasoning"
    text: str


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
        finish_reason=finish or "unknown",
        usage=usage or Usage(),
        usage_reported=usage is not None,
        provider=provider,
        model=model,
        rate_limits=rate_limits,
        provider_details=details,
    )
