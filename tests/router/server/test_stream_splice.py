"""The stream splice, end to end: the app `quotaroute serve` builds (aiohttp upstream
client), served by uvicorn, called with the official `openai` SDK and a raw socket,
against the fault upstream streaming its words 10 ms apart so that text flows through
the splice (`providers._splice`, `router.server.stream_sink`). Each stream fault is
run with the splice counted: the conduct and the bill must be the fault matrix's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers import _splice
from router.server.cli import build_app
from tests.router.server.conftest import LiveServer
from tests.router.server.test_faults_proxy import Proxy, call
from tests.support.fault_cases import FULL, SCENARIOS, SLACK_S, SPARE, check, fault_env, write_config
from tests.support import fault_upstream
from tests.support.fault_upstream import FaultUpstream
from tests.support.splice import SLOW, raw_stream, read_until



@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FaultUpstream]:
    def compact(self: Any, delta: dict[str, Any], finish: str | None = None) -> bytes:  # as OpenAI sends them
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": 1, "model": self.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                          separators=(",", ":")).encode()

    monkeypatch.setattr(fault_upstream._Answer, "_chunk", compact)
    fault_env(monkeypatch, tmp_path)
    with FaultUpstream(SLOW) as up:
        yield up


class _Proxy:
    def __init__(self, up: FaultUpstream, tmp_path: Path, faults: list[str], **server: Any) -> None:
        sections = {"server": server} if server else {}
        tmp_path.mkdir(exist_ok=True)
        self.app = build_app(write_config(tmp_path / "quotaroute.yaml", up.base_url, faults, **sections))
        self.srv = LiveServer(self.app)
        self.up = up

    def __enter__(self) -> Proxy:
        self.srv.__enter__()
        return Proxy(self.app, self.srv)

    def __exit__(self, *exc: Any) -> None:
        self.srv.__exit__(None, None, None)


async def test_a_spliced_answer_is_the_plain_paths_answer(upstream: FaultUpstream, tmp_path: Path,
                                                          fed: list[int]) -> None:
    with _Proxy(upstream, tmp_path, []) as p:
        out = await call(p, stream=True, budget_s=SLACK_S * 3)
    assert fed[0] > 10, "the text did not go through the splice"
    assert (out.error, out.model, out.text, out.finish, out.cost) == (None, "spare:ok", FULL, "stop", SPARE), out
    spliced = fed[0]
    with _Proxy(upstream, tmp_path / "off", [], limits={"stream_splice": False}) as p:
        plain = await call(p, stream=True, budget_s=SLACK_S * 3)
    assert fed[0] == spliced  # off: no splice
    assert (plain.text, plain.finish, plain.cost, plain.output_tokens) == (out.text, out.finish, out.cost,
                                                                          out.output_tokens)


@pytest.mark.parametrize("name", ["cut", "stall", "malformed", "no-done", "insufficient", "finish-error"])
async def test_stream_faults_through_the_splice(name: str, upstream: FaultUpstream, tmp_path: Path,
                                                fed: list[int]) -> None:
    """Cut, stall (the tap's own idle timer), a broken chunk, a missing [DONE] and a
    vendor's early finish, while text is being spliced: the same conduct and bill as on
    the plain path (tests/support/fault_cases.py)."""
    if name not in SCENARIOS:
        pytest.skip(f"no {name} scenario")
    model, _, expect = SCENARIOS[name]
    with _Proxy(upstream, tmp_path, [model]) as p:
        out = await call(p, stream=True, budget_s=expect.max_wall_s + SLACK_S)
        check(out, expect, mode="proxy", model=model, calls=upstream.count(model), spare_calls=upstream.count("ok"))
    assert fed[0] > 0, "the text did not go through the splice"


def _raw_stream(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    body = (b'{"model":"auto","stream":true,"max_tokens":64,'
            b'"messages":[{"role":"user","content":"Write sixty words."}]}')
    return raw_stream(port, "/v1/chat/completions", body, rcvbuf=rcvbuf)


async def test_a_client_gone_mid_splice_cancels_the_vendor_and_is_billed_as_delivered(
        upstream: FaultUpstream, tmp_path: Path, fed: list[int]) -> None:
    with _Proxy(upstream, tmp_path, []) as p:
        s = _raw_stream(p.srv.port)
        await read_until(s, b"data: ", 20)  # well into the splice
        s.close()
        row = await asyncio.to_thread(p.spend_row, 1, 10.0)
    assert fed[0] > 0
    assert row is not None and row["status"] == 499, row
    # billed as delivered: no usage came, so the words the client was sent (at least the 19 it saw)
    assert 19 <= row["output_tokens"] < 60, row


async def test_a_client_that_stops_reading_pauses_the_vendor_then_is_cut_off(
        upstream: FaultUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flow control through the splice: with the client's socket full, the tap stops reading
    from the vendor (the client's backlog stays bounded) and the write timeout ends it."""
    paused: list[int] = []
    orig = _splice.Tap._pause

    def pause(self: Any) -> None:
        paused.append(1)
        orig(self)

    monkeypatch.setattr(_splice.Tap, "_pause", pause)
    with _Proxy(upstream, tmp_path, [], limits={"stream_write_timeout_s": 1.0}) as p:
        sink_sizes: list[int] = []
        from router.server import stream_sink

        orig_write = stream_sink.ClientSink.write

        def write(self: Any, body: bytes) -> None:
            orig_write(self, body * 400)  # each text ~40 KB: the client's socket fills at once
            sink_sizes.append(sum(map(len, self.queued)))

        monkeypatch.setattr(stream_sink.ClientSink, "write", write)
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
