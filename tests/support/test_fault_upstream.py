"""The fault upstream does what its table says, on the raw wire (httpx, no router)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fault_upstream import FAULTS, PROMPT_TOKENS, FaultUpstream, Timing, answer_text


@pytest.fixture(scope="module")
def up() -> Iterator[FaultUpstream]:
    with FaultUpstream(Timing(retry_after_s=2.5, first_token_s=0.2, flap_s=0.3, hold_s=5)) as u:
        yield u


def post(up: FaultUpstream, model: str, *, stream: bool = False, timeout: float = 2.0,
         **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return httpx.post(f"{up.base_url}/chat/completions", json=body, timeout=timeout)


def sse(r: httpx.Response) -> list[str]:
    return [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]


def text_of(events: list[str]) -> str:
    out = ""
    for e in events:
        if e != "[DONE]":
            for ch in json.loads(e)["choices"]:
                out += ch["delta"].get("content") or ""
    return out


def test_ok_json_and_stream_and_prefill(up: FaultUpstream) -> None:
    r = post(up, "ok").json()
    assert r["choices"][0]["message"]["content"] == answer_text()
    assert r["usage"] == {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 60, "total_tokens": PROMPT_TOKENS + 60}
    ev = sse(post(up, "ok", stream=True))
    assert ev[-1] == "[DONE]" and text_of(ev) == answer_text()
    assert json.loads(ev[-2])["usage"]["completion_tokens"] == 60
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer_text(40)}]
    r = httpx.post(f"{up.base_url}/chat/completions", json={"model": "ok", "messages": msgs}).json()
    assert answer_text(40) + r["choices"][0]["message"]["content"] == answer_text()


def test_status_faults(up: FaultUpstream) -> None:
    r = post(up, "fb-429-once")
    assert r.status_code == 429 and r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "2500"
    assert post(up, "fb-429-once").status_code == 200
    assert [post(up, "fb-429").status_code for _ in range(2)] == [429, 429]
    assert [post(up, "fb-500-once").status_code for _ in range(2)] == [500, 200]
    assert post(up, "fb-503").status_code == 503
    assert post(up, "fb-context-400").json()["error"]["code"] == "context_length_exceeded"
    assert post(up, "fb-filter-400").json()["error"]["code"] == "content_filter"
    assert post(up, "no-such-model").status_code == 404
    assert up.count("fb-429") == 2


def test_transport_faults(up: FaultUpstream) -> None:
    with pytest.raises(httpx.ReadError):
        post(up, "fb-reset")
    t = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(up, "fb-silent", timeout=0.3)
    assert time.monotonic() - t < 2
    with pytest.raises(httpx.RemoteProtocolError):
        post(up, "fb-cut")
    with pytest.raises(httpx.ReadTimeout):
        post(up, "fb-stall", timeout=0.3)
    got = ""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", f"{up.base_url}/chat/completions", timeout=2,
                          json={"model": "fb-cut", "messages": [], "stream": True}) as r:
            for chunk in r.iter_text():
                got += chunk
    assert text_of([e[6:] for e in got.split("\n\n") if e.startswith("data: ")]) == answer_text(40)


def test_stream_faults(up: FaultUpstream) -> None:
    t = time.monotonic()
    assert post(up, "fb-slow-first").status_code == 200
    assert time.monotonic() - t >= 0.2
    t = time.monotonic()
    with httpx.stream("POST", f"{up.base_url}/chat/completions", timeout=2,
                      json={"model": "fb-slow-first", "messages": [], "stream": True}) as r:
        headers_s = time.monotonic() - t
        body = r.read().decode()
    assert headers_s < 0.2 <= time.monotonic() - t  # headers at once, the first token late
    assert text_of([e[6:] for e in body.split("\n\n") if e.startswith("data: ")]) == answer_text()
    ev = sse(post(up, "fb-malformed", stream=True))
    bad = [e for e in ev if e != "[DONE]" and not e.endswith("}")]
    assert len(bad) == 1 and ev[-1] == "[DONE]"
    with pytest.raises(ValueError):
        post(up, "fb-malformed").json()
    ev = sse(post(up, "fb-no-done", stream=True))
    assert "[DONE]" not in ev and text_of(ev) == answer_text()
    ev = sse(post(up, "fb-insufficient", stream=True))
    assert text_of(ev) == answer_text(20)
    assert json.loads(ev[-3])["choices"][0]["finish_reason"] == "insufficient_system_resource"
    r = post(up, "fb-insufficient").json()
    assert r["choices"][0]["finish_reason"] == "insufficient_system_resource"
    assert r["usage"]["completion_tokens"] == 20


def test_flap_heals(up: FaultUpstream) -> None:
    assert post(up, "fb-flap").status_code == 503
    healed = up.healed_at("fb-flap")
    assert healed is not None
    time.sleep(max(0.0, healed - time.monotonic()) + 0.05)
    assert post(up, "fb-flap").status_code == 200


def test_every_fault_is_listed_in_the_table() -> None:
    import tests.support.fault_upstream as fu

    assert all(f in (fu.__doc__ or "") for f in FAULTS)
