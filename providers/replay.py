"""A provider that answers with *recorded* outcomes (for the offline demo and tests).

It stands for a real model of a benchmark dataset: for a known prompt it returns the
recorded usage (token counts) and a clearly labelled placeholder text saying whether
the recorded answer was correct. It never invents model output and needs no network.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from router.errors import BadRequest
from router.types import ChatRequest, ChatResponse, FinishEvent, StreamEvent, TextDelta, Usage, UsageEvent, accumulate

__all__ = ["Outcome", "ReplayProvider", "prompt_key"]


def prompt_key(text: str) -> str:
    """Stable key of a prompt text (whitespace-normalized)."""
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Outcome:
    quality: float  # recorded correctness / judge score in 0..1
    input_tokens: int
    output_tokens: int
    label: str = ""  # e.g. the dataset's sample id


class ReplayProvider:
    """`outcomes[(prompt_key, model)]` -> Outcome. `latency_s` simulates vendor latency."""

    def __init__(
        self,
        name: str,
        outcomes: Mapping[tuple[str, str], Outcome],
        *,
        latency_s: float = 0.0,
        strict: bool = True,
    ) -> None:
        self.name = name
        self._outcomes = outcomes
        self.latency_s = latency_s
        self.strict = strict
        self.calls = 0

    def __repr__(self) -> str:
        return f"ReplayProvider({self.name!r}, {len(self._outcomes)} recorded outcomes)"

    def _lookup(self, req: ChatRequest) -> Outcome:
        users = [m for m in req.messages if m.role == "user"]
        text = users[-1].text() if users else ""
        out = self._outcomes.get((prompt_key(text), req.model))
        if out is None:
            if self.strict:
                raise BadRequest(
                    f"no recorded outcome of {req.model} for this prompt (replay provider)",
                    provider=self.name,
                    model=req.model,
                    status=400,
                )
            n = max(1, len(text) // 4)
            out = Outcome(quality=0.0, input_tokens=n, output_tokens=16, label="unrecorded")
        return out

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        out = self._lookup(req)
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        verdict = "correct" if out.quality >= 0.5 else "incorrect"
        yield TextDelta(
            text=f"[recorded outcome, not a live answer] {req.model} answered {out.label or 'this prompt'}: {verdict}"
        )
        yield UsageEvent(usage=Usage(input_tokens=out.input_tokens, output_tokens=out.output_tokens))
        yield FinishEvent(finish_reason="stop", model=req.model, provider_details={"recorded_quality": out.quality})

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return accumulate([ev async for ev in self.stream(req)], provider=self.name, model=req.model)

    async def aclose(self) -> None:
        return None
