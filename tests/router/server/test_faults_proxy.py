"""The fault matrix in proxy mode: the real ASGI app, built as `quotaroute serve`
builds it (`build_app(config)`: `Router.from_config` on the proxy's shared aiohttp
client, and the spend log), served by uvicorn on a free loopback port,
called with the official `openai` SDK; each scenario non-stream and stream against
the fault upstream (tests/support/fault_upstream.py).

The expected conduct of each scenario is in tests/support/fault_cases.py
(`SCENARIOS`, `check`); what is billed is read from the spend log.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.server.cli import build_app
from tests.router.server.conftest import LiveServer
from tests.support.fault_cases import (
    FULL,
    LIMIT_S,
    MAX_TOKENS,
    MESSAGES,
    RECOVER_S,
    SCENARIOS,
    SLACK_S,
    SPARE,
    TIMING,
    Outcome,
    check,
    matrix,
    run_upstream,
    write_config,
)
from tests.support.fault_upstream import FaultUpstream



@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FaultUpstream]:
    yield from run_upstream(monkeypatch, tmp_path)


class Proxy:
    def __init__(self, app: Any, srv: LiveServer) -> None:
        self.app, self.srv, self.requests = app, srv, 0

    def spend_row(self, n: int, wait_s: float = 5.0) -> dict[str, Any] | None:
        """The spend-log row of the n-th request (1-based), once it is written."""
        deadline = time.monotonic() + wait_s
        while True:
            self.app.spend.flush()
            con = sqlite3.connect(self.app.spend.path)
            try:
                con.row_factory = sqlite3.Row
                rows = con.execute("SELECT * FROM spend ORDER BY id").fetchall()
            finally:
                con.close()
            if len(rows) >= n:
                return dict(rows[n - 1])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


@contextmanager
def proxy(up: FaultUpstream, tmp_path: Path, faults: list[str], **sections: Any) -> Iterator[Proxy]:
    app = build_app(write_config(tmp_path / "quotaroute.yaml", up.base_url, faults, **sections))
    srv = LiveServer(app)
    srv.__enter__()
    try:
        yield Proxy(app, srv)
    finally:
        up.stop()  # release held upstream connections first, so requests still in flight end
        srv.__exit__(None, None, None)


async def call(p: Proxy, *, stream: bool, budget_s: float) -> Outcome:
    """One request through the proxy with the openai SDK; never waits longer than `budget_s`."""
    out = Outcome()
    client = openai.AsyncOpenAI(api_key="unused", base_url=f"{p.srv.url}/v1", max_retries=0, timeout=budget_s)
    p.requests += 1
    n = p.requests

    async def go() -> None:
        extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        try:
            raw = await client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES,
                                                                     max_tokens=MAX_TOKENS, **extra)
        except openai.APIStatusError as e:
            out.status, out.error = e.status_code, e.code or e.type or "status_error"
            out.model = e.response.headers.get("x-quotaroute-model")
            return
        out.status, out.model = raw.status_code, raw.headers.get("x-quotaroute-model")
        parsed = raw.parse()
        if inspect.isawaitable(parsed):
            parsed = await parsed
        if not stream:
            out.text, out.finish = parsed.choices[0].message.content or "", parsed.choices[0].finish_reason
            return
        try:
            async for chunk in parsed:
                for ch in chunk.choices:
                    out.text += ch.delta.content or ""
                    out.finish = ch.finish_reason or out.finish
        except openai.APIError as e:  # the proxy's mid-stream error event
            out.error = e.code or e.type or "stream_error"
        except Exception as e:  # noqa: BLE001 - the stream broke below the SDK
            out.error = type(e).__name__

    t0 = time.monotonic()
    try:
        await asyncio.wait_for(go(), budget_s + 1)
    except (asyncio.TimeoutError, openai.APITimeoutError):
        out.error = "test_timeout"
    except openai.APIConnectionError as e:
        out.error = f"connection: {e}"
    finally:
        await client.close()
    out.wall_s = time.monotonic() - t0
    row = await asyncio.to_thread(p.spend_row, n, 0.5 if out.error == "test_timeout" else 5.0)
    if row is not None:
        out.cost, out.output_tokens = Decimal(row["cost_usd"]), row["output_tokens"]
        out.notes.append(f"spend row: status {row['status']}, model {row['model']}, chain {row['fallback_chain']}")
    return out


@pytest.mark.parametrize(("name", "stream"), matrix())
async def test_fault(name: str, stream: bool, upstream: FaultUpstream, tmp_path: Path) -> None:
    model, plain, streamed = SCENARIOS[name]
    expect = streamed if stream else plain
    with proxy(upstream, tmp_path, [model]) as p:
        out = await call(p, stream=stream, budget_s=expect.max_wall_s + SLACK_S)
        check(out, expect, mode="proxy", model=model, calls=upstream.count(model), spare_calls=upstream.count("ok"))
        if name == "429":  # the rate-limited model is cooled down: the next request goes straight to the spare
            before = upstream.count(model)
            again = await call(p, stream=stream, budget_s=SLACK_S * 2)
            assert (again.model, again.cost, again.text) == ("spare:ok", SPARE, FULL), again
            assert upstream.count(model) == before
            assert again.wall_s <= SLACK_S, again


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_bill_only_the_attempt_that_answered(stream: bool, upstream: FaultUpstream, tmp_path: Path) -> None:
    """503, then a reset, then the spare answers: the spend log and the global budget
    (GET /v1/quota) show exactly the spare's bill; no reservation is left behind."""
    budgets = [{"id": "all", "scope": "global", "period": "day", "limit_usd": "10"}]
    with proxy(upstream, tmp_path, ["fb-503", "fb-reset"], budgets=budgets) as p:
        out = await call(p, stream=stream, budget_s=SLACK_S * 3)
        assert (out.error, out.model, out.text, out.cost) == (None, "spare:ok", FULL, SPARE), out
        assert upstream.count("fb-503") >= 1 and upstream.count("fb-reset") >= 1
        assert out.wall_s <= SLACK_S * 2, out
        async with httpx.AsyncClient(base_url=p.srv.url) as hc:
            quota = (await hc.get("/v1/quota")).json()
        (b,) = [b for b in quota["budgets"] if b["budget_id"] == "all"]
        assert (Decimal(b["spent_usd"]), Decimal(b["reserved_usd"])) == (SPARE, Decimal(0)), b


