"""The Responses stream: normalized StreamEvents -> `event: <type>\\ndata: {...}` SSE,
in the order the official openai SDK's stream helper checks:

    response.created, response.in_progress
    per output item, in order of first appearance:
      reasoning:     output_item.added, content_part.added (reasoning_text),
                     reasoning_text.delta..., reasoning_text.done, content_part.done, output_item.done
      message:       output_item.added, content_part.added (output_text),
                     output_text.delta..., output_text.done, content_part.done, output_item.done
      function_call: output_item.added, function_call_arguments.delta...,
                     function_call_arguments.done, output_item.done
    response.completed (or response.incomplete when the token limit or a filter cut it)

A failure after the status line ends the stream with an `error` event and
`response.failed`. Every event carries `sequence_number` (0, 1, 2, ...). Function
calls stay open until the end, so a vendor that interleaves the fragments of
parallel calls is encoded correctly; a text or reasoning item is closed when another
item starts.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.errors import Failure, Unavailable
from router.server.responses_wire import (ResponsesRequest, call_item, message_item, new_id, reasoning_item,
                                          response_body, status_of)
from router.types import Usage

__all__ = ["ResponsesEncoder"]


class _Item:
    __slots__ = ("index", "id", "kind", "parts", "call_id", "name", "done")

    def __init__(self, index: int, kind: str, item_id: str) -> None:
        self.index, self.kind, self.id = index, kind, item_id
        self.parts: list[str] = []
        self.call_id = self.name = ""
        self.done: dict[str, Any] | None = None


class ResponsesEncoder:
    """Turns StreamEvents into Responses SSE events (the interface of the chat encoders:
    start(), event(ev), `usage`, end(); plus failed(f))."""

    def __init__(self, r: ResponsesRequest, model: str, *, rid: str | None = None, store: bool = False) -> None:
        self.r, self.model, self.store = r, model, store
        self.id = rid or new_id("resp")
        self.created_at = int(time.time())
        self.seq = 0
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.items: list[_Item] = []
        self._current: _Item | None = None  # the open text or reasoning item
        self._calls: dict[int, _Item] = {}  # open function calls by the vendor's call index
        self.final: dict[str, Any] | None = None  # the completed response object, once end() ran

    # ------------------------------------------------------------------ framing
    def _ev(self, kind: str, **data: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(self, status: str, output: list[dict[str, Any]], usage: Usage | None, **kw: Any) -> dict[str, Any]:
        return response_body(self.r, rid=self.id, created_at=self.created_at, model=self.model, status=status,
                             output=output, usage=usage, store=self.store, **kw)

    # ------------------------------------------------------------------ items
    def _open(self, kind: str) -> tuple[_Item, bytes]:
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        it = _Item(len(self.items), kind, new_id(prefix))
        self.items.append(it)
        return it, self._ev("response.output_item.added", output_index=it.index, item=self._item(it, "in_progress"))

    def _item(self, it: _Item, status: str) -> dict[str, Any]:
        text = "".join(it.parts)
        if it.kind == "message":
            d = message_item(it.id, text, status)
            if status == "in_progress":
                d["content"] = []
            return d
        if it.kind == "reasoning":
            d = reasoning_item(it.id, text, status)
            if status == "in_progress":
                d["content"] = []
            return d
        return call_item(it.id, it.call_id, it.name, text, status)

    def _part(self, it: _Item, text: str) -> dict[str, Any]:
        if it.kind == "message":
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {"type": "reasoning_text", "text": text}

    def _text_item(self, kind: str) -> tuple[_Item, bytes]:
        cur = self._current
        if cur is not None and cur.kind == kind:
            return cur, b""
        out = self._close(cur) if cur is not None else b""
        it, added = self._open(kind)
        self._current = it
        part = self._ev("response.content_part.added", item_id=it.id, output_index=it.index, content_index=0,
                        part=self._part(it, ""))
        return it, out + added + part

    def _close(self, it: _Item) -> bytes:
        status = "incomplete" if self.finish in ("length", "content_filter") else "completed"
        text = "".join(it.parts)
        where = {"item_id": it.id, "output_index": it.index}
        if it.kind == "function_call":
            out = self._ev("response.function_call_arguments.done", **where, arguments=text)
            status = "completed"
        else:
            self._current = None
            if it.kind == "message":
                out = self._ev("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            else:
                out = self._ev("response.reasoning_text.done", **where, content_index=0, text=text)
            out += self._ev("response.content_part.done", **where, content_index=0, part=self._part(it, text))
        it.done = self._item(it, status)
        return out + self._ev("response.output_item.done", output_index=it.index, item=it.done)

    # ------------------------------------------------------------------ the encoder interface
    def start(self) -> bytes:
        first = self._response("in_progress", [], None)
        return self._ev("response.created", response=first) + self._ev("response.in_progress", response=first)

    def event(self, ev: Any) -> bytes:
        k = ev.kind
        if k == "text" or k == "reasoning":
            if not ev.text:
                return b""
            it, out = self._text_item("message" if k == "text" else "reasoning")
            it.parts.append(ev.text)
            kind = "response.output_text.delta" if k == "text" else "response.reasoning_text.delta"
            extra = {"logprobs": []} if k == "text" else {}
            return out + self._ev(kind, item_id=it.id, output_index=it.index, content_index=0, delta=ev.text, **extra)
        if k == "tool_call":
            out = b""
            it = self._calls.get(ev.index)
            if it is None:
                if self._current is not None:
                    out = self._close(self._current)
                it = _Item(len(self.items), "function_call", new_id("fc"))
                it.call_id, it.name = ev.id or f"call_{ev.index}", ev.name or ""
                self.items.append(it)
                self._calls[ev.index] = it
                out += self._ev("response.output_item.added", output_index=it.index,
                                item=self._item(it, "in_progress"))
            else:
                if ev.id and it.call_id.startswith("call_") and it.call_id == f"call_{ev.index}":
                    it.call_id = ev.id
                if ev.name and not it.name:
                    it.name = ev.name
            if ev.arguments:
                it.parts.append(ev.arguments)
                out += self._ev("response.function_call_arguments.delta", item_id=it.id, output_index=it.index,
                                delta=ev.arguments)
            return out
        if k == "usage":
            self.usage = ev.usage if self.usage is None else _max_usage(self.usage, ev.usage)
            return b""
        if k == "finish":
            if ev.finish_reason == "error":  # a truncated answer is a failure, never a clean finish
                raise Unavailable("the vendor ended the answer early (finish_reason error); the answer is "
                                  "incomplete", model=self.model)
            self.finish = ev.finish_reason
            return b""
        return b""

    def end(self) -> bytes:
        out = b""
        if self._current is not None:
            out += self._close(self._current)
        for it in sorted(self._calls.values(), key=lambda x: x.index):
            if it.done is None:
                out += self._close(it)
        if not self.items:  # an empty answer is still one (empty) message
            it, added = self._text_item("message")
            out += added + self._close(it)
        status, incomplete = status_of(self.finish or "stop")
        self.final = self._response(status, [it.done for it in self.items if it.done is not None], self.usage,
                                    incomplete=incomplete)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._ev(kind, response=self.final)

    def failed(self, f: Failure) -> bytes:
        """The tail of a stream that failed after the status line."""
        err = self._ev("error", code=f.code or f.type, message=f.message, param=f.param)
        output = [it.done if it.done is not None else self._item(it, "incomplete") for it in self.items]
        code = "rate_limit_exceeded" if f.status == 429 else "server_error"
        failed = self._response("failed", output, self.usage, error={"code": code, "message": f.message})
        return err + self._ev("response.failed", response=failed)


def _max_usage(a: Usage, b: Usage) -> Usage:
    return Usage(**{f: max(getattr(a, f), getattr(b, f)) for f in Usage.model_fields})
