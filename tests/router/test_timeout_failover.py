"""The SDK fails over a silent or stalled upstream within the configured limits, once per
model (no same-model retry after a timeout), and counts it against the model's health;
a slow model that starts within its limit answers. Real sockets on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from router import Router
from router.catalog import Catalog
from router.errors import NoRouteAvailable
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from tests.providers._stall_server import StallServer
from tests.router.routing_helpers import NOW, card

LIMITS = {"connect_s": 0.5, "first_byte_s": 0.3, "idle_s": 0.3}
SLACK = 3.0


@pytest.fixture
async def server() -> AsyncIterator[StallServer]:
    async with StallServer() as s:
        yield s


def router_for(server: StallServer, first: str, second: str = "ok", *, timeouts: Any = LIMITS,
               first_card: dict[str, Any] | None = None, client: Any = None) -> Router:
    """Two models on one OpenAI-compatible upstream; `first` is cheaper, so it is tried first."""
    a = card(f"up:{first}", "1", "2").model_copy(update=first_card or {})
    b = card(f"up:{second}", "5", "10")
    prov = OpenAIProvider(api_key="sk-test", base_url=server.url, name="up", client=client, timeouts=timeouts,
                          retry=RetryPolicy(max_attempts=3))
    return Router(catalog=Catalog([a, b]), providers={"up": prov}, ledger=Ledger(MemoryStore()), policy="cheapest",
                  clock=lambda: NOW)


def failures(router: Router, model: str) -> int:
    return sum(h["failures"] for k, h in router.health.snapshot().items() if model in k)  # type: ignore[misc]


@pytest.mark.parametrize("fault", ["silent", "headers"])
async def test_non_stream_silent_upstream_fails_over_within_the_limit(server: StallServer, fault: str) -> None:
    router = router_for(server, fault)
    t0 = time.monotonic()
    out = await router.achat("hi", max_tokens=4)
    took = time.monotonic() - t0
    assert out.response.text == "hello from ok" and out.route.model_id == "up:ok"
    assert [(a.model_id, a.error_type) for a in out.route.attempts] == [(f"up:{fault}", "Timeout"), ("up:ok", None)]
    assert took < 0.3 + 4 / 25 + SLACK
    assert server.hits[fault] == 1  # not retried on the same model
    assert failures(router, f"up:{fault}") == 1  # a vendor failure on its health
    await router.aclose()


@pytest.mark.parametrize("fault", ["silent", "headers"])
async def test_stream_silent_upstream_fails_over_within_the_limit(server: StallServer, fault: str) -> None:
    router = router_for(server, fault)
    t0 = time.monotonic()
    s = await router.astream("hi")
    text = "".join([ev.text async for ev in s if ev.kind == "text"])
    assert text == "hello from ok" and s.route.model_id == "up:ok"
    assert time.monotonic() - t0 < 0.3 + SLACK
    assert server.hits[fault] == 1 and failures(router, f"up:{fault}") == 1
    await router.aclose()


async def test_stream_stall_after_the_first_token_ends_with_timeout_and_counts(server: StallServer) -> None:
    """After tokens reached the caller the stream cannot silently switch models: it ends
    with Timeout within the idle limit (never hangs) and the model's health records it."""
    from router.errors import Timeout

    router = router_for(server, "stall")
    s = await router.astream("hi")
    got: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        async for ev in s:
            if ev.kind == "text":
                got.append(ev.text)
    assert time.monotonic() - t0 < 0.3 + SLACK
    assert "".join(got) == "hello from stall" and server.hits["stall"] == 1
    assert failures(router, "up:stall") == 1
    await router.aclose()


async def test_slow_first_token_within_its_limit_answers(server: StallServer) -> None:
    router = router_for(server, "slow-0.5", timeouts={**LIMITS, "first_byte_s": 2.0})
    out = await router.achat("hi", max_tokens=4)
    assert out.route.model_id == "up:slow-0.5" and len(out.route.attempts) == 1
    s = await router.astream("hi")
    assert "".join([ev.text async for ev in s if ev.kind == "text"]) == "hello from slow-0.5"
    assert s.route.model_id == "up:slow-0.5"
    await router.aclose()


async def test_per_model_card_limit_wins_over_the_providers(server: StallServer) -> None:
    """The provider allows 30 s, the card of the silent model 0.3 s: chosen per attempt."""
    router = router_for(server, "silent", timeouts={"first_byte_s": 30, "idle_s": 30},
                        first_card={"timeouts": {"first_byte_s": 0.3}})
    t0 = time.monotonic()
    s = await router.astream("hi")
    assert "".join([ev.text async for ev in s if ev.kind == "text"]) == "hello from ok"
    assert time.monotonic() - t0 < 0.3 + SLACK
    await router.aclose()


async def test_reasoning_card_gets_the_longer_non_stream_limit(server: StallServer) -> None:
    """A reasoning model's non-stream answer may take REASONING_FIRST_BYTE_S; a plain one
    with the same provider limits times out. (slow-1.0 against first_byte 0.3 s.)"""
    plain = router_for(server, "slow-1.0", "silent")
    with pytest.raises(NoRouteAvailable):
        await plain.achat("hi", max_tokens=4)
    await plain.aclose()
    thinking = router_for(server, "slow-1.0", "silent", first_card={"capabilities": frozenset({"reasoning"})})
    out = await thinking.achat("hi", max_tokens=4)
    assert out.response.text == "hello from slow-1.0"
    await thinking.aclose()


async def test_keep_alive_stream_of_a_thinking_model_is_not_cut(server: StallServer) -> None:
    router = router_for(server, "drip-0.1")
    s = await router.astream("hi")
    assert "".join([ev.text async for ev in s if ev.kind == "text"]) == "hello from drip-0.1"
    assert s.route.model_id == "up:drip-0.1" and server.hits["ok"] == 0
    await router.aclose()


async def test_old_single_timeout_still_bounds_the_attempt(server: StallServer) -> None:
    """`timeout=N` (the former keyword) = first byte and idle of N seconds."""
    a, b = card("up:silent", "1", "2"), card("up:ok", "5", "10")
    prov = OpenAIProvider(api_key="sk-test", base_url=server.url, name="up", timeout=0.3)
    router = Router(catalog=Catalog([a, b]), providers={"up": prov}, ledger=Ledger(MemoryStore()),
                    policy="cheapest", clock=lambda: NOW)
    t0 = time.monotonic()
    s = await router.astream("hi")
    assert "".join([ev.text async for ev in s if ev.kind == "text"]) == "hello from ok"
    assert time.monotonic() - t0 < 0.3 + SLACK and server.hits["silent"] == 1
    await router.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False])
async def test_default_limits_fail_over_a_silent_upstream_within_about_20_s(server: StallServer,
                                                                             stream: bool) -> None:
    """With the default limits (5 / 15 / 15 s) a silent upstream costs one first-byte
    limit: 15 s for a stream, 15 + 100/25 = 19 s for a non-stream call with max_tokens 100."""
    router = router_for(server, "silent", timeouts=None)
    t0 = time.monotonic()
    if stream:
        s = await router.astream("hi")
        text = "".join([ev.text async for ev in s if ev.kind == "text"])
    else:
        text = (await router.achat("hi", max_tokens=100)).response.text
    took = time.monotonic() - t0
    assert text == "hello from ok" and server.hits["silent"] == 1
    limit = 15.0 if stream else 19.0
    assert limit - 0.5 <= took < limit + 5.0, took
    await router.aclose()
