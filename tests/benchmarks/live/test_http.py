"""The runner through the REAL adapters (providers.registry) against respx-faked
vendors speaking the OpenAI-compatible wire format: one rate-limits (429 +
Retry-After), one runs out of balance mid-run (DeepSeek 402), one hits OpenAI's
insufficient_quota. The run goes on with the others and reports what happened."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import httpx
import respx

from benchmarks.live import run_live
from benchmarks.live_backends import DirectBackend
from benchmarks.live_cache import ResultCache
from benchmarks.live_report import write_outputs
from providers.registry import build_provider
from providers.retry import NO_RETRY

from .conftest import FakeClock, fast_options, price

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
KEYS = {"va": "sk-test-vendorA-0123456789", "vb": "sk-test-vendorB-0123456789", "vc": "sk-test-vendorC-0123456789"}


def _fixture(*parts: str) -> str:
    with open(os.path.join(FIX, *parts), encoding="utf-8") as fh:
        return fh.read()


def sse_answer(text: str, model: str, prompt_tokens: int = 21, completion_tokens: int = 9) -> bytes:
    """An OpenAI chat.completion.chunk stream shaped exactly like tests/fixtures/openai/chat_stream.sse."""
    base = {"id": "chatcmpl-bench1", "object": "chat.completion.chunk", "created": 1738701635, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_72ed7ab54c"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                              "logprobs": None, "finish_reason": None}], "usage": None},
        {**base, "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}],
         "usage": None},
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], "usage": None},
        {**base, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                          "total_tokens": prompt_tokens + completion_tokens,
                                          "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                                          "completion_tokens_details": {"reasoning_tokens": 0}}},
    ]
    out = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return out.encode()


class Vendor:
    """A respx side effect: answers suite prompts with their reference, scripted failures first."""

    def __init__(self, suite, key: str, fail=None) -> None:  # type: ignore[no-untyped-def]
        self.by_prompt = {it.prompt: it for it in suite.items}
        self.key, self.fail, self.n, self.bodies = key, fail, 0, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.n += 1
        assert request.headers["authorization"] == f"Bearer {self.key}"
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.fail is not None:
            resp = self.fail(self.n)
            if resp is not None:
                return resp
        prompt = body["messages"][-1]["content"]
        item = self.by_prompt[prompt]
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=sse_answer(item.reference, body["model"]))


def rate_limit_first_two(n: int) -> httpx.Response | None:
    if n > 2:
        return None
    headers = json.loads(_fixture("openai", "error_rate_limit.headers.json"))
    headers["retry-after"] = "3"
    headers.pop("retry-after-ms", None)
    return httpx.Response(429, headers=headers, content=_fixture("openai", "error_rate_limit.json").encode())


def deepseek_402_after_two(n: int) -> httpx.Response | None:
    if n <= 2:
        return None
    return httpx.Response(402, headers={"content-type": "application/json"},
                          content=_fixture("deepseek", "error_402.json").encode())


def openai_insufficient_quota_after_one(n: int) -> httpx.Response | None:
    if n <= 1:
        return None
    return httpx.Response(429, headers=json.loads(_fixture("openai", "error_insufficient_quota.headers.json")),
                          content=_fixture("openai", "error_insufficient_quota.json").encode())


async def test_live_run_through_real_adapters(mini_suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    va = Vendor(mini_suite, KEYS["va"], rate_limit_first_two)
    vb = Vendor(mini_suite, KEYS["vb"], deepseek_402_after_two)
    vc = Vendor(mini_suite, KEYS["vc"], openai_insufficient_quota_after_one)
    clk = FakeClock()
    async with httpx.AsyncClient() as client:
        provs = {
            "va": build_provider("openai", api_key=KEYS["va"], base_url="https://vendor-a.test/v1", client=client,
                                 name="va", retry=NO_RETRY),
            "vb": build_provider("deepseek", api_key=KEYS["vb"], base_url="https://vendor-b.test/v1", client=client,
                                 name="vb", retry=NO_RETRY),
            "vc": build_provider("openai", api_key=KEYS["vc"], base_url="https://vendor-c.test/v1", client=client,
                                 name="vc", retry=NO_RETRY),
        }
        models = ["va:gpt-4o-mini", "vb:deepseek-chat", "vc:gpt-4.1-nano"]
        backend = DirectBackend(provs, {m: price("0.15", "0.60") for m in models})
        cache = ResultCache(str(tmp_path / "cache.sqlite"))
        with respx.mock(assert_all_called=True) as mock:
            mock.post("https://vendor-a.test/v1/chat/completions").mock(side_effect=va)
            mock.post("https://vendor-b.test/v1/chat/completions").mock(side_effect=vb)
            mock.post("https://vendor-c.test/v1/chat/completions").mock(side_effect=vc)
            s = await run_live(mini_suite, models, backend, cache, fast_options(clk, concurrency=1))
    recs = {m: [r for r in s.records if r.model == m] for m in models}
    # vendor A: two 429s with Retry-After: 3 -> waited 3 s twice, then everything answered
    assert len(recs["va:gpt-4o-mini"]) == 4 and all(r.quality == 1.0 for r in recs["va:gpt-4o-mini"])
    assert clk.slept.count(3.0) == 2 and s.rate_limit_waits["va:gpt-4o-mini"] == 2
    assert va.bodies[0]["stream"] is True and va.bodies[0]["stream_options"] == {"include_usage": True}
    # vendor B: DeepSeek 402 Insufficient Balance after 2 calls -> done for the run, reported
    assert len(recs["vb:deepseek-chat"]) == 2 and vb.n == 3
    assert s.model_events["vb:deepseek-chat"].startswith("quota") and "Insufficient Balance" in s.model_events[
        "vb:deepseek-chat"]
    # vendor C: OpenAI insufficient_quota (429, but a quota, not a rate limit) -> no retry, done
    assert len(recs["vc:gpt-4.1-nano"]) == 1 and vc.n == 2 and s.rate_limit_waits["vc:gpt-4.1-nano"] == 0
    assert s.model_events["vc:gpt-4.1-nano"].startswith("quota")
    # usage and exact cost come from the vendor's usage block
    r = recs["va:gpt-4o-mini"][0]
    assert (r.input_tokens, r.output_tokens) == (21, 9)
    assert r.cost_usd == Decimal("0.00000855")  # 21*0.15/1M + 9*0.60/1M
    # no key anywhere in what we stored or report
    blob = json.dumps([str(x.__dict__) for x in cache.all()])
    summary = write_outputs(str(tmp_path / "out"), s, plots=False)
    blob += json.dumps(summary) + (tmp_path / "out" / "calls.csv").read_text()
    assert not any(k in blob for k in KEYS.values())
    assert "vb:deepseek-chat stopped early" in (tmp_path / "out" / "report.md").read_text()
    assert summary["per_model"]["vb:deepseek-chat"]["unfinished"] == {"quota": 1}
    assert summary["per_model"]["va:gpt-4o-mini"]["unfinished"] == {}
