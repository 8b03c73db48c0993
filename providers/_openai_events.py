"""OpenAI chat-completions response parsing for `providers.openai` (and every
OpenAI-compatible vendor): usage (incl. DeepSeek/Groq/Moonshot variants), finish
reasons, a `chat.completion` body -> StreamEvents, `chat.completion.chunk`s ->
StreamEvents (`StreamState`). Pure.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.types import FinishEvent, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, Usage, UsageEvent

__all__ = ["parse_usage", "map_finish", "events_from_json", "StreamState", "lean_text", "LeanText"]

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
           "content_filter": "content_filter", "error": "error", "end_turn": "stop", "eos": "stop",
           "sensitive": "content_filter",  # Zhipu: output blocked by content safety
           "network_error": "error",  # Zhipu
           "insufficient_system_resource": "error"}  # DeepSeek: inference cut for lack of resources


def _int(v: Any) -> int:
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return max(0, v)
    if isinstance(v, float) and v == v:
        return max(0, int(v))
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return 0


def parse_usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    ptd = u.get("prompt_tokens_details") if isinstance(u.get("prompt_tokens_details"), dict) else {}
    ctd = u.get("completion_tokens_details") if isinstance(u.get("completion_tokens_details"), dict) else {}
    inp = _int(u.get("prompt_tokens", u.get("input_tokens")))
    hit, miss = _int(u.get("prompt_cache_hit_tokens")), _int(u.get("prompt_cache_miss_tokens"))  # DeepSeek
    if not inp and (hit or miss):
        inp = hit + miss
    cached = _int(ptd.get("cached_tokens")) or hit or _int(u.get("cached_tokens"))
    return Usage(input_tokens=inp, output_tokens=_int(u.get("completion_tokens", u.get("output_tokens"))),
                 cache_read_tokens=cached, cache_write_tokens=_int(ptd.get("cache_write_tokens")),
                 reasoning_tokens=_int(ctd.get("reasoning_tokens")))


def map_finish(raw: Any) -> tuple[str, dict[str, Any]]:
    if raw is None:
        return "unknown", {}
    fr = _FINISH.get(str(raw))
    if fr is None:
        return "unknown", {"finish_reason_raw": str(raw)}
    return fr, ({"finish_reason_raw": str(raw)} if fr != raw else {})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some vendors (Mistral) return content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _usages(chunk: dict[str, Any]) -> list[Usage]:
    out = [parse_usage(chunk.get("usage"))]
    xg = chunk.get("x_groq")
    if isinstance(xg, dict):
        out.append(parse_usage(xg.get("usage")))  # Groq streams
    for ch in chunk.get("choices") or []:
        if isinstance(ch, dict):
            out.append(parse_usage(ch.get("usage")))  # Moonshot streams
    return [u for u in out if u is not None]


def events_from_json(data: dict[str, Any]) -> list[StreamEvent]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices in response")
    ch = choices[0]
    msg = ch.get("message") if isinstance(ch.get("message"), dict) else {}
    evs: list[StreamEvent] = []
    r = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(r, str) and r:
        evs.append(ReasoningDelta(text=r))
    t = _text_of(msg.get("content"))
    if t:
        evs.append(TextDelta(text=t))
    for i, tc in enumerate(msg.get("tool_calls") or []):
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        args = fn.get("arguments")
        evs.append(ToolCallDelta(index=i, id=tc.get("id"), name=fn.get("name"),
                                 arguments=args if isinstance(args, str) else orjson.dumps(args or {}).decode()))
    for u in _usages(data):
        evs.append(UsageEvent(usage=u))
    if ch.get("finish_reason") is None and not any(e.kind in ("text", "reasoning", "tool_call") for e in evs):
        raise ValueError("no content and no finish_reason in the choice")  # never a silently empty answer
    fr, details = map_finish(ch.get("finish_reason"))
    if msg.get("refusal"):
        details["refusal"] = msg["refusal"]
    rid, model = data.get("id"), data.get("model")
    evs.append(FinishEvent(finish_reason=fr, id=rid if isinstance(rid, str) else None,  # type: ignore[arg-type]
                           model=model if isinstance(model, str) and model else None, provider_details=details))
    return evs


_MARK = b'"delta":{"content":"'
# Keys that make a chunk more than "text for choice 0": usage, errors (OpenRouter, MiniMax),
# Groq's usage, tool calls, reasoning, refusals, a role, a second choice or delta.
_NOT_LEAN = (b'"usage":{', b'"error"', b'"base_resp"', b'"x_groq"', b'"tool_calls"', b'"reasoning', b'"refusal":"',
             b'"role"', b'"delta"', b'"content"', b'"function_call"')


def _end_quote(data: bytes, s: int) -> int:
    """Where the JSON string whose text starts at `s` ends (its closing quote), or -1."""
    e = data.find(b'"', s)
    while e > 0 and data[e - 1] == 92:  # a backslash before the quote: escaped unless the run is even
        k = e - 1
        while data[k] == 92:
            k -= 1
        if (e - 1 - k) % 2 == 0:
            break
        e = data.find(b'"', e + 1)
    return e


def _decode(data: bytes, s: int, e: int) -> str | None:
    lit = data[s:e]
    try:
        return orjson.loads(data[s - 1:e + 1]) if 92 in lit else lit.decode()
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return None


def _scan(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the text of a text-only chunk (see `lean_text`), else None."""
    i = data.find(_MARK)
    if i < 0 or data[:1] != b"{" or data[-1:] != b"}":
        return None
    s = i + len(_MARK)
    e = _end_quote(data, s)
    if e < 0 or data[e + 1:e + 2] != b"}":
        return None
    rest = data[:i] + data[e + 2:]
    for bad in _NOT_LEAN:
        if bad in rest:
            return None
    j = rest.find(b'"index":')
    if j < 0 or rest[j + 8:j + 10] not in (b"0,", b"0}") or rest.find(b'"index":', j + 1) >= 0:
        return None
    f = rest.find(b'"finish_reason":')
    if f >= 0 and rest[f + 16:f + 20] != b"null":
        return None
    if b'"choices":[{' not in rest or rest.count(b"{") != rest.count(b"}") or rest.count(b"[") != rest.count(b"]"):
        return None  # (a brace or bracket inside another string, e.g. the id, only costs the full parse)
    return s, e


