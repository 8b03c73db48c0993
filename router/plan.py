"""The routing core's result: `RoutePlan` (ordered deployments to try) with a
`Reason` for every candidate. Lightweight classes, not pydantic: `choose()` builds
one per request; reasons are rendered only when read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from router.cards import CardInfo
from router.health import deployment_id
from router.policies import Policy
from router.tasks import Features

__all__ = ["Candidate", "Reason", "PlanStep", "RoutePlan", "BELOW_FLOOR", "NO_PRICE"]

BELOW_FLOOR = "rank %d: below floor %.2f, kept (no candidate meets it)"
NO_PRICE = "no known price (set one in config: models: {overrides: {%s: {price: {input: ..., output: ...}}}})"
_BELOW = BELOW_FLOOR


@dataclass(slots=True)
class Candidate:
    """A model that passed the filters (or fell below the quality floor): what the plan
    steps and the kept candidates' reasons are built from. One per survivor per request."""

    info: CardInfo
    cost: Decimal | None  # expected USD for this request (None: below the floor, not priced)
    free: bool  # a free pool takes it
    pool_id: str | None  # that free pool
    quality: float  # predicted quality for the request's task
    deployments: Sequence[str | None]  # usable API key ids, best first ((None,): no key information)
    latency_ms: float = 0.0  # the deployment's latency average (0.0: unknown)
    rank_key: tuple[Any, ...] = ()  # the policy's sort key (router.engine)


class Reason:
    """Why one candidate was kept (and its rank) or dropped. Lightweight: the text is
    rendered on access; `to_model()` gives the pydantic `CandidateReason`."""

    __slots__ = ("model_id", "kept", "rank", "_msg", "_args", "expected_cost_usd", "quality", "free")

    def __init__(self, model_id: str, kept: bool, msg: str, args: tuple[Any, ...] = (),
                 cost: Decimal | None = None, quality: float | None = None, free: bool = False) -> None:
        self.model_id = model_id
        self.kept = kept
        self.rank: int | None = None
        self._msg = msg
        self._args = args
        self.expected_cost_usd = cost
        self.quality = quality
        self.free = free

    @property
    def reason(self) -> str:
        return self._msg % self._args if self._args else self._msg

    def to_model(self) -> Any:
        """The pydantic `CandidateReason` (built without validation: the values are ours)."""
        return _fast_candidate({"model_id": self.model_id, "kept": self.kept, "rank": self.rank,
                                "reason": self.reason, "expected_cost_usd": self.expected_cost_usd,
                                "quality": self.quality, "free": self.free})

    def __repr__(self) -> str:
        return f"Reason({self.model_id!r}, kept={self.kept}, rank={self.rank}, {self.reason!r})"


_CR: Any = None
_CR_FIELDS: set[str] = set()


def _fast_candidate(values: dict[str, Any]) -> Any:
    """`CandidateReason.model_construct(**values)` at a fraction of the cost (it runs per
    candidate per request): the same four attributes pydantic's model_construct sets."""
    global _CR, _CR_FIELDS
    if _CR is None:
        from router.result import CandidateReason  # lazy: import time (the routing core does not import the result models)

        _CR, _CR_FIELDS = CandidateReason, set(CandidateReason.model_fields)
    m = object.__new__(_CR)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(_CR_FIELDS))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def _dropped_reason(t: Any) -> Reason:
    """A dropped candidate recorded in the hot loop as (model_id, msg[, args[, cost]])."""
    if isinstance(t, Reason):
        return t
    return Reason(t[0], False, t[1], t[2] if len(t) > 2 else (), t[3] if len(t) > 3 else None)


class PlanStep:
    """One deployment to try: a model card behind one API key."""

    __slots__ = ("card", "model_id", "provider", "key_id", "deployment", "expected_cost_usd", "free", "pool_id",
                 "quality", "param_notes")

    def __init__(self, card: Any, key_id: str | None, cost: Decimal, free: bool, pool_id: str | None,
                 quality: float) -> None:
        self.card = card
        self.model_id: str = card.id
        self.provider: str = card.provider
        self.key_id = key_id
        self.deployment = deployment_id(card.id, key_id)
        self.expected_cost_usd = cost
        self.free = free
        self.pool_id = pool_id
        self.quality = quality
        self.param_notes: list[str] = []  # how the request's parameters were translated for it (executor)

    def __repr__(self) -> str:
        return f"PlanStep({self.deployment!r}, cost={self.expected_cost_usd}, free={self.free})"


