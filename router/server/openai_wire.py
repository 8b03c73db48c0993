"""OpenAI chat-completions JSON <-> ChatRequest / ChatResponse / SSE chunks.

Parsing goes through an explicit allow-list of top-level fields (`FIELDS`), each
type-checked by hand (cheap, a precise `param` in errors; see router.server.validate)
and validated once more through `ChatRequest`. `reasoning_effort` (and DeepSeek-style
`thinking`) become the normalized `ChatRequest.reasoning`; sampling knobs that do not
change the price (seed, penalties, logprobs, ...) become `ChatRequest` fields, which
`providers.params` translates for the chosen vendor or drops with a note;
fields the adapter owns (token limits, stream options, n) or that change the price
(service_tier, prediction, audio, web search) are never taken from the client.
Output bytes match OpenAI's format, incl. `usage: null` on every chunk and a
final `choices: []` usage chunk when `stream_options.include_usage` is set.

One proxy request, read downward: app.py -> handlers.py -> openai_wire.py (JSON -> ChatRequest,
ChatResponse/StreamEvents -> JSON/SSE) -> next: router/sdk.py (`Router.achat`/`astream`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from router.errors import Unavailable
from router.server.validate import (MAX_MESSAGES, MAX_MODEL_CHARS, MAX_NAME_CHARS, MAX_PARTS, MAX_STOP, MAX_TOOLS,
                                    Checker, WireError)
from router.types import MAX_TOKENS_LIMIT, ChatRequest, ChatResponse, Usage

__all__ = ["WireError", "parse_chat_request", "chat_response", "ChunkEncoder", "usage_json", "DONE", "FIELDS"]

DONE = b"data: [DONE]\n\n"
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
           "error": "error", "unknown": "stop"}  # "error": a vendor-truncated answer is never a clean "stop"
_C = Checker(anthropic=False)
_REASONING_EFFORT = ("none", "minimal", "low", "medium", "high", "xhigh")
_VERBOSITY = ("low", "medium", "high")
_PRICE = "it changes the price of the call, which the proxy routes and bills at the standard price"

# Sampling knobs (ChatRequest fields, translated per vendor by providers.params), each
# type-checked. None of them changes the price per token.
_PASSTHROUGH: dict[str, Callable[[Any, str], Any]] = {
    "seed": lambda v, p: _C.integer(v, p, -(2**63), 2**63 - 1),
    "frequency_penalty": lambda v, p: _C.number(v, p, -2, 2),
    "presence_penalty": lambda v, p: _C.number(v, p, -2, 2),
    "logit_bias": lambda v, p: _logit_bias(v, p),
    "logprobs": lambda v, p: _C.boolean(v, p),
    "top_logprobs": lambda v, p: _C.integer(v, p, 0, 20),
    "parallel_tool_calls": lambda v, p: _C.boolean(v, p),
    "verbosity": lambda v, p: _C.enum(v, p, _VERBOSITY),
}
# Fields the proxy reads itself (the adapter builds the vendor's request from them).
_OWN = ("model", "messages", "tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens",
        "max_completion_tokens", "stop", "stream", "stream_options", "user", "metadata", "n", "reasoning_effort",
        "thinking")
# Refused unless harmless: they change what the vendor bills, or are the adapter's.
_REFUSED = {
    "service_tier": "only 'auto' or 'default': " + _PRICE,
    "prediction": _PRICE,
    "audio": _PRICE,
    "modalities": "only ['text']: " + _PRICE,
    "web_search_options": _PRICE,
    "functions": "use `tools` (the legacy `functions` API is not translated)",
    "function_call": "use `tool_choice` (the legacy `functions` API is not translated)",
}
FIELDS: frozenset[str] = frozenset(_OWN) | frozenset(_PASSTHROUGH) | frozenset(_REFUSED)


def _logit_bias(v: Any, p: str) -> dict[str, Any]:
    d = _C.obj(v, p)
    if len(d) > 1024:
        raise _C.value_error(p, f"at most 1024 entries are allowed, got {len(d)}.")
    for k, x in d.items():
        if not k.isdigit() or len(k) > 9:
            raise _C.value_error(_C.path(p, k[:40]), "keys must be token ids.")
        _C.number(x, _C.path(p, k), -100, 100)
    return d


def _expect(value: Any, typ: type | tuple[type, ...], param: str, what: str) -> Any:
    ok = isinstance(value, typ)
    if ok and isinstance(value, bool):
        ok = bool in (typ if isinstance(typ, tuple) else (typ,))
    if not ok:
        raise _C.type_error(value, param, what)
    return value


def _content(c: Any, param: str) -> Any:
    if c is None or isinstance(c, str):
        return c
    _expect(c, list, param, "a string or an array of content parts")
    _C.arr(c, param, MAX_PARTS)
    out = []
    for j, p in enumerate(c):
        pp = f"{param}[{j}]"
        _C.obj(p, pp)
        t = p.get("type")
        if t == "text":
            out.append({"type": "text", "text": _C.string(p.get("text"), pp + ".text")})
        elif t == "image_url":
            iu = p.get("image_url")
            if isinstance(iu, str):
                iu = {"url": iu}
            _C.obj(iu, pp + ".image_url")
            detail = iu.get("detail")
            if detail is not None:
                _C.enum(detail, pp + ".image_url.detail", ("auto", "low", "high"))
            out.append({"type": "image_url", "url": _C.string(iu.get("url"), pp + ".image_url.url"),
                        "detail": detail})
        else:
            shown = repr(t) if isinstance(t, str) and len(t) <= 40 else "this type"
            raise WireError(f"Invalid value for '{pp}.type': {shown} is not supported (text, image_url).",
                            param=pp + ".type", code="invalid_value")
    return out


def _message(m: Any, i: int) -> dict[str, Any]:
    param = f"messages[{i}]"
    _C.obj(m, param)
    role = _C.enum(m.get("role"), param + ".role", ("system", "developer", "user", "assistant", "tool"))
    out: dict[str, Any] = {"role": role, "content": _content(m.get("content"), param + ".content")}
    if m.get("name") is not None:
        out["name"] = _C.string(m["name"], param + ".name", MAX_NAME_CHARS)
    if m.get("tool_calls"):
        calls = []
        for j, tc in enumerate(_C.arr(m["tool_calls"], param + ".tool_calls", MAX_TOOLS)):
            tp = f"{param}.tool_calls[{j}]"
            _C.obj(tc, tp)
            if tc.get("type") not in (None, "function"):
                _C.enum(tc.get("type"), tp + ".type", ("function",))
            fn = _C.obj(tc.get("function"), tp + ".function")
            args = fn.get("arguments", "")
            if not isinstance(args, str):
                args = orjson.dumps(_C.obj(args, tp + ".function.arguments")).decode()
            calls.append({"id": _C.string(tc.get("id"), tp + ".id", MAX_NAME_CHARS),
                          "name": _C.string(fn.get("name"), tp + ".function.name", MAX_NAME_CHARS),
                          "arguments": args})
        out["tool_calls"] = calls
    if role == "tool":
        out["tool_call_id"] = _C.string(m.get("tool_call_id"), param + ".tool_call_id", MAX_NAME_CHARS)
    return out


def _tools(v: Any) -> list[dict[str, Any]]:
    tools = []
    for j, t in enumerate(_C.arr(v, "tools", MAX_TOOLS)):
        tp = f"tools[{j}]"
        _C.obj(t, tp)
        if t.get("type") not in (None, "function"):
            _C.enum(t.get("type"), tp + ".type", ("function",))
        fn = _C.obj(t.get("function"), tp + ".function")
        tool: dict[str, Any] = {"name": _C.string(fn.get("name"), tp + ".function.name", MAX_NAME_CHARS)}
        if fn.get("description") is not None:
            tool["description"] = _C.string(fn["description"], tp + ".function.description")
        if fn.get("parameters") is not None:
            tool["parameters"] = _C.obj(fn["parameters"], tp + ".function.parameters")
        if fn.get("strict") is not None:
            tool["strict"] = _C.boolean(fn["strict"], tp + ".function.strict")
        tools.append(tool)
    return tools


def _tool_choice(tc: Any) -> Any:
    if isinstance(tc, str):
        return _C.enum(tc, "tool_choice", ("auto", "none", "required"))
    _C.obj(tc, "tool_choice")
    _C.enum(tc.get("type"), "tool_choice.type", ("function",))
    fn = _C.obj(tc.get("function"), "tool_choice.function")
    return {"type": "function", "function": {"name": _C.string(fn.get("name"), "tool_choice.function.name",
                                                               MAX_NAME_CHARS)}}


def _response_format(rf: Any) -> dict[str, Any]:
    _C.obj(rf, "response_format")
    kind = _C.enum(rf.get("type"), "response_format.type", ("text", "json_object", "json_schema"))
    js = rf.get("json_schema")
    if kind == "json_schema":
        _C.obj(js, "response_format.json_schema")
        if js.get("schema") is not None:
            _C.obj(js["schema"], "response_format.json_schema.schema")
        if js.get("name") is not None:
            _C.string(js["name"], "response_format.json_schema.name", MAX_NAME_CHARS)
        if js.get("strict") is not None:
            _C.boolean(js["strict"], "response_format.json_schema.strict")
    return {"type": kind, "json_schema": js if kind == "json_schema" else None}


def _reasoning(body: dict[str, Any]) -> dict[str, Any] | None:
    """`reasoning_effort`, or DeepSeek-style `thinking: {type}` (as the OpenAI SDK's extra_body
    sends it) -> the normalized reasoning setting (router.types.Reasoning)."""
    effort = body.get("reasoning_effort")
    if effort is not None:
        effort = _C.enum(effort, "reasoning_effort", _REASONING_EFFORT)
    th = body.get("thinking")
    if th is None:
        return None if effort is None else {"effort": effort}
    _C.obj(th, "thinking")
    kind = _C.enum(th.get("type"), "thinking.type", ("enabled", "disabled", "adaptive"))
    _C.only(th, "thinking", ("type", "budget_tokens") if kind == "enabled" else ("type",))
    if kind == "disabled":
        return {"effort": "none"}
    out: dict[str, Any] = {"effort": effort}
    if th.get("budget_tokens") is not None:
        out["budget_tokens"] = _C.integer(th["budget_tokens"], "thinking.budget_tokens", 1, MAX_TOKENS_LIMIT)
    return out


def _refuse_priced(body: dict[str, Any]) -> None:
    for k, why in _REFUSED.items():
        v = body.get(k)
        if v is None:
            continue
        if k == "service_tier" and v in ("auto", "default"):
            continue
        if k == "modalities" and v == ["text"]:
            continue
        raise _C.refused(k, why)


def _max_tokens(body: dict[str, Any]) -> int | None:
    """max_completion_tokens wins over the deprecated max_tokens; both must be valid."""
    mt = body.get("max_tokens")
    mct = body.get("max_completion_tokens")
    if mt is not None:
        _C.integer(mt, "max_tokens", 1, MAX_TOKENS_LIMIT)
    if mct is not None:
        return _C.integer(mct, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)
    return mt


def parse_chat_request(body: Any) -> tuple[ChatRequest, bool]:
    """OpenAI request JSON -> (ChatRequest, include_usage)."""
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.", code="invalid_type")
    for k in body:
        if k not in FIELDS:
            raise _C.unknown(k if len(k) <= 60 else k[:60] + "...")
    model = body.get("model")
    if model is None:
        raise WireError("you must provide a model parameter", param="model", code="missing_required_parameter")
    _C.string(model, "model", MAX_MODEL_CHARS)
    msgs = body.get("messages")
    if msgs is None:
        raise WireError("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    _C.arr(msgs, "messages", MAX_MESSAGES)
    if not msgs:
        raise WireError("Invalid 'messages': empty array.", param="messages", code="empty_array")
    _refuse_priced(body)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        _C.integer(n, "n")
        raise _C.refused("n", "only n=1 (one answer per request) is supported")
    req: dict[str, Any] = {"model": model, "messages": [_message(m, i) for i, m in enumerate(msgs)]}
    if body.get("tools") is not None:
        req["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        req["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("response_format") is not None:
        req["response_format"] = _response_format(body["response_format"])
    if body.get("temperature") is not None:
        req["temperature"] = _C.number(body["temperature"], "temperature", 0, 2)
    if body.get("top_p") is not None:
        req["top_p"] = _C.number(body["top_p"], "top_p", 0, 1)
    mt = _max_tokens(body)
    if mt is not None:
        req["max_tokens"] = mt
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else _C.arr(stop, "stop", MAX_STOP)
        req["stop"] = [_C.string(s, f"stop[{i}]") for i, s in enumerate(stop)]
    if body.get("stream") is not None:
        req["stream"] = _C.boolean(body["stream"], "stream")
    if body.get("user") is not None:
        req["user"] = _C.string(body["user"], "user", MAX_NAME_CHARS)
    if body.get("metadata") is not None:
        req["metadata"] = _C.metadata(body["metadata"], "metadata")
    req.update({k: check(body[k], k) for k, check in _PASSTHROUGH.items() if body.get(k) is not None})
    reasoning = _reasoning(body)
    if reasoning is not None:
        req["reasoning"] = reasoning
    include_usage = False
    so = body.get("stream_options")
    if so is not None:  # only for our own output: the adapter asks the vendor for usage itself
        _C.obj(so, "stream_options")
        _C.only(so, "stream_options", ("include_usage",))
        if so.get("include_usage") is not None:
            include_usage = _C.boolean(so["include_usage"], "stream_options.include_usage")
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
        self._key: tuple[Any, ...] = ()
        self._pre = self._post = b""

    def _text(self, field: bytes, text: str) -> bytes:
        """A text chunk: the bytes `_chunk` makes, spliced around the one encoded string."""
        key = (self.id, self.model, self.created, self.include_usage)
        if key != self._key:  # the fixed parts, built once
            pre, _, post = self._chunk({"content": "\x00"}).partition(b'"content":"\\u0000"')
            self._key, self._pre, self._post = key, pre, post
        return self._pre + field + orjson.dumps(text) + self._post

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        d: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                             "model": self.model, "system_fingerprint": None,
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self.include_usage:
            d["usage"] = None
        return b"data: " + orjson.dumps(d) + b"\n\n"

    def text(self, text: str) -> bytes:
        """A text chunk (the splice's encoder: `text` is never empty)."""
        return self._text(b'"content":', text)

    def start(self) -> bytes:
        self._role_sent = True
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def event(self, ev: Any) -> bytes:
        k = ev.kind
        if k == "text":
            return self._text(b'"content":', ev.text) if ev.text else b""
        if k == "reasoning":
            return self._text(b'"reasoning_content":', ev.text) if ev.text else b""
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
    return Unavailable("the vendor ended the answer early (finish_reason error); the answer is incomplete",
                       model=model)


def _max_usage(a: Usage, b: Usage) -> Usage:
    return Usage(**{f: max(getattr(a, f), getattr(b, f)) for f in Usage.model_fields})
