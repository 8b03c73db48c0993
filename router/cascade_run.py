"""Runs a `CascadePlan` (router.cascade): the calls of each stage, concurrently; the votes;
escalation; billing. All I/O of a cascade is here, through `router.executor.Executor`.

Per stage: the first `k` models are called at once (lazy-majority: two, then a third
only when they disagree or one failed). Each call is one walk of the executor: reserve
on the ledger (budgets included), call, commit what the vendor billed or release, learn
from errors. A call that fails (error, timeout, out of quota, over budget) is replaced
once by the stage's next unused model; if that fails too it is one missing vote. A reply
whose final answer cannot be read never agrees.

A stage accepts when at least `m` answers are `same` (the extractor's grader-style
equality); the accepted answer is the one with the most votes, and the reply returned is
the cheapest of the replies that gave it. Else the next stage runs. The last stage always
answers: a `single` stage's reply, or the strongest (highest task quality) reply of a
stage without agreement, or (when every call of the last stage failed) the strongest
reply of any earlier stage. Errors that must not fall back (a bad request, a content
filter, a rejected key) stop the cascade once the stage's calls are done, carrying the
route of every call made. Nothing answered at all: `NoRouteAvailable` (or
`BudgetExceeded` when budgets stopped every call).

`RouteInfo.cascade` says what happened (calls, stages run, the models that agreed, the
answer); every call is an `Attempt` with its `stage` and `answer`; `cost_usd` is the sum
of every call. `BufferedStream` hands a finished answer out as stream events (cascade
`stream: buffer`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any, NamedTuple

from router.cascade import CascadePlan, StagePlan
from router.errors import BudgetExceeded, NoRouteAvailable, ProviderError
from router.executor import Executor, Walk
from router.plan import PlanStep, RoutePlan
from router.result import Attempt, CascadeInfo, RoutedResponse
from router.types import ChatRequest, ChatResponse, FinishEvent, ReasoningDelta, TextDelta, ToolCallDelta, UsageEvent

__all__ = ["run_cascade", "BufferedStream", "events_of"]

log = logging.getLogger("quotaroute.executor")
# attempts recorded without a vendor call (router.executor: skipped or passed-over steps)
_SKIPS = frozenset({"BudgetExceeded", "PoolUnavailable", "CircuitOpen", "NoProvider", "UnknownPrice", "NoPrefill"})


class Vote(NamedTuple):
    order: int  # the call's place in the stage (plan order)
    step: PlanStep
    resp: ChatResponse
    att: Attempt
    answer: str | None


async def run_cascade(ex: Executor, cplan: CascadePlan, req: ChatRequest, *,
                      scope: Mapping[str, Any] | None = None) -> RoutedResponse:
    """Run the stages in order until one accepts (see the module doc)."""
    cas = cplan.cascade
    extractor = cas.extractor()
    walk = Walk()  # every call of every stage, in order
    notes: list[str] = []
    earlier: list[Vote] = []
    stages_run = 0
    last = len(cplan.stages) - 1
    for sp in cplan.stages:
        n = sp.index + 1
        if not sp.steps:
            why = next((r.reason for r in sp.reasons if not r.kept), "no candidate")
            notes.append(f"stage {n} skipped (no model fits: {why})")
            continue
        stages_run += 1
        votes, fatal = await _run_stage(ex, cplan, sp, req, scope, walk, extractor)
        if fatal is not None:
            fatal.route = _route(ex, cplan, walk, None, notes + [f"stage {n} stopped: {type(fatal).__name__}"],
                                 stages_run, None, [])
            raise fatal
        winners = _tally(votes, extractor)
        if winners and len(winners) >= sp.stage.m:
            pick = min(winners, key=lambda v: (v.att.cost_usd, v.order))
            agreed = f"{len(winners)}/{len(votes)} agree" if sp.stage.mode != "single" else "answered"
            notes.append(f"stage {n} {sp.stage.describe()}: {agreed} ({', '.join(v.step.model_id for v in winners)})"
                         f" on {_show(pick.answer)}")
            return _done(ex, cplan, walk, pick, notes, stages_run, n, winners, sp.stage.mode != "single")
        if sp.index == last and votes:  # the last stage always answers
            pick = max(votes, key=lambda v: (v.step.quality, -v.order))
            why = "answered" if sp.stage.mode == "single" else f"no agreement ({_answers(votes)})"
            notes.append(f"stage {n} {sp.stage.describe()}: {why}; returned the strongest, {pick.step.model_id}")
            return _done(ex, cplan, walk, pick, notes, stages_run, n, [pick], False)
        notes.append(f"stage {n} {sp.stage.describe()}: " + (f"no agreement ({_answers(votes)}), escalated"
                                                              if votes else "every call failed, escalated"))
        earlier.extend(votes)
    if earlier:  # every call of the last stage failed: the strongest answer seen
        pick = max(earlier, key=lambda v: (v.step.quality, -v.order))
        notes.append(f"returned the strongest earlier answer, {pick.step.model_id}")
        return _done(ex, cplan, walk, pick, notes, stages_run, pick.att.stage, [pick], False)
    err = ex.exhausted(cplan.base, walk)
    if isinstance(err, (NoRouteAvailable, BudgetExceeded)):
        err.route = _route(ex, cplan, walk, None, notes, stages_run, None, [])
    raise err


async def _run_stage(ex: Executor, cplan: CascadePlan, sp: StagePlan, req: ChatRequest,
                     scope: Mapping[str, Any] | None, walk: Walk, extractor: Any
                     ) -> tuple[list[Vote], ProviderError | None]:
    """The stage's calls: (the answers, in call order; an error that must not fall back)."""
    groups: list[list[PlanStep]] = []
    for st in sp.steps:  # a model's deployments are consecutive in the plan
        if groups and groups[-1][0].model_id == st.model_id:
            groups[-1].append(st)
        else:
            groups.append([st])
    k = sp.stage.k
    first = groups[:sp.stage.first_calls]
    later = deque(groups[sp.stage.first_calls:k])  # lazy-majority's third model
    spares = deque(groups[k:])
    base = cplan.base
    stage_no = sp.index + 1

    async def complete(provider: Any, step: PlanStep) -> ChatResponse:
        return await provider.complete(ex.request_for(step, req))

    async def walk_group(steps: list[PlanStep], w: Walk) -> tuple[PlanStep, ChatResponse, Attempt] | None:
        sub = RoutePlan(steps, [], base.policy_obj, base.reason, base.features, base.rule)
        async with aclosing(ex.walk_plan(sub, scope, w, complete)) as it:
            async for _i, step, res, resp, t0 in it:
                att = await ex.answered(sub, step, res, resp, t0, w)
                if att is not None:
                    return step, resp, att
        return None

    async def call(order: int, steps: list[PlanStep]) -> tuple[Walk, Vote | None]:
        w = Walk()
        got = await walk_group(steps, w)
        if got is None and spares:
            got = await walk_group(spares.popleft(), w)  # the usual fallback: one replacement model
        if got is None:
            return w, None
        step, resp, att = got
        return w, Vote(order, step, resp, att, _extract(extractor, resp))

    votes: list[Vote] = []
    fatal: ProviderError | None = None

    async def batch(groups_now: list[list[PlanStep]], start: int) -> None:
        nonlocal fatal
        outs = await asyncio.gather(*(call(start + j, g) for j, g in enumerate(groups_now)), return_exceptions=True)
        for out in outs:
            if isinstance(out, BaseException):
                if not isinstance(out, ProviderError):
                    raise out
                for a in _attempts_of(out):
                    a.stage = stage_no
                    walk.attempts.append(a)
                fatal = fatal or out
                continue
            w, vote = out
            for a in w.attempts:
                a.stage = stage_no
            walk.attempts.extend(w.attempts)
            walk.last_error = w.last_error or walk.last_error
            walk.budget_error = w.budget_error or walk.budget_error
            if vote is not None:
                vote.att.answer = vote.answer
                votes.append(vote)

    await batch(first, 0)
    if fatal is None and sp.stage.mode == "lazy-majority" and len(_tally(votes, extractor)) < 2:
        third = later.popleft() if later else spares.popleft() if spares else None
        if third is not None:
            await batch([third], len(first))
    return votes, fatal


