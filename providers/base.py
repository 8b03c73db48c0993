"""The Provider protocol every adapter implements (async first).

    name: str
    async complete(req: ChatRequest) -> ChatResponse
    stream(req: ChatRequest) -> AsyncIterator[StreamEvent]
    async aclose() -> None

`req.model` is the vendor's concrete model id (no `provider:` prefix). Adapters take
an injected `httpx.AsyncClient`; they never create global state at import.
Errors are raised as `router.errors.ProviderError` subclasses only.

Optional: `prefill: bool` (default False), True when the vendor continues a trailing
assistant message; the router then may finish a stream another model left cut.
Optional: `async count_tokens(req) -> int` (`TokenCounter`), the vendor's own count of
the request's input tokens (Anthropic count_tokens, Gemini countTokens).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from router.types import ChatRequest, ChatResponse, StreamEvent

__all__ = ["Provider", "TokenCounter"]


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, req: ChatRequest) -> ChatResponse: ...

    def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can ask its vendor how many input tokens a request has (no charge)."""

    async def count_tokens(self, req: ChatRequest) -> int: ...
