"""The stream splice on the Anthropic wire, end to end: a client streaming
`POST /v1/messages` (httpx, or a raw socket) through the app `quotaroute serve` builds
(aiohttp upstream client, uvicorn), routed to the native Anthropic adapter, against a
fake Anthropic upstream streaming its words 10 ms apart in the API's own byte layout
(tests/support/anthropic_upstream.py), so that text flows through the splice
(`providers._splice` with `providers.anthropic.anthropic_plain`). The answer, the wire
and the bill must be the plain path's (`server.limits.stream_splice: false`); a cut, a
stall and a client that goes away must end as the plain path ends them
(tests/support/fault_cases.py). An OpenAI-wire client of an Anthropic vendor is spliced too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers import _splice
from router.server.cli import build_app
from tests.router.server.conftest import LiveServer
from tests.router.server.test_faults_proxy import Proxy, call
from tests.support.anthropic_upstream import PING_EVERY, AnthropicUpstream
from tests.support.fault_cases import FULL, MAX_TOKENS, MESSAGES, SCENARIOS, SLACK_S, SPARE, Outcome, \
    check, fault_env, write_config
from tests.support.fault_upstream import WORDS, answer_text
from tests.support.splice import SLOW, raw_stream, read_until



@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AnthropicUpstream]:
    fault_env(monkeypatch, tmp_path)
    with AnthropicUpstream(SLOW) as up:
        yield up


class _Proxy:
    """The proxy over the fault matrix's config (`wall:<fault>`, then `spare:ok`), its
    providers speaking the Anthropic Messages API to the fake upstream."""

    def __init__(self, up: AnthropicUpstream, tmp_path: Path, faults: list[str], **server: Any) -> None:
        tmp_path.mkdir(exist_ok=True)
        path = Path(write_config(tmp_path / "quotaroute.yaml", up.base_url, faults,
                                 **({"server": server} if server else {})))
        cfg = json.loads(path.read_text())
        for p in cfg["providers"].values():
            p["vendor"] = "anthropic"
        path.write_text(json.dumps(cfg, indent=1))
        self.app = build_app(str(path))
        self.srv = LiveServer(self.app)

    def __enter__(self) -> Proxy:
        self.srv.__enter__()
        return Proxy(self.app, self.srv)

    def __exit__(self, *exc: Any) -> None:
        self.srv.__exit__(None, None, None)


BODY = {"model": "auto", "max_tokens": MAX_TOKENS, "stream": True, "messages": MESSAGES}


def _parse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """An Anthropic SSE body -> [(event, data)]; every block must be `event:` + `data:`."""
    out = []
    assert raw.endswith(b"\n\n"), raw[-200:]
    for block in raw[:-2].split(b"\n\n"):
        lines = block.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
        name, data = lines[0][7:].decode(), json.loads(lines[1][6:])
        assert data["type"] == name, block
        out.append((name, data))
    return out


async def _call(p: Proxy, budget_s: float, model: str = "auto") -> tuple[Outcome, list[tuple[str, dict[str, Any]]]]:
    """One streamed /v1/messages request with httpx: what it did (as the fault matrix
    reads it) and the events it got."""
    out = Outcome()
    p.requests += 1
    raw = b""
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=p.srv.url, timeout=budget_s) as hc:
        try:
            async with hc.stream("POST", "/v1/messages", json={**BODY, "model": model},
                                 headers={"anthropic-version": "2023-06-01"}) as r:
                out.status, out.model = r.status_code, r.headers.get("x-quotaroute-model")
                async for chunk in r.aiter_bytes():
                    raw += chunk
        except httpx.HTTPError as e:  # the stream broke below SSE
            out.error = type(e).__name__
    out.wall_s = time.monotonic() - t0
    events = _parse(raw) if raw else []
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta":
            out.text += data["delta"]["text"]
        elif name == "message_delta":
            out.finish = {"end_turn": "stop"}.get(data["delta"]["stop_reason"], data["delta"]["stop_reason"])
        elif name == "error":
            out.error = data["error"]["type"]
    row = await asyncio.to_thread(p.spend_row, p.requests, 5.0)
    if row is not None:
        out.cost, out.output_tokens = Decimal(row["cost_usd"]), row["output_tokens"]
        out.notes.append(f"spend row: status {row['status']}, model {row['model']}, chain {row['fallback_chain']}")
    return out, events


def _wire(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """A whole answer's events must be one message with one text block; returned without
    the message id (it differs per response) and pings."""
    names = [n for n, _ in events if n != "ping"]
    assert names[:2] == ["message_start", "content_block_start"], names
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"], names
    assert set(names[2:-3]) == {"content_block_delta"}, names
    assert {d["index"] for n, d in events if n.startswith("content_block")} == {0}, events
    assert events[1][1]["content_block"]["type"] == "text"
    out = []
    for n, d in events:
        if n == "message_start":
            d = {**d, "message": {k: v for k, v in d["message"].items() if k != "id"}}
        if n != "ping":
            out.append((n, d))
    return out


async def test_a_spliced_answer_is_the_plain_paths_answer(upstream: AnthropicUpstream, tmp_path: Path,
                                                          fed: list[int]) -> None:
    with _Proxy(upstream, tmp_path, []) as p:
        out, events = await _call(p, SLACK_S * 3)
    assert fed[0] > 10, "the text did not go through the splice"
    assert (out.error, out.model, out.text, out.finish, out.cost) == (None, "spare:ok", FULL, "stop", SPARE), out
    assert out.output_tokens == WORDS  # the vendor's usage, billed
    deltas = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert len(deltas) == WORDS and "".join(deltas) == FULL  # one event per vendor text, in order
    assert events[-2][1]["usage"]["output_tokens"] == WORDS, events[-2]
    spliced = fed[0]
    with _Proxy(upstream, tmp_path / "off", [], limits={"stream_splice": False}) as p:
        plain, plain_events = await _call(p, SLACK_S * 3)
    assert fed[0] == spliced  # off: no splice
    assert (plain.text, plain.finish, plain.cost, plain.output_tokens) == (out.text, out.finish, out.cost,
                                                                          out.output_tokens)
    assert _wire(events) == _wire(plain_events)


async def test_pings_between_texts_end_a_splice_and_the_next_text_starts_another(
        upstream: AnthropicUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    orig = _splice.Tap.run

    async def run(self: Any, buf: bytes) -> Any:
        runs.append(1)
        return await orig(self, buf)

    monkeypatch.setattr(_splice.Tap, "run", run)
    with _Proxy(upstream, tmp_path, []) as p:
        out, _ = await _call(p, SLACK_S * 3)
    assert (out.text, out.finish) == (FULL, "stop"), out
    assert len(runs) >= WORDS // PING_EVERY + 1, runs  # re-armed after each ping


@pytest.mark.parametrize("pinned", [False, True], ids=["auto", "pinned"])
@pytest.mark.parametrize("name", ["cut", "stall"])
async def test_stream_faults_through_the_splice(name: str, pinned: bool, upstream: AnthropicUpstream, tmp_path: Path,
                                                fed: list[int]) -> None:
    """A cut (the connection closes mid-text) and a stall (the tap's own idle timer, 2 s)
    while text is being spliced: the same conduct and bill as on the plain path (the
    fault matrix's): the words sent stay, then the fallback finishes the answer (`auto`)
    or an error event ends it (the client named the model); billed at least as delivered."""
    model, _, expect = SCENARIOS[name]
    asked = f"wall:{model}" if pinned else "auto"
    with _Proxy(upstream, tmp_path, [model]) as p:
        out, events = await _call(p, expect.max_wall_s + SLACK_S, asked)
        check(out, expect, mode="proxy", model=model, calls=upstream.count(model), spare_calls=upstream.count("ok"))
    assert fed[0] > 0, "the text did not go through the splice"
    if pinned:
        assert out.error is not None and events[-1][0] == "error" and out.text == answer_text(expect.broken_after), out
        # named after the provider that broke (both providers read the same key variable)
        assert events[-1][1]["error"]["message"].startswith("Upstream wall error"), events[-1]
    else:  # finished by the fallback: still one text block
        assert out.error is None and out.text == FULL, out
        _wire(events)
    spliced = fed[0]
    with _Proxy(upstream, tmp_path / "off", [model], limits={"stream_splice": False}) as p:
        plain, _ = await _call(p, expect.max_wall_s + SLACK_S, asked)
    assert fed[0] == spliced
    assert (plain.model, plain.text, plain.finish, plain.error, plain.cost, plain.output_tokens) == \
        (out.model, out.text, out.finish, out.error, out.cost, out.output_tokens), (plain, out)


async def test_anthropic_vendor_to_an_openai_client_is_spliced_too(upstream: AnthropicUpstream, tmp_path: Path,
                                                                   fed: list[int]) -> None:
    """The splice is the vendor side's: an OpenAI-wire client (the official SDK) of the same
    proxy gets its text chunks spliced from the Anthropic stream."""
    with _Proxy(upstream, tmp_path, []) as p:
        out = await call(p, stream=True, budget_s=SLACK_S * 3)
    assert fed[0] > 10, "the text did not go through the splice"
    assert (out.error, out.model, out.text, out.finish, out.cost, out.output_tokens) == \
        (None, "spare:ok", FULL, "stop", SPARE, WORDS), out


def _raw_stream(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    return raw_stream(port, "/v1/messages", json.dumps(BODY).encode(), headers=b"anthropic-version: 2023-06-01\r\n",
                      rcvbuf=rcvbuf)


async def test_a_client_gone_mid_splice_cancels_the_vendor_and_is_billed_as_delivered(
        upstream: AnthropicUpstream, tmp_path: Path, fed: list[int]) -> None:
    with _Proxy(upstream, tmp_path, []) as p:
        s = _raw_stream(p.srv.port)
        await read_until(s, b'"text_delta"', 20)  # well into the splice
        s.close()
        row = await asyncio.to_thread(p.spend_row, 1, 10.0)
    assert fed[0] > 0
    assert row is not None and row["status"] == 499, row
    # billed as delivered: the vendor reported 1 output token so far; the client was sent at least 19 words
    assert 19 <= row["output_tokens"] < WORDS, row


async def test_a_client_that_stops_reading_pauses_the_vendor_then_is_cut_off(
        upstream: AnthropicUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flow control through the splice: with the client's socket full, the tap stops reading
    from the vendor and the write timeout ends the stream (499)."""
    paused: list[int] = []
    orig = _splice.Tap._pause

    def pause(self: Any) -> None:
        paused.append(1)
        orig(self)

    monkeypatch.setattr(_splice.Tap, "_pause", pause)
    from router.server import stream_sink

    orig_write = stream_sink.ClientSink.write
    sink_sizes: list[int] = []

    def write(self: Any, body: bytes) -> None:
        orig_write(self, body * 400)  # each text ~40 KB: the client's socket fills at once
        sink_sizes.append(sum(map(len, self.queued)))

    monkeypatch.setattr(stream_sink.ClientSink, "write", write)
    with _Proxy(upstream, tmp_path, [], limits={"stream_write_timeout_s": 1.0}) as p:
        s = _raw_stream(p.srv.port, rcvbuf=4096)
        try:
            deadline = time.monotonic() + 15
            row = None
            while row is None and time.monotonic() < deadline:
                row = await asyncio.to_thread(p.spend_row, 1, 0.5)
        finally:
            s.close()
    assert paused, "the tap never paused the vendor"
    assert row is not None and row["status"] == 499 and "stopped reading" in row["error"], row
    assert max(sink_sizes) < 8 << 20  # bounded: the vendor was not read ahead into memory
