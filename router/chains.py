"""Explicit routes: fallback chains and weighted deployments.

    fallbacks:                     # per model or virtual model: an ordered list
      openai:gpt-5-nano: [anthropic:claude-haiku-4-5, deepseek-v3]
      auto:cheap: [openai:gpt-5-mini]
    deployments:                   # several keys, regions or vendors serving one model
      deepseek-v3:
        - {provider: deepseek, model: deepseek-chat, weight: 3}
        - {provider: siliconflow, model: deepseek-ai/DeepSeek-V3.1, weight: 1}

A *link* is a model id or a deployments name; its *members* are the deployments that
serve it (a model alone is one member of weight 1). Pinning a name plans its link, then
each fallback in order (a fallback's own fallbacks follow it), each member passing the
usual filters of `router.engine.choose` (capabilities, context, health, pools, budgets,
cost cap). Within a link the members that survived are ordered by a weighted random draw
(`order`), the others follow as failover. A virtual model's fallbacks are tried after the
policy's plan. Cycles and unknown names are refused when the routes are built.

Pure: the draw takes its `random.Random` from the caller (the SDK's, seedable).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.errors import UnknownModel
from router.plan import PlanStep, RoutePlan
from router.policies import VIRTUAL_MODELS

__all__ = ["Deployment", "Link", "Chains", "RouteError", "members", "order", "chain_text"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to serve a link: a catalog model, optionally one API key of its provider."""

    model: str  # catalog id, "provider:model"
    weight: float = 1.0
    key: str | None = None  # the provider's key id (its api_key_env name); None: any key


@dataclass(frozen=True, slots=True)
class Link:
    name: str  # a model id or a deployments name
    members: tuple[Deployment, ...]


class RouteError(ValueError):
    """A bad `fallbacks:`/`deployments:` entry; `path` names it (e.g. fallbacks.auto[1])."""

    def __init__(self, message: str, path: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.path = path

    @property
    def key(self) -> str:
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out


class Chains:
    """Validated explicit routes. `links(name)` is the chain a request for `name` walks
    (None: no explicit route, the policy decides alone)."""

    def __init__(self, catalog: Any, fallbacks: Mapping[str, Sequence[str]] | None = None,
                 deployments: Mapping[str, Sequence[Deployment | Mapping[str, Any]]] | None = None) -> None:
        self.catalog = catalog
        self.groups: dict[str, tuple[Deployment, ...]] = {}
        for name, members in (deployments or {}).items():
            gname = self._group_name(str(name))
            if not members:
                raise RouteError("a deployments entry needs at least one deployment", ("deployments", name))
            self.groups[gname] = tuple(self._member(m, ("deployments", name, i)) for i, m in enumerate(members))
        self.fallbacks: dict[str, tuple[str, ...]] = {}
        raw: dict[str, Any] = {}  # resolved name -> the name as written (error paths name the entry)
        for name, entries in (fallbacks or {}).items():
            key = str(name) if str(name) in VIRTUAL_MODELS else self.resolve(str(name), ("fallbacks", name))
            raw[key] = name
            if isinstance(entries, str) or not isinstance(entries, Sequence):
                raise RouteError("expected a list of model ids", ("fallbacks", name))
            out: list[str] = []
            for i, e in enumerate(entries):
                if str(e) in VIRTUAL_MODELS:
                    raise RouteError(f"{e!r} is a virtual model; a fallback is a model id or a deployments name",
                                     ("fallbacks", name, i))
                r = self.resolve(str(e), ("fallbacks", name, i))
                if r == key:
                    raise RouteError(f"{e!r} falls back to itself", ("fallbacks", name, i))
                if r not in out:
                    out.append(r)
            self.fallbacks[key] = tuple(out)
        self._chains: dict[str, tuple[Link, ...]] = {}
        for name in list(self.fallbacks) + list(self.groups):
            self._chains[name] = self._expand(name, ("fallbacks", raw[name]) if name in self.fallbacks
                                              else ("deployments", name))

    def __bool__(self) -> bool:
        return bool(self.fallbacks or self.groups)

    # ------------------------------------------------------------------ names
    def resolve(self, name: str, path: tuple[Any, ...] = ()) -> str:
        """A deployments name as is; a model id or alias as its catalog id. Raises
        UnknownModel (a request's name) or RouteError (with `path`, config entries)."""
        if name in self.groups:
            return name
        try:
            cid: str = self.catalog.get(name).id
        except UnknownModel as e:
            if path:
                raise RouteError(str(e), path) from None
            raise
        return cid

    def _group_name(self, name: str) -> str:
        if name in VIRTUAL_MODELS:
            raise RouteError(f"{name!r} is a virtual model name; pick another name", ("deployments", name))
        try:  # a model entry listing its deployments: keyed by the model's id
            return str(self.catalog.get(name).id)
        except UnknownModel:
            return name

    def _member(self, m: Any, path: tuple[Any, ...]) -> Deployment:
        if isinstance(m, Deployment):
            self.resolve(m.model, path)
            return m
        if not isinstance(m, Mapping):
            raise RouteError("expected {provider, model, weight, key}", path)
        prov, model = m.get("provider"), m.get("model")
        if not model:
            raise RouteError("a deployment needs `model`", path)
        model = str(model)
        refs = [model] if prov is None or model.startswith(f"{prov}:") else [f"{prov}:{model}", model]
        for ref in refs:
            try:
                card = self.catalog.get(ref)
                break
            except UnknownModel:
                continue
        else:
            raise RouteError(f"unknown model {refs[0]!r} (add it under models.overrides with a price)",
                             path + ("model",))
        if prov is not None and card.provider != prov:
            raise RouteError(f"{card.id!r} is served by {card.provider}, not {prov}", path + ("provider",))
        w = m.get("weight", 1)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1_000_000:
            raise RouteError("weight must be a number > 0", path + ("weight",))
        key = m.get("key")
        return Deployment(card.id, float(w), None if key is None else str(key))

    # ------------------------------------------------------------------ chains
    def _expand(self, name: str, path: tuple[Any, ...], stack: tuple[str, ...] = ()) -> tuple[Link, ...]:
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + (name,))
            raise RouteError(f"fallbacks form a cycle: {cycle}", path)
        stack += (name,)
        out: list[Link] = [] if name in VIRTUAL_MODELS else [Link(name, self.groups.get(name) or (Deployment(name),))]
        for e in self.fallbacks.get(name, ()):
            for link in self._expand(e, path, stack):
                if all(link.name != x.name for x in out):
                    out.append(link)
        return tuple(out)

    def links(self, name: str, extra: Iterable[str] = ()) -> tuple[Link, ...] | None:
        """The chain for a request's (resolved) `name`, with per-call `extra` fallbacks
        appended (each with its own configured fallbacks); None when nothing explicit applies."""
        base = self._chains.get(name)
        extra = tuple(extra)
        if not extra:
            return base
        out = list(base) if base is not None else ([] if name in VIRTUAL_MODELS else [Link(name, (Deployment(name),))])
        for e in extra:
            r = self.resolve(e)
            for link in self._chains.get(r) or (Link(r, self.groups.get(r) or (Deployment(r),)),):
                if all(link.name != x.name for x in out):
                    out.append(link)
        return tuple(out)


