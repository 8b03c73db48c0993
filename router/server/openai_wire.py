"""OpenAI chat-completions JSON <-> ChatRequest / ChatResponse / SSE chunks.

Parsing checks types by hand (cheap, precise `param` in errors) and validates
the result once through `ChatRequest`; unknown sampling knobs (seed,
frequency_penalty, logprobs, ...) go to `extra_body` for the vendor.
Output bytes match OpenAI's format, incl. `usage: null` on every chunk and a
final `choices: []` usage chunk when `stream_options.include_usage` is set.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from router.types import ChatRequest, ChatResponse, Usage

__all__ = ["WireError", "parse_chat_request", "chat_response", "ChunkEncoder", "usage_json", "DONE"]

DONE = b"data: [DONE]\n\n"
_KNOWN = {
    "model", "messages", "tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "stream", "stream_options", "user", "metadata", "n", "functions",
}
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
           "error": "stop", "unknown": "stop"}


class WireError(ValueError):
    """A client error in the request body: 400 (or `status`) with an OpenAI-style body."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type


def _expect(value: Any, typ: type | tuple[type, ...], param: str, what: str) -> Any:
    ok = isinstance(value, typ)
    if ok and isinstance(value, bool):
        ok = bool in (typ if isinstance(typ, tuple) else (typ,))
    if not ok:
        raise WireError(f"Invalid type for '{param}': expected {what}, but got {_jtype(value)}.",
                        param=param, code="invalid_type")
    return value


