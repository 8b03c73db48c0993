"""Answer-agreement cascades replayed on recorded answers (vectorized, pure numpy).

A policy is a chain of stages run in order until one accepts (the router's
`cascades:` semantics, docs/router.md):

* ``consensus`` (k, m): the stage's k models are called concurrently; the stage
  accepts when at least m of their answers are the same. The accepted answer is the
  one with the most votes (a tie goes to the answer of the earliest model in call
  order); the reply returned is that of the first (cheapest) model that gave it.
* ``lazy-majority``: call the first two; the same answer -> accept; else call the
  third; two of three the same -> accept; else escalate.
* ``single``: one model; it always answers.

The last stage always answers: a consensus or lazy-majority last stage without
agreement returns the reply of its strongest model (highest expected task quality,
here the train split's per-task mean). A reply without an extractable answer never
agrees. Cost is the sum of every call made; "rounds" counts sequential waits (a
consensus stage is one round, lazy-majority one or two): the latency proxy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Stage", "Policy", "Outcome", "answer_classes", "simulate", "candidates", "MODES"]

MODES = ("consensus", "lazy-majority", "single")


@dataclass(frozen=True)
class Stage:
    mode: str  # consensus | lazy-majority | single
    models: tuple[int, ...]  # dataset columns, in call order (cheapest first)
    m: int = 1  # consensus: how many must give the same answer

    @property
    def k(self) -> int:
        return len(self.models)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown stage mode {self.mode!r}; use one of {MODES}")
        if self.mode == "single" and self.k != 1:
            raise ValueError("a single stage has one model")
        if self.mode == "lazy-majority" and self.k != 3:
            raise ValueError("a lazy-majority stage has three models")
        if self.mode == "consensus" and not 1 <= self.m <= self.k:
            raise ValueError("consensus needs 1 <= m <= k")


@dataclass(frozen=True)
class Policy:
    stages: tuple[Stage, ...]

    def label(self, names: Sequence[str]) -> str:
        def short(j: int) -> str:
            return names[j].split("/")[-1].split(":")[-1]

        parts = []
        for s in self.stages:
            ms = "+".join(short(j) for j in s.models)
            parts.append(ms if s.mode == "single" else f"lazy({ms})" if s.mode == "lazy-majority" else f"agree{s.m}/{s.k}({ms})")
        return " > ".join(parts)

    def describe(self, names: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for s in self.stages:
            d: dict[str, Any] = {"mode": s.mode, "models": [names[j] for j in s.models]}
            if s.mode == "consensus":
                d.update(k=s.k, m=s.m)
            out.append(d)
        return out


@dataclass
class Outcome:
    """Per-prompt results of one policy (arrays of length P)."""

    quality: Any
    cost: Any
    calls: Any  # models called
    stages: Any  # stages run
    rounds: Any  # sequential waits
    escalated: Any  # bool: went past the first stage
    replied: Any  # column of the model whose reply was returned


def answer_classes(answers: Any, parse_ok: Any = None, *, decimals: int = 6) -> Any:
    """(P, M) int ids, equal for equal answers, -1 where no answer was read (None, "",
    or parse_ok false). Numbers compare by value (rounded to `decimals`: the number
    extractor's tolerance), other answers by case- and space-folded text."""
    P, M = answers.shape
    out = np.full((P, M), -1, dtype=np.int64)
    ids: dict[Any, int] = {}
    for (i, j), a in np.ndenumerate(answers):
        if a is None or (parse_ok is not None and not parse_ok[i, j]):
            continue
        s = str(a).strip()
        if not s:
            continue
        try:
            v = float(s.replace(",", ""))
            key: Any = ("n", round(v, decimals)) if math.isfinite(v) else ("s", s.casefold())
        except ValueError:
            key = ("s", " ".join(s.casefold().split()))
        out[i, j] = ids.setdefault(key, len(ids))
    return out


def _consensus(A: Any, cols: Sequence[int], m: int) -> tuple[Any, Any]:
    """(accept, replying column) for a consensus stage over `cols`."""
    a = A[:, list(cols)]
    eq = (a[:, :, None] == a[:, None, :]) & (a[:, :, None] >= 0)
    votes = eq.sum(2)
    top = votes.max(1)
    first = (votes == top[:, None]).argmax(1)  # earliest model holding the most-voted answer
    return top >= m, np.asarray(cols)[first]


def simulate(policy: Policy, A: Any, Q: Any, C: Any, qprof: Any) -> Outcome:
    """Run `policy` on every prompt: A answer classes, Q quality, C cost (P, M);
    qprof (P, M) expected quality (who answers when a last stage does not agree)."""
    P = A.shape[0]
    rows = np.arange(P)
    live = np.ones(P, dtype=bool)
    q, c = np.zeros(P), np.zeros(P)
    calls, stages, rounds = np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64)
    replied = np.full(P, -1, dtype=np.int64)
    last = len(policy.stages) - 1
    for n, st in enumerate(policy.stages):
        cols = list(st.models)
        stages[live] += 1
        rounds[live] += 1
        if st.mode == "single":
            accept, who = np.ones(P, dtype=bool), np.full(P, cols[0])
            c[live] += C[live, cols[0]]
            calls[live] += 1
        elif st.mode == "consensus":
            accept, who = _consensus(A, cols, st.m)
            c[live] += C[live][:, cols].sum(1)
            calls[live] += len(cols)
        else:  # lazy-majority
            x, y, z = cols
            ab = (A[:, x] == A[:, y]) & (A[:, x] >= 0)
            third = live & ~ab
            c[live] += C[live, x] + C[live, y]
            calls[live] += 2
            c[third] += C[third, z]
            calls[third] += 1
            rounds[third] += 1
            xz = (A[:, x] == A[:, z]) & (A[:, x] >= 0)
            yz = (A[:, y] == A[:, z]) & (A[:, y] >= 0)
            accept = ab | xz | yz
            who = np.where(ab | xz, x, y)
        if n == last:
            strongest = np.asarray(cols)[qprof[:, cols].argmax(1)]
            who = np.where(accept, who, strongest)
            accept = np.ones(P, dtype=bool)
        take = live & accept
        replied[take] = who[take]
        q[take] = Q[rows[take], who[take]]
        live &= ~accept
    return Outcome(q, c, calls, stages, rounds, stages > 1, replied)


