"""Fuzz the proxy's two POST endpoints with hostile bodies, for long runs.

    python -m benchmarks.fuzz_proxy [--requests 5000] [--seed 1] [--json]
    quotaroute bench fuzz ...

The proxy runs in-process (httpx ASGITransport) over the real `Router` with two
fake vendors that build their real wire bodies (OpenAI's and Anthropic's adapters)
and JSON-encode them before answering, so a body the edge lets through but an
adapter cannot encode shows up as a failure. Bodies are valid requests mutated at
random (wrong types, huge/negative numbers, unknown and price-changing fields,
values nested hundreds of levels deep, long strings), plus random JSON and bytes.

Reports counts by status per endpoint, responses >= 500 (none may be caused by the
client: with vendors that always answer, every 5xx is a proxy bug), bodies carrying
a traceback or a file path, and RSS growth from after a warm-up to the end.
The same app and checks back the hypothesis test `tests/router/server/test_fuzz.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import logging
import random
import re
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

__all__ = ["HELP", "add_arguments", "run", "build_app", "EncodingFake", "problems", "random_body", "TEMPLATES",
           "rss_bytes", "fuzz"]

HELP = "Fuzz /v1/chat/completions and /v1/messages with hostile bodies: 5xx, leaks, RSS growth."
ENDPOINTS = {"chat": "/v1/chat/completions", "messages": "/v1/messages"}

# Valid bodies to mutate, per endpoint.
TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "chat": [
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "auto", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 50,
         "messages": [{"role": "system", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": "look"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/y.png",
                                                                                       "detail": "low"}}]}]},
        {"model": "pa:small", "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"], "user": "u1",
         "tools": [{"type": "function", "function": {"name": "get", "description": "d",
                                                     "parameters": {"type": "object", "properties": {
                                                         "q": {"type": "string"}}}}}],
         "tool_choice": {"type": "function", "function": {"name": "get"}},
         "messages": [{"role": "user", "content": "call it"},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "42"}]},
        {"model": "auto:best", "max_completion_tokens": 2**31 - 1, "metadata": {"task": "code", "tags": ["a"]},
         "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
         "messages": [{"role": "user", "content": "json please"}]},
    ],
    "messages": [
        {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]},
        {"model": "pb:big", "max_tokens": 64, "stream": True, "system": [{"type": "text", "text": "be brief"}],
         "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 32}, "metadata": {"user_id": "u1"},
         "messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                   {"type": "image", "source": {"type": "base64",
                                                                                "media_type": "image/png",
                                                                                "data": "iVBORw0KGgo="}}]}]},
        {"model": "auto", "max_tokens": 2**31 - 1, "temperature": 0.5, "stop_sequences": ["END"],
         "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
         "tool_choice": {"type": "tool", "name": "get"},
         "messages": [{"role": "user", "content": "call it"},
                      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get",
                                                         "input": {"q": "x"}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                    "content": [{"type": "text", "text": "42"}],
                                                    "is_error": False}]}]},
    ],
}
# Top-level names a hostile client tries: known, adapter-owned, price-changing, unknown.
FIELD_NAMES = ("model", "messages", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options",
               "service_tier", "prediction", "audio", "modalities", "web_search_options", "seed", "logit_bias",
               "top_k", "thinking", "container", "mcp_servers", "system", "tools", "tool_choice", "response_format",
               "metadata", "user", "temperature", "top_p", "stop", "stop_sequences", "logprobs", "top_logprobs",
               "reasoning_effort", "parallel_tool_calls", "functions", "store", "foo", "__proto__", "")
_SCALARS: tuple[Any, ...] = (None, True, False, 0, 1, -1, -5, -1_000_000, 2**31 - 1, 2**31, 2**63 - 1, -(2**63),
                             0.5, -0.0, 1e308, 3.7, "", "x", "auto", "text", "tool", "enabled", "user", "\u0000",
                             "é" * 50, "a" * 5000, [], {}, [None], {"type": []}, {"type": "text", "text": 5})
_LEAK = re.compile(rb"Traceback|File \"|\.py\b|site-packages|/(?:home|root|usr|tmp|opt|srv|var|work)/")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:  # pragma: no cover - not Linux
        return 0


# ---------------------------------------------------------------- the app under test

def _encoding_fake() -> Any:
    from providers.fake import FakeProvider  # lazy: import time (`--help` and other commands stay fast)

    class EncodingFake(FakeProvider):
        """A FakeProvider that first builds and encodes its vendor's real request body
        (`wire`: "openai" or "anthropic"), as the real adapter would, and keeps no
        call history (long runs)."""

        wire: str = "openai"

        def _next(self, req: Any) -> Any:
            from providers import _http  # lazy: import time (`--help` and other commands stay fast)

            if self.wire == "anthropic":
                from providers.anthropic import build_body  # lazy: import time (`--help` and other commands stay fast)

                body = build_body(req, stream=False)
            else:
                from providers.openai import build_body as ob  # lazy: import time (`--help` and other commands stay fast)
                from providers.vendors import get_vendor

                body = ob(req, get_vendor("openai"), stream=False)
            _http.dumps(body)  # raises (a proxy bug) when the edge let through what cannot be encoded
            return self.scripts[0]

    return EncodingFake


EncodingFake: Any = None


def build_app(spend_path: str | Path, *, ledger_ttl_s: float = 300.0) -> tuple[Any, Any]:
    """(ASGI app, router): the real Router over an OpenAI-wire and an Anthropic-wire fake
    vendor, a $1,000/day global budget on an in-memory ledger (reservations live
    `ledger_ttl_s`, the ledger's default 300 s), an open proxy."""
    global EncodingFake
    from providers.fake import reply  # lazy: import time (`--help` and other commands stay fast)
    from router.catalog import Catalog, ModelCard
    from router.pricing import Price
    from router.quota.ledger import Ledger
    from router.quota.memory_store import MemoryStore
    from router.quota.spec import BudgetSpec
    from router.sdk import Router
    from router.server.app import create_app
    from router.server.settings import ServerSettings
    from router.types import TASK_KINDS

    if EncodingFake is None:
        EncodingFake = _encoding_fake()

    def card(mid: str, inp: str, out: str, q: float, max_output: int) -> ModelCard:
        prov, model = mid.split(":", 1)
        return ModelCard(id=mid, provider=prov, model=model, context_window=200_000, max_output=max_output,
                         capabilities=frozenset({"tools", "vision", "json_schema", "streaming", "reasoning"}),
                         price=Price(input=inp, output=out), regions=frozenset({"us"}),
                         task_quality={t: q for t in TASK_KINDS})

    cat = Catalog([card("pa:small", "1", "2", 0.7, 16_000), card("pb:big", "3", "15", 0.95, 64_000)])
    pa = EncodingFake(name="pa", scripts=[reply("from a", chunks=3)])
    pb = EncodingFake(name="pb", scripts=[reply("from b", chunks=3)])
    pb.wire = "anthropic"
    budget = BudgetSpec(id="day", scope="global", limit_usd=Decimal("1000"), period="day")
    router = Router(catalog=cat, providers={"pa": pa, "pb": pb}, ledger=Ledger(MemoryStore(), [], [budget], default_ttl_s=ledger_ttl_s),
                    policy="cheapest")
    settings = ServerSettings(max_body_bytes=1024 * 1024)
    settings.spend_db = str(spend_path)
    return create_app(router, settings), router


def problems(status: int, body: bytes) -> list[str]:
    """What is wrong with one response to a fuzzed request (empty when nothing)."""
    out = []
    if status >= 500:
        out.append(f"HTTP {status}")
    if _LEAK.search(body):
        out.append("traceback or file path in the body")
    if status == 200 and (b"internal_error" in body or b"Internal proxy error" in body):
        out.append("internal error in a stream")
    return out


# ---------------------------------------------------------------- random bodies

def _scalar(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(_SCALARS))  # a fresh copy: mutations never make cycles


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 4 or r < 0.55:
        return _scalar(rng)
    if r < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(FIELD_NAMES + ("type", "text", "role", "content", "name", "input")): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def json_paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the value itself first)."""
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += json_paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += json_paths(x, prefix + (i,))
    return out


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    cur = root
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return root


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        root = root[k]
    return root


def _same_type(rng: random.Random, v: Any) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return rng.choice((1, 2, 17, 1000, 2**31 - 1, v + 1))
    if isinstance(v, float):
        return rng.choice((0.0, 0.1, 1.0, 1.9))
    if isinstance(v, str):
        return rng.choice(("", "x", "auto", "é中文🙂" * rng.randint(1, 50), "a" * rng.randint(1, 3000), v * 2))
    if isinstance(v, list):
        return v * rng.randint(0, 3)
    return v


_DEEP = "\u0001deep\u0001"


def random_body(rng: random.Random, endpoint: str) -> bytes:
    """One hostile request body for `endpoint` ("chat" or "messages")."""
    r = rng.random()
    if r < 0.03:
        return rng.randbytes(rng.randint(0, 64))
    if r < 0.08:
        return orjson.dumps(_random_json(rng))
    body = json.loads(json.dumps(rng.choice(TEMPLATES[endpoint])))
    if r < 0.35:  # plausible values of the same type: reaches routing, the adapters and the encoders
        for _ in range(rng.randint(0, 3)):
            path = rng.choice(json_paths(body)[1:])
            body = _set(body, path, _same_type(rng, _get(body, path)))
        return orjson.dumps(body)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.5:
            path = rng.choice(json_paths(body)[1:] or [()])
            body = _set(body, path, _random_json(rng))
        elif kind < 0.8 and isinstance(body, dict):
            body[rng.choice(FIELD_NAMES)] = _random_json(rng) if rng.random() < 0.7 else _scalar(rng)
        elif kind < 0.9:
            path = rng.choice(json_paths(body)[1:] or [()])
            body = _set(body, path, _DEEP)
        elif isinstance(body, dict) and body:
            body.pop(rng.choice(list(body)))
    raw = orjson.dumps(body)
    if _DEEP.encode() in raw:  # deeper than any JSON encoder writes: spliced in as text
        n = rng.choice((65, 100, 254, 300, 1000))
        raw = raw.replace(orjson.dumps(_DEEP), b'{"a":' * n + b"1" + b"}" * n, 1).replace(orjson.dumps(_DEEP), b"1")
    if rng.random() < 0.02:
        raw = raw[: rng.randint(0, len(raw))]  # cut short
    return raw


# ---------------------------------------------------------------- the run

async def fuzz(requests: int, seed: int, *, progress: Any = None, warmup: int = 2500,
               ledger_ttl_s: float = 300.0) -> dict[str, Any]:
    import httpx2  # lazy: the in-process ASGI client comes with the [test] extra

    tmp = tempfile.TemporaryDirectory(prefix="quotaroute-fuzz-")
    app, router = build_app(Path(tmp.name) / "spend.sqlite", ledger_ttl_s=ledger_ttl_s)
    rng = random.Random(seed)
    statuses: dict[str, Counter[int]] = {e: Counter() for e in ENDPOINTS}
    found: list[dict[str, Any]] = []
    n5xx = 0
    rss0 = rss1 = 0
    total = requests * len(ENDPOINTS)
    done = 0
    t0 = time.perf_counter()
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://fuzz") as c:
            for i in range(requests):
                for name, url in ENDPOINTS.items():
                    body = random_body(rng, name)
                    r = await c.post(url, content=body, headers={"content-type": "application/json"})
                    statuses[name][r.status_code] += 1
                    n5xx += r.status_code >= 500
                    bad = problems(r.status_code, r.content)
                    if bad and len(found) < 20:
                        found.append({"endpoint": name, "status": r.status_code, "problems": bad,
                                      "request": body[:300].decode("utf-8", "replace"),
                                      "response": r.content[:300].decode("utf-8", "replace")})
                    done += 1
                if i + 1 == min(warmup, requests // 2 or 1):
                    gc.collect()
                    rss0 = rss_bytes()
                if progress is not None:
                    progress(done, total)
        gc.collect()
        rss1 = rss_bytes()
    finally:
        await app.aclose()
        await router.aclose()
        tmp.cleanup()
    elapsed = time.perf_counter() - t0
    return {
        "requests_per_endpoint": requests, "seed": seed, "ledger_ttl_s": ledger_ttl_s,
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(total / elapsed, 1) if elapsed else None,
        "status_counts": {e: {str(k): v for k, v in sorted(c.items())} for e, c in statuses.items()},
        "responses_5xx": n5xx,
        "problems": len(found), "examples": found[:5],
        "rss_after_warmup_mib": round(rss0 / 2**20, 1), "rss_end_mib": round(rss1 / 2**20, 1),
        "rss_growth_pct": round((rss1 - rss0) * 100 / rss0, 2) if rss0 else None,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requests", type=int, default=5000, help="requests per endpoint (default 5000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1): the same seed, the same bodies")
    p.add_argument("--warmup", type=int, default=2500,
                   help="requests per endpoint before the first RSS reading (default 2500: the bounded caches "
                        "of route reasons and headers, 4,096 entries each, fill up first); at most half the run")
    p.add_argument("--ledger-ttl", type=float, default=300.0, metavar="S",
                   help="reservation lifetime (default 300, the ledger's): the in-memory store keeps a settled "
                        "reservation's id until then, so a short run at thousands of req/s grows by ~160 B a request "
                        "until the first ones expire; a few seconds shows the steady state")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.requests < 1:
        print("fuzz_proxy: --requests must be >= 1", file=sys.stderr)
        return 2
    bar = task = None
    if not args.no_progress:
        from rich.console import Console  # lazy: import time (`--help` and other commands stay fast)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        if console.is_terminal:
            bar = Progress(TextColumn("[bold]fuzz"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           console=console)
            task = bar.add_task("requests", total=args.requests * len(ENDPOINTS))
            bar.start()

    def progress(done: int, total: int) -> None:
        if bar is not None and (done % 50 == 0 or done == total):
            bar.update(task, completed=done)


    logging.getLogger("quotaroute").setLevel(logging.CRITICAL)  # the adapter-bug log would flood the terminal
    try:
        res = asyncio.run(fuzz(args.requests, args.seed, progress=progress, warmup=args.warmup,
                               ledger_ttl_s=args.ledger_ttl))
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"fuzzed {args.requests:,} requests per endpoint (seed {args.seed}) in {res['elapsed_s']} s "
              f"({res['requests_per_s']} req/s)")
        for e, counts in res["status_counts"].items():
            print(f"  {ENDPOINTS[e]:<22} " + "  ".join(f"{k}: {v:,}" for k, v in counts.items()))
        print(f"  responses >= 500: {res['responses_5xx']}   bodies with problems: {res['problems']}")
        print(f"  RSS {res['rss_after_warmup_mib']} MiB after warm-up -> {res['rss_end_mib']} MiB "
              f"({res['rss_growth_pct']}%)")
        for ex in res["examples"]:
            print(f"  e.g. {ex['endpoint']} {ex['status']} {ex['problems']}: {ex['request'][:160]}")
    return 1 if res["responses_5xx"] or res["problems"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz_proxy", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
