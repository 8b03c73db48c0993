"""The proxy honours the same per-attempt limits as the SDK: built exactly as
`quotaroute serve` builds it (a config file, one shared aiohttp-backed client), it fails
over a silent upstream within the configured limits, once per model, and answers from a
slow model that starts within its limit. Real sockets on 127.0.0.1 for the upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from router.sdk import Router
from router.server.aiohttp_transport import aiohttp_client
from router.server.app import create_app
from router.server.cli import load_settings
from tests.providers._stall_server import StallServer

SLACK = 3.0
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def server() -> AsyncIterator[StallServer]:
    async with StallServer() as s:
        yield s


def write_config(tmp_path: Path, server: StallServer, first: str, *, provider_timeouts: str,
                 first_override: str = "") -> str:
    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text(f"""
providers:
  up:
    vendor: openai
    base_url: {server.url}
    api_key_env: QR_TEST_UP_KEY
    timeouts: {provider_timeouts}
models:
  include: ["up:{first}", "up:ok"]
  overrides:
    "up:{first}": {{context_window: 8000, price: {{input: 1, output: 2}}{first_override}}}
    "up:ok": {{context_window: 8000, price: {{input: 5, output: 10}}}}
policy: {{default: cheapest}}
ledger: {{store: memory}}
retry: {{max_attempts: 3}}
""")
    return str(cfg)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QR_TEST_UP_KEY", "sk-test")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path / "home"))
    return tmp_path


class Proxy:
    """The app as `quotaroute serve` builds it (router/server/cli.py: one shared aiohttp
    client with its default timeout, `Router.from_config(config, http_client=...)`)."""

    def __init__(self, config: str) -> None:
        import aiohttp  # noqa: F401 - imported on first use otherwise, inside the first 0.3 s limit

        self.upstream = aiohttp_client()
        self.app = create_app(Router.from_config(config, http_client=self.upstream), load_settings(config))
        self.http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://t", timeout=60)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self.http.post(path, json=body)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.app.aclose()
        await self.upstream.aclose()


def text_of(r: Any, stream: bool) -> str:
    if not stream:
        return str(r.json()["choices"][0]["message"]["content"])
    import json

    out = []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for c in json.loads(line[6:]).get("choices") or []:
                out.append(c["delta"].get("content") or "")
    return "".join(out)


FAST = "{connect_s: 0.5, first_byte_s: 0.3, idle_s: 0.3}"


@pytest.mark.parametrize("fault", ["silent", "headers"])
@pytest.mark.parametrize("stream", [False, True])
async def test_proxy_fails_over_a_silent_upstream_within_the_limit(env: Path, server: StallServer, fault: str,
                                                                   stream: bool) -> None:
    p = Proxy(write_config(env, server, fault, provider_timeouts=FAST))
    t0 = time.monotonic()
    r = await p.post("/v1/chat/completions", {"model": "auto", "messages": MSG, "max_tokens": 4, "stream": stream})
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.headers["x-quotaroute-model"] == "up:ok"
    assert text_of(r, stream) == "hello from ok"
    assert took < 0.3 + 4 / 25 + SLACK
    assert server.hits[fault] == 1  # no same-model retry after a timeout
    await p.aclose()


async def test_proxy_uses_the_per_model_override(env: Path, server: StallServer) -> None:
    """The provider allows 30 s; `models.overrides.<id>.timeouts` cuts the silent model to 0.3 s."""
    cfg = write_config(env, server, "silent", provider_timeouts="{first_byte_s: 30, idle_s: 30}",
                       first_override=", timeouts: {first_byte_s: 0.3}")
    p = Proxy(cfg)
    t0 = time.monotonic()
    r = await p.post("/v1/chat/completions", {"model": "auto", "messages": MSG, "stream": True})
    assert r.status_code == 200 and text_of(r, True) == "hello from ok"
    assert time.monotonic() - t0 < 0.3 + SLACK and server.hits["silent"] == 1
    await p.aclose()


async def test_proxy_answers_from_a_slow_model_within_its_limit(env: Path, server: StallServer) -> None:
    p = Proxy(write_config(env, server, "slow-0.5",
                           provider_timeouts="{connect_s: 0.5, first_byte_s: 2, idle_s: 0.3}"))
    for stream in (False, True):
        r = await p.post("/v1/chat/completions", {"model": "auto", "messages": MSG, "max_tokens": 4,
                                                  "stream": stream})
        assert r.status_code == 200 and r.headers["x-quotaroute-model"] == "up:slow-0.5"
        assert text_of(r, stream) == "hello from slow-0.5"
    assert server.hits["ok"] == 0
    await p.aclose()


async def test_proxy_anthropic_endpoint_fails_over_too(env: Path, server: StallServer) -> None:
    p = Proxy(write_config(env, server, "silent", provider_timeouts=FAST))
    r = await p.post("/v1/messages", {"model": "auto", "max_tokens": 4, "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "hello from ok" and server.hits["silent"] == 1
    await p.aclose()
