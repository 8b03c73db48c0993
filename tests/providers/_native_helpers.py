"""Shared helpers for the native adapter tests (Anthropic, Gemini, Bedrock): fixtures,
request factory, a recording sleep for retry policies, stream collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.types import ChatRequest, Message

__all__ = ["FIXTURES", "fixture_reader", "request_factory", "Sleeps", "collect"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_reader(vendor: str) -> Callable[[str], bytes]:
    """`fx = fixture_reader("gemini")`; `fx("generate_text.json")` -> the fixture's bytes."""
    folder = FIXTURES / vendor

    def fx(name: str) -> bytes:
        return (folder / name).read_bytes()

    return fx


def request_factory(model: str, content: str) -> Callable[..., ChatRequest]:
    """`req = request_factory(model, "Hi")`; `req(**overrides)` -> a one-user-message ChatRequest."""

    def req(**kw: object) -> ChatRequest:
        base: dict[str, object] = {"model": model, "messages": [Message(role="user", content=content)]}
        base.update(kw)
        return ChatRequest(**base)  # type: ignore[arg-type]

    return req


class Sleeps:
    """A `sleep` for RetryPolicy that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, s: float) -> None:
        self.waits.append(s)


async def collect(p: Any, r: ChatRequest) -> list:
    return [ev async for ev in p.stream(r)]
