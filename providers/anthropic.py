"""Native Anthropic Messages API adapter (`POST {base}/v1/messages`).

Translation is pure (`build_body`, `message_events`, `StreamState`, `map_error`);
the class only does I/O. `complete()` turns the JSON body into the same
StreamEvents the SSE path yields and reduces them with `accumulate`, so the two
paths cannot drift apart.

Usage follows our `Usage` semantics: `input_tokens` = input_tokens +
cache_creation_input_tokens + cache_read_input_tokens (Anthropic reports the
uncached part only); cache_read/cache_write say how many of those were cache
reads/writes.

One proxy request, read downward: ... -> router/sdk.py -> router/executor.py -> providers/anthropic.py
(ChatRequest -> vendor HTTP -> ChatResponse/StreamEvents); the last stop: back up the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from providers import _http
from providers import _native as nat
from providers import params as P
from providers._splice import tap_for
from router.errors import (
    AuthFailed,
    BadRequest,
    ContextTooLong,
    MalformedResponse,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)
from router.types import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
    text_delta,
)

__all__ = ["AnthropicProvider", "build_body", "message_events", "StreamState", "map_error", "DEFAULT_MAX_TOKENS",
           "anthropic_plain"]

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
JSON_INSTRUCTION = nat.JSON_INSTRUCTION  # kept here for importers

_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# the body fields /v1/messages/count_tokens takes (the rest of a Messages body is refused there)
_COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})

# error.type -> (class, default HTTP status); https://docs.claude.com/en/api/errors
_ERROR_TYPES: dict[str, tuple[type[ProviderError], int]] = {
    "invalid_request_error": (BadRequest, 400),
    "authentication_error": (AuthFailed, 401),
    "billing_error": (QuotaExhausted, 402),
    "permission_error": (AuthFailed, 403),
    "not_found_error": (BadRequest, 404),
    "request_too_large": (ContextTooLong, 413),  # same as _http.status_class(413)
    "rate_limit_error": (RateLimited, 429),
    "api_error": (Unavailable, 500),
    "timeout_error": (Timeout, 504),
    "overloaded_error": (Unavailable, 529),
}


# ------------------------------------------------------------------ request


def _cc(block: dict[str, Any], cc: Any) -> dict[str, Any]:
    """Add a `cache_control` breakpoint to a block when the part carries one."""
    if cc is not None:
        block["cache_control"] = cc.model_dump(exclude_none=True)
    return block


def _image_block(url: str, media_type: str | None) -> dict[str, Any]:
    data = nat.parse_data_url(url)
    if data is not None:
        mt, b64 = data
        return {"type": "image", "source": {"type": "base64", "media_type": media_type or mt, "data": b64}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _document_block(p: Any) -> dict[str, Any]:
    if p.source == "base64":
        src = {"type": "base64", "media_type": p.media_type or "application/pdf", "data": p.data or ""}
    elif p.source == "text":
        src = {"type": "text", "media_type": p.media_type or "text/plain", "data": p.data or ""}
    else:
        src = {"type": "url", "url": p.url or ""}
    out: dict[str, Any] = {"type": "document", "source": src}
    if p.title is not None:
        out["title"] = p.title
    if p.context is not None:
        out["context"] = p.context
    if p.citations is not None:
        out["citations"] = {"enabled": p.citations}
    return out


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if p.type == "text":
            if p.text:
                out.append(_cc({"type": "text", "text": p.text}, p.cache_control))
        elif p.type == "image_url":
            out.append(_cc(_image_block(p.url, p.media_type), p.cache_control))
        elif p.type == "document":
            out.append(_cc(_document_block(p), p.cache_control))
        elif p.type == "thinking":
            if p.signature:  # unsigned thinking (another vendor's reasoning) would be refused: left out
                out.append({"type": "thinking", "thinking": p.thinking, "signature": p.signature})
        elif p.type == "redacted_thinking":
            out.append({"type": "redacted_thinking", "data": p.data})
    return out


def _messages(req: ChatRequest) -> list[dict[str, Any]]:
    return nat.turns(
        req, _content_blocks,
        lambda m: _cc({"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.text()},
                      m.cache_control),
        lambda tc: _cc({"type": "tool_use", "id": tc.id, "name": tc.name, "input": nat.tool_args(tc)},
                       tc.cache_control))


def _system(req: ChatRequest, rf: Any) -> str | list[dict[str, Any]] | None:
    """The system prompt: a string, or text blocks when the client's blocks carry cache breakpoints."""
    if not req.system_parts:
        return nat.json_system(req.system_text(), rf)
    blocks = [_cc({"type": "text", "text": p.text}, p.cache_control) for p in req.system_parts if p.text]
    rest = nat.json_system("\n\n".join(m.text() for m in req.messages if m.role in ("system", "developer")
                                        and m.text()) or None, rf)
    if rest:
        blocks.append({"type": "text", "text": rest})
    return blocks or None


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    name = nat.named_tool(choice)
    if name:
        return {"type": "tool", "name": name}
    raise BadRequest(f"unsupported tool_choice {choice!r}", provider="anthropic")


