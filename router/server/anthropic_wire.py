"""Anthropic Messages JSON <-> ChatRequest / ChatResponse / SSE events, so
Anthropic-API clients (the `anthropic` SDK, Claude Code style tools) can route too.

Usage is translated to Anthropic's semantics: their `input_tokens` excludes cache
reads and writes (ours includes them), which are reported separately.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from router.server.openai_wire import WireError, _expect
from router.types import ChatRequest, ChatResponse, Usage

__all__ = ["parse_messages_request", "messages_response", "EventEncoder", "error_body", "usage_json"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal",
         "error": "end_turn", "unknown": "end_turn"}
_KNOWN = {"model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences", "temperature",
          "top_p", "stream", "metadata"}


def error_body(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    _expect(content, list, param, "a string or an array of content blocks")
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _blocks(m: dict[str, Any], i: int) -> list[dict[str, Any]]:
    """One Anthropic message -> one or more of our messages."""
    param = f"messages.{i}"
    role = m.get("role")
    if role not in ("user", "assistant"):
        raise WireError(f"{param}.role: Input should be 'user' or 'assistant'", param=param + ".role")
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    _expect(content, list, param + ".content", "a string or an array of content blocks")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    tool_msgs: list[dict[str, Any]] = []
    for j, b in enumerate(content):
        bp = f"{param}.content.{j}"
        _expect(b, dict, bp, "an object")
        t = b.get("type")
        if t == "text":
            parts.append({"type": "text", "text": _expect(b.get("text"), str, bp + ".text", "a string")})
        elif t == "image":
            src = _expect(b.get("source"), dict, bp + ".source", "an object")
            if src.get("type") == "base64":
                url = f"data:{src.get('media_type')};base64,{src.get('data')}"
            elif src.get("type") == "url":
                url = _expect(src.get("url"), str, bp + ".source.url", "a string")
            else:
                raise WireError(f"{bp}.source.type: unsupported image source {src.get('type')!r}", param=bp)
            parts.append({"type": "image_url", "url": url, "media_type": src.get("media_type")})
        elif t == "tool_use" and role == "assistant":
            calls.append({"id": _expect(b.get("id"), str, bp + ".id", "a string"),
                          "name": _expect(b.get("name"), str, bp + ".name", "a string"),
                          "arguments": orjson.dumps(b.get("input") or {}).decode()})
        elif t == "tool_result" and role == "user":
            text = _text_of(b.get("content"), bp + ".content")
            if b.get("is_error"):
                text = "[tool error] " + text
            tool_msgs.append({"role": "tool", "tool_call_id": _expect(b.get("tool_use_id"), str, bp + ".tool_use_id",
                                                                      "a string"), "content": text})
        elif t in ("thinking", "redacted_thinking"):
            continue
        else:
            raise WireError(f"{bp}.type: unsupported content block type {t!r}", param=bp + ".type")
    out = list(tool_msgs)
    if parts or calls:
        msg: dict[str, Any] = {"role": role, "content": parts or None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def parse_messages_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise WireError("model: Field required", param="model")
    _expect(model, str, "model", "a string")
    if body.get("max_tokens") is None:
        raise WireError("max_tokens: Field required", param="max_tokens")
    msgs = _expect(body.get("messages"), list, "messages", "an array")
    req: dict[str, Any] = {"model": model, "max_tokens": _expect(body["max_tokens"], int, "max_tokens", "an integer"),
                           "messages": [x for i, m in enumerate(msgs) for x in _blocks(_expect(m, dict, f"messages.{i}",
                                                                                               "an object"), i)]}
    if not req["messages"]:
        raise WireError("messages: at least one message is required", param="messages")
    if body.get("system") is not None:
        req["system"] = _text_of(body["system"], "system")
    if body.get("tools") is not None:
        tools = []
        for j, t in enumerate(_expect(body["tools"], list, "tools", "an array")):
            _expect(t, dict, f"tools.{j}", "an object")
            if t.get("type") not in (None, "custom"):
                raise WireError(f"tools.{j}: server tool {t.get('type')!r} is not supported by this proxy",
                                param=f"tools.{j}")
            tools.append({"name": t.get("name"), "description": t.get("description"),
                          "parameters": t.get("input_schema") or {"type": "object", "properties": {}}})
        req["tools"] = tools
    tc = body.get("tool_choice")
    if tc is not None:
        _expect(tc, dict, "tool_choice", "an object")
        kind = tc.get("type")
        req["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(kind) or {
            "type": "function", "function": {"name": tc.get("name")}}
    if body.get("stop_sequences") is not None:
        req["stop"] = _expect(body["stop_sequences"], list, "stop_sequences", "an array")
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            req[k] = _expect(body[k], (int, float), k, "a number")
    if body.get("stream") is not None:
        req["stream"] = _expect(body["stream"], bool, "stream", "a boolean")
    md = body.get("metadata")
    if isinstance(md, dict) and isinstance(md.get("user_id"), str):
        req["user"] = md["user_id"]
    extra = {k: v for k, v in body.items() if k not in _KNOWN}
    if extra:
        req["extra_body"] = extra
    try:
        return ChatRequest.model_validate(req)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise WireError(f"{loc}: {first.get('msg')}", param=loc or None) from None


def usage_json(u: Usage) -> dict[str, Any]:
    return {"input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens,
            "cache_read_input_tokens": u.cache_read_tokens}


def _msg_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def messages_response(resp: ChatResponse, model: str) -> bytes:
    content: list[dict[str, Any]] = []
    if resp.reasoning:
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

    def event(self, ev: Any) -> bytes:
        k = ev.kind
        if k == "text":
            if not ev.text:
                return b""
            out = b"" if self._open and self._open[0] == "text" else self._begin("text", {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": ev.text})
        if k == "reasoning":
            if not ev.text:
                return b""
            out = b"" if self._open and self._open[0] == "thinking" else self._begin(
                "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            return out + self._delta({"type": "thinking_delta", "thinking": ev.text})
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
                from router.server.openai_wire import _truncated

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
