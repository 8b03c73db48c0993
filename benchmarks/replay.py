"""Vectorized offline replay of routers on recorded outcomes (train -> held-out test).

Every router is a choice of one model per test prompt (cascades: a sequence), scored
with the *recorded* quality and cost of that choice. Policies mirror the router's
semantics on the information the router has before a call: a per-task quality
profile (here: the train split's mean quality per task and model) and an expected
cost (train mean cost per task and model). The learned router replaces the profile by
per-prompt predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from benchmarks.datasets import Dataset
from benchmarks.metrics import nondecreasing_hull

__all__ = [
    "RouterResult",
    "profile_estimates",
    "pick_floor",
    "pick_cap",
    "pick_balanced",
    "from_choice",
    "baselines",
    "policy_sweeps",
    "cascade",
    "cascade_sweep",
    "learned_sweep",
    "pair_sweep",
    "LAMBDAS",
]

LAMBDAS = (0.0, *[float(x) for x in (10 ** (i / 8) for i in range(0, 41))])  # 1 .. 1e5 quality per USD


@dataclass
class RouterResult:
    name: str
    family: str  # single | baseline | oracle | policy | learned | cascade
    quality: float
    cost_usd: float  # mean per query
    param: float | None = None
    per_prompt_q: Any = field(default=None, repr=False)
    per_prompt_c: Any = field(default=None, repr=False)
    choice: Any = field(default=None, repr=False)
    group: str = ""  # sweeps share a group (their points form one curve)

    @property
    def cost_per_1k(self) -> float:
        return self.cost_usd * 1000.0


def from_choice(test: Dataset, choice: Any, name: str, family: str, *, param: float | None = None, group: str = "") -> RouterResult:
    rows = np.arange(test.n_prompts)
    q = test.quality[rows, choice]
    c = test.cost_usd[rows, choice]
    return RouterResult(name, family, float(q.mean()), float(c.mean()), param, q, c, np.asarray(choice), group or name)


def profile_estimates(train: Dataset, test: Dataset, *, by: str = "task") -> tuple[Any, Any]:
    """(qhat, chat) for test prompts: train means per task (or task kind) and model.
    Tasks unseen in train fall back to the train-wide mean."""
    key_tr = np.asarray(train.tasks if by == "task" else train.task_kinds())
    key_te = np.asarray(test.tasks if by == "task" else test.task_kinds())
    gq, gc = train.quality.mean(0), train.cost_usd.mean(0)
    qhat = np.tile(gq, (test.n_prompts, 1))
    chat = np.tile(gc, (test.n_prompts, 1))
    for k in set(key_te):
        m = key_tr == k
        if m.any():
            qhat[key_te == k] = train.quality[m].mean(0)
            chat[key_te == k] = train.cost_usd[m].mean(0)
    return qhat, chat


def pick_floor(qhat: Any, chat: Any, floor: float) -> Any:
    """Cheapest model whose expected quality >= floor; none -> the best expected."""
    ok = qhat >= floor
    c = np.where(ok, chat, np.inf)
    choice = c.argmin(1)
    none = ~ok.any(1)
    choice[none] = qhat[none].argmax(1)
    return choice


def pick_cap(qhat: Any, chat: Any, cap: float) -> Any:
    """Best expected quality among models with expected cost <= cap (ties: cheaper);
    none under the cap -> the cheapest."""
    ok = chat <= cap
    u = np.where(ok, qhat - 1e-9 * chat, -np.inf)
    choice = u.argmax(1)
    none = ~ok.any(1)
    choice[none] = chat[none].argmin(1)
    return choice


def pick_balanced(qhat: Any, chat: Any, lam: float) -> Any:
    """argmax expected quality - lam * expected cost (lam in quality per USD)."""
    return (qhat - lam * chat - 1e-12 * chat).argmax(1)


def baselines(train: Dataset, test: Dataset, *, seed: int = 0) -> list[RouterResult]:
    """Every single model, random, cheapest, best single (picked on train), oracle."""
    P, M = test.n_prompts, test.n_models
    out = [from_choice(test, np.full(P, j), f"single:{m}", "single") for j, m in enumerate(test.models)]
    q_exp, c_exp = test.quality.mean(1), test.cost_usd.mean(1)  # expectation of a uniform random pick
    out.append(RouterResult("random", "baseline", float(q_exp.mean()), float(c_exp.mean()), None, q_exp, c_exp, None, "random"))
    cheapest = int(train.cost_usd.mean(0).argmin())
    out.append(from_choice(test, np.full(P, cheapest), f"cheapest ({test.models[cheapest]})", "baseline"))
    best = int(train.quality.mean(0).argmax())
    out.append(from_choice(test, np.full(P, best), f"best-single ({test.models[best]})", "baseline"))
    # oracle: highest recorded quality, ties (e.g. all wrong) -> cheapest
    Q, C = test.quality, test.cost_usd
    top = Q >= Q.max(1, keepdims=True) - 1e-12
    out.append(from_choice(test, np.where(top, C, np.inf).argmin(1), "oracle", "oracle"))
    return out


def policy_sweeps(qhat: Any, chat: Any, test: Dataset, *, prefix: str = "quotaroute", family: str = "policy") -> list[RouterResult]:
    """The router's policies with their knob swept (one group per policy)."""
    out: list[RouterResult] = []
    floors = sorted(set(np.round(np.linspace(0.0, 1.0, 41), 3)))
    caps = sorted(set(np.quantile(chat, np.linspace(0, 1, 41))))
    for f in floors:
        out.append(from_choice(test, pick_floor(qhat, chat, f), f"{prefix}:cheapest-above-floor", family, param=float(f), group=f"{prefix}:cheapest-above-floor"))
    for cap in caps:
        out.append(from_choice(test, pick_cap(qhat, chat, cap), f"{prefix}:best-within-cap", family, param=float(cap), group=f"{prefix}:best-within-cap"))
    for lam in LAMBDAS:
        out.append(from_choice(test, pick_balanced(qhat, chat, lam), f"{prefix}:balanced", family, param=lam, group=f"{prefix}:balanced"))
    return out