async def test_error_names_the_routed_model(upstream: FaultUpstream, tmp_path: Path) -> None:
    """A vendor error (400 content_filter, no fallback) names the routed model id, as a
    success does: header and spend row say `wall:fb-filter-400`."""
    with proxy(upstream, tmp_path, ["fb-filter-400"]) as p:
        out = await call(p, stream=False, budget_s=SLACK_S * 2)
        assert (out.status, out.error) == (400, "content_filter"), out
        row = p.spend_row(1)
        assert row is not None and (out.model, row["model"]) == ("wall:fb-filter-400",) * 2, (out, row)


@pytest.mark.slow
async def test_flapping_model_recovers_within_seconds_of_healing(upstream: FaultUpstream, tmp_path: Path) -> None:
    """503s for TIMING.flap_s: every request (stream and non-stream in turn) is answered
    (by the spare while it flaps); the model answers again within RECOVER_S of healing."""
    with proxy(upstream, tmp_path, ["fb-flap"]) as p:
        seen: list[tuple[float, Outcome]] = []
        i = 0
        deadline = time.monotonic() + TIMING.flap_s + RECOVER_S + 10
        while True:
            out = await call(p, stream=bool(i % 2), budget_s=LIMIT_S + SLACK_S)
            i += 1
            now = time.monotonic()
            seen.append((now, out))
            assert out.error is None and out.text == FULL, out
            healed = upstream.healed_at()
            if out.model == "wall:fb-flap" or (healed is not None and now > healed + RECOVER_S) or now > deadline:
                break
            await asyncio.sleep(0.1)
        back = [t for t, o in seen if o.model == "wall:fb-flap"]
        healed = upstream.healed_at()
        assert healed is not None, "the flapping model was never called"
        assert back and back[0] - healed <= RECOVER_S, f"not back {RECOVER_S}s after healing ({len(seen)} requests)"
