"""Streams that break behind the proxy, on both wires: a cut answer ends with an
explicit error event (never a clean finish) or is finished by the fallback model;
a client that stops reading is cut off after the write timeout; each is billed."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from providers.fake import FakeProvider, Script, reply
from router.server.settings import ServerSettings
from router.streaming import delivered_tokens
from router.types import FinishEvent, TextDelta
from tests.router.server.conftest import LiveServer, make_app
from tests.router.server.test_live import _wait
from tests.router.server.test_real_router import MSG, clients, real_router

WORDS = [f"w{i} " for i in range(60)]
FIRST = "".join(WORDS[:20])
REST = "".join(WORDS[20:]).rstrip()


def cut() -> Script:
    """20 of 60 words, then a truncated finish (DeepSeek's insufficient_system_resource maps to this)."""
    return Script(events=[*(TextDelta(text=w) for w in WORDS[:20]), FinishEvent(finish_reason="error")])


def finisher() -> FakeProvider:
    return FakeProvider(name="pb", scripts=[reply(" " + REST, input_tokens=90, output_tokens=40, chunks=5)],
                        prefill=True)


def spend_rows(app: Any, path: Any) -> list[tuple[Any, ...]]:
    app.spend.flush()
    return sqlite3.connect(path).execute(
        "SELECT status, cost_usd, input_tokens, output_tokens, error, fallback_chain FROM spend").fetchall()


BODY = {"model": "auto", "stream": True, "messages": MSG}


async def test_openai_wire_cut_without_a_finisher_ends_with_an_error_chunk(spend_path: Any) -> None:
    router = real_router(pa=FakeProvider(name="pa", scripts=[cut()]),
                         pb=FakeProvider(name="pb", scripts=[reply("never")]))  # no prefill: cannot finish it
    app = make_app(router, spend_path)
    _, _, hc = clients(app)
    r = await hc.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200  # the status line went out with the first token
    body = r.text
    assert '"content":"w19 "' in body  # the 20 words reached the client
    assert 'data: {"error":' in body and "ended the answer early" in body
    assert "[DONE]" not in body and '"finish_reason":"stop"' not in body
    (status, cost, inp, out, err, chain), = spend_rows(app, spend_path)
    assert status == 503 and "ended the answer early" in err and chain == "pa:small,pb:big"
    assert out == delivered_tokens(FIRST) and inp > 0 and Decimal(cost) > 0
    o, _, _ = clients(app)
    with pytest.raises(openai.APIError):  # the real SDK raises on the error chunk instead of returning the stub
        async for _ in await o.chat.completions.create(model="auto", messages=MSG, stream=True):
            pass
    await app.aclose()


async def test_anthropic_wire_cut_without_a_finisher_ends_with_an_error_event(spend_path: Any) -> None:
    router = real_router(pa=FakeProvider(name="pa", scripts=[cut()]),
                         pb=FakeProvider(name="pb", scripts=[reply("never")]))
    app = make_app(router, spend_path)
    _, a, hc = clients(app)
    r = await hc.post("/v1/messages", json={**BODY, "max_tokens": 100})
    assert "event: error" in r.text and "message_stop" not in r.text and "end_turn" not in r.text
    with pytest.raises(anthropic.APIError):
        async with a.messages.stream(model="auto", max_tokens=100, messages=MSG) as st:
            await st.get_final_message()
    await app.aclose()


async def test_cut_stream_is_finished_by_the_fallback_on_both_wires(spend_path: Any) -> None:
    pa, pb = FakeProvider(name="pa", scripts=[cut()]), finisher()
    app = make_app(real_router(pa=pa, pb=pb), spend_path)
    o, a, _ = clients(app)
    chunks = [c async for c in await o.chat.completions.create(model="auto", messages=MSG, stream=True,
                                                               stream_options={"include_usage": True})]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FIRST + REST
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == delivered_tokens(FIRST) + 40  # both attempts
    (status, cost, inp, out, err, chain), = spend_rows(app, spend_path)
    assert status == 200 and chain == "pa:small,pb:big" and out == delivered_tokens(FIRST) + 40
    # pa at $1/$2 per M for what it delivered, pb at $3/$6 per M for what it reported
    want = (Decimal(inp - 90) * 1 + Decimal(delivered_tokens(FIRST)) * 2 + 90 * 3 + 40 * 6) / 1_000_000
    assert Decimal(cost) == want
    pa.scripts, pb.scripts = [cut()], [reply(" " + REST, chunks=3)]
    async with a.messages.stream(model="auto", max_tokens=100, messages=MSG) as st:
        msg = await st.get_final_message()
    assert msg.content[0].text == FIRST + REST and msg.stop_reason == "end_turn"
    await app.aclose()


async def test_error_finish_from_any_stream_is_never_encoded_as_stop(client: Any, fake: FakeProvider) -> None:
    fake.scripts = [Script(events=[TextDelta(text="half an ans"), FinishEvent(finish_reason="error")])]
    r = await client.post("/v1/chat/completions", json={"model": "fake:small", "stream": True, "messages": MSG})
    assert 'data: {"error":' in r.text and "[DONE]" not in r.text
    r = await client.post("/v1/messages", json={"model": "fake:small", "stream": True, "messages": MSG,
                                                "max_tokens": 10})
    assert "event: error" in r.text and "end_turn" not in r.text


# ---------------------------------------------------------------- a client that stops reading


class Endless:
    """Streams 32 KB text deltas until closed; counts what it yielded."""

    name = "pa"

    def __init__(self) -> None:
        self.yielded = 0
        self.closed_after: list[int] = []

    async def stream(self, req: Any) -> Any:
        try:
            while True:
                self.yielded += 1
                yield TextDelta(text="lorem ipsum " * 2730)
                await asyncio.sleep(0)
        finally:
            self.closed_after.append(self.yielded)

    async def complete(self, req: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def test_a_client_that_stops_reading_is_cut_off_and_billed(spend_path: Any) -> None:
    up = Endless()
    router = real_router(pa=up)
    settings = ServerSettings()
    settings.limits = SimpleNamespace(stream_write_timeout_s=0.5)  # type: ignore[attr-defined]
    app = make_app(router, spend_path, settings)
    body = b'{"model":"pa:small","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    with LiveServer(app) as srv:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        try:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: %d\r\n\r\n" % len(body) + body)
            # never read: the proxy's sends block on flow control, then time out
            assert _wait(lambda: bool(up.closed_after), 20), "the upstream stream was never cancelled"
            assert _wait(lambda: bool(spend_rows(app, spend_path)), 20)
        finally:
            s.close()
    (status, cost, inp, out, err, _), = spend_rows(app, spend_path)
    assert status == 499 and "stopped reading" in err
    assert out > 0 and Decimal(cost) > 0  # billed for what was generated, as delivered (no usage reported)
    assert up.closed_after[0] == up.yielded  # closed, not left running


# ---------------------------------------------------------------- real adapters on the vendor wire


def _sse(model: str, words: list[str], finish: str, usage: tuple[int, int]) -> bytes:
    def chunk(delta: dict[str, Any], fr: str | None, extra: str = "") -> bytes:
        import json

        return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                                       "choices": [{"index": 0, "delta": delta, "finish_reason": fr}]}
                                      ).encode()[:-1] + extra.encode() + b"}\n\n"

    out = b"".join(chunk({"content": w}, None) for w in words)
    out += chunk({}, finish, f', "usage": {{"prompt_tokens": {usage[0]}, "completion_tokens": {usage[1]}}}')
    return out + b"data: [DONE]\n\n"


