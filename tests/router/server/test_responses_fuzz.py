"""Property-based fuzzing of POST /v1/responses, in-process, over the real Router with
fake vendors that build and encode their real wire bodies (benchmarks.fuzz_proxy's app).

With vendors that always answer, no response may be a 5xx, a 4xx must be an OpenAI
error body, and no body may carry a traceback or a file path. Deterministic.
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

from benchmarks.fuzz_proxy import build_app, json_paths, problems
from router.server.responses_wire import FIELDS

TEMPLATES: list[dict[str, Any]] = [
    {"model": "auto", "input": "hi"},
    {"model": "auto", "stream": True, "instructions": "be brief", "max_output_tokens": 50,
     "input": [{"role": "user", "content": [{"type": "input_text", "text": "look"},
                                            {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]}]},
    {"model": "pa:small", "temperature": 0.2, "top_p": 0.9, "user": "u1", "store": False,
     "tools": [{"type": "function", "name": "get", "description": "d",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
     "tool_choice": {"type": "function", "name": "get"},
     "input": [{"type": "message", "role": "user", "content": "find"},
               {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{\"q\":\"x\"}"},
               {"type": "function_call_output", "call_id": "c1", "output": "found"}]},
    {"model": "auto", "input": "json please", "reasoning": {"effort": "low"}, "metadata": {"task": "extraction"},
     "text": {"format": {"type": "json_schema", "name": "A", "strict": True,
                         "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}},
]
NAMES = tuple(sorted(FIELDS)) + ("messages", "max_tokens", "foo", "")
KEYS = st.sampled_from(NAMES + ("type", "text", "role", "content", "name", "call_id", "output", "a")) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["auto", "message", "input_text", "input_image", "function_call", "function_call_output",
                              "function", "json_schema", "web_search", "user", "assistant", "reasoning"]))
JSON = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=4), max_leaves=12)
DEEP = "\u0001deep\u0001"


class Harness:
    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="quotaroute-fuzz-responses-")
        self.loop = asyncio.new_event_loop()
        self.app, self.router = build_app(Path(self.tmp.name) / "spend.sqlite")
        self.client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://fuzz")

    def post(self, body: bytes) -> Any:
        return self.loop.run_until_complete(
            self.client.post("/v1/responses", content=body, headers={"content-type": "application/json"}))

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
def bodies(draw: Any) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return orjson.dumps(draw(JSON))
    body = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
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
            body[draw(st.sampled_from(NAMES))] = draw(JSON)
        elif op == "drop" and body:
            body.pop(draw(st.sampled_from(sorted(body))))
    raw = orjson.dumps(body)
    if orjson.dumps(DEEP) in raw:
        n = draw(st.sampled_from([65, 254, 300]))
        raw = raw.replace(orjson.dumps(DEEP), b'{"a":' * n + b"1" + b"}" * n, 1).replace(orjson.dumps(DEEP), b"1")
    return raw


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies())
def test_fuzz_responses(harness: Harness, body: bytes) -> None:
    r = harness.post(body)
    assert not problems(r.status_code, r.content), (r.status_code, r.text[:300], body[:300])
    if 400 <= r.status_code < 500:
        assert set(r.json()["error"]) >= {"message", "code"}


def test_the_templates_are_answered(harness: Harness) -> None:
    for t in TEMPLATES:
        r = harness.post(json.dumps(t).encode())
        assert r.status_code == 200, r.text
