"""Cascade answer check: is a cheap model's answer good enough to stop, or should the
cascade escalate? Empty answers, refusals, JSON that breaks the requested
`response_format`, and an optional caller `Verifier` (sync or async).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from router.types import ChatRequest, ChatResponse

__all__ = ["Verifier", "check_response"]

Verifier = Callable[[ChatResponse, ChatRequest], "bool | Awaitable[bool]"]
_REFUSALS = ("i can't help with", "i cannot help with", "i can't assist", "i cannot assist", "i'm sorry, but i can",
             "i am sorry, but i can", "i'm unable to help", "i won't be able to help", "as an ai language model, i cannot")


async def check_response(resp: ChatResponse, req: ChatRequest, verifier: Verifier | None = None) -> str | None:
    """Cascade check: None when the answer is acceptable, else why not."""
    if not resp.text.strip() and not resp.tool_calls:
        return "empty answer"
    head = resp.text[:200].lower()
    if any(r in head for r in _REFUSALS) or resp.finish_reason == "content_filter":
        return "refused"
    rf = req.response_format
    if rf is not None and rf.type in ("json_object", "json_schema") and not resp.tool_calls:
        why = _json_problem(resp.text, rf.json_schema if rf.type == "json_schema" else None)
        if why:
            return why
    if verifier is not None:
        ok = verifier(resp, req)
        if asyncio.iscoroutine(ok) or isinstance(ok, Awaitable):
            ok = await ok  # type: ignore[misc]
        if not ok:
            return "verifier rejected the answer"
    return None


def _json_problem(text: str, spec: Mapping[str, Any] | None) -> str | None:
    t = text.strip()
    if t.startswith("```"):
        t = t.strip("`").removeprefix("json").strip()
    try:
        val = json.loads(t)
    except ValueError as e:
        return f"invalid JSON ({e.msg})"
    schema = (spec or {}).get("schema") if spec else None
    if isinstance(schema, Mapping):
        typ = schema.get("type")
        if typ == "object" and not isinstance(val, dict):
            return "JSON is not an object"
        if typ == "array" and not isinstance(val, list):
            return "JSON is not an array"
        if isinstance(val, dict):
            missing = [k for k in schema.get("required", ()) if k not in val]
            if missing:
                return f"JSON lacks required {', '.join(missing)}"
    return None