def _attempts_of(e: ProviderError) -> list[Attempt]:
    route = getattr(e, "route", None)
    return list(route.attempts) if route is not None else []


def _extract(extractor: Any, resp: ChatResponse) -> str | None:
    if not resp.text:
        return None
    try:
        return extractor.extract(resp.text)
    except Exception:  # noqa: BLE001 - a reply we cannot read is a missing vote, never a failed request
        log.exception("answer extractor failed")
        return None


def _tally(votes: list[Vote], extractor: Any) -> list[Vote]:
    """The largest group of votes with the same answer (ties: the earliest call's group)."""
    best: list[Vote] = []
    for v in votes:
        if v.answer is None:
            continue
        group = [w for w in votes if w.answer is not None and (w is v or extractor.same(v.answer, w.answer))]
        if len(group) > len(best):
            best = group
    return best


def _show(answer: str | None) -> str:
    if answer is None:
        return "no readable answer"
    return repr(answer if len(answer) <= 24 else answer[:21] + "...")


def _answers(votes: list[Vote]) -> str:
    return ", ".join(f"{v.step.model_id}: {_show(v.answer)}" for v in votes)


def _route(ex: Executor, cplan: CascadePlan, walk: Walk, pick: Vote | None, notes: list[str], stages_run: int,
           accepted: int | None, agreed: list[Vote], agreement: bool = False) -> Any:
    info = ex.route_info(cplan.base, None, walk.attempts)
    info.policy = cplan.policy
    calls = sum(1 for a in walk.attempts if a.error_type not in _SKIPS)
    total = f"{calls} call{'s' if calls != 1 else ''}, {stages_run} stage{'s' if stages_run != 1 else ''}, " \
            f"${format(info.cost_usd, 'f')}"
    info.reason = f"{cplan.policy}" + (f" [{cplan.rule}]" if cplan.rule else "") + ": " + "; ".join(
        notes + [total])
    info.estimated_cost_usd = cplan.estimated_cost_usd
    if pick is not None:
        info.model_id, info.provider = pick.step.model_id, pick.step.provider
    info.cascade = CascadeInfo(name=cplan.cascade.name, calls=calls, stages_run=stages_run, accepted_stage=accepted,
                               agreed=[v.step.model_id for v in agreed], answer=pick.answer if pick else None,
                               agreement=agreement)
    return info


