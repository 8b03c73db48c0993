"""OpenAI Responses API JSON (`POST /v1/responses`) -> the chat path, and back.

A Responses request is validated here against an allow-list (`FIELDS`), with errors
naming the Responses path (`input[2].content[0].image_url`), then rewritten as an
OpenAI chat-completions body and parsed by `router.server.openai_wire.parse_chat_request`,
so routing, parameters and their translation to each vendor are exactly the chat
path's. What is translated:

    input (a string, or items)   message items (input_text, input_image, output_text,
                                 refusal) -> messages; function_call items -> the
                                 assistant's tool_calls; function_call_output -> tool
                                 messages; reasoning items are dropped (they belong to
                                 the model that wrote them)
    instructions                 a system message first (never carried over by
                                 previous_response_id, as at OpenAI)
    tools (function only), tool_choice, text.format (json_schema / json_object),
    text.verbosity, reasoning.effort, max_output_tokens, temperature, top_p,
    parallel_tool_calls, metadata, user

Hosted tools (web_search, file_search, computer_use, code_interpreter, ...) and the
stateful or priced extras (background, conversation, prompt, ...) are refused with a
400 `unsupported_parameter`. `store` and `previous_response_id` are served from the
proxy's own response store (router.server.responses_store); that lookup is the
handler's, this module stays pure.

The answer is a `response` object (`response_body`) or the Responses stream
(`router.server.responses_events.ResponsesEncoder`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.server import openai_wire as ow
from router.server.validate import MAX_MESSAGES, MAX_MODEL_CHARS, MAX_NAME_CHARS, MAX_PARTS, MAX_TOOLS, Checker, WireError
from router.types import MAX_TOKENS_LIMIT, ChatRequest, ChatResponse, Usage

__all__ = ["FIELDS", "HOSTED_TOOLS", "ResponsesRequest", "parse_responses_request", "to_chat_request",
           "response_body", "output_items", "assistant_message", "usage_json", "new_id"]

_C = Checker(anthropic=False)
_PRICE = "it changes the price of the call, which the proxy routes and bills at the standard price"
_STATE = "it needs OpenAI's own server-side state"
# Fields read here (and translated), or accepted and ignored (documented in docs/proxy.md).
_OWN = ("model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
        "temperature", "top_p", "metadata", "user", "stream", "stream_options", "store", "previous_response_id",
        "parallel_tool_calls", "include", "truncation", "service_tier", "safety_identifier", "prompt_cache_key",
        "background", "prompt_cache_retention")
_REFUSED = {
    "conversation": _STATE + " (use previous_response_id, or send the whole input)",
    "prompt": _STATE + " (stored prompt templates)",
    "background": "only background=false: " + _STATE,
    "background_options": _STATE,
    "context_management": _STATE,
    "max_tool_calls": "it limits hosted tools, which this proxy does not run",
    "top_logprobs": "logprobs are not translated across vendors",
    "moderation": _STATE,
    "image": "image generation is not routed",
    "access_programs": _STATE,
    "prompt_cache_options": _PRICE,
    "prompt_cache_retention": "only 'in_memory': " + _PRICE,
    "service_tier": "only 'auto' or 'default': " + _PRICE,
}
FIELDS: frozenset[str] = frozenset(_OWN) | frozenset(_REFUSED)
# Tools OpenAI runs on its own servers: there is nothing to route them to.
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26", "file_search",
    "computer", "computer_use", "computer_use_preview", "code_interpreter", "image_generation", "mcp", "local_shell",
    "shell", "custom", "apply_patch", "tool_search", "namespace", "programmatic_tool_calling", "allowed_tools",
})
_HOSTED_ITEMS = frozenset({
    "item_reference", "computer_call", "computer_call_output", "web_search_call", "file_search_call",
    "image_generation_call", "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call",
    "shell_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call",
    "custom_tool_call", "custom_tool_call_output", "apply_patch_call", "apply_patch_call_output", "tool_search_call",
    "tool_search_output", "additional_tools", "compaction", "compaction_trigger", "program", "program_output",
})
_MESSAGE_KEYS = ("type", "role", "content", "id", "status", "phase")
_CALL_KEYS = ("type", "call_id", "name", "arguments", "id", "status", "namespace", "caller")
_OUTPUT_KEYS = ("type", "call_id", "output", "id", "status", "name", "namespace", "caller")
_TOOL_KEYS = ("type", "name", "description", "parameters", "strict")
# Chat fields this module hands to the chat parser, which owns their value checks: its
# errors are renamed to the Responses path.
_CHAT_PATHS = {"reasoning_effort": "reasoning.effort", "verbosity": "text.verbosity",
               "max_completion_tokens": "max_output_tokens", "response_format": "text.format", "messages": "input"}
_SUMMARY = ("auto", "concise", "detailed")


def new_id(prefix: str) -> str:
    """`resp_…`, `msg_…`, `fc_…`, `rs_…`: 128 random bits (os.urandom; uuid4 costs ~7x more here)."""
    return f"{prefix}_{os.urandom(16).hex()}"


@dataclass(slots=True)
class ResponsesRequest:
    """A validated Responses request: the chat body it becomes (without `messages`),
    the input as chat messages, and what the `response` object echoes back."""

    chat: dict[str, Any]
    messages: list[dict[str, Any]]  # the input items, as chat-completions messages
    instructions: str | None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    echo: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- input items

def _text_of(v: Any, p: str) -> str:
    return _C.string(v, p)


def _image(part: dict[str, Any], p: str) -> dict[str, Any]:
    _C.only(part, p, ("type", "image_url", "file_id", "detail", "prompt_cache_breakpoint"))
    if part.get("file_id") is not None:
        raise _C.refused(p + ".file_id", "file ids need OpenAI's Files API; send the image as image_url "
                                         "(an https or data: URL)")
    url = _C.string(part.get("image_url"), p + ".image_url")
    detail = part.get("detail")
    if detail is not None:
        detail = _C.enum(detail, p + ".detail", ("auto", "low", "high", "original"))
    iu: dict[str, Any] = {"url": url}
    if detail is not None:
        iu["detail"] = "high" if detail == "original" else detail
    return {"type": "image_url", "image_url": iu}


def _parts(content: Any, p: str, *, output: bool) -> str | list[dict[str, Any]]:
    """Message content (a string or a list of parts) -> chat content."""
    if isinstance(content, str):
        return content
    _C.arr(content, p, MAX_PARTS)
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        pp = f"{p}[{j}]"
        _C.obj(part, pp)
        t = part.get("type")
        if t == "input_text":
            _C.only(part, pp, ("type", "text", "prompt_cache_breakpoint"))
            out.append({"type": "text", "text": _text_of(part.get("text"), pp + ".text")})
        elif t == "output_text":
            _C.only(part, pp, ("type", "text", "annotations", "logprobs"))
            out.append({"type": "text", "text": _text_of(part.get("text"), pp + ".text")})
        elif t == "refusal":
            _C.only(part, pp, ("type", "refusal"))
            out.append({"type": "text", "text": _text_of(part.get("refusal"), pp + ".refusal")})
        elif t == "input_image" and not output:
            out.append(_image(part, pp))
        elif t in ("input_file", "input_audio"):
            raise _C.refused(pp + ".type", f"{t} parts are not translated to other vendors (send text or images)")
        else:
            shown = repr(t) if isinstance(t, str) and len(t) <= 40 else "this type"
            allowed = "output_text, refusal" if output else "input_text, input_image"
            raise WireError(f"Invalid value for '{pp}.type': {shown} is not supported ({allowed}).",
                            param=pp + ".type", code="invalid_value")
    if out and all(x["type"] == "text" for x in out):
        return "".join(x["text"] for x in out)
    return out


def _message(item: dict[str, Any], p: str) -> dict[str, Any]:
    _C.only(item, p, _MESSAGE_KEYS)
    role = _C.enum(item.get("role"), p + ".role", ("user", "assistant", "system", "developer"))
    content = item.get("content")
    if content is None:
        raise WireError(f"Missing required parameter: '{p}.content'.", param=p + ".content",
                        code="missing_required_parameter")
    return {"role": role, "content": _parts(content, p + ".content", output=role == "assistant")}


def _call(item: dict[str, Any], p: str) -> dict[str, Any]:
    _C.only(item, p, _CALL_KEYS)
    args = item.get("arguments", "")
    return {"id": _C.string(item.get("call_id"), p + ".call_id", MAX_NAME_CHARS), "type": "function",
            "function": {"name": _C.string(item.get("name"), p + ".name", MAX_NAME_CHARS),
                         "arguments": _C.string(args, p + ".arguments")}}


def _call_output(item: dict[str, Any], p: str) -> dict[str, Any]:
    _C.only(item, p, _OUTPUT_KEYS)
    out = item.get("output")
    if out is None:
        raise WireError(f"Missing required parameter: '{p}.output'.", param=p + ".output",
                        code="missing_required_parameter")
    return {"role": "tool", "tool_call_id": _C.string(item.get("call_id"), p + ".call_id", MAX_NAME_CHARS),
            "content": _parts(out, p + ".output", output=False)}


def input_messages(v: Any) -> list[dict[str, Any]]:
    """`input` -> chat messages. Consecutive function_call items join the assistant turn
    before them (parallel calls), as chat completions carry them."""
    if isinstance(v, str):
        return [{"role": "user", "content": v}]
    _C.arr(v, "input", MAX_MESSAGES)
    msgs: list[dict[str, Any]] = []
    join = False  # the last message is an assistant turn that function calls may join
    for i, item in enumerate(v):
        p = f"input[{i}]"
        _C.obj(item, p)
        t = item.get("type", "message" if "role" in item else None)
        if t == "message":
            msgs.append(_message(item, p))
            join = msgs[-1]["role"] == "assistant"
        elif t == "function_call":
            call = _call(item, p)
            if join:
                msgs[-1].setdefault("tool_calls", []).append(call)
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
                join = True
        elif t == "function_call_output":
            msgs.append(_call_output(item, p))
            join = False
        elif t == "reasoning":
            continue  # another model's reasoning (often encrypted): not portable, not needed to continue
        elif isinstance(t, str) and t in _HOSTED_ITEMS:
            raise _C.refused(p + ".type", f"{t!r} items need OpenAI's hosted tools or stored items, which this "
                                          "proxy does not run")
        else:
            shown = repr(t) if isinstance(t, str) and len(t) <= 40 else "this type"
            raise WireError(f"Invalid value for '{p}.type': {shown} is not supported (message, function_call, "
                            "function_call_output, reasoning).", param=p + ".type", code="invalid_value")
    return msgs


# ---------------------------------------------------------------- tools, format, reasoning

def _tools(v: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """-> (chat tools, the tools as the response echoes them)."""
    chat, echo = [], []
    for j, t in enumerate(_C.arr(v, "tools", MAX_TOOLS)):
        p = f"tools[{j}]"
        _C.obj(t, p)
        kind = t.get("type")
        if isinstance(kind, str) and kind in HOSTED_TOOLS:
            raise _C.refused(p + ".type", f"the hosted tool {kind!r} runs on OpenAI's servers; only function "
                                          "tools are routed")
        _C.enum(kind, p + ".type", ("function",))
        _C.only(t, p, _TOOL_KEYS)
        fn: dict[str, Any] = {"name": _C.string(t.get("name"), p + ".name", MAX_NAME_CHARS)}
        if t.get("description") is not None:
            fn["description"] = _C.string(t["description"], p + ".description")
        if t.get("parameters") is not None:
            fn["parameters"] = _C.obj(t["parameters"], p + ".parameters")
        if t.get("strict") is not None:
            fn["strict"] = _C.boolean(t["strict"], p + ".strict")
        chat.append({"type": "function", "function": fn})
        echo.append({"type": "function", "name": fn["name"], "description": fn.get("description"),
                     "parameters": fn.get("parameters"), "strict": fn.get("strict")})
    return chat, echo


def _tool_choice(tc: Any) -> tuple[Any, Any]:
    """-> (chat tool_choice, echo)."""
    if isinstance(tc, str):
        v = _C.enum(tc, "tool_choice", ("auto", "none", "required"))
        return v, v
    _C.obj(tc, "tool_choice")
    kind = tc.get("type")
    if isinstance(kind, str) and kind in HOSTED_TOOLS | {"file_search", "web_search_preview"}:
        raise _C.refused("tool_choice.type", f"{kind!r} names a hosted tool or tool set; use 'auto', 'none', "
                                             "'required' or a function")
    _C.enum(kind, "tool_choice.type", ("function",))
    _C.only(tc, "tool_choice", ("type", "name"))
    name = _C.string(tc.get("name"), "tool_choice.name", MAX_NAME_CHARS)
    return {"type": "function", "function": {"name": name}}, {"type": "function", "name": name}


def _text(v: Any) -> tuple[dict[str, Any] | None, str | None, dict[str, Any]]:
    """`text` -> (chat response_format or None, verbosity, echo)."""
    _C.obj(v, "text")
    _C.only(v, "text", ("format", "verbosity"))
    verbosity = None
    if v.get("verbosity") is not None:
        verbosity = _C.enum(v["verbosity"], "text.verbosity", ("low", "medium", "high"))
    fmt = v.get("format")
    echo: dict[str, Any] = {"format": {"type": "text"}, "verbosity": verbosity}
    if fmt is None:
        return None, verbosity, echo
    _C.obj(fmt, "text.format")
    kind = _C.enum(fmt.get("type"), "text.format.type", ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        _C.only(fmt, "text.format", ("type",))
        echo["format"] = {"type": kind}
        return ({"type": kind} if kind == "json_object" else None), verbosity, echo
    _C.only(fmt, "text.format", ("type", "name", "schema", "description", "strict"))
    js: dict[str, Any] = {"name": _C.string(fmt.get("name"), "text.format.name", MAX_NAME_CHARS),
                          "schema": _C.obj(fmt.get("schema"), "text.format.schema")}
    if fmt.get("description") is not None:
        js["description"] = _C.string(fmt["description"], "text.format.description")
    if fmt.get("strict") is not None:
        js["strict"] = _C.boolean(fmt["strict"], "text.format.strict")
    echo["format"] = {"type": "json_schema", **js}
    return {"type": "json_schema", "json_schema": js}, verbosity, echo


def _reasoning(v: Any) -> tuple[str | None, dict[str, Any]]:
    _C.obj(v, "reasoning")
    _C.only(v, "reasoning", ("effort", "summary", "generate_summary"))
    effort = None
    if v.get("effort") is not None:  # its values are the chat parser's (`reasoning_effort`)
        effort = _C.string(v["effort"], "reasoning.effort", 32)
    for k in ("summary", "generate_summary"):
        if v.get(k) is not None:
            _C.enum(v[k], f"reasoning.{k}", _SUMMARY)
    return effort, {"effort": effort, "summary": v.get("summary") or v.get("generate_summary")}


def _refuse(body: dict[str, Any]) -> None:
    for k, why in _REFUSED.items():
        v = body.get(k)
        if v is None:
            continue
        if k == "service_tier" and v in ("auto", "default"):
            continue
        if k == "background" and v is False:
            continue
        if k == "prompt_cache_retention" and v == "in_memory":
            continue
        raise _C.refused(k, why)


# ---------------------------------------------------------------- the request

def parse_responses_request(body: Any) -> ResponsesRequest:
    """Responses request JSON -> ResponsesRequest (pure; errors name the Responses path)."""
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.", code="invalid_type")
    for k in body:
        if k not in FIELDS:
            raise _C.unknown(k if len(k) <= 60 else k[:60] + "...")
    _refuse(body)
    model = body.get("model")
    if model is None:
        raise WireError("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    chat: dict[str, Any] = {"model": _C.string(model, "model", MAX_MODEL_CHARS)}
    echo: dict[str, Any] = {"tools": [], "tool_choice": "auto", "text": {"format": {"type": "text"}},
                            "reasoning": None, "parallel_tool_calls": True, "truncation": "disabled"}
    inp = body.get("input")
    msgs = input_messages(inp) if inp is not None else []
    instructions = None
    if body.get("instructions") is not None:
        instructions = _C.string(body["instructions"], "instructions")
    if body.get("tools") is not None:
        chat["tools"], echo["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"], echo["tool_choice"] = _tool_choice(body["tool_choice"])
    extra: dict[str, Any] = {}
    if body.get("text") is not None:
        rf, verbosity, echo["text"] = _text(body["text"])
        if rf is not None:
            chat["response_format"] = rf
        if verbosity is not None:
            extra["verbosity"] = verbosity
    if body.get("reasoning") is not None:
        effort, echo["reasoning"] = _reasoning(body["reasoning"])
        if effort is not None:
            extra["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = _C.integer(body["max_output_tokens"], "max_output_tokens", 1,
                                                   MAX_TOKENS_LIMIT)
    if body.get("temperature") is not None:
        chat["temperature"] = _C.number(body["temperature"], "temperature", 0, 2)
    if body.get("top_p") is not None:
        chat["top_p"] = _C.number(body["top_p"], "top_p", 0, 1)
    if body.get("parallel_tool_calls") is not None:
        extra["parallel_tool_calls"] = echo["parallel_tool_calls"] = _C.boolean(body["parallel_tool_calls"],
                                                                                "parallel_tool_calls")
    if body.get("metadata") is not None:
        chat["metadata"] = _C.metadata(body["metadata"], "metadata")
    if body.get("user") is not None:
        chat["user"] = _C.string(body["user"], "user", MAX_NAME_CHARS)
    for k in ("safety_identifier", "prompt_cache_key"):  # accepted, not forwarded (nothing to route or bill)
        if body.get(k) is not None:
            _C.string(body[k], k, MAX_NAME_CHARS)
    if body.get("include") is not None:
        for i, x in enumerate(_C.arr(body["include"], "include", 64)):
            _C.string(x, f"include[{i}]", MAX_NAME_CHARS)
    if body.get("truncation") is not None:
        echo["truncation"] = _C.enum(body["truncation"], "truncation", ("auto", "disabled"))
    so = body.get("stream_options")
    if so is not None:
        _C.obj(so, "stream_options")
        _C.only(so, "stream_options", ("include_obfuscation",))
        if so.get("include_obfuscation") is not None:
            _C.boolean(so["include_obfuscation"], "stream_options.include_obfuscation")
    stream = _C.boolean(body["stream"], "stream") if body.get("stream") is not None else False
    store = _C.boolean(body["store"], "store") if body.get("store") is not None else True
    prev = None
    if body.get("previous_response_id") is not None:
        prev = _C.string(body["previous_response_id"], "previous_response_id", MAX_NAME_CHARS)
    if not msgs and prev is None:
        raise WireError("Missing required parameter: 'input'." if inp is None else "Invalid 'input': empty array.",
                        param="input", code="missing_required_parameter" if inp is None else "empty_array")
    if stream:
        chat["stream"] = True
    if extra:
        chat["extra"] = extra
    for k in ("max_output_tokens", "temperature", "top_p", "user"):
        echo[k] = body.get(k)
    echo["metadata"] = body.get("metadata") or {}
    return ResponsesRequest(chat=chat, messages=msgs, instructions=instructions, stream=stream, store=store,
                            previous_response_id=prev, echo=echo)


def to_chat_request(r: ResponsesRequest, history: list[dict[str, Any]] | None = None) -> ChatRequest:
    """The chat request the router sees: instructions, the stored conversation (from
    previous_response_id), then this input; parsed by the chat path itself."""
    body = {k: v for k, v in r.chat.items() if k != "extra"}
    body.update(r.chat.get("extra", {}))
    msgs = ([{"role": "system", "content": r.instructions}] if r.instructions else []) + (history or []) + r.messages
    if not msgs:
        raise WireError("Invalid 'input': empty array.", param="input", code="empty_array")
    body["messages"] = msgs
    try:
        req, _ = ow.parse_chat_request(body)
    except WireError as e:
        _rename(e)
        raise
    return req


def _rename(e: WireError) -> None:
    """A chat parser error on a field this module translated: name the Responses field."""
    p = e.param or ""
    head = p.split(".", 1)[0].split("[", 1)[0]
    new = _CHAT_PATHS.get(head)
    if new is None:
        return
    renamed = new if head == "messages" else new + p[len(head):]  # message indexes differ from input's
    e.param, e.message = renamed, e.message.replace(p, renamed)


# ---------------------------------------------------------------- the answer

def usage_json(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}]}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def status_of(finish: str) -> tuple[str, dict[str, Any] | None]:
    """A chat finish reason -> (response status, incomplete_details)."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_items(resp: ChatResponse) -> list[dict[str, Any]]:
    status = "incomplete" if resp.finish_reason in ("length", "content_filter") else "completed"
    out = []
    if resp.reasoning:
        out.append(reasoning_item(new_id("rs"), resp.reasoning, status))
    if resp.text or not resp.tool_calls:
        out.append(message_item(new_id("msg"), resp.text, status))
    for c in resp.tool_calls:
        out.append(call_item(new_id("fc"), c.id, c.name, c.arguments, "completed"))
    return out


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any]:
    """The output items as the chat assistant message a follow-up request carries."""
    text = "".join(p["text"] for it in output if it["type"] == "message" for p in it["content"])
    calls = [{"id": it["call_id"], "type": "function", "function": {"name": it["name"], "arguments": it["arguments"]}}
             for it in output if it["type"] == "function_call"]
    msg: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def response_body(r: ResponsesRequest, *, rid: str, created_at: float, model: str, status: str,
                  output: list[dict[str, Any]], usage: Usage | None, store: bool,
                  incomplete: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `response` object (also the `response` of the stream's lifecycle events)."""
    return {
        "id": rid, "object": "response", "created_at": created_at, "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error, "incomplete_details": incomplete, "instructions": r.instructions,
        "max_output_tokens": r.echo.get("max_output_tokens"), "model": model, "output": output,
        "parallel_tool_calls": r.echo["parallel_tool_calls"], "previous_response_id": r.previous_response_id,
        "reasoning": r.echo["reasoning"], "store": store, "temperature": r.echo.get("temperature"),
        "text": r.echo["text"], "tool_choice": r.echo["tool_choice"], "tools": r.echo["tools"],
        "top_p": r.echo.get("top_p"), "truncation": r.echo["truncation"], "usage": usage_json(usage),
        "user": r.echo.get("user"), "metadata": r.echo["metadata"],
    }


def dumps(d: dict[str, Any]) -> bytes:
    return orjson.dumps(d)
