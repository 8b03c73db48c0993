"""A scripted provider for router, proxy and benchmark tests (no HTTP).

Each call pops the next `Script` (or reuses the last one when `repeat_last`):
a script is either a list of events to stream / accumulate, or an exception to
raise (optionally after some events, to model a stream cut mid-answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from router.errors import ProviderError
from router.types import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    StreamEvent,
    TextDelta,
    Usage,
    UsageEvent,
    accumulate,
)

__all__ = ["Script", "FakeProvider", "reply"]


@dataclass
class Script:
    events: Sequence[StreamEvent] = ()
    error: ProviderError | None = None  # raised after `events` have been yielded
    latency_s: float = 0.0  # before the first event
    per_event_s: float = 0.0


def reply(text: str = "ok", *, input_tokens: int = 10, output_tokens: int = 5, finish: str = "stop",
          chunks: int = 1, **kw: object) -> Script:
    """A successful answer split into `chunks` text deltas, with usage and finish."""
    n = max(1, chunks)
    step = max(1, -(-len(text) // n)) if text else 1
    parts = [text[i:i + step] for i in range(0, len(text), step)] or [""]
    evs: list[StreamEvent] = [TextDelta(text=p) for p in parts]
    evs.append(UsageEvent(usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens)))
    evs.append(FinishEvent(finish_reason=finish))  # type: ignore[arg-type]
    return Script(events=evs, **kw)  # type: ignore[arg-type]


@dataclass
class FakeProvider:
    name: str = "fake"
    scripts: list[Script] = field(default_factory=lambda: [reply()])
    repeat_last: bool = True
    sleep: Callable[[float], object] = asyncio.sleep
    calls: list[ChatRequest] = field(default_factory=list)
    closed: bool = False
    prefill: bool = False  # continues a trailing assistant message (finishing a cut stream)

    def _next(self, req: ChatRequest) -> Script:
        self.calls.append(req)
        if not self.scripts:
            raise AssertionError(f"FakeProvider {self.name}: no script left for call {len(self.calls)}")
        if len(self.scripts) == 1 and self.repeat_last:
            return self.scripts[0]
        return self.scripts.pop(0)

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        s = self._next(req)
        if s.latency_s:
            await self.sleep(s.latency_s)  # type: ignore[misc]
        for ev in s.events:
            if s.per_event_s:
                await self.sleep(s.per_event_s)  # type: ignore[misc]
            yield ev
        if s.error is not None:
            raise s.error

    async def complete(self, req: ChatRequest) -> ChatResponse:
        events = [ev async for ev in self.stream(req)]
        return accumulate(events, provider=self.name, model=req.model)

    async def aclose(self) -> None:
        self.closed = True
