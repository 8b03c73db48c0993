"""`--fake` mode: scripted, clearly fake models for trying the live bench offline.

`fake:good` answers ~90% of items with the item's `reference`, `fake:cheap` ~60%
(which items is a fixed hash of model+item, so runs are reproducible); wrong
answers are plausible-looking but wrong. `fake:judge` grades by comparing the
candidate with the reference. Token counts are derived from text lengths and the
latencies are simulated (a few tens of ms). Nothing here measures a real model.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from benchmarks.live_backends import SimplePrice
from benchmarks.scorers import normalize_text
from benchmarks.suite import Suite, SuiteItem
from router.types import ChatRequest, ChatResponse, FinishEvent, StreamEvent, TextDelta, Usage, UsageEvent, accumulate

__all__ = ["FAKE_MODELS", "FakeBenchProvider", "fake_prices"]

# model -> (share answered right, verbosity factor, latency range ms, price in/out per 1M USD)
FAKE_MODELS: dict[str, tuple[float, float, tuple[int, int], tuple[str, str]]] = {
    "good": (0.9, 3.0, (40, 120), ("3.00", "15.00")),
    "cheap": (0.6, 1.0, (10, 40), ("0.10", "0.40")),
    "judge": (1.0, 1.0, (5, 15), ("0.15", "0.60")),
}


def fake_prices(models: list[str]) -> dict[str, SimplePrice]:
    return {m: SimplePrice(*FAKE_MODELS.get(m.partition(":")[2], FAKE_MODELS["cheap"])[3]) for m in models}


def _unit(*parts: str) -> float:
    h = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _wrong(item: SuiteItem) -> str:
    kind = item.scorer["type"]
    if kind == "python_tests":
        return "```python\ndef solve(*args, **kwargs):\n    return None\n```"
    if kind == "json_schema":
        return '{"note": "could not extract"}'
    if kind == "numeric":
        exp = float(item.scorer["expected"])
        return f"The answer is {exp + 1 if exp == int(exp) else exp * 1.5:g}."
    return "I am not sure; it depends on the context."


class FakeBenchProvider:
    """A Provider answering suite items by id (req.metadata['bench_item'])."""

    def __init__(self, name: str, suite: Suite, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.name = "fake"
        self.suite_items = {it.id: it for it in suite.items}
        self.sleep = sleep
        self.calls = 0

    def _answer(self, req: ChatRequest) -> tuple[str, str, float, int]:
        model = req.model
        share, verbose, (lo, hi), _ = FAKE_MODELS.get(model, FAKE_MODELS["cheap"])
        if "bench_judge" in req.metadata:
            item = self.suite_items.get(str(req.metadata["bench_judge"]))
            body = req.messages[-1].text()
            cand = body.rsplit("## Candidate answer\n", 1)[-1]
            ref = normalize_text(item.reference or "") if item else ""
            good = bool(ref) and (ref[:40] in normalize_text(cand))
            text = f"Compared with the reference.\nSCORE: {9 if good else 3}"
            return text, "", 1.0, lo
        iid = str(req.metadata.get("bench_item", ""))
        item = self.suite_items.get(iid)
        right = item is not None and item.reference is not None and _unit(model, iid) < share
        text = item.reference if right and item and item.reference else (_wrong(item) if item else "?")
        ms = lo + (hi - lo) * _unit("lat", model, iid, str(self.calls))
        return str(text), iid, verbose, int(ms)

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        text, _, verbose, ms = self._answer(req)
        prompt = req.system_text() + "".join(m.text() for m in req.messages)
        usage = Usage(input_tokens=max(1, len(prompt.encode()) // 4) + 8,
                      output_tokens=max(1, int(len(text.encode()) // 4 * verbose)))
        await self.sleep(ms / 1000 * 0.3)
        half = max(1, len(text) // 2)
        for part in (text[:half], text[half:]):
            if part:
                yield TextDelta(text=part)
            await self.sleep(ms / 1000 * 0.35)
        yield UsageEvent(usage=usage)
        yield FinishEvent(finish_reason="stop", model=req.model)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return accumulate([e async for e in self.stream(req)], provider=self.name, model=req.model)

    async def aclose(self) -> None:
        return None