def lean_text(data: bytes) -> str | None:
    """The text of a chunk that carries nothing but text for choice 0, read by a flat scan of
    its bytes (no JSON parse); None when the chunk is anything else (the full parse then).

    A JSON string cannot contain `"key":` unescaped, so looking for keys in the bytes
    outside the one string literal is exact: the chunk must be an object whose only delta
    is `{"content": "..."}`, with one choice of index 0, `finish_reason` null or absent,
    and no usage, error, tool call or reasoning; its braces and brackets must balance.
    Malformed JSON elsewhere in such a chunk is not noticed (its text is well formed)."""
    se = _scan(data)
    return None if se is None else _decode(data, *se)


class LeanText:
    """`lean_text` for one stream: a vendor sends the same bytes around every text (same id,
    model, created), so once a chunk passed the scan, a chunk with the same bytes before
    and after its text is read with two comparisons."""

    __slots__ = ("head", "tail")

    def __init__(self) -> None:
        self.head = self.tail = b""

    def __call__(self, data: bytes) -> str | None:
        head = self.head
        if head and data.startswith(head):
            s = len(head)
            e = _end_quote(data, s)
            if e > 0 and data[e + 1:] == self.tail:
                return _decode(data, s, e)
        se = _scan(data)
        if se is None:
            return None
        s, e = se
        self.head, self.tail = data[:s], data[e + 1:]
        return _decode(data, s, e)


class StreamState:
    """Turns chat.completion.chunk dicts into events; remembers usage and finish."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.details: dict[str, Any] = {}
        self.id: str | None = None
        self.model: str | None = None
        self.tool_ids: dict[str, int] = {}
        self.last_tool = -1
        self.output = False  # any text, reasoning or tool call seen

    def _tool_index(self, tc: dict[str, Any]) -> int:
        idx, tid = tc.get("index"), tc.get("id")
        if isinstance(idx, int):
            if tid:
                self.tool_ids[tid] = idx
            self.last_tool = idx
            return idx
        # Moonshot may omit `index` (vercel/ai#19727): new id -> next slot, else the last one
        if tid and tid not in self.tool_ids:
            self.tool_ids[tid] = self.last_tool = max(self.tool_ids.values(), default=-1) + 1
        elif tid:
            self.last_tool = self.tool_ids[tid]
        return max(self.last_tool, 0)

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        evs: list[StreamEvent] = []
        if isinstance(chunk.get("id"), str):
            self.id = self.id or chunk["id"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        for ch in chunk.get("choices") or []:
            if not isinstance(ch, dict) or ch.get("index", 0) not in (0, None):
                continue
            d = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
            r = d.get("reasoning_content") or d.get("reasoning")
            if isinstance(r, str) and r:
                evs.append(ReasoningDelta(text=r))
            t = _text_of(d.get("content"))
            if t:
                evs.append(TextDelta(text=t))
            for tc in d.get("tool_calls") or []:
                if not isinstance(tc, dict):
                    continue
                fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
                args = fn.get("arguments")
                evs.append(ToolCallDelta(index=self._tool_index(tc), id=tc.get("id"), name=fn.get("name"),
                                         arguments=args if isinstance(args, str) else ""))
            if ch.get("finish_reason") is not None:
                self.finish, det = map_finish(ch.get("finish_reason"))
                self.details.update(det)
        self.output = self.output or bool(evs)
        for u in _usages(chunk):
            self.usage = u if self.usage is None else self.usage.model_copy(update={
                k: max(getattr(self.usage, k), getattr(u, k)) for k in Usage.model_fields})
            evs.append(UsageEvent(usage=u))
        return evs

    def finish_event(self) -> FinishEvent:
        return FinishEvent(finish_reason=self.finish or "unknown", id=self.id, model=self.model,  # type: ignore[arg-type]
                           provider_details=dict(self.details))
