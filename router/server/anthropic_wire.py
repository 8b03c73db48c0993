"""Anthropic Messages JSON <-> ChatRequest / ChatResponse / SSE events, so
Anthropic-API clients (the `anthropic` SDK, Claude Code style tools) can route too.

Parsing goes through an explicit allow-list of top-level fields (`FIELDS`), each
type-checked (router.server.validate); unknown fields get Anthropic's own
"X: Extra inputs are not permitted". `thinking` (its budget counts within max_tokens)
and `output_config` (effort, JSON format) become the normalized reasoning and response
format, `top_k` a ChatRequest field: all translated for the chosen vendor by
`providers.params`; fields that change the price (service_tier, container, mcp_servers)
are refused.
Usage is translated to Anthropic's semantics: their `input_tokens` excludes cache
reads and writes (ours includes them), which are reported separately.

One proxy request, read downward: app.py -> handlers.py -> anthropic_wire.py (JSON -> ChatRequest,
ChatResponse/StreamEvents -> JSON/SSE) -> next: router/sdk.py (`Router.achat`/`astream`).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from router.server.validate import (MAX_MESSAGES, MAX_MODEL_CHARS, MAX_NAME_CHARS, MAX_PARTS, MAX_STOP, MAX_TOOLS,
                                    Checker, WireError)
from router.server.openai_wire import _truncated
from router.types import MAX_TOKENS_LIMIT, ChatRequest, ChatResponse, Reasoning, Usage

__all__ = ["parse_messages_request", "parse_count_request", "messages_response", "EventEncoder", "error_body",
           "usage_json", "dropped", "FIELDS", "COUNT_FIELDS"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal",
         "error": "error", "unknown": "end_turn"}  # "error": a vendor-truncated answer is never "end_turn"
_C = Checker(anthropic=True)
_PRICE = "it changes the price of the call, which the proxy routes and bills at the standard price"
_REFUSED = {"service_tier": "only 'auto' or 'standard_only': " + _PRICE, "container": _PRICE, "mcp_servers": _PRICE}
_OWN = ("model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences", "temperature",
        "top_p", "top_k", "stream", "metadata", "thinking", "output_config")
FIELDS: frozenset[str] = frozenset(_OWN) | frozenset(_REFUSED)
# POST /v1/messages/count_tokens takes these (no max_tokens, sampling or stream)
COUNT_FIELDS: frozenset[str] = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
MAX_CACHE_BREAKPOINTS = 4  # Anthropic's limit on cache_control blocks per request (more is their 400)
MAX_DOC_TITLE = 500  # characters of a document title (Anthropic's own limit)
_DOC_SOURCES = ("base64", "text", "url")
_DOC_TYPES = {"base64": ("application/pdf",), "text": ("text/plain",)}


class _Seen:
    """Cache breakpoints met while parsing one request (Anthropic allows at most four)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def cache_control(self, b: dict[str, Any], bp: str) -> dict[str, Any] | None:
        v = b.get("cache_control")
        if v is None:
            return None
        p = bp + ".cache_control"
        _C.obj(v, p)
        _C.only(v, p, ("type", "ttl"))
        _C.enum(v.get("type"), p + ".type", ("ephemeral",))
        out = {"type": "ephemeral"}
        if v.get("ttl") is not None:
            out["ttl"] = _C.enum(v["ttl"], p + ".ttl", ("5m", "1h"))
        self.n += 1
        if self.n > MAX_CACHE_BREAKPOINTS:
            raise _C.value_error(p, f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided.")
        return out


def error_body(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def _text_of(content: Any, param: str) -> str:
    """A string, or the text of an array of text blocks (others, e.g. images, are checked and skipped)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    _C.arr(content, param, MAX_PARTS)
    out = []
    for j, b in enumerate(content):
        bp = f"{param}.{j}"
        _C.obj(b, bp)
        t = _C.enum(b.get("type"), bp + ".type", ("text", "image", "search_result", "document"))
        if t == "text":
            out.append(_C.string(b.get("text"), bp + ".text"))
    return "".join(out)


def _image(b: dict[str, Any], bp: str) -> dict[str, Any]:
    src = _C.obj(b.get("source"), bp + ".source")
    kind = _C.enum(src.get("type"), bp + ".source.type", ("base64", "url"))
    if kind == "base64":
        mt = _C.string(src.get("media_type"), bp + ".source.media_type", MAX_NAME_CHARS)
        url = f"data:{mt};base64,{_C.string(src.get('data'), bp + '.source.data')}"
        return {"type": "image_url", "url": url, "media_type": mt}
    return {"type": "image_url", "url": _C.string(src.get("url"), bp + ".source.url")}


def _document(b: dict[str, Any], bp: str) -> dict[str, Any]:
    """A `document` block: a base64 PDF, plain text or a URL (custom `content` sources are refused)."""
    _C.only(b, bp, ("type", "source", "title", "context", "citations", "cache_control"))
    src = _C.obj(b.get("source"), bp + ".source")
    sp = bp + ".source"
    kind = _C.enum(src.get("type"), sp + ".type", _DOC_SOURCES)
    out: dict[str, Any] = {"type": "document", "source": kind}
    if kind == "url":
        _C.only(src, sp, ("type", "url"))
        url = _C.string(src.get("url"), sp + ".url", 8192)
        if not url.startswith(("https://", "http://")):
            raise _C.value_error(sp + ".url", "must be an http(s) URL")
        out["url"] = url
    else:
        _C.only(src, sp, ("type", "media_type", "data"))
        out["media_type"] = _C.enum(src.get("media_type"), sp + ".media_type", _DOC_TYPES[kind])
        out["data"] = _C.string(src.get("data"), sp + ".data")
    for k in ("title", "context"):
        if b.get(k) is not None:
            out[k] = _C.string(b[k], f"{bp}.{k}", MAX_DOC_TITLE if k == "title" else None)
    if b.get("citations") is not None:
        c = _C.obj(b["citations"], bp + ".citations")
        _C.only(c, bp + ".citations", ("enabled",))
        out["citations"] = _C.boolean(c.get("enabled"), bp + ".citations.enabled")
    return out


def _blocks(m: dict[str, Any], i: int, seen: _Seen) -> list[dict[str, Any]]:
    """One Anthropic message -> one or more of our messages."""
    param = f"messages.{i}"
    role = _C.enum(m.get("role"), param + ".role", ("user", "assistant"))
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _C.type_error(content, param + ".content", "a valid string or a list of content blocks")
    _C.arr(content, param + ".content", MAX_PARTS)
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    tool_msgs: list[dict[str, Any]] = []
    for j, b in enumerate(content):
        bp = f"{param}.content.{j}"
        _C.obj(b, bp)
        t = b.get("type")
        if t == "text":
            parts.append({"type": "text", "text": _C.string(b.get("text"), bp + ".text"),
                          "cache_control": seen.cache_control(b, bp)})
        elif t == "image":
            parts.append({**_image(b, bp), "cache_control": seen.cache_control(b, bp)})
        elif t == "document":
            parts.append({**_document(b, bp), "cache_control": seen.cache_control(b, bp)})
        elif t == "tool_use" and role == "assistant":
            inp = b.get("input")
            calls.append({"id": _C.string(b.get("id"), bp + ".id", MAX_NAME_CHARS),
                          "name": _C.string(b.get("name"), bp + ".name", MAX_NAME_CHARS),
                          "arguments": orjson.dumps(_C.obj(inp, bp + ".input") if inp is not None else {}).decode(),
                          "cache_control": seen.cache_control(b, bp)})
        elif t == "tool_result" and role == "user":
            text = _text_of(b.get("content"), bp + ".content")
            if b.get("is_error") is not None and _C.boolean(b["is_error"], bp + ".is_error"):
                text = "[tool error] " + text
            tool_msgs.append({"role": "tool", "content": text, "cache_control": seen.cache_control(b, bp),
                              "tool_call_id": _C.string(b.get("tool_use_id"), bp + ".tool_use_id", MAX_NAME_CHARS)})
        elif t == "thinking" and role == "assistant":  # sent back unchanged, with its signature
            _C.only(b, bp, ("type", "thinking", "signature"))
            parts.append({"type": "thinking", "thinking": _C.string(b.get("thinking"), bp + ".thinking"),
                          "signature": _C.string(b.get("signature"), bp + ".signature")})
        elif t == "redacted_thinking" and role == "assistant":
            _C.only(b, bp, ("type", "data"))
            parts.append({"type": "redacted_thinking", "data": _C.string(b.get("data"), bp + ".data")})
        else:
            shown = repr(t) if isinstance(t, str) and len(t) <= 40 else "this type"
            where = f" in a {role} message" if t in ("tool_use", "tool_result", "thinking",
                                                      "redacted_thinking") else ""
            raise WireError(f"{bp}.type: unsupported content block type {shown}{where}", param=bp + ".type",
                            code="invalid_value")
    out = list(tool_msgs)
    if parts or calls:
        msg: dict[str, Any] = {"role": role, "content": parts or None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _tools(v: Any, seen: _Seen) -> list[dict[str, Any]]:
    tools = []
    for j, t in enumerate(_C.arr(v, "tools", MAX_TOOLS)):
        tp = f"tools.{j}"
        _C.obj(t, tp)
        if t.get("type") not in (None, "custom"):
            shown = repr(t["type"]) if isinstance(t["type"], str) and len(t["type"]) <= 40 else "this type"
            raise _C.refused(tp + ".type", f"server tool {shown} (only custom tools)")
        schema = t.get("input_schema")
        tools.append({"name": _C.string(t.get("name"), tp + ".name", MAX_NAME_CHARS),
                      "cache_control": seen.cache_control(t, tp),
                      "description": _C.string(t["description"], tp + ".description")
                      if t.get("description") is not None else None,
                      "parameters": _C.obj(schema, tp + ".input_schema") if schema is not None
                      else {"type": "object", "properties": {}}})
    return tools


def _tool_choice(tc: Any) -> Any:
    _C.obj(tc, "tool_choice")
    kind = _C.enum(tc.get("type"), "tool_choice.type", ("auto", "any", "none", "tool"))
    if tc.get("disable_parallel_tool_use") is not None:
        _C.boolean(tc["disable_parallel_tool_use"], "tool_choice.disable_parallel_tool_use")
    if kind == "tool":
        return {"type": "function", "function": {"name": _C.string(tc.get("name"), "tool_choice.name",
                                                                   MAX_NAME_CHARS)}}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


def _thinking(v: Any, max_tokens: int) -> dict[str, Any]:
    _C.obj(v, "thinking")
    kind = _C.enum(v.get("type"), "thinking.type", ("enabled", "disabled", "adaptive"))
    if kind != "enabled":
        _C.only(v, "thinking", ("type", "display") if kind == "adaptive" else ("type",))
        return {"type": kind}
    _C.only(v, "thinking", ("type", "budget_tokens"))
    budget = _C.integer(v.get("budget_tokens"), "thinking.budget_tokens", 1, MAX_TOKENS_LIMIT)
    if budget >= max_tokens:  # thinking counts within max_tokens: the price stays bounded by it
        raise _C.value_error("thinking.budget_tokens", "must be less than max_tokens")
    return {"type": "enabled", "budget_tokens": budget}


def _output_config(v: Any, req: dict[str, Any]) -> str | None:
    """`output_config`: `effort` (returned) and `format` (a JSON schema -> response_format)."""
    _C.obj(v, "output_config")
    _C.only(v, "output_config", ("effort", "format"))
    fmt = v.get("format")
    if fmt is not None:
        _C.obj(fmt, "output_config.format")
        _C.only(fmt, "output_config.format", ("type", "schema"))
        _C.enum(fmt.get("type"), "output_config.format.type", ("json_schema",))
        req["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": _C.obj(fmt.get("schema"), "output_config.format.schema")}}
    if v.get("effort") is None:
        return None
    return _C.enum(v["effort"], "output_config.effort", ("low", "medium", "high", "xhigh", "max"))


def _system(v: Any, seen: _Seen) -> tuple[str, list[dict[str, Any]] | None]:
    """The system prompt's text, and its blocks when one carries a cache breakpoint."""
    if isinstance(v, str):
        return v, None
    out = []
    for j, b in enumerate(_C.arr(v, "system", MAX_PARTS)):
        bp = f"system.{j}"
        _C.obj(b, bp)
        _C.enum(b.get("type"), bp + ".type", ("text",))
        out.append({"type": "text", "text": _C.string(b.get("text"), bp + ".text"),
                    "cache_control": seen.cache_control(b, bp)})
    text = "".join(b["text"] for b in out)
    return text, out if any(b["cache_control"] for b in out) else None


def parse_messages_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.")
    for k in body:
        if k not in FIELDS:
            raise _C.unknown(k if len(k) <= 60 else k[:60] + "...")
    model = body.get("model")
    if model is None:
        raise WireError("model: Field required", param="model")
    _C.string(model, "model", MAX_MODEL_CHARS)
    if body.get("max_tokens") is None:
        raise WireError("max_tokens: Field required", param="max_tokens")
    max_tokens = _C.integer(body["max_tokens"], "max_tokens", 1, MAX_TOKENS_LIMIT)
    for k, why in _REFUSED.items():
        if body.get(k) is not None and not (k == "service_tier" and body[k] in ("auto", "standard_only")):
            raise _C.refused(k, why)
    seen = _Seen()  # breakpoints counted in Anthropic's order: tools, system, messages
    req: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if body.get("tools") is not None:
        req["tools"] = _tools(body["tools"], seen)
    if body.get("system") is not None:
        req["system"], parts = _system(body["system"], seen)
        if parts:
            req["system_parts"] = parts
    msgs = _C.arr(body.get("messages"), "messages", MAX_MESSAGES)
    req["messages"] = [x for i, m in enumerate(msgs) for x in _blocks(_C.obj(m, f"messages.{i}"), i, seen)]
    if not req["messages"]:
        raise WireError("messages: at least one message is required", param="messages")
    if body.get("tool_choice") is not None:
        req["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("stop_sequences") is not None:
        req["stop"] = [_C.string(s, f"stop_sequences.{i}")
                       for i, s in enumerate(_C.arr(body["stop_sequences"], "stop_sequences", MAX_STOP))]
    if body.get("temperature") is not None:
        req["temperature"] = _C.number(body["temperature"], "temperature", 0, 1)
    if body.get("top_p") is not None:
        req["top_p"] = _C.number(body["top_p"], "top_p", 0, 1)
    if body.get("stream") is not None:
        req["stream"] = _C.boolean(body["stream"], "stream")
    md = body.get("metadata")
    if md is not None:
        _C.obj(md, "metadata")
        _C.only(md, "metadata", ("user_id",))
        if md.get("user_id") is not None:
            req["user"] = _C.string(md["user_id"], "metadata.user_id", MAX_NAME_CHARS)
    if body.get("top_k") is not None:
        req["top_k"] = _C.integer(body["top_k"], "top_k", 0, 2**31 - 1)
    effort = _output_config(body["output_config"], req) if body.get("output_config") is not None else None
    if body.get("thinking") is not None or effort is not None:  # -> the normalized setting (providers.params)
        req["reasoning"] = Reasoning.from_anthropic(_thinking(body.get("thinking") or {"type": "adaptive"},
                                                              max_tokens), effort).model_dump(exclude_none=True)
    try:
        return ChatRequest.model_validate(req)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise WireError(f"{loc}: {first.get('msg')}", param=loc or None) from None


def parse_count_request(body: Any) -> ChatRequest:
    """A count_tokens body: the Messages fields it takes, checked exactly like a Messages request."""
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.")
    for k in body:
        if k not in COUNT_FIELDS:
            raise _C.unknown(k if len(k) <= 60 else k[:60] + "...")
    req = parse_messages_request({**body, "max_tokens": MAX_TOKENS_LIMIT})  # any thinking budget fits under it
    return req.model_copy(update={"max_tokens": None})  # nothing is generated: no limit to plan with


def _has_cache(req: ChatRequest) -> bool:
    if any(p.cache_control for p in req.system_parts or ()) or any(t.cache_control for t in req.tools or ()):
        return True
    for m in req.messages:
        if m.cache_control or any(c.cache_control for c in m.tool_calls or ()):
            return True
        if isinstance(m.content, list) and any(getattr(p, "cache_control", None) for p in m.content):
            return True
    return False


def dropped(req: ChatRequest, wire: str) -> list[str]:
    """What of a Messages request the chosen vendor's wire has no equivalent for (so its adapter
    leaves it out), to name in the route reason. `wire` is `Router.wire_of(provider)`."""
    if wire in ("anthropic", "bedrock", ""):
        return []  # Anthropic and Bedrock carry it all (Bedrock refuses URL documents outright); "" unknown
    parts = [p for m in req.messages if isinstance(m.content, list) for p in m.content]
    out = ["cache_control"] if _has_cache(req) else []
    if any(p.type in ("thinking", "redacted_thinking") for p in parts):
        out.append("thinking blocks and their signatures")
    docs = {p.source for p in parts if p.type == "document"}
    if "url" in docs:
        out.append("URL documents")
    if "base64" in docs and wire not in ("gemini", "openai"):
        out.append("PDF documents")
    return out


def usage_json(u: Usage) -> dict[str, Any]:
    return {"input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens,
            "cache_read_input_tokens": u.cache_read_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": max(0, u.cache_write_tokens - u.cache_write_1h_tokens),
                               "ephemeral_1h_input_tokens": u.cache_write_1h_tokens}}


def _msg_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def messages_response(resp: ChatResponse, model: str) -> bytes:
    content: list[dict[str, Any]] = []
    if resp.thinking_blocks:  # signed blocks, exactly as the vendor sent them (the client sends them back)
        content += [b.model_dump() for b in resp.thinking_blocks]
    elif resp.reasoning:  # a vendor that does not sign its reasoning
        content.append({"type": "thinking", "thinking": resp.reasoning, "signature": ""})
    if resp.text or not resp.tool_calls:
        content.append({"type": "text", "text": resp.text})
    for c in resp.tool_calls:
        try:
            args = orjson.loads(c.arguments) if c.arguments else {}
        except orjson.JSONDecodeError:
            args = {"_raw": c.arguments}
        content.append({"type": "tool_use", "id": c.id, "name": c.name, "input": args})
    return orjson.dumps({
        "id": resp.id if resp.id.startswith("msg_") else _msg_id(), "type": "message", "role": "assistant",
        "model": model, "content": content, "stop_reason": _STOP[resp.finish_reason], "stop_sequence": None,
        "usage": usage_json(resp.usage),
    })


def _ev(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventEncoder:
    """StreamEvents -> Anthropic SSE events (one content block open at a time)."""

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self.id = _msg_id()
        self.model = model
        self.input_tokens = input_tokens
        self.usage: Usage | None = None
        self.stop = "end_turn"
        self._index = -1
        self._open: tuple[str, int] | None = None  # (block type, tool index)

    def start(self) -> bytes:
        return _ev("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _ev("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _begin(self, kind: str, block: dict[str, Any], tool_index: int = -1) -> bytes:
        out = self._close()
        self._index += 1
        self._open = (kind, tool_index)
        return out + _ev("content_block_start", {"type": "content_block_start", "index": self._index,
                                                 "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _ev("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def text(self, text: str) -> bytes:
        """A text delta (the splice's encoder: `text` is never empty)."""
        if self._open is not None and self._open[0] == "text":  # the common case, spliced
            return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,' \
                   b'"delta":{"type":"text_delta","text":%b}}\n\n' % (self._index, orjson.dumps(text))
        out = self._begin("text", {"type": "text", "text": ""})
        return out + self._delta({"type": "text_delta", "text": text})

    def event(self, ev: Any) -> bytes:
        k = ev.kind
        if k == "text":
            return self.text(ev.text) if ev.text else b""
        if k == "reasoning":
            if ev.redacted is not None:
                return self._begin("redacted_thinking", {"type": "redacted_thinking", "data": ev.redacted}) + \
                    self._close()
            if not ev.text and ev.signature is None:
                return b""
            out = b"" if self._open and self._open[0] == "thinking" else self._begin(
                "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if ev.text:
                out += self._delta({"type": "thinking_delta", "thinking": ev.text})
            if ev.signature is not None:  # the block's signature ends it
                out += self._delta({"type": "signature_delta", "signature": ev.signature}) + self._close()
            return out
        if k == "tool_call":
            out = b""
            if not (self._open and self._open == ("tool_use", ev.index)):
                out = self._begin("tool_use", {"type": "tool_use", "id": ev.id or f"toolu_{uuid.uuid4().hex[:20]}",
                                               "name": ev.name or "", "input": {}}, ev.index)
            if ev.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": ev.arguments})
            return out
        if k == "usage":
            u = ev.usage
            self.usage = u if self.usage is None else Usage(
                **{f: max(getattr(self.usage, f), getattr(u, f)) for f in Usage.model_fields})
            return b""
        if k == "finish":
            if ev.finish_reason == "error":  # a truncated answer is a failure, never `end_turn`
                raise _truncated(self.model)
            self.stop = _STOP.get(ev.finish_reason, "end_turn")
        return b""

    def end(self) -> bytes:
        out = self._close()
        if self._index < 0:  # an empty answer still has one (empty) text block
            out += self._begin("text", {"type": "text", "text": ""}) + self._close()
        u = usage_json(self.usage or Usage(input_tokens=self.input_tokens))
        out += _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": self.stop,
                                                                         "stop_sequence": None}, "usage": u})
        return out + _ev("message_stop", {"type": "message_stop"})

    @staticmethod
    def error(type_: str, message: str) -> bytes:
        return b"event: error\ndata: " + error_body(type_, message) + b"\n\n"