def _jtype(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def _content(c: Any, param: str) -> Any:
    if c is None or isinstance(c, str):
        return c
    _expect(c, list, param, "a string or an array of content parts")
    out = []
    for j, p in enumerate(c):
        pp = f"{param}[{j}]"
        _expect(p, dict, pp, "an object")
        t = p.get("type")
        if t == "text":
            out.append({"type": "text", "text": _expect(p.get("text"), str, pp + ".text", "a string")})
        elif t == "image_url":
            iu = p.get("image_url")
            if isinstance(iu, str):
                iu = {"url": iu}
            _expect(iu, dict, pp + ".image_url", "an object")
            out.append({"type": "image_url", "url": _expect(iu.get("url"), str, pp + ".image_url.url", "a string"),
                        "detail": iu.get("detail")})
        else:
            raise WireError(f"Invalid value for '{pp}.type': {t!r} is not supported (text, image_url).",
                            param=pp + ".type", code="invalid_value")
    return out


def _message(m: Any, i: int) -> dict[str, Any]:
    param = f"messages[{i}]"
    _expect(m, dict, param, "an object")
    role = m.get("role")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise WireError(f"Invalid value for '{param}.role': {role!r}.", param=param + ".role", code="invalid_value")
    out: dict[str, Any] = {"role": role, "content": _content(m.get("content"), param + ".content")}
    if m.get("name") is not None:
        out["name"] = _expect(m["name"], str, param + ".name", "a string")
    if m.get("tool_calls"):
        calls = []
        for j, tc in enumerate(_expect(m["tool_calls"], list, param + ".tool_calls", "an array")):
            tp = f"{param}.tool_calls[{j}]"
            _expect(tc, dict, tp, "an object")
            fn = _expect(tc.get("function"), dict, tp + ".function", "an object")
            args = fn.get("arguments", "")
            calls.append({"id": _expect(tc.get("id"), str, tp + ".id", "a string"),
                          "name": _expect(fn.get("name"), str, tp + ".function.name", "a string"),
                          "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()})
        out["tool_calls"] = calls
    if role == "tool":
        out["tool_call_id"] = _expect(m.get("tool_call_id"), str, param + ".tool_call_id", "a string")
    return out


def parse_chat_request(body: Any) -> tuple[ChatRequest, bool]:
    """OpenAI request JSON -> (ChatRequest, include_usage)."""
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.", code="invalid_type")
    model = body.get("model")
    if model is None:
        raise WireError("you must provide a model parameter", param="model", code="missing_required_parameter")
    _expect(model, str, "model", "a string")
    msgs = body.get("messages")
    if msgs is None:
        raise WireError("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    _expect(msgs, list, "messages", "an array")
    if not msgs:
        raise WireError("Invalid 'messages': empty array.", param="messages", code="empty_array")
    req: dict[str, Any] = {"model": model, "messages": [_message(m, i) for i, m in enumerate(msgs)]}
    if body.get("tools") is not None:
        tools = []
        for j, t in enumerate(_expect(body["tools"], list, "tools", "an array")):
            _expect(t, dict, f"tools[{j}]", "an object")
            fn = _expect(t.get("function"), dict, f"tools[{j}].function", "an object")
            tools.append({k: fn[k] for k in ("name", "description", "parameters", "strict") if fn.get(k) is not None})
        req["tools"] = tools
    tc = body.get("tool_choice")
    if tc is not None:
        req["tool_choice"] = tc
    rf = body.get("response_format")
    if rf is not None:
        _expect(rf, dict, "response_format", "an object")
        req["response_format"] = {"type": rf.get("type"), "json_schema": rf.get("json_schema")}
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            req[k] = _expect(body[k], (int, float), k, "a number")
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    if mt is not None:
        req["max_tokens"] = _expect(mt, int, "max_tokens", "an integer")
    stop = body.get("stop")
    if stop is not None:
        req["stop"] = [stop] if isinstance(stop, str) else _expect(stop, list, "stop", "a string or an array")
    stream = body.get("stream")
    if stream is not None:
        req["stream"] = _expect(stream, bool, "stream", "a boolean")
    if body.get("user") is not None:
        req["user"] = _expect(body["user"], str, "user", "a string")
    if body.get("metadata") is not None:
        req["metadata"] = _expect(body["metadata"], dict, "metadata", "an object")
    n = body.get("n")
    if n not in (None, 1):
        raise WireError("Only n=1 is supported by this proxy.", param="n", code="invalid_value")
    extra = {k: v for k, v in body.items() if k not in _KNOWN}
    if extra:
        req["extra_body"] = extra
    include_usage = False
    so = body.get("stream_options")
    if so is not None:
        _expect(so, dict, "stream_options", "an object")
        include_usage = bool(so.get("include_usage"))
    try:
        return ChatRequest.model_validate(req), include_usage
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise WireError(f"Invalid value for '{loc}': {first.get('msg')}", param=loc or None,
                        code="invalid_value") from None


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chat_response(resp: ChatResponse, model: str) -> bytes:
    """ChatResponse -> OpenAI `chat.completion` JSON bytes."""
    msg: dict[str, Any] = {"role": "assistant", "content": resp.text if (resp.text or not resp.tool_calls) else None,
                           "refusal": None, "annotations": []}
    if resp.reasoning:
        msg["reasoning_content"] = resp.reasoning
    if resp.tool_calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in resp.tool_calls]
    rid = resp.id if resp.id.startswith("chatcmpl") else _new_id()
    return orjson.dumps({
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": _FINISH[resp.finish_reason]}],
        "usage": usage_json(resp.usage),
        "service_tier": "default",
        "system_fingerprint": None,
    })


class ChunkEncoder:
    """Turns StreamEvents into `data: {chat.completion.chunk}\\n\\n` lines."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = _new_id()
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finish: str | None = None
        self._role_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        d: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                             "model": self.model, "system_fingerprint": None,
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self.include_usage:
            d["usage"] = None
        return b"data: " + orjson.dumps(d) + b"\n\n"

    def start(self) -> bytes:
        self._role_sent = True
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def event(self, ev: Any) -> bytes:
        k = ev.kind
        if k == "text":
            return self._chunk({"content": ev.text}) if ev.text else b""
        if k == "reasoning":
            return self._chunk({"reasoning_content": ev.text}) if ev.text else b""
        if k == "tool_call":
            tc: dict[str, Any] = {"index": ev.index}
            if ev.id:
                tc["id"] = ev.id
                tc["type"] = "function"
            fn: dict[str, Any] = {}
            if ev.name:
                fn["name"] = ev.name
            fn["arguments"] = ev.arguments
            tc["function"] = fn
            return self._chunk({"tool_calls": [tc]})
        if k == "usage":
            self.usage = ev.usage if self.usage is None else _max_usage(self.usage, ev.usage)
            return b""
        if k == "finish":
            if ev.finish_reason == "error":  # a truncated answer is a failure, never a clean `stop`
                raise _truncated(self.model)
            self.finish = _FINISH.get(ev.finish_reason, "stop")
            return b""
        return b""

    def end(self) -> bytes:
        out = self._chunk({}, self.finish or "stop")
        if self.include_usage:
            out += b"data: " + orjson.dumps({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": [], "usage": usage_json(self.usage or Usage()),
            }) + b"\n\n"
        return out + DONE


def _truncated(model: str) -> Exception:
    from router.errors import Unavailable

    return Unavailable("the vendor ended the answer early (finish_reason error); the answer is incomplete",
                       model=model)


def _max_usage(a: Usage, b: Usage) -> Usage:
    return Usage(**{f: max(getattr(a, f), getattr(b, f)) for f in Usage.model_fields})
