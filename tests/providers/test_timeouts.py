"""Per-attempt connect / first-byte / idle limits in the adapters, over real sockets on
127.0.0.1 (tests/providers/_stall_server.py), with httpx's own client (the SDK) and the
proxy's shared aiohttp-backed client. Assertions on time are generous (shared CI box)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from providers._http import Timeouts
from providers.anthropic import AnthropicProvider
from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from router.errors import Timeout, Unavailable
from router.limits import ModelLimits, attempt_limits, calling
from router.server.aiohttp_transport import aiohttp_client
from router.types import ChatRequest, Message, accumulate
from tests.providers._stall_server import StallServer

LIMITS = {"connect_s": 0.5, "first_byte_s": 0.3, "idle_s": 0.3}
SLACK = 3.0  # seconds of scheduling slack allowed on top of a limit


@pytest.fixture
async def server() -> AsyncIterator[StallServer]:
    async with StallServer() as s:
        yield s


@pytest.fixture(params=["httpx", "aiohttp"])
async def client(request: Any) -> AsyncIterator[httpx.AsyncClient]:
    # The proxy's shared client keeps its own (long) default: the adapter's limits must win.
    import aiohttp  # noqa: F401 - imported on first use otherwise, inside the first 0.3 s limit

    c = httpx.AsyncClient(timeout=600.0) if request.param == "httpx" else aiohttp_client(timeout=600.0)
    yield c
    await c.aclose()


def req(model: str, *, stream: bool = False, max_tokens: int | None = 4) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")], stream=stream,
                       max_tokens=max_tokens)


def oai(server: StallServer, client: httpx.AsyncClient, **kw: Any) -> OpenAIProvider:
    kw.setdefault("timeouts", LIMITS)
    return OpenAIProvider(api_key="sk-test", base_url=server.url, client=client,
                          retry=RetryPolicy(max_attempts=3, sleep=_no_sleep), **kw)


async def _no_sleep(_s: float) -> None:
    return None


async def collect(it: AsyncIterator[Any]) -> list[Any]:
    return [ev async for ev in it]


async def timed(coro: Any) -> tuple[BaseException | Any, float]:
    t0 = time.monotonic()
    try:
        out: Any = await coro
    except BaseException as e:  # noqa: BLE001
        out = e
    return out, time.monotonic() - t0


# ------------------------------------------------------------------ pure rules


def test_timeouts_coerce_and_back_compat() -> None:
    assert Timeouts() == Timeouts(5.0, 15.0, 15.0)
    assert Timeouts.coerce({"first_byte_s": 2}) == Timeouts(5.0, 2.0, 15.0)
    assert Timeouts.coerce(None, timeout=10) == Timeouts(5.0, 10.0, 10.0)  # the old single number
    assert Timeouts.coerce(3) == Timeouts(3.0, 3.0, 3.0)
    assert Timeouts.coerce({"idle_s": 1}, timeout=10) == Timeouts(5.0, 10.0, 1.0)
    for bad in ({"first_byte": 1}, {"idle_s": 0}, {"idle_s": float("nan")}, {"idle_s": True}, {"idle_s": "5"}):
        with pytest.raises(ValueError, match="timeouts|timeout"):
            Timeouts.coerce(bad)


def test_attempt_limits_stream_non_stream_and_reasoning() -> None:
    t = Timeouts()
    s = attempt_limits(t, stream=True, max_tokens=100_000, model=ModelLimits())
    assert (s.connect_s, s.first_byte_s, s.idle_s) == (5.0, 15.0, 15.0)  # streams: output size is irrelevant
    assert attempt_limits(t, stream=False, max_tokens=250, model=ModelLimits()).first_byte_s == 25.0  # 15 + 250/25
    assert attempt_limits(t, stream=False, max_tokens=None, model=ModelLimits()).first_byte_s == 15 + 4096 / 25
    assert attempt_limits(t, stream=False, max_tokens=10**9, model=ModelLimits()).first_byte_s == 600.0  # capped
    thinking = ModelLimits(reasoning=True)
    assert attempt_limits(t, stream=False, max_tokens=250, model=thinking).first_byte_s == 180.0
    assert attempt_limits(t, stream=True, max_tokens=250, model=thinking).first_byte_s == 15.0
    # a card that sets its own first-byte limit is taken at its word (no reasoning floor)
    own = ModelLimits(override={"first_byte_s": 40.0, "idle_s": 60.0}, reasoning=True)
    lim = attempt_limits(t, stream=False, max_tokens=250, model=own)
    assert lim.first_byte_s == 50.0 and lim.idle_s == 60.0 and lim.connect_s == 5.0


def test_calling_names_the_card_for_the_attempt() -> None:
    from tests.router.routing_helpers import card

    c = card("p:m", caps=("reasoning",)).model_copy(update={"timeouts": {"idle_s": 2.0}})
    with calling(c):
        lim = attempt_limits(Timeouts(), stream=True)
    assert lim.idle_s == 2.0
    assert attempt_limits(Timeouts(), stream=True).idle_s == 15.0  # outside: the provider's own


def test_adapters_accept_timeouts_and_old_timeout() -> None:
    assert OpenAIProvider(api_key="k", timeouts={"idle_s": 7}).timeouts == Timeouts(5.0, 15.0, 7.0)
    assert OpenAIProvider(api_key="k", timeout=10).timeouts == Timeouts(5.0, 10.0, 10.0)
    assert AnthropicProvider(api_key="k", timeouts=Timeouts(1, 2, 3)).timeouts == Timeouts(1.0, 2.0, 3.0)
    assert AnthropicProvider(api_key="k").timeouts == Timeouts()


# ------------------------------------------------------------------ real sockets


async def test_silent_upstream_times_out_on_first_byte_once(server: StallServer, client: httpx.AsyncClient) -> None:
    p = oai(server, client)
    err, took = await timed(p.complete(req("silent")))
    assert isinstance(err, Timeout) and err.code == "first_byte_timeout", err
    assert took < 0.3 + 4 / 25 + SLACK
    err, took = await timed(collect(p.stream(req("silent", stream=True))))
    assert isinstance(err, Timeout) and err.code == "first_byte_timeout", err
    assert took < 0.3 + SLACK
    assert server.hits["silent"] == 2  # one per call: a timeout is never retried on the same model


async def test_headers_then_nothing_times_out(server: StallServer, client: httpx.AsyncClient) -> None:
    p = oai(server, client)
    err, took = await timed(collect(p.stream(req("headers", stream=True))))
    assert isinstance(err, Timeout) and err.code == "first_byte_timeout", err
    err, took2 = await timed(p.complete(req("headers")))
    assert isinstance(err, Timeout), err
    assert took < 0.3 + SLACK and took2 < 0.5 + SLACK
    assert server.hits["headers"] == 2
    # a stream request answered with JSON headers and a body that never comes: a timeout too
    err, _ = await timed(collect(p.stream(req("jsonstall", stream=True))))
    assert isinstance(err, Timeout) and err.code == "first_byte_timeout", err


async def test_stream_stall_mid_answer_is_an_idle_timeout(server: StallServer, client: httpx.AsyncClient) -> None:
    p = oai(server, client)
    got: list[Any] = []
    t0 = time.monotonic()
    with pytest.raises(Timeout) as ei:
        async for ev in p.stream(req("stall", stream=True)):
            got.append(ev)
    assert ei.value.code == "idle_timeout" and time.monotonic() - t0 < 0.6 + SLACK
    assert "".join(e.text for e in got if e.kind == "text") == "hello from stall"
    assert server.hits["stall"] == 1


async def test_slow_first_byte_within_its_limit_answers(server: StallServer, client: httpx.AsyncClient) -> None:
    p = oai(server, client, timeouts={"first_byte_s": 1.5, "idle_s": 0.3})
    out = await p.complete(req("slow-0.4"))
    assert out.text == "hello from slow-0.4"
    res = accumulate(await collect(p.stream(req("slow-0.4", stream=True))))
    assert res.text == "hello from slow-0.4"


async def test_keep_alives_count_as_alive(server: StallServer, client: httpx.AsyncClient) -> None:
    """A thinking model that streams keep-alive comments every 0.1 s for 0.6 s (longer than
    the 0.3 s first-byte and idle limits) is alive and answers."""
    p = oai(server, client)
    res = accumulate(await collect(p.stream(req("drip-0.1", stream=True))))
    assert res.text == "hello from drip-0.1"


async def test_idle_clock_ignores_a_slow_consumer(server: StallServer, client: httpx.AsyncClient) -> None:
    p = oai(server, client)
    text = []
    async for ev in p.stream(req("ok", stream=True)):
        await asyncio.sleep(0.4)  # longer than idle_s: the time is ours, not the upstream's
        if ev.kind == "text":
            text.append(ev.text)
    assert "".join(text) == "hello from ok"


async def test_card_limits_apply_per_attempt(server: StallServer, client: httpx.AsyncClient) -> None:
    from tests.router.routing_helpers import card

    p = oai(server, client, timeouts={"first_byte_s": 30, "idle_s": 30})
    c = card("openai:silent").model_copy(update={"timeouts": {"first_byte_s": 0.3}})
    with calling(c):
        err, took = await timed(collect(p.stream(req("silent", stream=True))))
    assert isinstance(err, Timeout) and took < 0.3 + SLACK


async def test_connect_timeout_is_typed() -> None:
    """A listener whose accept backlog is full: the SYN is never answered."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the backlog (Linux queues backlog+1)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        p = OpenAIProvider(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(max_attempts=1),
                           timeouts={"connect_s": 0.3, "first_byte_s": 5})
        err, took = await timed(p.complete(req("x")))
        await p.aclose()
    finally:
        for s in fillers:
            s.close()
        lsock.close()
    # On loopback the kernel may instead accept the SYN later; either way no hang.
    assert isinstance(err, (Timeout, Unavailable)), err
    assert took < 5 + SLACK


async def test_anthropic_adapter_honours_the_same_limits(server: StallServer, client: httpx.AsyncClient) -> None:
    p = AnthropicProvider(api_key="k", base_url=f"http://127.0.0.1:{server.port}", client=client,
                          retry=RetryPolicy(max_attempts=3, sleep=_no_sleep), timeouts=LIMITS)
    err, _ = await timed(p.complete(req("silent")))
    assert isinstance(err, Timeout) and err.code == "first_byte_timeout", err
    err, _ = await timed(collect(p.stream(req("stall", stream=True))))
    assert isinstance(err, Timeout) and err.code == "idle_timeout", err
    assert server.hits["silent"] == 1 and server.hits["stall"] == 1