def candidates(train_cost: Any, train_quality: Any, *, pool: int = 7, strong: int | None = None,
               agreement: bool = True) -> tuple[list[Policy], dict[str, Any]]:
    """The search space over the cascade's knobs, from train means only.

    Every single model; then, with the strong model = best on train and the cheap pool =
    the `pool` cheapest models cheaper than it (by train cost): for each final model on
    the train single-model frontier (the strong one included) not in the cheap stage:
    pair consensus (2 of 2), triples (2 of 3, 3 of 3, lazy-majority), 3 or 4 of 4 over
    the 5 cheapest, 3 or 4 of 5 over the 6 cheapest, and two agreement stages (a pair,
    then a dearer disjoint pair) before it: the strong model is only ever the last stage.
    Cheap stages alone (their strongest answers on disagreement) are included too.
    `agreement=False` (answers without a sound equality, e.g. code): single models only."""
    mc, mq = np.asarray(train_cost, float), np.asarray(train_quality, float)
    M = len(mc)
    strong = int(mq.argmax()) if strong is None else strong
    by_cost = [int(j) for j in np.argsort(mc, kind="stable")]
    cheap = [j for j in by_cost if mc[j] < mc[strong]][:pool]
    # the train frontier of single models (pareto: nothing cheaper is as good)
    front, best = [], -np.inf
    for j in by_cost:
        if mq[j] > best:
            front.append(j)
            best = mq[j]
    finals = sorted(set(front) | {strong}, key=lambda j: mc[j])
    pols: list[Policy] = [Policy((Stage("single", (j,)),)) for j in range(M)]
    if not agreement:
        return pols, {"strong": strong, "cheap_pool": [], "finals": finals, "n_candidates": len(pols)}

    def order(cols: Sequence[int]) -> tuple[int, ...]:
        return tuple(sorted(cols, key=lambda j: (mc[j], j)))

    heads: list[tuple[Stage, ...]] = []
    for p in itertools.combinations(cheap, 2):
        heads.append((Stage("consensus", order(p), 2),))
    for t in itertools.combinations(cheap, 3):
        t = order(t)
        heads += [(Stage("consensus", t, 2),), (Stage("consensus", t, 3),), (Stage("lazy-majority", t),)]
    for f in itertools.combinations(cheap[:5], 4):
        heads += [(Stage("consensus", order(f), 3),), (Stage("consensus", order(f), 4),)]
    for f in itertools.combinations(cheap[:6], 5):
        heads += [(Stage("consensus", order(f), 3),), (Stage("consensus", order(f), 4),)]
    for p1 in itertools.combinations(cheap, 2):
        for p2 in itertools.combinations([j for j in cheap if j not in p1], 2):
            if sum(mc[j] for j in p2) > sum(mc[j] for j in p1):
                heads.append((Stage("consensus", order(p1), 2), Stage("consensus", order(p2), 2)))
    for h in heads:
        used = {j for s in h for j in s.models}
        pols.append(Policy(h))
        for fin in finals:
            if fin not in used and mc[fin] >= max(mc[j] for j in h[0].models):
                pols.append(Policy(h + (Stage("single", (fin,)),)))
    info = {"strong": strong, "cheap_pool": cheap, "finals": finals, "n_candidates": len(pols)}
    return pols, info
