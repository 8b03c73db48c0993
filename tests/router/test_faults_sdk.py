"""The fault matrix in SDK mode: `router.Router.from_config(...)` against the fault
upstream (tests/support/fault_upstream.py), each scenario non-stream (`achat`) and
stream (`astream`). The expected conduct of each scenario is in
tests/support/fault_cases.py (`SCENARIOS`, `check`). A case that regresses names the
scenario, the conduct it broke and the outcome it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from router.sdk import Router
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
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    yield from run_upstream(monkeypatch, tmp_path)


@asynccontextmanager
async def _router(up: FaultUpstream, tmp_path: Path, faults: list[str], **sections: Any) -> AsyncIterator[Router]:
    router = Router.from_config(write_config(tmp_path / "quotaroute.yaml", up.base_url, faults, **sections))
    try:
        yield router
    finally:
        await router.aclose()


def _bill(out: Outcome, route: Any) -> None:
    if route is None:
        return
    out.model = out.model or route.model_id or None  # a stream: the model that started it
    out.cost = route.cost_usd
    out.output_tokens = sum(a.usage.output_tokens for a in route.attempts if a.usage is not None)


async def call(router: Router, *, stream: bool, budget_s: float) -> Outcome:
    """One request through the SDK; never waits longer than `budget_s`."""
    out = Outcome()
    holder: dict[str, Any] = {}

    async def go() -> None:
        if not stream:
            try:
                r = await router.achat(MESSAGES, max_tokens=MAX_TOKENS)
            except Exception as e:  # noqa: BLE001 - the outcome records it
                out.error = type(e).__name__
                _bill(out, getattr(e, "route", None))
                return
            out.status, out.text, out.finish = 200, r.response.text, r.response.finish_reason
            _bill(out, r.route)
            return
        try:
            s = await router.astream(MESSAGES, max_tokens=MAX_TOKENS)
        except Exception as e:  # noqa: BLE001
            out.error = type(e).__name__
            _bill(out, getattr(e, "route", None))
            return
        holder["s"] = s
        out.status, out.model = 200, s.route.model_id
        try:
            async for ev in s:
                if ev.kind == "text":
                    out.text += ev.text
                elif ev.kind == "finish":
                    out.finish = ev.finish_reason
        except Exception as e:  # noqa: BLE001
            out.error = type(e).__name__
        finally:
            await s.aclose()
        _bill(out, s.route)

    t0 = time.monotonic()
    try:
        await asyncio.wait_for(go(), budget_s)
    except asyncio.TimeoutError:
        out.error = out.error or "test_timeout"
        if "s" in holder:
            _bill(out, holder["s"].route)
    out.wall_s = time.monotonic() - t0
    return out


@pytest.mark.parametrize(("name", "stream"), matrix())
async def test_fault(name: str, stream: bool, upstream: FaultUpstream, tmp_path: Path) -> None:
    model, plain, streamed = SCENARIOS[name]
    expect = streamed if stream else plain
    async with _router(upstream, tmp_path, [model]) as router:
        out = await call(router, stream=stream, budget_s=expect.max_wall_s + SLACK_S)
        check(out, expect, mode="sdk", model=model, calls=upstream.count(model), spare_calls=upstream.count("ok"))
        if name == "429":  # the rate-limited model is cooled down: the next request goes straight to the spare
            before = upstream.count(model)
            again = await call(router, stream=stream, budget_s=SLACK_S * 2)
            assert (again.model, again.cost, again.text) == ("spare:ok", SPARE, FULL), again
            assert upstream.count(model) == before
            assert again.wall_s <= SLACK_S, again


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_bill_only_the_attempt_that_answered(stream: bool, upstream: FaultUpstream, tmp_path: Path) -> None:
    """503, then a reset, then the spare answers: the route, the attempts and the
    global budget show exactly the spare's bill; no reservation is left behind."""
    budgets = [{"id": "all", "scope": "global", "period": "day", "limit_usd": "10"}]
    async with _router(upstream, tmp_path, ["fb-503", "fb-reset"], budgets=budgets) as router:
        out = await call(router, stream=stream, budget_s=SLACK_S * 3)
        assert (out.error, out.model, out.text, out.cost) == (None, "spare:ok", FULL, SPARE), out
        assert upstream.count("fb-503") >= 1 and upstream.count("fb-reset") >= 1
        assert out.wall_s <= SLACK_S * 2, out
        view = await router.ledger.view(datetime.now(timezone.utc), ())
        (b,) = [b for b in view.budgets if b.budget_id == "all"]
        assert (b.spent_usd, b.reserved_usd) == (SPARE, Decimal(0)), b


@pytest.mark.slow
async def test_flapping_model_recovers_within_seconds_of_healing(upstream: FaultUpstream, tmp_path: Path) -> None:
    """503s for TIMING.flap_s: every request (stream and non-stream in turn) is answered
    (by the spare while it flaps); the model answers again within RECOVER_S of healing."""
    async with _router(upstream, tmp_path, ["fb-flap"]) as router:
        seen: list[tuple[float, Outcome]] = []
        i = 0
        deadline = time.monotonic() + TIMING.flap_s + RECOVER_S + 10
        while True:
            out = await call(router, stream=bool(i % 2), budget_s=LIMIT_S + SLACK_S)
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