def members(links: Sequence[Link]) -> list[str]:
    """The distinct catalog ids a chain may call, in chain order."""
    return list(dict.fromkeys(d.model for link in links for d in link.members))


def order(plan: RoutePlan, links: Sequence[Link], rng: random.Random | None, *, limit: int = 50) -> list[PlanStep]:
    """The steps of a chain: link by link; within a link, the members `plan` kept (they
    passed every filter) in a weighted random order (`rng`; None: by weight, heaviest
    first), each with its usable keys; members the filters dropped are left out."""
    kept = {c.info.id: c for c in plan.kept}
    steps: list[PlanStep] = []
    seen: set[tuple[str, str | None]] = set()
    for link in links:
        alive = [d for d in link.members if d.model in kept]
        for d in _draw(alive, rng):
            c = kept[d.model]
            for k in c.deployments:
                # a key named as its variable; `<provider>/<NAME>` when another provider reads the same one
                if d.key is not None and k != d.key and k != f"{c.info.card.provider}/{d.key}":
                    continue
                if (d.model, k) in seen:
                    continue
                seen.add((d.model, k))
                steps.append(PlanStep(c.info.card, k, c.cost, c.free, c.pool_id, c.quality))
                if len(steps) >= limit:
                    return steps
    return steps


def _draw(ms: list[Deployment], rng: random.Random | None) -> list[Deployment]:
    """Weighted random order without replacement (each first pick has probability
    weight / total): sort by u ** (1 / weight), largest first."""
    if len(ms) < 2:
        return ms
    if rng is None:
        return sorted(ms, key=lambda d: -d.weight)
    keyed = [(rng.random() ** (1.0 / d.weight), i) for i, d in enumerate(ms)]
    keyed.sort(reverse=True)
    return [ms[i] for _, i in keyed]


def chain_text(links: Sequence[Link], *, pinned: bool = True, dropped: Mapping[str, str] | None = None) -> list[str]:
    """One line per link for `route --explain`: its members with weights and shares, and
    why a member cannot take this request (`dropped`: model id -> reason). `pinned=False`:
    a virtual model's fallbacks, tried after the policy's plan."""
    dropped = dropped or {}
    out = []
    for i, link in enumerate(links, 0 if pinned else 1):
        ms = link.members

        def why(d: Deployment) -> str:
            r = dropped.get(d.model)
            return f" [skipped: {r}]" if r else ""

        if len(ms) == 1 and ms[0].model == link.name and ms[0].key is None:
            body = link.name + why(ms[0])
        else:
            total = sum(d.weight for d in ms)
            body = f"{link.name}: " + ", ".join(
                f"{d.model}{'@' + d.key if d.key else ''} weight {d.weight:g} ({100 * d.weight / total:.0f}%)"
                + why(d) for d in ms)
        out.append(("pinned " if i == 0 else f"fallback {i}: ") + body)
    return out
