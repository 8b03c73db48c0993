"""Property-based fuzzing of both POST endpoints, in-process, over the real Router with
fake vendors that build and encode their real wire bodies (benchmarks.fuzz_proxy).

With vendors that always answer, no response may be a 5xx (every one would be the
client's mistake turned into a proxy error), and no body may carry a traceback or
a file path. Deterministic (derandomized); benchmarks/fuzz_proxy.py runs the long
version.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_proxy import ENDPOINTS, FIELD_NAMES, TEMPLATES, build_app, json_paths, problems

KEYS = st.sampled_from(FIELD_NAMES + ("type", "text", "role", "content", "name", "input", "a")) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["auto", "text", "user", "assistant", "tool", "function", "enabled", "image", "base64"]))
JSON = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=4),
                    max_leaves=12)
DEEP = "\u0001deep\u0001"


class Harness:
    """One app, client and event loop for every example (an app per example would be slow)."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="quotaroute-fuzz-test-")
        self.loop = asyncio.new_event_loop()
        self.app, self.router = build_app(Path(self.tmp.name) / "spend.sqlite")
        self.client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://fuzz")

    def post(self, endpoint: str, body: bytes) -> Any:
        return self.loop.run_until_complete(
            self.client.post(ENDPOINTS[endpoint], content=body, headers={"content-type": "application/json"}))

    def close(self) -> None:
        async def shut() -> None:
            await self.client.aclose()
            await self.app.aclose()
            await self.router.aclose()

        self.loop.run_until_complete(shut())
        self.loop.close()
        self.tmp.cleanup()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@st.composite
def bodies(draw: Any, endpoint: str) -> bytes:
    """A valid body with a few mutations: a value replaced (by any JSON, or one nested
    hundreds deep), a top-level field added or removed; sometimes any JSON at all."""
    if draw(st.integers(0, 19)) == 0:
        return orjson.dumps(draw(JSON))
    body = copy.deepcopy(draw(st.sampled_from(TEMPLATES[endpoint])))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["replace", "replace", "add", "deep", "drop"]))
        paths = json_paths(body)[1:]
        if op in ("replace", "deep") and paths:
            path = draw(st.sampled_from(paths))
            cur = body
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = DEEP if op == "deep" else draw(JSON | st.lists(SCALARS, max_size=3) | SCALARS)
        elif op == "add":
            body[draw(st.sampled_from(FIELD_NAMES))] = draw(JSON)
        elif op == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
    raw = orjson.dumps(body)
    if orjson.dumps(DEEP) in raw:
        n = draw(st.sampled_from([65, 254, 300, 1000]))
        raw = raw.replace(orjson.dumps(DEEP), b'{"a":' * n + b"1" + b"}" * n, 1).replace(orjson.dumps(DEEP), b"1")
    return raw


def _check(harness: Harness, endpoint: str, body: bytes) -> None:
    r = harness.post(endpoint, body)
    assert not problems(r.status_code, r.content), (r.status_code, r.text[:300], body[:300])
    if 400 <= r.status_code < 500:
        err = r.json()
        assert (err["type"] == "error") if endpoint == "messages" else set(err["error"]) >= {"message", "code"}


_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(body=bodies("chat"))
def test_fuzz_chat_completions(harness: Harness, body: bytes) -> None:
    _check(harness, "chat", body)


@_SETTINGS
@given(body=bodies("messages"))
def test_fuzz_messages(harness: Harness, body: bytes) -> None:
    _check(harness, "messages", body)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(body=st.binary(max_size=200), endpoint=st.sampled_from(sorted(ENDPOINTS)))
def test_fuzz_raw_bytes(harness: Harness, body: bytes, endpoint: str) -> None:
    r = harness.post(endpoint, body)
    assert r.status_code < 500 and not problems(r.status_code, r.content)


def test_the_templates_are_answered(harness: Harness) -> None:
    """The mutated bodies start from requests the proxy answers (so mutations reach deep)."""
    for endpoint, templates in TEMPLATES.items():
        for t in templates:
            r = harness.post(endpoint, json.dumps(t).encode())
            assert r.status_code == 200, (endpoint, r.text)


def test_the_long_fuzz_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.fuzz_proxy import main

    assert main(["--requests", "150", "--warmup", "50", "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["responses_5xx"] == 0 and res["problems"] == 0
    assert sum(res["status_counts"]["chat"].values()) == 150
