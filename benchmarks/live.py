"""The live-benchmark runner: every suite item x every model x every repeat.

I/O goes through a `Backend` (the SDK `Router` with the model pinned, so the
ledger's free quotas, rate limits and budgets apply; or providers called
directly). The runner adds what a benchmark needs on top: per-model concurrency,
bounded waits on RateLimited, "this model is done for the run" on
QuotaExhausted, a hard budget cap checked BEFORE each call (worst-case estimate
+ money in flight + money spent), scoring, and a resumable SQLite cache.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from benchmarks.live_cache import CallRecord, ResultCache
from benchmarks.scorers import Score, judge_request, score_answer
from benchmarks.suite import Suite, SuiteItem
from router.errors import (
    AuthFailed,
    BudgetExceeded,
    NoRouteAvailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    redact,
)
from router.types import ChatRequest, ChatResponse

__all__ = ["CallOutcome", "Backend", "RunOptions", "RunSummary", "LiveRunner", "run_live"]


@dataclass
class CallOutcome:
    response: ChatResponse
    cost_usd: Decimal
    free_quota: bool = False
    ttft_s: float | None = None
    latency_s: float = 0.0
    note: str = ""
    list_cost_usd: Decimal | None = None  # what it costs at list price (None = same as cost_usd)


class Backend(Protocol):
    def estimate_usd(self, model_id: str, req: ChatRequest) -> Decimal | Awaitable[Decimal]:
        """Worst-case cost of this call (max_tokens of output), 0 when a free pool covers it
        (may be async: the runner awaits it BEFORE its check-and-reserve step)."""
        ...

    async def call(self, model_id: str, req: ChatRequest) -> CallOutcome: ...

    async def aclose(self) -> None: ...


@dataclass
class RunOptions:
    repeats: int = 1
    concurrency: int = 4  # per model
    budget_usd: Decimal | None = None
    max_rate_wait_s: float = 60.0  # cap on one Retry-After wait
    max_rate_retries: int = 5
    max_transient_retries: int = 2
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    on_progress: Callable[["LiveRunner"], None] | None = None


@dataclass
class ModelState:
    model: str
    sem: asyncio.Semaphore
    paused_until: float = 0.0
    done_reason: str = ""  # set when the model is out for the rest of the run
    rate_limited: int = 0
    calls: int = 0


@dataclass
class RunSummary:
    suite: str
    models: list[str]
    records: list[CallRecord]
    model_events: dict[str, str]  # model -> why it stopped early ("" = ran to the end)
    rate_limit_waits: dict[str, int]
    budget_usd: Decimal | None
    budget_stop: str  # "" or the reason the run stopped
    spent_usd: Decimal  # answers + judge, all records (cached included)
    new_spent_usd: Decimal
    judge_usd: Decimal
    calls_made: int
    cached: int
    skipped: int
    elapsed_s: float
    total: int = 0
    unfinished: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> status -> count


class LiveRunner:
    def __init__(self, suite: Suite, models: Sequence[str], backend: Backend, cache: ResultCache,
                 options: RunOptions | None = None, *, judge_model: str | None = None) -> None:
        self.suite, self.models, self.backend, self.cache = suite, list(models), backend, cache
        self.opt = options or RunOptions()
        self.judge_model = judge_model or (suite.judge.model if suite.judge else None)
        self.judge_rubric = suite.judge.rubric if suite.judge else None
        self.total = len(models) * len(suite.items) * self.opt.repeats
        self.done = self.cached = self.skipped = self.calls_made = 0
        self.spent = Decimal(0)  # answer + judge money of every record counted so far
        self.new_spent = Decimal(0)
        self.judge_spent = Decimal(0)
        self.in_flight = Decimal(0)
        self.budget_stop = ""
        self.records: list[CallRecord] = []
        self.unfinished: dict[str, dict[str, int]] = {}  # model -> status -> calls to retry next run
        self.states: dict[str, ModelState] = {}

    # ------------------------------------------------------------ public

    async def run(self) -> RunSummary:
        t0 = self.opt.clock()
        self.states = {m: ModelState(m, asyncio.Semaphore(max(1, self.opt.concurrency))) for m in self.models}
        work: dict[str, list[tuple[SuiteItem, int]]] = {m: [] for m in self.models}
        # Count everything already paid for first, so the budget covers resumed runs too.
        for m in self.models:
            for it in self.suite.items:
                for r in range(self.opt.repeats):
                    rec = self.cache.get(m, it.id, r)
                    if rec is not None and rec.item_hash == it.fingerprint():
                        self.spent += rec.cost_usd + rec.judge_cost_usd
                        self.judge_spent += rec.judge_cost_usd
                    done = self.cache.done(m, it.id, r, it.fingerprint())
                    if done is not None:
                        self.records.append(done)
                        self.cached += 1
                        self.done += 1
                    else:
                        work[m].append((it, r))
        self._progress()
        # Item-major order inside each model; models run side by side.
        await asyncio.gather(*(self._model_worker(m, work[m]) for m in self.models))
        return RunSummary(
            suite=self.suite.name, models=self.models, records=self.records,
            model_events={m: s.done_reason for m, s in self.states.items()},
            rate_limit_waits={m: s.rate_limited for m, s in self.states.items()},
            budget_usd=self.opt.budget_usd, budget_stop=self.budget_stop, spent_usd=self.spent,
            new_spent_usd=self.new_spent, judge_usd=self.judge_spent, calls_made=self.calls_made,
            cached=self.cached, skipped=self.skipped, elapsed_s=self.opt.clock() - t0, total=self.total,
            unfinished=self.unfinished,
        )

    # ------------------------------------------------------------ scheduling

    async def _model_worker(self, model: str, jobs: list[tuple[SuiteItem, int]]) -> None:
        st = self.states[model]
        queue: asyncio.Queue[tuple[SuiteItem, int]] = asyncio.Queue()
        pos = {it.id: i for i, it in enumerate(self.suite.items)}
        for j in sorted(jobs, key=lambda j: (j[1], pos[j[0].id])):
            queue.put_nowait(j)

        async def worker() -> None:
            while not queue.empty():
                item, rep = queue.get_nowait()
                if st.done_reason or self.budget_stop:
                    self.skipped += 1
                    self.done += 1
                    self._progress()
                    continue
                async with st.sem:
                    await self._one(st, item, rep)
                self._progress()

        await asyncio.gather(*(worker() for _ in range(max(1, self.opt.concurrency))))

    async def _estimate_one(self, model: str, req: ChatRequest) -> Decimal:
        est = self.backend.estimate_usd(model, req)
        if inspect.isawaitable(est):
            est = await est
        return Decimal(est)

    async def _estimate(self, model: str, item: SuiteItem, req: ChatRequest, *, answer: bool = True) -> Decimal:
        est = await self._estimate_one(model, req) if answer else Decimal(0)
        if item.scorer["type"] == "judge":
            jm = item.scorer.get("model") or self.judge_model
            if jm:
                jreq = judge_request(item, "x" * (4 * item.max_tokens), self.judge_rubric or "", 300)
                est += await self._estimate_one(jm, jreq)
        return est

    async def _one(self, st: ModelState, item: SuiteItem, rep: int) -> None:
        model = st.model
        req = item.request(model=model)
        rec = CallRecord(model=model, item_id=item.id, repeat=rep, task=item.task, prompt=item.prompt,
                         item_hash=item.fingerprint())
        cached = self.cache.get(model, item.id, rep)
        # A paid answer whose judging failed last time: only re-score it (the judge is still budgeted).
        rescore = cached is not None and cached.status == "judge_error" and cached.item_hash == rec.item_hash
        est = await self._estimate(model, item, req, answer=not rescore)
        # Check and reserve without an await in between: the cap cannot be overrun by racing workers.
        if self.budget_stop or (self.opt.budget_usd is not None
                                 and self.spent + self.in_flight + est > self.opt.budget_usd):
            if not self.budget_stop:
                self.budget_stop = (
                    f"budget cap ${self.opt.budget_usd} reached: spent ${self.spent:.6f} + in flight "
                    f"${self.in_flight:.6f} + next call (worst case ${est:.6f}, {model} on {item.id}) would exceed it"
                )
            self.skipped += 1
            self.done += 1
            return
        self.in_flight += est
        try:
            if rescore and cached is not None:
                rec = cached
                await self._score(item, rec)
            else:
                out = await self._call_with_retries(st, req, rec)
                if out is not None:
                    self._charge(rec, out)
                    await self._score(item, rec)
        finally:
            self.in_flight -= est
        self._finish(rec)  # non-final records are retried by the next run

    async def _call_with_retries(self, st: ModelState, req: ChatRequest, rec: CallRecord) -> CallOutcome | None:
        transient = 0
        while True:
            wait = st.paused_until - self.opt.clock()
            if wait > 0:
                await self.opt.sleep(wait)
            if st.done_reason:
                rec.status, rec.final, rec.error = "skipped", False, st.done_reason
                return None
            try:
                st.calls += 1
                self.calls_made += 1
                return await self.backend.call(st.model, req.model_copy(deep=True))
            except RateLimited as e:
                st.rate_limited += 1
                if rec.retries >= self.opt.max_rate_retries:
                    return self._fail(rec, "rate_limited", e, final=False)
                rec.retries += 1
                delay = min(e.retry_after if e.retry_after is not None else 2.0 ** rec.retries,
                            self.opt.max_rate_wait_s)
                st.paused_until = max(st.paused_until, self.opt.clock() + delay)
            except (QuotaExhausted, AuthFailed, NoRouteAvailable, BudgetExceeded) as e:
                kind = {QuotaExhausted: "quota", AuthFailed: "auth"}.get(type(e), "no_route")
                if isinstance(e, BudgetExceeded):
                    kind = "budget"
                st.done_reason = st.done_reason or (
                    f"{kind}: {redact(str(e))[:200]} (after {len([r for r in self.records if r.model == st.model])} "
                    f"finished calls)")
                return self._fail(rec, kind, e, final=False)
            except ProviderError as e:
                billed = getattr(e, "billed_usage", None)
                if e.retryable and transient < self.opt.max_transient_retries and billed is None:
                    transient += 1
                    rec.retries += 1
                    await self.opt.sleep(min(e.retry_after or 0.5 * 2 ** transient, self.opt.max_rate_wait_s))
                    continue
                return self._fail(rec, "unavailable" if e.retryable else "error", e, final=not e.retryable)

    def _fail(self, rec: CallRecord, status: str, e: Exception, *, final: bool) -> None:
        rec.status, rec.final = status, final
        cost = getattr(e, "bench_cost_usd", None)  # a partial answer the vendor billed (stream cut mid-way)
        if cost:
            rec.cost_usd += cost
            rec.list_cost_usd += cost
            self.spent += cost
            self.new_spent += cost
        rec.error_type, rec.error = type(e).__name__, redact(str(e))[:500]
        if final:
            rec.quality, rec.score_detail = 0.0, "call failed"
        return None

    def _charge(self, rec: CallRecord, out: CallOutcome) -> None:
        u = out.response.usage
        rec.input_tokens, rec.output_tokens = u.input_tokens, u.output_tokens
        rec.cost_usd, rec.free_quota = out.cost_usd, out.free_quota
        rec.list_cost_usd = out.list_cost_usd if out.list_cost_usd is not None else out.cost_usd
        rec.latency_ms = round(out.latency_s * 1000, 3)
        rec.ttft_ms = round(out.ttft_s * 1000, 3) if out.ttft_s is not None else None
        rec.answer = out.response.text
        rec.status, rec.final = "ok", True
        if out.note:
            rec.error = out.note
        self.spent += out.cost_usd
        self.new_spent += out.cost_usd

    async def _judge(self, model: str, req: ChatRequest) -> tuple[str, Decimal]:
        out = await self.backend.call(model, req)
        self.spent += out.cost_usd
        self.new_spent += out.cost_usd
        self.judge_spent += out.cost_usd
        return out.response.text, out.cost_usd

    async def _score(self, item: SuiteItem, rec: CallRecord) -> None:
        try:
            s: Score = await score_answer(item, rec.answer, judge=self._judge, judge_model=self.judge_model,
                                          judge_rubric=self.judge_rubric)
        except (ProviderError, ValueError) as e:
            rec.status, rec.final, rec.quality = "judge_error", False, None
            rec.score_detail = f"scoring failed: {redact(str(e))[:300]}"
            return
        rec.status, rec.final = "ok", True
        rec.quality, rec.score_detail = s.quality, s.detail
        rec.judge_cost_usd += s.judge_cost_usd

    def _finish(self, rec: CallRecord) -> None:
        self.cache.put(rec)
        if rec.final:
            self.records.append(rec)
        else:
            by = self.unfinished.setdefault(rec.model, {})
            by[rec.status] = by.get(rec.status, 0) + 1
        self.done += 1

    def _progress(self) -> None:
        if self.opt.on_progress is not None:
            self.opt.on_progress(self)


async def run_live(suite: Suite, models: Sequence[str], backend: Backend, cache: ResultCache,
                   options: RunOptions | None = None, *, judge_model: str | None = None) -> RunSummary:
    runner = LiveRunner(suite, models, backend, cache, options, judge_model=judge_model)
    return await runner.run()
