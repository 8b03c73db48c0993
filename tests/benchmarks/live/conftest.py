"""Shared helpers for the live-benchmark tests (offline: fakes and respx only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from benchmarks.live import RunOptions
from benchmarks.suite import load_suite
from router.errors import ProviderError
from router.types import ChatRequest, ChatResponse, FinishEvent, StreamEvent, TextDelta, Usage, UsageEvent, accumulate

MINI = """\
name: mini
judge: {model: "fk:judge"}
items:
  - id: m1
    task: math
    prompt: "What is 17*23?"
    reference: "The answer is 391."
    scorer: {type: numeric, expected: 391}
  - id: m2
    task: math
    prompt: "What is 2+2?"
    reference: "4"
    scorer: {type: numeric, expected: 4}
  - id: e1
    task: extraction
    prompt: "Extract the name from: Ada wrote it."
    reference: '{"name": "Ada"}'
    scorer: {type: json_schema, schema: {type: object, required: [name]}, expected: {name: Ada}}
  - id: t1
    task: translation
    prompt: "Say OK"
    reference: "OK"
    scorer: {type: normalized, expected: ok}
"""


@pytest.fixture
def mini_suite(tmp_path):  # type: ignore[no-untyped-def]
    p = tmp_path / "mini.yaml"
    p.write_text(MINI, encoding="utf-8")
    return load_suite(p)


class FakeClock:
    """A clock + sleep pair: sleeping advances time instantly (no real waiting)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += max(0.0, s)


def fast_options(clock: FakeClock, **kw: Any) -> RunOptions:
    return RunOptions(sleep=clock.sleep, clock=clock, **kw)


class ItemProvider:
    """Answers each suite item with its reference (or `wrong` for ids in `wrong_ids`),
    raising `errors[call_number]` when scripted. Counts calls per (model, item)."""

    def __init__(self, suite, *, wrong_ids=(), errors: dict[int, ProviderError] | None = None,  # type: ignore[no-untyped-def]
                 fail_after: int | None = None, fail_with: ProviderError | None = None,
                 usage: tuple[int, int] = (100, 50)) -> None:
        self.name = "fk"
        self.items = {it.id: it for it in suite.items}
        self.wrong_ids = set(wrong_ids)
        self.errors = dict(errors or {})
        self.fail_after, self.fail_with = fail_after, fail_with
        self.usage = usage
        self.n = 0
        self.calls: list[tuple[str, str]] = []

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.n += 1
        n = self.n
        if n in self.errors:
            raise self.errors[n]
        if self.fail_after is not None and n > self.fail_after and self.fail_with is not None:
            raise self.fail_with
        iid = str(req.metadata.get("bench_item") or req.metadata.get("bench_judge"))
        self.calls.append((req.model, iid))
        if "bench_judge" in req.metadata:
            text = "fine.\nSCORE: 8"
        else:
            item = self.items[iid]
            text = "no idea" if iid in self.wrong_ids else (item.reference or "")
        yield TextDelta(text=text)
        yield UsageEvent(usage=Usage(input_tokens=self.usage[0], output_tokens=self.usage[1]))
        yield FinishEvent(finish_reason="stop")

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return accumulate([e async for e in self.stream(req)], provider=self.name, model=req.model)

    async def aclose(self) -> None:
        return None


def price(i: str = "1", o: str = "2") -> Any:
    from benchmarks.live_backends import SimplePrice

    return SimplePrice(Decimal(i), Decimal(o))
