"""Answer-agreement cascades: what a cascade is, and which models each stage calls (pure).

A `Cascade` is a named chain of `Stage`s run in order until one accepts:

* ``consensus``      call `k` models concurrently; accept when at least `m` give the same
  final answer (`router.answers`), else escalate to the next stage;
* ``lazy-majority``  call two; when they agree accept, else call a third and accept when
  two of the three agree, else escalate;
* ``single``         one model (the usual fallback inside the stage when it fails).

The last stage always answers: `single` returns its reply; a consensus or lazy-majority
last stage without agreement returns the reply of its strongest model (highest task
quality) and the route reason says so.

`plan_cascade()` picks each stage's models with the usual filters (capabilities, context,
free pools, prices, budgets, health) from the stage's candidates, without I/O: one
`choose()` over the union of every stage's candidates (so a model is filtered and priced
once, however many stages list it), then each stage ranks its own members by the stage's
policy. Quality floors do not apply inside a stage: agreement is the check, and the
stage's `models:` say which models may be asked. Running a `CascadePlan` (the calls,
reservations, votes) is `router.cascade_run`.

Clients select a cascade with model ``cascade:<name>``; config rules (`cascade:`) and
``policy.default: "cascade:<name>"`` select it for `auto`.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from router.cards import Candidates, globs, prepare
from router.engine import choose
from router.errors import UnknownModel
from router.health import Health
from router.plan import Candidate, PlanStep, Reason, RoutePlan
from router.policies import Policy
from router.quota.view import LedgerView
from router.tasks import Features

__all__ = ["MODES", "STAGE_POLICIES", "PREFIX", "Stage", "Cascade", "StagePlan", "CascadePlan", "plan_cascade",
           "prepare_cascade", "check_spec",
           "StageError"]

MODES: tuple[str, ...] = ("consensus", "lazy-majority", "single")
STAGE_POLICIES: tuple[str, ...] = ("free-first", "cheapest", "best", "balanced")
PREFIX = "cascade:"  # model "cascade:<name>"
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_STAGES, MAX_K = 5, 8
_ZERO = Decimal(0)


class StageError(ValueError):
    """A stage that cannot be bound to the served models (`stage`: its 0-based index)."""

    def __init__(self, message: str, stage: int) -> None:
        super().__init__(message)
        self.stage = stage


def check_spec(spec: Any, tolerance: float | None = None) -> Any:
    """The extractor for a config `extract:` spec (`router.answers.extractor`); ValueError
    naming the problem when the spec is unknown or malformed."""
    from router.answers import SPECS, extractor  # lazy: import time (the answers patterns compile on first use)

    try:
        return extractor(spec, tolerance=tolerance)
    except NotImplementedError:  # the extractor API without its implementation: check the spec's shape only
        s = spec.get("spec") if isinstance(spec, Mapping) else spec
        ok = isinstance(s, str) and (s in ("number", "choice", "code", "text") or (
            s.startswith(("json:", "regex:")) and bool(s.split(":", 1)[1])))
        if not ok:
            raise ValueError(f"unknown extractor {s!r}; use one of {', '.join(SPECS)}") from None
        return None


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: its mode, how many calls (`k`) must agree (`m`), the candidate models
    (ids, aliases or globs; empty = every served model) and how they are picked."""

    mode: str = "consensus"
    k: int = 2
    m: int = 0  # 0 = a majority of k (consensus); lazy-majority: 2 of 3; single: 1
    models: tuple[str, ...] = ()
    policy: str = "free-first"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown stage mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.policy not in STAGE_POLICIES:
            raise ValueError(f"unknown stage policy {self.policy!r}; use one of {', '.join(STAGE_POLICIES)}")
        k, m = self.k, self.m
        if self.mode == "lazy-majority":
            k, m = 3, 2
        elif self.mode == "single":
            k, m = 1, 1
        else:
            if not 1 <= k <= MAX_K:
                raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
            m = m or k // 2 + 1
            if not 1 <= m <= k:
                raise ValueError(f"m must be in 1..k ({k}), got {m}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "models", tuple(self.models))

    @property
    def first_calls(self) -> int:
        """Calls made at once when the stage starts (lazy-majority: 2, then maybe 1)."""
        return 2 if self.mode == "lazy-majority" else self.k

    def describe(self) -> str:
        if self.mode == "consensus":
            return f"consensus {self.m} of {self.k}"
        return self.mode


@dataclass(frozen=True, slots=True)
class Cascade:
    """A named answer-agreement cascade (config `cascades:`). `using` is an extractor
    object to use instead of building one from `extract` (tests, custom comparisons)."""

    name: str
    extract: Any  # a spec: "number", "choice", "json:answer", "regex:...", "code", "text" or {spec:, tolerance:}
    stages: tuple[Stage, ...]
    tolerance: float | None = None
    stream: str = "buffer"  # buffer: run, then stream the accepted answer; single: stream with fallback_policy
    fallback_policy: str = "free-first"
    using: Any = None
    _ex: list[Any] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(f"cascade name must match [A-Za-z0-9._-]{{1,64}}, got {self.name!r}")
        stages = tuple(s if isinstance(s, Stage) else Stage(**dict(s)) for s in self.stages)
        if not 1 <= len(stages) <= MAX_STAGES:
            raise ValueError(f"a cascade has 1..{MAX_STAGES} stages, got {len(stages)}")
        object.__setattr__(self, "stages", stages)
        if self.stream not in ("buffer", "single"):
            raise ValueError(f"stream must be buffer or single, got {self.stream!r}")
        if self.fallback_policy not in STAGE_POLICIES:
            raise ValueError(f"unknown fallback_policy {self.fallback_policy!r}; use one of "
                             f"{', '.join(STAGE_POLICIES)}")
        if self.extract is None and self.using is None:
            raise ValueError("a cascade needs `extract:` (how to read the final answer it compares)")

    def extractor(self) -> Any:
        """The answer extractor (built once; ValueError for an unknown spec)."""
        if self.using is not None:
            return self.using
        if not self._ex:
            ex = check_spec(self.extract, self.tolerance)
            if ex is None:
                raise NotImplementedError("answer extraction is not available in this build (router.answers)")
            self._ex.append(ex)
        return self._ex[0]


# ------------------------------------------------------------------ planning (pure)


class StagePlan:
    """One stage's models: `kept`, its best 2k candidates in the stage policy's order (the
    first `stage.k` are asked; the next ones replace a failed call, once per call), their
    `steps` (deployments), and the reasons for all of the stage's candidates."""

    __slots__ = ("index", "stage", "steps", "kept", "_base", "_members")

    def __init__(self, index: int, stage: Stage, steps: list[PlanStep], kept: list[Candidate], base: RoutePlan,
                 members: frozenset[str] | None) -> None:
        self.index, self.stage, self.steps, self.kept = index, stage, steps, kept
        self._base, self._members = base, members

    @property
    def model_ids(self) -> list[str]:
        return [c.info.id for c in self.kept]

    def chosen(self) -> list[str]:
        """The models the stage calls first (k of them; lazy-majority: 3, the third on disagreement)."""
        return self.model_ids[:self.stage.k]

    @property
    def reasons(self) -> list[Reason]:
        """Why each of the stage's candidates was kept or dropped (built when read)."""
        m = self._members
        return [r for r in self._base.reasons if m is None or r.model_id in m]


class CascadePlan:
    """A cascade's plan: per stage, the models to call (`StagePlan`), plus what `choose()`
    returned for the union of their candidates (`base`: features, dropped reasons).
    Reads like a `RoutePlan` where the proxy and `route --explain` need it."""

    __slots__ = ("cascade", "stages", "base", "rule", "reason")

    def __init__(self, cascade: Cascade, stages: list[StagePlan], base: RoutePlan, rule: str | None) -> None:
        self.cascade, self.stages, self.base, self.rule = cascade, stages, base, rule
        parts = [f"stage {s.index + 1} {s.stage.describe()}: {', '.join(s.chosen()) or 'no model fits'}"
                 for s in stages]
        self.reason = f"cascade:{cascade.name}" + (f" [{rule}]" if rule else "") + ": " + "; ".join(parts)

    @property
    def policy(self) -> str:
        return PREFIX + self.cascade.name

    @property
    def features(self) -> Features:
        return self.base.features

    @property
    def steps(self) -> list[PlanStep]:
        return [st for s in self.stages for st in s.steps]

    @property
    def reasons(self) -> list[Reason]:
        return self.base.reasons

    @property
    def estimated_cost_usd(self) -> Decimal | None:
        """The expected cost when the first stage accepts (its first calls)."""
        for s in self.stages:
            if s.kept:
                return sum((c.cost or _ZERO for c in s.kept[:s.stage.first_calls]), _ZERO)
        return None

    def to_dict(self) -> dict[str, Any]:
        d = self.base.to_dict()
        d.update(policy=self.policy, rule=self.rule, reason=self.reason, plan=[s for st in self.stages for s in (
            {"model": x.model_id, "key": x.key_id, "expected_cost_usd": str(x.expected_cost_usd), "free": x.free,
             "pool": x.pool_id, "quality": x.quality, "stage": st.index + 1} for x in st.steps)])
        d["cascade"] = {"name": self.cascade.name, "stages": [
            {"stage": s.index + 1, "mode": s.stage.mode, "k": s.stage.k, "m": s.stage.m, "policy": s.stage.policy,
             "models": s.chosen(), "spares": s.model_ids[s.stage.k:]} for s in self.stages]}
        return d

    def __repr__(self) -> str:
        return f"CascadePlan({self.reason!r})"


class Prepared:
    """A cascade bound to one router's candidates: the union of every stage's candidates
    (prepared once, so `choose()` memoises its static filters), each stage's member ids
    and the policies used (built once: `choose()` caches per policy object)."""

    __slots__ = ("cascade", "union", "members", "policy", "base")

    def __init__(self, cascade: Cascade, union: Candidates, members: list[frozenset[str] | None],
                 base: Policy) -> None:
        self.cascade, self.union, self.members, self.base = cascade, union, members, base
        # every union member is filtered and priced once, ranked by cost (stages re-rank);
        # floors off (agreement is the check), no rules (the cascade was already chosen)
        # (the stages build their own steps: the union plan needs only its first)
        self.policy = base.with_(name="cheapest", quality_floors={}, default_floor=0.0, quality_margin=None,
                                 rules=(), max_attempts=1, free_only=False, cascade=None)


def stage_members(stage: Stage, cards: Sequence[Any], catalog: Any) -> list[Any]:
    """The served cards a stage may call: its `models` (ids, aliases, globs), else all."""
    if not stage.models:
        return list(cards)
    ids: set[str] = set()
    pats = tuple(m for m in stage.models if any(ch in m for ch in "*?["))
    for m in stage.models:
        if m not in pats:
            ids.add(catalog.get(m).id)  # UnknownModel with a hint
    g = globs(pats) if pats else None
    return [c for c in cards if c.id in ids or (g is not None and g.match(c.id))]


def prepare_cascade(cascade: Cascade, cards: Sequence[Any], catalog: Any, base: Policy, fx: Any = None) -> Prepared:
    """Bind `cascade` to a router's served `cards`. StageError naming the stage when a
    stage has no candidate among them or names a model the catalog does not know."""
    members: list[frozenset[str] | None] = []
    union: dict[str, Any] = {}
    for i, stage in enumerate(cascade.stages):
        try:
            mine = stage_members(stage, cards, catalog)
        except UnknownModel as e:
            raise StageError(str(e), i) from None
        if not mine:
            raise StageError(f"stage {i + 1} of cascade {cascade.name!r} has no candidate model among the served "
                             f"models ({', '.join(stage.models) or 'none served'})", i)
        members.append(None if not stage.models else frozenset(c.id for c in mine))
        for c in mine:
            union.setdefault(c.id, c)
    order = {c.id: n for n, c in enumerate(cards)}
    return Prepared(cascade, prepare(sorted(union.values(), key=lambda c: order[c.id]), fx), members, base)


def _top(cands: list[Candidate], policy: str, weight: float, n: int) -> list[Candidate]:
    """The first `n` candidates in the stage policy's order (as `router.engine` ranks;
    the union arrives cheapest-first). Keys are built inline: this runs per request."""
    if policy == "cheapest" or len(cands) <= 1:
        return cands[:n]
    if policy == "free-first":
        dec = [((0, -c.quality, c.latency_ms, c.info.id) if c.free else (1, c.cost, -c.quality, c.latency_ms,
                                                                          c.info.id), i) for i, c in enumerate(cands)]
    elif policy == "balanced":
        dec = [((-(c.quality - weight * float(c.cost or _ZERO)), c.cost, c.latency_ms, c.info.id), i)
               for i, c in enumerate(cands)]
    else:  # best
        dec = [((-c.quality, c.cost, c.latency_ms, c.info.id), i) for i, c in enumerate(cands)]
    return [cands[i] for _, i in (heapq.nsmallest(n, dec) if n < len(dec) else sorted(dec))]


def plan_cascade(prep: Prepared, features: Features, ledger: LedgerView, health: Mapping[str, Health],
                 now: datetime, *, keys: Mapping[str, Sequence[str]] | None = None,
                 scope: Mapping[str, Any] | None = None, predictor: Any = None, text: str = "", fx: Any = None,
                 rule: str | None = None) -> CascadePlan:
    """Each stage's models for this request. Pure and deterministic, like `choose()`."""
    base = choose(features, prep.union, ledger, health, prep.policy, now, keys=keys, scope=scope,
                  predictor=predictor, text=text, fx=fx)
    base._kept_msg = "rank %d: cascade candidate, by expected cost (stages rank their own)"
    kept = list(base._kept)
    weight = prep.base.cost_weight * 1000.0
    stages = []
    for i, stage in enumerate(prep.cascade.stages):
        members = prep.members[i]
        mine = _top(kept if members is None else [c for c in kept if c.info.id in members], stage.policy, weight,
                    2 * stage.k)  # k to ask, up to k to replace them
        steps = [PlanStep(c.info.card, dep, c.cost or _ZERO, c.free, c.pool_id, c.quality)
                 for c in mine for dep in c.deployments]
        stages.append(StagePlan(i, stage, steps, mine, base, members))
    return CascadePlan(prep.cascade, stages, base, rule)
