"""The fault matrix's setup and EXPECTED CONDUCT, shared by the SDK and the proxy
runs (tests/router/test_faults_sdk.py, tests/router/server/test_faults_proxy.py).

Setup. Two providers point at one `FaultUpstream`: `wall` serves the faulty model
under test (cheap, 8k context, so the `cheapest` policy tries it first) and `spare`
serves `ok` (dearer, 128k context: the fallback). Each provider gets
`options: {timeout: LIMIT_S}`, the per-attempt limit on waiting for the first byte
and between chunks of a stream; a non-stream attempt may take NON_STREAM_LIMIT_S
(the first-byte limit plus `max_tokens` at 25 tokens/s; every request asks for
MAX_TOKENS). The fault server's delays are scaled to them: a slow first token of
`Timing.first_token_s` = LIMIT_S / 2 must still be answered; a silent or stalled
upstream must be given up after about the limit.

Expected conduct, per scenario (non-stream | stream when they differ):

  429-once       the same model answers after waiting Retry-After (<= the retry cap),
                 billed once; 2 calls reach it
  429            (persistent) falls over to the spare within a few seconds; billed the
                 spare only; the model is cooled down: the next request goes straight to
                 the spare
  500-once       the same model answers after one retry; billed once
  503            (persistent) falls over to the spare; billed the spare only
  reset          falls over to the spare; billed the spare only
  silent         falls over to the spare after ~NON_STREAM_LIMIT_S | ~LIMIT_S, ONE call to
                 the silent model (a timed-out attempt is not retried on the same model)
  slow-first     the slow model answers (it started within its limit); billed once
  cut            falls over to the spare, billed the spare only | the 40 words already
                 sent stay; the stream then ends with an error event (or is finished by
                 the fallback), never a clean "stop"; billed the delivered tokens
  stall          falls over after ~NON_STREAM_LIMIT_S, one call | as cut, within ~LIMIT_S of
                 the stall
  malformed      falls over (one call) | as cut, after the 10 words before the bad chunk
  no-done        accepted: the answer with its finish and usage is complete without
                 `[DONE]`; billed the vendor's usage
  context-400    falls over to a model with a larger context window (one call)
  filter-400     no fallback: the client gets 400 `content_filter` (SDK: ContentFiltered);
                 nothing billed; the spare is never called
  insufficient   finish "insufficient_system_resource" after 20 of 60 words is a failure:
                 falls back to the spare; billed what both vendors billed | the stream
                 ends with an error event (or is finished by the fallback), never a
                 clean "stop"; billed at least what the vendor reported
  finish-error   as insufficient, with finish_reason "error"
  flap           503s for `Timing.flap_s`: every request is answered by the spare during
                 the flap; the model is used again within RECOVER_S of healing
  bill-once      three candidates, two fail (503, reset), the third answers: the bill,
                 the spend log and the global budget show exactly the answering attempt
                 (failed attempts' reservations released)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support.fault_upstream import PROMPT_TOKENS, FaultUpstream, Timing, answer_text

__all__ = ["LIMIT_S", "MAX_TOKENS", "NON_STREAM_LIMIT_S", "SLACK_S", "RECOVER_S", "TIMING", "KEY_ENV", "MESSAGES",
           "FULL", "Expect", "Outcome", "SCENARIOS", "write_config", "wall_cost", "spare_cost", "check"]

LIMIT_S = 2.0  # per-attempt first-byte / idle limit given to the router (provider options.timeout)
MAX_TOKENS = 64  # every request asks for at most this many tokens (the answer is 60)
# A non-stream attempt gets its whole answer's time: first-byte limit + max_tokens at 25 tokens/s.
NON_STREAM_LIMIT_S = LIMIT_S + MAX_TOKENS / 25
SLACK_S = 2.0  # generous slack on every wall-time bound
RECOVER_S = 6.0  # a flapping model is used again within this long after it healed ("a few seconds")
TIMING = Timing(retry_after_s=1.0, first_token_s=LIMIT_S / 2, flap_s=3.0, word_s=0.0, hold_s=60.0)
KEY_ENV = "FAULT_UPSTREAM_KEY"
MESSAGES = [{"role": "user", "content": "Write sixty words."}]
FULL = answer_text()
_M = Decimal(10) ** 6


def wall_cost(words: int, rank: int = 0) -> Decimal:
    """What a `wall` model bills for one answer of `words` words (rank: its place in a multi-fault config)."""
    inp, out = Decimal(1) + Decimal(rank) / 2, Decimal(2) + Decimal(rank)
    return (PROMPT_TOKENS * inp + words * out) / _M


def spare_cost(words: int = 60) -> Decimal:
    return (PROMPT_TOKENS * 3 + words * 6) / _M


SPARE = spare_cost()


def write_config(path: Path, base_url: str, faults: list[str], *, limit_s: float = LIMIT_S,
                 **sections: Any) -> str:
    """A quotaroute config (JSON is YAML) with `wall:<fault>` for each fault (cheapest
    first, in order) and `spare:ok`; extra top-level `sections` (budgets, health, ...)."""
    def provider() -> dict[str, Any]:
        return {"vendor": "openai", "base_url": base_url, "api_key_env": KEY_ENV, "options": {"timeout": limit_s}}

    overrides: dict[str, Any] = {}
    for i, f in enumerate(faults):
        overrides[f"wall:{f}"] = {"context_window": 8192, "price": {"input": str(Decimal(1) + Decimal(i) / 2),
                                                                    "output": str(Decimal(2) + Decimal(i))}}
    overrides["spare:ok"] = {"context_window": 128000, "price": {"input": "3", "output": "6"}}
    cfg = {"providers": {"wall": provider(), "spare": provider()},
           "models": {"include": [*overrides], "overrides": overrides},
           "policy": {"default": "cheapest"}, **sections}
    path.write_text(json.dumps(cfg, indent=1))
    return str(path)


@dataclass(frozen=True)
class Expect:
    """Expected conduct of one request."""

    answered_by: str | None  # the model that answers (route / x-quotaroute-model); None: the client gets an error
    cost: Decimal | None = None  # the exact bill (USD), when it is known
    max_wall_s: float = SLACK_S
    min_wall_s: float = 0.0
    calls: int | None = None  # requests the faulty model receives (None: not pinned)
    error: str | None = None  # SDK: the exception class
    status: int = 200  # proxy: the HTTP status (of the status line, for a stream)
    code: str | None = None  # proxy: the error code
    broken_after: int | None = None  # a stream whose upstream broke after this many words reached the client
    min_cost: Decimal = Decimal(0)  # a broken stream is billed at least this
    spare_called: bool | None = None  # must (True) / must not (False) reach the spare


@dataclass
class Outcome:
    """What one request did, the same shape for both modes."""

    model: str | None = None
    status: int | None = None
    error: str | None = None  # SDK: exception class; proxy: error code; "test_timeout" when it never ended
    text: str = ""
    finish: str | None = None
    cost: Decimal | None = None
    output_tokens: int | None = None
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _broken(after: int, *, max_wall_s: float = SLACK_S, min_cost: Decimal | None = None) -> Expect:
    return Expect(None, max_wall_s=max_wall_s, broken_after=after,
                  min_cost=min_cost if min_cost is not None else wall_cost(after // 2) - wall_cost(0))


_FAILOVER = Expect("spare:ok", SPARE)
# scenario -> (model, non-stream conduct, stream conduct)
SCENARIOS: dict[str, tuple[str, Expect, Expect]] = {
    "429-once": ("fb-429-once",) + (Expect("wall:fb-429-once", wall_cost(60), calls=2,
                                           min_wall_s=TIMING.retry_after_s * 0.9,
                                           max_wall_s=TIMING.retry_after_s + SLACK_S),) * 2,
    "429": ("fb-429",) + (_FAILOVER,) * 2,
    "500-once": ("fb-500-once",) + (Expect("wall:fb-500-once", wall_cost(60), calls=2),) * 2,
    "503": ("fb-503",) + (_FAILOVER,) * 2,
    "reset": ("fb-reset",) + (_FAILOVER,) * 2,
    "silent": ("fb-silent", Expect("spare:ok", SPARE, calls=1, max_wall_s=NON_STREAM_LIMIT_S + SLACK_S),
               Expect("spare:ok", SPARE, calls=1, max_wall_s=LIMIT_S + SLACK_S)),
    "slow-first": ("fb-slow-first",) + (Expect("wall:fb-slow-first", wall_cost(60), calls=1,
                                               min_wall_s=TIMING.first_token_s * 0.9,
                                               max_wall_s=TIMING.first_token_s + SLACK_S),) * 2,
    "cut": ("fb-cut", _FAILOVER, _broken(40)),
    "stall": ("fb-stall", Expect("spare:ok", SPARE, calls=1, max_wall_s=NON_STREAM_LIMIT_S + SLACK_S),
              _broken(10, max_wall_s=LIMIT_S + SLACK_S)),
    "malformed": ("fb-malformed", Expect("spare:ok", SPARE, calls=1), _broken(10)),
    "no-done": ("fb-no-done",) + (Expect("wall:fb-no-done", wall_cost(60)),) * 2,
    "context-400": ("fb-context-400",) + (Expect("spare:ok", SPARE, calls=1),) * 2,
    "filter-400": ("fb-filter-400",) + (Expect(None, Decimal(0), calls=1, error="ContentFiltered", status=400,
                                               code="content_filter", spare_called=False),) * 2,
    "insufficient": ("fb-insufficient", Expect("spare:ok", wall_cost(20) + SPARE, calls=1),
                     _broken(20, min_cost=wall_cost(20))),
    "finish-error": ("fb-finish-error", Expect("spare:ok", wall_cost(20) + SPARE, calls=1),
                     _broken(20, min_cost=wall_cost(20))),
}


def check(out: Outcome, e: Expect, *, mode: str, model: str, calls: int, spare_calls: int) -> None:
    """Assert the expected conduct `e` of a request to `wall:<model>` (mode "sdk" | "proxy")."""
    where = f"{model} ({mode}): {out}"
    assert e.min_wall_s <= out.wall_s <= e.max_wall_s, f"wall time {out.wall_s:.2f}s outside " \
        f"[{e.min_wall_s}, {e.max_wall_s}] s -- {where}"
    if e.calls is not None:
        assert calls == e.calls, f"{calls} calls reached {model}, expected {e.calls} -- {where}"
    if e.spare_called is not None:
        assert (spare_calls > 0) == e.spare_called, f"spare called {spare_calls} times -- {where}"
    if e.broken_after is not None:
        delivered = answer_text(e.broken_after)
        assert out.model == f"wall:{model}", where  # the stream had started on the faulty model
        assert out.text.startswith(delivered), f"the words already sent were lost -- {where}"
        complete = out.text == FULL and out.finish == "stop"
        assert complete or (out.error is not None and out.finish != "stop"), \
            f"a truncated answer was presented as complete (or ended without an error) -- {where}"
        assert out.cost is not None and out.cost >= e.min_cost, f"broken stream under-billed -- {where}"
        assert (out.output_tokens or 0) >= e.broken_after // 2, f"delivered tokens not billed -- {where}"
        return
    if e.answered_by is None:
        if mode == "sdk":
            assert out.error == e.error, where
        else:
            assert (out.status, out.error) == (e.status, e.code), where
        if e.cost is not None:
            assert out.cost == e.cost, where
        return
    assert out.error is None and out.status == 200, where
    assert out.model == e.answered_by, where
    assert out.text == FULL and out.finish == "stop", where
    if e.cost is not None:
        assert out.cost == e.cost, f"billed {out.cost}, expected exactly {e.cost} -- {where}"


SLOW = ("silent", "stall")  # they wait out LIMIT_S by design


def matrix() -> list[Any]:
    """Every scenario, non-stream and stream, as pytest params (the slow ones marked)."""
    import pytest  # lazy: this module is also imported outside pytest (a benchmark)

    out = []
    for name in SCENARIOS:
        for stream in (False, True):
            marks = [pytest.mark.slow] if name in SLOW else []
            out.append(pytest.param(name, stream, marks=marks, id=f"{name}-{'stream' if stream else 'json'}"))
    return out


def run_upstream(monkeypatch: Any, tmp_path: Path) -> Iterator[FaultUpstream]:
    """Body of the `upstream` fixture both modes use: the fault server, its key in the
    environment, and a home of the test's own (spend log, ledger files)."""
    fault_env(monkeypatch, tmp_path)
    with FaultUpstream(TIMING) as up:
        yield up


def fault_env(monkeypatch: Any, tmp_path: Path) -> None:
    """The fault upstream's key in the environment, and a home of the test's own."""
    monkeypatch.setenv(KEY_ENV, "sk-fault-upstream-key-0123456789")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_DEFAULT_STORE", raising=False)
    monkeypatch.delenv("QUOTAROUTE_LEDGER_URL", raising=False)
