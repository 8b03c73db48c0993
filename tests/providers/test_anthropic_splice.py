"""The Anthropic side of the stream splice, piece by piece: `anthropic_plain` (which event
blocks a tap may write itself), the tap hook in `aiter_sse`, `StreamState` arming the tap
and the native loop reporting spliced text. End to end (real sockets, the proxy):
tests/router/server/test_stream_splice_anthropic.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers import _http
from providers import _native as nat
from providers._sse import SSEEvent, aiter_sse
from providers.anthropic import StreamState, anthropic_plain
from router.errors import Timeout
from router.splice import SplicedText


def _delta(text: str, index: int = 0) -> bytes:
    return json.dumps({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
                      separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("text", ["hi", " w2", 'quote " in', "é\n✓", "ends with \\", ""])
def test_a_plain_text_delta_is_read_as_the_event_path_reads_it(text: str) -> None:
    block = b"event: content_block_delta\ndata: " + _delta(text, 3)
    assert anthropic_plain(block) == text
    assert [e.text for e in StreamState().feed("content_block_delta", _delta(text, 3).decode())] == \
        ([text] if text else [])


@pytest.mark.parametrize("block", [
    b'event: ping\ndata: {"type": "ping"}',
    b"event: content_block_delta\ndata: " + _delta("a") + b"\nid: 7",
    b"id: 7\nevent: content_block_delta\ndata: " + _delta("a"),
    b"event: content_block_delta\ndata:" + _delta("a"),  # no space: the line decoder's business
    b"event:content_block_delta\ndata: " + _delta("a"),
    b"data: " + _delta("a"),
    b"event: content_block_delta\ndata: " + _delta("a")[:-1] + b"\xff\"}}",  # not UTF-8
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
    b'"partial_json":"a"}}',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":"a","x":"b"}}',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text",'
    b'"text":""}}',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}',
    b": comment",
    b"",
])
def test_anything_else_ends_a_splice(block: bytes) -> None:
    assert anthropic_plain(block) is None


class _Tap:
    def __init__(self, texts: list[str], rest: bytes, err: Exception | None = None) -> None:
        self.armed = False
        self.sink = type("S", (), {"pending": []})()
        self.texts, self.rest, self.err = texts, rest, err
        self.got: list[bytes] = []

    async def run_and_take(self, buf: bytes) -> tuple[bytes, str, Exception | None]:
        self.armed = False
        self.got.append(buf)
        return self.rest, "".join(self.texts), self.err


def test_state_arms_the_tap_after_a_plain_text_only() -> None:
    st = StreamState()
    st.tap = tap = _Tap([], b"")
    st.feed("ping", '{"type": "ping"}')
    st.feed("content_block_delta", _delta("").decode())
    st.feed("content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a",'
                                   '"citations":[]}}')
    assert not tap.armed
    st.feed("content_block_delta", _delta("a").decode())
    assert tap.armed


async def _chunks(*cs: bytes) -> Any:
    for c in cs:
        yield c


async def test_aiter_sse_runs_an_armed_tap_where_it_would_read_and_goes_on_from_what_it_returns() -> None:
    # the tap reads on from the socket itself: what it returns is the rest, from the first event it did not take
    tap = _Tap(["b", "c"], b"event: y\ndata: 2\n\nevent: x\ndata: 1\n\nevent: z")
    out = []
    gen = aiter_sse(_chunks(b"event: content_block_delta\ndata: a\n\nevent: y", b"\ndata: 3\n\n"), tap)
    async for ev in gen:
        out.append(ev)
        if ev == SSEEvent("content_block_delta", "a"):
            tap.armed = True
    # the partial block held when the tap ran is handed to it; its texts come out as one str, first
    assert tap.got == [b"event: y"]
    assert out == [SSEEvent("content_block_delta", "a"), "bc", SSEEvent("y", "2"), SSEEvent("x", "1"),
                   SSEEvent("z", "3")]


async def test_aiter_sse_raises_the_taps_stall_after_reporting_its_text() -> None:
    err = _http._timeout("idle", 2.0, _http.Call("anthropic", "m"))
    tap = _Tap(["b"], b"", err)
    out: list[Any] = []
    with pytest.raises(Timeout):
        async for ev in aiter_sse(_chunks(b"event: e\ndata: a\n\n", b"never read\n\n"), tap):
            out.append(ev)
            tap.armed = True
    assert out == [SSEEvent("e", "a"), "b"]


async def test_aiter_sse_without_a_tap_or_unarmed_is_unchanged() -> None:
    body = (b"event: a\ndata: 1\n\n", b"event: b\r\ndata: 2\r\n\r", b"\nevent: c\ndata: 3")
    plain = [e async for e in aiter_sse(_chunks(*body))]
    tap = _Tap(["x"], b"")
    assert [e async for e in aiter_sse(_chunks(*body), tap)] == plain == [
        SSEEvent("a", "1"), SSEEvent("b", "2"), SSEEvent("c", "3")]
    assert tap.got == []


async def test_the_native_loop_reports_spliced_text_without_feeding_the_state() -> None:
    st = StreamState()

    async def frames() -> Any:
        yield "message_start", json.dumps({"type": "message_start", "message": {
            "id": "msg_1", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}})
        yield "content_block_delta", _delta("a").decode()
        yield None, "bc"
        yield "message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}'
        yield "message_stop", '{"type":"message_stop"}'

    evs = [e async for e in nat.feed_frames(frames(), st, _http.Call("anthropic", "m"), "no stop")]
    texts = [(type(e), e.text) for e in evs if e.kind == "text"]
    assert [t for _, t in texts] == ["a", "bc"] and texts[1][0] is SplicedText and texts[0][0] is not SplicedText
    assert evs[-1].kind == "finish" and st.usage is not None and st.usage.output_tokens == 3


async def test_a_stall_in_the_native_loop_is_billed_what_the_vendor_reported() -> None:
    st = StreamState()
    err = _http._timeout("idle", 2.0, _http.Call("anthropic", "m"))

    async def frames() -> Any:
        yield "message_start", json.dumps({"type": "message_start", "message": {
            "id": "msg_1", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}})
        yield None, "bc"
        raise err

    got: list[Any] = []
    with pytest.raises(Timeout) as ei:
        async for e in nat.feed_frames(frames(), st, _http.Call("anthropic", "m"), "no stop"):
            got.append(e)
    assert isinstance(got[-1], SplicedText) and got[-1].text == "bc"
    assert ei.value.billed_usage is not None and ei.value.billed_usage.input_tokens == 5