def build_body(req: ChatRequest, *, stream: bool, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """ChatRequest -> Messages API JSON body (pure)."""
    wire = P.anthropic_fields(req, default_max_tokens=default_max_tokens)  # thinking, effort, JSON, knobs
    body: dict[str, Any] = {
        "model": req.model,
        "max_tokens": req.max_tokens or default_max_tokens,
        "messages": _messages(req),
    }
    # JSON: output_config.format where the model has structured outputs, else a forced tool
    # (unwrapped into the answer text), else an instruction in the system prompt.
    system = _system(req, req.response_format if wire.structured == "instruction" else None)
    if system:
        body["system"] = system
    if req.tools:
        body["tools"] = [
            _cc({k: v for k, v in {"name": t.name, "description": t.description, "input_schema": t.parameters}.items()
                 if v is not None}, t.cache_control)
            for t in req.tools
        ]
        tc = _tool_choice(req.tool_choice)
        if tc:
            body["tool_choice"] = tc
    if wire.structured == "tool":
        jt = P.json_tool(req)
        body["tools"] = [{"name": jt["name"], "description": jt["description"], "input_schema": jt["schema"]}]
        body["tool_choice"] = {"type": "tool", "name": jt["name"]}
    if wire.fields.pop("disable_parallel_tool_use", False):
        body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.temperature is not None and "temperature" not in wire.skip:
        body["temperature"] = req.temperature
    if req.top_p is not None and "top_p" not in wire.skip:
        body["top_p"] = req.top_p
    body.update(wire.fields)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if stream:
        body["stream"] = True
    return nat.deep_merge(body, req.extra_body)


# ------------------------------------------------------------------ response


def _usage(raw: dict[str, Any]) -> Usage:
    cw, cr = nat.count(raw, "cache_creation_input_tokens"), nat.count(raw, "cache_read_input_tokens")
    out_details = raw.get("output_tokens_details") or {}
    thinking = out_details.get("thinking_tokens") if isinstance(out_details, dict) else None
    creation = raw.get("cache_creation")  # {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}
    w1h = nat.count(creation, "ephemeral_1h_input_tokens") if isinstance(creation, dict) else 0
    return Usage(
        input_tokens=nat.count(raw, "input_tokens") + cw + cr,
        output_tokens=nat.count(raw, "output_tokens"),
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        reasoning_tokens=thinking if isinstance(thinking, int) else 0,
        cache_write_1h_tokens=min(w1h, cw),
    )


def _finish(stop_reason: Any, rid: str | None, model: str | None, extra: dict[str, Any]) -> FinishEvent:
    details = {"stop_reason": stop_reason, **extra}
    return FinishEvent(finish_reason=_STOP.get(stop_reason, "unknown"), id=rid, model=model,  # type: ignore[arg-type]
                       provider_details=details)


def message_events(data: Any, call: _http.Call | None = None) -> list[StreamEvent]:
    """A non-streaming Messages API body -> StreamEvents (raises MalformedResponse)."""
    call = call or _http.Call("anthropic")
    if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
        raise MalformedResponse("Anthropic response is not a message object", provider=call.provider,
                                model=call.model, body=str(data)[:500])
    events: list[StreamEvent] = []
    tool_i = 0
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            events.append(TextDelta(text=block.get("text") or ""))
        elif kind == "thinking":
            sig = block.get("signature")
            events.append(ReasoningDelta(text=block.get("thinking") or "", signature=sig or None))
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            events.append(ReasoningDelta(text="", redacted=block["data"]))
        elif kind == "tool_use":
            events.append(ToolCallDelta(index=tool_i, id=block.get("id"), name=block.get("name"),
                                        arguments=json.dumps(block.get("input") or {}, ensure_ascii=False)))
            tool_i += 1
    usage = data.get("usage")
    if isinstance(usage, dict):
        events.append(UsageEvent(usage=_usage(usage)))
    extra = {"stop_details": data["stop_details"]} if data.get("stop_details") else {}
    events.append(_finish(data.get("stop_reason"), data.get("id"), data.get("model"), extra))
    return events


_LEAN_HEAD = re.compile(r'\{"type":"content_block_delta","index":\d+,"delta":\{"type":"text_delta","text":"')


def lean_text(data: str) -> str | None:
    """The text of a `content_block_delta` event that carries only a text delta, read by a flat
    scan (no JSON parse); None for anything else (the full parse then). The event must be
    exactly `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}`
    (Anthropic's own byte layout); a JSON string cannot hide `"}}` unescaped at its end."""
    m = _LEAN_HEAD.match(data)
    if m is None or not data.endswith('"}}'):
        return None
    lit = data[m.end():-3]
    if "\\" not in lit:
        return None if '"' in lit else lit
    try:
        v = json.loads('"' + lit + '"')
    except ValueError:
        return None
    return v if isinstance(v, str) else None


_PLAIN_HEAD = b"event: content_block_delta\ndata: "


def anthropic_plain(block: bytes) -> str | None:
    """The text of an SSE event block (without its blank line) that is exactly
    `event: content_block_delta` + one `data:` line passing `lean_text`, else None (the
    splice's test, `providers._splice`: anything else, `ping` included, ends a splice)."""
    if not block.startswith(_PLAIN_HEAD) or block.find(b"\n", 33) >= 0:
        return None
    try:
        data = block[33:].decode()
    except UnicodeDecodeError:
        return None
    return lean_text(data)


class StreamState:
    """Turns Anthropic SSE events into StreamEvents; `done` once message_stop arrives.
    `tap` (the proxy's splice, `providers._splice.Tap`) is armed after each plain text event."""

    tap: Any = None

    def __init__(self, call: _http.Call | None = None) -> None:
        self.call = call or _http.Call("anthropic")
        self.done = False
        self.usage_raw: dict[str, Any] = {}
        self.usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._stop: Any = None
        self._tools: dict[int, int] = {}  # content block index -> tool call index

    def _update_usage(self, raw: Any) -> list[StreamEvent]:
        if not isinstance(raw, dict):
            return []
        self.usage_raw.update({k: v for k, v in raw.items() if v is not None})
        self.usage = _usage(self.usage_raw)
        return [UsageEvent(usage=self.usage)]

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        if event == "ping":
            return []
        if event == "content_block_delta":  # the common event, read by a flat scan
            t = lean_text(data)
            if t is not None:
                if not t:
                    return []
                if self.tap is not None:
                    self.tap.armed = True
                return [text_delta(t)]
        try:
            obj = json.loads(data) if data else {}
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise MalformedResponse(f"Anthropic stream sent a non-JSON {event!r} event", provider=self.call.provider,
                                    model=self.call.model, body=data[:500], billed_usage=self.usage)
        kind = obj.get("type") or event
        if kind == "error" or event == "error":
            err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            raise map_error(None, err.get("type"), str(err.get("message") or "stream error"), call=self.call,
                            raw=obj, billed_usage=self.usage)
        if kind == "message_start":
            msg = obj.get("message") or {}
            self._id, self._model = msg.get("id"), msg.get("model")
            return self._update_usage(msg.get("usage"))
        if kind == "content_block_start":
            return self._block_start(obj.get("index"), obj.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(obj.get("index"), obj.get("delta") or {})
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            if delta.get("stop_reason") is not None:
                self._stop = delta["stop_reason"]
            return self._update_usage(obj.get("usage"))
        if kind == "message_stop":
            self.done = True
            return [_finish(self._stop, self._id, self._model, {})]
        return []  # content_block_stop and unknown future events

    def _block_start(self, index: Any, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [TextDelta(text=block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(text=block["thinking"])]
        if kind == "redacted_thinking" and isinstance(block.get("data"), str):
            return [ReasoningDelta(text="", redacted=block["data"])]
        if kind == "tool_use":
            ti = self._tools.setdefault(index, len(self._tools))
            args = json.dumps(block["input"], ensure_ascii=False) if block.get("input") else ""
            return [ToolCallDelta(index=ti, id=block.get("id"), name=block.get("name"), arguments=args)]
        return []

    def _block_delta(self, index: Any, delta: dict[str, Any]) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(text=delta.get("text") or "")]
        if kind == "thinking_delta":
            return [ReasoningDelta(text=delta.get("thinking") or "")]
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            return [ReasoningDelta(text="", signature=delta["signature"])]
        if kind == "input_json_delta" and index in self._tools:
            part = delta.get("partial_json") or ""
            return [ToolCallDelta(index=self._tools[index], arguments=part)] if part else []
        return []  # citations_delta, ...


# ------------------------------------------------------------------ errors


def map_error(status: int | None, etype: str | None, message: str, *, call: _http.Call, headers: Any = None,
              now: float | None = None, raw: Any = None, billed_usage: Any = None) -> ProviderError:
    """`error.type` first (it is more specific than the status), else the status; message
    matching only as the last, tested resort (context length, credit balance)."""
    cls: type[ProviderError]
    if etype in _ERROR_TYPES:
        cls, default_status = _ERROR_TYPES[etype]
    else:
        cls, default_status = _http.status_class(status), 502
    low = (message or "").lower()
    if issubclass(cls, BadRequest) and "prompt is too long" in low:
        cls = ContextTooLong
    elif cls in (BadRequest, RateLimited) and ("credit balance is too low" in low or "spend limit" in low):
        cls = QuotaExhausted
    info = _http.ErrorInfo(status=status or default_status, type=etype, message=message, raw=raw)
    return _http.make_error(cls, info, call=call, headers=headers, now=now, billed_usage=billed_usage)


def _on_error(resp: httpx.Response, raw: bytes, call: _http.Call, now: float) -> ProviderError:
    info = _http.parse_error_body(raw, resp.status_code)
    etype = info.type if info.type in _ERROR_TYPES else None
    return map_error(resp.status_code, etype, info.message, call=call, headers=resp.headers, now=now, raw=info.raw)


# ------------------------------------------------------------------ provider


class AnthropicProvider(nat.NativeProvider):
    """`AnthropicProvider(api_key=..., base_url=None, client=None, name="anthropic", retry=None)`."""

    vendor = "anthropic"
    prefill = True  # a trailing assistant message is continued (assistant prefill)

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 client: httpx.AsyncClient | None = None, name: str = "anthropic", retry: Any = None,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS, api_version: str = API_VERSION,
                 extra_headers: dict[str, str] | None = None, timeout: float | None = None, clock: Any = None,
                 timeouts: Any = None) -> None:
        super().__init__(api_key=api_key, client=client, name=name, retry=retry, timeout=timeout, clock=clock,
                         timeouts=timeouts)
        self.base_url = nat.split_version(base_url or DEFAULT_BASE, ("/v1",))[0]
        self.default_max_tokens = default_max_tokens
        self._headers = {"anthropic-version": api_version, "content-type": "application/json",
                         **(extra_headers or {})}

    def _request_headers(self, stream: bool = False) -> dict[str, str]:
        h = dict(self._headers)
        if stream:
            h["accept"] = "text/event-stream"
        if self._api_key:
            h["x-api-key"] = self._api_key
        return h

    def _url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def _max_tokens(self, req: ChatRequest) -> int | None:
        return req.max_tokens or self.default_max_tokens

    async def complete(self, req: ChatRequest) -> ChatResponse:
        body = _http.dumps(build_body(req, stream=False, default_max_tokens=self.default_max_tokens))
        call, lim = self._call(req), self._limits(req, stream=False)

        async def attempt() -> ChatResponse:
            data, rl = await self._post_json(self._url(), body, self._request_headers(), call, _on_error, lim)
            if isinstance(data, dict) and data.get("type") == "error":  # an error envelope with a 2xx status
                err = data.get("error") if isinstance(data.get("error"), dict) else {}
                raise map_error(None, err.get("type"), str(err.get("message") or ""), call=call, raw=data)
            events = message_events(data, call)
            return self._accumulate(P.unwrap_json_tool(events) if tool_json else events, req, rl)

        tool_json = self._json_tool(req)
        return await self._run(attempt)

    async def count_tokens(self, req: ChatRequest) -> int:
        """`POST /v1/messages/count_tokens`: the vendor's exact input token count (free of charge)."""
        full = build_body(req, stream=False, default_max_tokens=self.default_max_tokens)
        body = _http.dumps({k: v for k, v in full.items() if k in _COUNT_FIELDS})
        call = self._call(req)

        async def attempt() -> int:
            data, _ = await self._post_json(f"{self.base_url}/v1/messages/count_tokens", body,
                                            self._request_headers(), call, _on_error, self._limits(req, stream=False))
            n = data.get("input_tokens") if isinstance(data, dict) else None
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise MalformedResponse("Anthropic count_tokens answer has no input_tokens", provider=call.provider,
                                        model=call.model, body=str(data)[:500])
            return n

        return await self._run(attempt)  # type: ignore[no-any-return]

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        body = _http.dumps(build_body(req, stream=True, default_max_tokens=self.default_max_tokens))
        call = self._call(req)

        def events(resp: httpx.Response) -> AsyncIterator[StreamEvent]:
            state = StreamState(call)
            state.tap = tap_for(resp, call, anthropic_plain)  # the proxy's splice, when it offers one
            return nat.sse_events(resp, state, call, "Anthropic stream ended before message_stop", state.tap)

        out = self._stream(self._url(), body, lambda: self._request_headers(True), call, _on_error,
                           events, self._limits(req, stream=True))
        async for ev in (P.aunwrap_json_tool(out) if self._json_tool(req) else out):
            yield ev

    def _json_tool(self, req: ChatRequest) -> bool:
        """The JSON answer comes as a forced tool call (models without structured outputs)."""
        return P.anthropic_fields(req, default_max_tokens=self.default_max_tokens).structured == "tool"
