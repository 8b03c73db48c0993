"""The one SSE parser (providers/_sse.py): CRLF, split chunks, comments, multi-line data."""

from __future__ import annotations

import pytest

from providers._sse import SSEEvent, aiter_data, aiter_sse, parse_sse_lines


async def parse(chunks: list[bytes]) -> list[SSEEvent]:
    async def gen():
        for c in chunks:
            yield c
    return [e async for e in aiter_sse(gen())]


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i:i + n] for i in range(0, len(data), n)]


BODY = b'data: {"a":1}\n\n: OPENROUTER PROCESSING\n\nevent: ping\ndata: x\n\ndata: [DONE]\n\n'
EXPECT = [SSEEvent("message", '{"a":1}'), SSEEvent("ping", "x"), SSEEvent("message", "[DONE]")]


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
async def test_line_endings_and_any_split(sep, n):
    body = BODY.replace(b"\n", sep)
    assert await parse(split_every(body, n)) == EXPECT


async def test_crlf_split_between_cr_and_lf():
    assert await parse([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent("message", "a"),
                                                                         SSEEvent("message", "b")]


async def test_comments_only_yield_nothing():
    assert await parse([b": keep-alive\n\n: OPENROUTER PROCESSING\n\n"]) == []


async def test_multiline_data_joined_with_newline():
    assert await parse([b"data: line1\ndata: line2\ndata:line3\n\n"]) == [SSEEvent("message", "line1\nline2\nline3")]


async def test_id_and_event_fields_and_unknown_fields():
    evs = await parse([b"id: 7\nevent: error\nretry: 100\nfoo: bar\ndata: {}\n\n"])
    assert evs == [SSEEvent("error", "{}", "7")]


async def test_trailing_event_without_blank_line_is_dispatched():
    assert await parse([b"data: last"]) == [SSEEvent("message", "last")]


async def test_utf8_split_inside_a_character():
    raw = 'data: 你好\n\n'.encode()
    assert await parse(split_every(raw, 1)) == [SSEEvent("message", "你好")]


def test_parse_sse_lines():
    assert parse_sse_lines(["data: a", "", ": c", "data: b"]) == [SSEEvent("message", "a"), SSEEvent("message", "b")]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_payload = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(datas=st.lists(_payload, min_size=1, max_size=5), cuts=st.lists(st.integers(1, 400), max_size=6),
       sep=st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_chunking_gives_the_same_events(datas, cuts, sep):
    import asyncio

    body = "".join(f": c{sep}data: {d}{sep}{sep}" for d in datas).encode()
    pieces, pos = [], 0
    for c in sorted(set(cuts)):
        if pos < c < len(body):
            pieces.append(body[pos:c])
            pos = c
    pieces.append(body[pos:])
    # only the single space we add after "data:" is stripped (spec); the payload's own spaces stay
    expect = [SSEEvent("message", d) for d in datas]
    assert asyncio.run(parse(pieces)) == expect


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
async def test_data_only_matches_the_full_parser(sep, n):
    async def gen():
        for c in split_every(BODY.replace(b"\n", sep), n):
            yield c
    assert [d async for d in aiter_data(gen())] == [e.data.encode() for e in EXPECT]


async def test_data_only_multiline_and_trailing_event():
    async def gen():
        yield b"data: a\ndata: b\n\nid: 7\ndata:c"
    assert [d async for d in aiter_data(gen())] == [b"a\nb", b"c"]


async def _pieces(*chunks: bytes):  # type: ignore[no-untyped-def]
    for c in chunks:
        yield c


@pytest.mark.parametrize("reader", [aiter_sse, aiter_data], ids=["sse", "data"])
async def test_an_event_that_never_ends_is_refused_past_the_cap(reader) -> None:  # type: ignore[no-untyped-def]
    from providers._http import Call
    from providers._sse import MAX_EVENT_BYTES
    from router.errors import MalformedResponse

    piece = b"x" * (1 << 20)
    body = [b"data: ok\n\ndata: " + piece] + [piece] * (MAX_EVENT_BYTES >> 20)
    got = []
    with pytest.raises(MalformedResponse) as e:
        async for ev in reader(_pieces(*body), None, Call("vendor", "m")):
            got.append(ev)
    assert len(got) == 1 and e.value.provider == "vendor" and "MiB" in str(e.value)
    # just under the cap, then the end: a big event is fine
    big = [b"data: " + piece] + [piece] * ((MAX_EVENT_BYTES >> 20) - 2) + [b"\n\n"]
    evs = [ev async for ev in reader(_pieces(*big))]
    assert len(evs) == 1