def learned_sweep(qpred: Any, chat: Any, test: Dataset, name: str) -> list[RouterResult]:
    return [from_choice(test, pick_balanced(qpred, chat, lam), name, "learned", param=lam, group=name) for lam in LAMBDAS]


def cascade(test: Dataset, chain: Sequence[int], accuracy: float, rng: Any, *, name: str = "cascade", group: str = "") -> RouterResult:
    """Try `chain` cheapest-first; a checker with the given accuracy accepts a correct
    recorded answer (quality >= 0.5) with probability `accuracy` and rejects a wrong one
    with probability `accuracy`; rejection escalates; the last model always answers.
    Every tried call is paid; the checker itself is assumed free."""
    P = test.n_prompts
    done = np.zeros(P, dtype=bool)
    q = np.zeros(P)
    c = np.zeros(P)
    for step, j in enumerate(chain):
        live = ~done
        c[live] += test.cost_usd[live, j]
        qj = test.quality[:, j]
        if step == len(chain) - 1:
            accept = live
        else:
            right = qj >= 0.5
            trust = rng.random(P) < accuracy
            accept = live & np.where(right, trust, ~trust)
        q[accept] = qj[accept]
        done |= accept
    return RouterResult(name, "cascade", float(q.mean()), float(c.mean()), accuracy, q, c, None, group or name)


def cascade_sweep(train: Dataset, test: Dataset, accuracies: Sequence[float] = (1.0, 0.9, 0.8), *, seed: int = 0) -> list[RouterResult]:
    """Cascades along the train frontier of single models: every prefix of the chain
    and every (cheap model -> strongest) pair, for each checker accuracy."""
    mc, mq = train.cost_usd.mean(0), train.quality.mean(0)
    xs, _ = nondecreasing_hull(mc, mq)
    chain = [int(np.flatnonzero(np.isclose(mc, x))[0]) for x in xs]
    chains = {tuple(chain[: k + 1]) for k in range(1, len(chain))} | {(a, chain[-1]) for a in chain[:-1]}
    out = []
    for acc in accuracies:
        rng = np.random.default_rng(seed)
        for ch in sorted(chains):
            label = " > ".join(test.models[j].split("/")[-1] for j in ch)
            out.append(cascade(test, ch, acc, rng, name=f"quotaroute:cascade(checker {acc:.0%}) {label}", group=f"quotaroute:cascade(checker {acc:.0%})"))
    return out


def pair_sweep(test: Dataset, strong: int, weak: int, score: Any, n: int = 41) -> tuple[list[float], list[float]]:
    """Strong/weak router (RouteLLM): send to `strong` when `score` (predicted gain)
    exceeds a threshold; returns (strong-call shares, qualities) over thresholds."""
    shares, quals = [], []
    for t in np.quantile(score, np.linspace(0, 1, n)):
        to_strong = score > t
        for s in (to_strong, score >= t):
            q = np.where(s, test.quality[:, strong], test.quality[:, weak])
            shares.append(float(s.mean()))
            quals.append(float(q.mean()))
    return shares, quals