def _done(ex: Executor, cplan: CascadePlan, walk: Walk, pick: Vote, notes: list[str], stages_run: int,
          accepted: int | None, agreed: list[Vote], agreement: bool) -> RoutedResponse:
    info = _route(ex, cplan, walk, pick, notes, stages_run, accepted, agreed, agreement)
    return RoutedResponse(response=pick.resp, route=info)


# ------------------------------------------------------------------ stream: buffer


def events_of(resp: ChatResponse, chunk: int = 256) -> list[Any]:
    """A finished answer as stream events: reasoning, text in pieces, tool calls, usage, finish."""
    evs: list[Any] = []
    if resp.reasoning:
        evs.append(ReasoningDelta(text=resp.reasoning))
    t = resp.text
    evs += [TextDelta(text=t[i:i + chunk]) for i in range(0, len(t), chunk)]
    for i, tc in enumerate(resp.tool_calls):
        evs.append(ToolCallDelta(index=i, id=tc.id, name=tc.name, arguments=tc.arguments))
    evs.append(UsageEvent(usage=resp.usage))
    evs.append(FinishEvent(finish_reason=resp.finish_reason, id=resp.id or None, model=resp.model or None))
    return evs


class BufferedStream:
    """A cascade's accepted answer handed out as a stream (cascade `stream: buffer`): the
    cascade has finished, so `route` and its cost are final before the first event."""

    def __init__(self, rr: RoutedResponse) -> None:
        self.route = rr.route
        self.response: ChatResponse | None = rr.response
        self._events = deque(events_of(rr.response))
        self.done = False

    def __aiter__(self) -> "BufferedStream":
        return self

    async def __anext__(self) -> Any:
        if not self._events:
            self.done = True
            raise StopAsyncIteration
        return self._events.popleft()

    async def aclose(self) -> None:
        self._events.clear()
        self.done = True

    async def __aenter__(self) -> "BufferedStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