@pytest.mark.parametrize("finisher_vendor", ["deepseek", "openai"])
async def test_real_adapters_cut_then_finished_or_failed(spend_path: Any, finisher_vendor: str) -> None:
    """An OpenAI-wire upstream ends after 20 of 60 words with finish_reason "error". A
    DeepSeek fallback (prefill with `prefix: true`) finishes the answer; an OpenAI one
    (no prefill) cannot, so the client gets an error event."""
    import json

    import httpx

    from providers.openai import OpenAIProvider
    from router.catalog import Catalog
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.sdk import Router
    from tests.router.routing_helpers import card

    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["model"] == "cutter":
            data = _sse("cutter", WORDS[:20], "error", (12, 20))
        else:
            data = _sse(body["model"], [" " + REST], "stop", (40, 40))
        return httpx.Response(200, content=data, headers={"content-type": "text/event-stream"})

    def prov(vendor: str) -> OpenAIProvider:
        return OpenAIProvider(api_key="sk-test", vendor=vendor, base_url="http://upstream.test/v1",
                              client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))

    cat = Catalog([card("cut:cutter", "1", "2"), card(f"{finisher_vendor}:fin", "2", "4")])
    router = Router(catalog=cat, providers={"cut": prov("openai"), finisher_vendor: prov(finisher_vendor)},
                    ledger=Ledger(MemoryStore()), policy="cheapest")
    app = make_app(router, spend_path)
    o, _, _ = clients(app)
    if finisher_vendor == "deepseek":
        chunks = [c async for c in await o.chat.completions.create(model="auto", messages=MSG, stream=True)]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FIRST + REST
        last = seen[-1]["messages"][-1]
        assert last == {"role": "assistant", "content": FIRST.rstrip(), "prefix": True}
        (status, cost, inp, out, err, chain), = spend_rows(app, spend_path)
        assert status == 200 and chain == "cut:cutter,deepseek:fin" and out == delivered_tokens(FIRST) + 40
        assert inp == 12 + 40  # each attempt billed with what its vendor reported
    else:
        with pytest.raises(openai.APIError, match="ended the answer early"):
            async for _ in await o.chat.completions.create(model="auto", messages=MSG, stream=True):
                pass
        assert len(seen) == 1  # OpenAI does not continue a prefill: never called
        (status, cost, inp, out, err, chain), = spend_rows(app, spend_path)
        assert status == 503 and out == delivered_tokens(FIRST) and inp == 12 and Decimal(cost) > 0
    await app.aclose()
