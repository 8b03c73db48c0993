"""Shared helpers for the OpenAI-compatible adapter tests (fixtures + respx routes)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from router.types import ChatRequest, Message

FIX = Path(__file__).resolve().parents[1] / "fixtures"
KEY = "sk-test-0123456789abcdefSECRET"
NOW = 1_745_000_000.0


def fx(path: str) -> bytes:
    return (FIX / path).read_bytes()


def fx_headers(path: str) -> dict[str, str]:
    return json.loads((FIX / path).read_text())


def sse_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), "content-type": "text/event-stream; charset=utf-8"}


def json_resp(status: int, path: str | bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    body = fx(path) if isinstance(path, str) else path
    return httpx.Response(status, content=body, headers={"content-type": "application/json", **(headers or {})})


def req(model: str = "gpt-4o-mini", text: str = "hi", **kw) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)], **kw)


class Sleeps(list):
    async def __call__(self, s: float) -> None:
        self.append(s)


def provider(vendor: str = "openai", *, client: httpx.AsyncClient | None = None, retries: int = 1,
             **kw) -> OpenAIProvider:
    return OpenAIProvider(api_key=KEY, vendor=vendor, client=client or httpx.AsyncClient(),
                          retry=RetryPolicy(max_attempts=retries, sleep=Sleeps()), clock=lambda: NOW, **kw)


async def collect(p: OpenAIProvider, r: ChatRequest) -> list:
    return [ev async for ev in p.stream(r)]
