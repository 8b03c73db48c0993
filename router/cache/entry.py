"""A cached answer: the `ChatResponse` and the model that gave it, as compact JSON
bytes, and the stream events that replay it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.types import (ChatResponse, FinishEvent, ReasoningDelta, TextDelta, ToolCallDelta, Usage, UsageEvent)

__all__ = ["CachedAnswer", "encode", "decode", "replay_events"]


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    model_id: str  # provider:model that answered when the entry was written
    provider: str
    response: ChatResponse
    created: float  # unix time the entry was written


def encode(model_id: str, provider: str, resp: ChatResponse, now: float) -> bytes:
    """The stored bytes. The vendor's response id is dropped (each replay gets a fresh
    one) and so are rate-limit snapshots (they describe the original call)."""
    r = resp.model_dump(mode="json", exclude={"id", "rate_limits"}, exclude_defaults=True)
    r["usage"] = resp.usage.model_dump(mode="json")
    return orjson.dumps({"m": model_id, "p": provider, "t": now, "r": r})


def decode(raw: bytes) -> CachedAnswer | None:
    """The entry, or None when the bytes are not one (a foreign or damaged value)."""
    try:
        d: Any = orjson.loads(raw)
        return CachedAnswer(model_id=str(d["m"]), provider=str(d["p"]), created=float(d["t"]),
                            response=ChatResponse.model_validate(d["r"]))
    except Exception:  # noqa: BLE001 - anything unreadable is a miss
        return None


def replay_events(resp: ChatResponse) -> list[Any]:
    """The stream events a vendor would have sent for `resp` (reasoning, text, each
    tool call whole, usage, finish): what `accumulate` turns back into `resp`."""
    evs: list[Any] = []
    if resp.reasoning:
        evs.append(ReasoningDelta(text=resp.reasoning))
    if resp.text:
        evs.append(TextDelta(text=resp.text))
    for i, c in enumerate(resp.tool_calls):
        evs.append(ToolCallDelta(index=i, id=c.id, name=c.name, arguments=c.arguments))
    evs.append(UsageEvent(usage=resp.usage if resp.usage is not None else Usage()))
    evs.append(FinishEvent(finish_reason=resp.finish_reason, provider_details=dict(resp.provider_details)))
    return evs
