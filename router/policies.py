"""Routing policies and rules (plain data; the engine interprets them).

A `Policy` says how `choose()` orders the candidates that survive the filters:

* ``free-first``  free capacity first among models meeting the task's quality floor
  (free quota = zero marginal cost), then the cheapest paid model meeting it.
* ``cheapest``    lowest expected cost meeting the quality floor.
* ``best``        highest task quality within the per-request cost cap.
* ``balanced``    maximise ``quality - cost_weight * (expected USD per 1,000 requests)``.
* ``cascade``     the cheapest model meeting ``cascade_floor`` first; the executor checks
  the answer (JSON validity, empty/refused, a verifier) and escalates to the
  best-quality models when the check fails.
* ``pinned``      one concrete model (``provider:model`` or an alias).

``quality_margin`` (floored policies) adds a relative floor: a candidate meets the floor
when its quality >= max(task floor, best kept candidate's quality - margin).

`Rule`s (ordered; the first match wins) switch the policy and restrict the
candidates for requests matching a task kind, metadata, user or tag, or (`cascade`)
send them to an answer-agreement cascade (router.cascade); `Policy.cascade` does
that for every `auto` request no rule claims.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

__all__ = [
    "POLICIES",
    "VIRTUAL_MODELS",
    "DEFAULT_FLOORS",
    "Policy",
    "Rule",
    "compile_globs",
    "policy_for_model",
]

POLICIES: tuple[str, ...] = ("free-first", "cheapest", "best", "balanced", "cascade", "pinned")

# Virtual model names -> (policy name, extra settings). "auto" keeps the configured policy.
VIRTUAL_MODELS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "auto": (None, {}),
    "auto:free": ("free-first", {"free_only": True}),
    "auto:cheap": ("cheapest", {}),
    "auto:cheapest": ("cheapest", {}),
    "auto:best": ("best", {}),
    "auto:balanced": ("balanced", {}),
    "auto:cascade": ("cascade", {}),
}

# Minimum task quality (catalog task-fit profile, 0..1) a model must reach to be
# preferred for a task kind. Configurable per task (policy.quality_floors).
DEFAULT_FLOORS: dict[str, float] = {
    "code": 0.70,
    "math": 0.70,
    "reasoning": 0.70,
    "extraction": 0.60,
    "summarization": 0.55,
    "translation": 0.60,
    "creative": 0.55,
    "chat": 0.50,
}


def compile_globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a set of fnmatch globs (case-sensitive), or None when empty."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class Policy:
    name: str = "free-first"
    cost_weight: float = 0.05  # balanced: quality points per USD per 1,000 requests
    quality_floors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FLOORS))
    default_floor: float = 0.5
    max_cost_usd: Decimal | None = None  # per-request cap on the expected cost (all policies)
    allow: tuple[str, ...] = ()  # globs over "provider:model" (or "provider:*")
    deny: tuple[str, ...] = ()
    regions: frozenset[str] | None = None  # data residency: keep models served in these regions
    pinned: str | None = None  # a concrete model id: only that model is planned
    free_only: bool = False  # never plan a paid call (auto:free)
    max_attempts: int = 5  # deployments in the plan (fallback depth)
    cascade_floor: float = 0.0  # cascade: quality floor of the cheap first step
    cascade_max_steps: int = 3  # cascade: at most this many escalations by check failure
    chinese_bonus: float = 0.05  # quality bonus for cn-region models on mostly-Chinese prompts
    # Relative floor: a candidate must also reach (best kept candidate's quality - margin);
    # "as good as the best available model, within X points" (None = off).
    quality_margin: float | None = None
    rules: tuple["Rule", ...] = ()
    cascade: str | None = None  # model "auto" runs this answer-agreement cascade (router.cascade)

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown policy {self.name!r}; choose one of {', '.join(POLICIES)}")
        if self.max_cost_usd is not None and not isinstance(self.max_cost_usd, Decimal):
            object.__setattr__(self, "max_cost_usd", Decimal(str(self.max_cost_usd)))
        if self.regions is not None and not isinstance(self.regions, frozenset):
            object.__setattr__(self, "regions", frozenset(self.regions))
        if self.quality_margin is not None and not 0 <= self.quality_margin <= 1:
            raise ValueError("quality_margin must be in [0, 1]")
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "deny", tuple(self.deny))

    def floor(self, task: str) -> float:
        return self.quality_floors.get(task, self.default_floor)

    def with_(self, **changes: Any) -> "Policy":
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Rule:
    """When a request matches (all given conditions), route it with `policy`
    (a policy name and/or `settings` merged over the base policy) among `models`
    (globs over model ids; empty = all candidates)."""

    name: str = ""
    task: frozenset[str] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None  # glob
    tag: str | None = None  # glob, matches any of the request's tags
    models: tuple[str, ...] = ()
    policy: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    cascade: str | None = None  # matching requests run this answer-agreement cascade (router.cascade)
    _cache: dict[int, tuple[Policy, Policy]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.task is not None and not isinstance(self.task, frozenset):
            t = self.task
            object.__setattr__(self, "task", frozenset([t] if isinstance(t, str) else t))
        object.__setattr__(self, "models", tuple(self.models))
        if self.policy is not None and self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}")

    def matches(self, features: Any) -> bool:
        if self.task is not None and features.task not in self.task:
            return False
        if self.user is not None and not (features.user and fnmatch.fnmatchcase(features.user, self.user)):
            return False
        if self.tag is not None and not any(fnmatch.fnmatchcase(t, self.tag) for t in features.tags):
            return False
        if self.metadata:
            meta = features.metadata
            for k, v in self.metadata.items():
                if k not in meta or meta[k] != v:
                    return False
        return True

    def effective(self, base: Policy) -> Policy:
        """The base policy with this rule's name/settings applied (cached)."""
        hit = self._cache.get(id(base))
        if hit is not None and hit[0] is base:
            return hit[1]
        changes: dict[str, Any] = dict(self.settings)
        if self.policy:
            changes["name"] = self.policy
        changes["rules"] = ()
        changes["cascade"] = None
        pol = replace(base, **changes)
        self._cache[id(base)] = (base, pol)
        return pol

    def label(self, index: int) -> str:
        return self.name or f"rule #{index + 1}"


def policy_for_model(model: str, base: Policy) -> Policy:
    """The policy a request's `model` field asks for: a virtual name (auto, auto:cheap,
    ...) or a concrete model id, which pins."""
    v = VIRTUAL_MODELS.get(model)
    if v is None:
        return replace(base, name="pinned", pinned=model, rules=(), cascade=None)
    name, extra = v
    if name is None and not extra:
        return base
    # An explicit virtual name wins over config rules' policy choice.
    return replace(base, **({"name": name} if name else {}), rules=(), cascade=None, **extra)