class RoutePlan:
    """Ordered deployments to try plus, for every candidate, why it was kept or dropped.
    Reasons for kept candidates are built lazily (`reasons`) to keep `choose()` cheap."""

    __slots__ = ("steps", "_dropped", "_reasons", "policy", "reason", "features", "rule", "policy_obj",
                 "_kept", "_late", "_kept_msg", "_floor", "chain")

    def __init__(self, steps: list[PlanStep], reasons: list[Reason], policy: Policy, reason: str,
                 features: Features, rule: str | None, *, kept: Sequence[Candidate] = (),
                 late: Sequence[tuple[Candidate, str, tuple[Any, ...]]] = (), kept_msg: str = "",
                 floor: float = 0.0) -> None:
        self.steps = steps
        self._dropped = reasons
        self._reasons: list[Reason] | None = None
        self.policy = policy.name
        self.policy_obj = policy
        self.reason = reason
        self.features = features
        self.rule = rule
        self._kept = kept
        self._late = late
        self._kept_msg = kept_msg
        self._floor = floor
        self.chain: list[str] = []  # explicit routes (router.chains): one line per link, for explain

    @property
    def kept(self) -> Sequence[Candidate]:
        """The candidates that passed every filter, in the policy's order."""
        return self._kept

    @property
    def reasons(self) -> list[Reason]:
        if self._reasons is None:
            out = [_dropped_reason(t) for t in self._dropped]
            for c, msg, args in self._late:
                out.append(Reason(c.info.id, False, msg, args, c.cost, c.quality, c.free))
            below = self._kept_msg is _BELOW
            for rank, c in enumerate(self._kept, 1):
                if below:
                    msg, args = self._kept_msg, (rank, self._floor)
                elif c.free:
                    msg, args = "rank %d: free quota (pool %s)", (rank, c.pool_id)
                else:
                    msg, args = self._kept_msg, (rank,)
                r = Reason(c.info.id, True, msg, args, c.cost, c.quality, c.free)
                r.rank = rank
                out.append(r)
            self._reasons = out
        return self._reasons

    @property
    def estimated_cost_usd(self) -> Decimal | None:
        return self.steps[0].expected_cost_usd if self.steps else None

    @property
    def model_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            seen.setdefault(s.model_id, None)
        return list(seen)

    def candidates(self) -> list[Any]:
        """Every candidate's reason as pydantic `CandidateReason`s (for `RouteInfo`);
        built straight from the hot loop's tuples when the reasons were not read yet."""
        if self._reasons is not None:
            return [r.to_model() for r in self._reasons]
        fc = _fast_candidate
        out = []
        for t in self._dropped:
            if isinstance(t, Reason):
                out.append(t.to_model())
                continue
            n = len(t)
            out.append(fc({"model_id": t[0], "kept": False, "rank": None,
                           "reason": t[1] % t[2] if n > 2 and t[2] else t[1],
                           "expected_cost_usd": t[3] if n > 3 else None, "quality": None, "free": False}))
        for c, msg, args in self._late:
            out.append(fc({"model_id": c.info.id, "kept": False, "rank": None, "reason": msg % args,
                           "expected_cost_usd": c.cost, "quality": c.quality, "free": c.free}))
        below = self._kept_msg is _BELOW
        kmsg, floor = self._kept_msg, self._floor
        for rank, c in enumerate(self._kept, 1):
            if below:
                text = kmsg % (rank, floor)
            elif c.free:
                text = f"rank {rank}: free quota (pool {c.pool_id})"
            else:
                text = kmsg % rank
            out.append(fc({"model_id": c.info.id, "kept": True, "rank": rank, "reason": text,
                           "expected_cost_usd": c.cost, "quality": c.quality, "free": c.free}))
        return out

    def to_dict(self) -> dict[str, Any]:
        f = self.features
        return {
            "policy": self.policy,
            "rule": self.rule,
            "reason": self.reason,
            "features": {"task": f.task, "task_source": f.task_source, "chinese": f.chinese,
                         "needs": sorted(f.needs), "input_tokens": f.input_tokens,
                         "expected_output_tokens": f.expected_output_tokens},
            "chain": list(self.chain),
            "plan": [{"model": s.model_id, "key": s.key_id, "expected_cost_usd": str(s.expected_cost_usd),
                      "free": s.free, "pool": s.pool_id, "quality": s.quality} for s in self.steps],
            "candidates": [{"model": r.model_id, "kept": r.kept, "rank": r.rank, "reason": r.reason,
                            "expected_cost_usd": None if r.expected_cost_usd is None else str(r.expected_cost_usd),
                            "quality": r.quality, "free": r.free} for r in self.reasons],
        }

    def __repr__(self) -> str:
        return f"RoutePlan({self.policy}, {[s.deployment for s in self.steps]}, {self.reason!r})"


# ------------------------------------------------------------------ per-card cache
