"""Answer-agreement cascades in the replay: search the knobs on train, report on test.

`evaluate_agreement(train, test, ...)` simulates every candidate policy of
`benchmarks.cascades.candidates` on the train split, picks

* **global**: one policy for every prompt, the cheapest whose train quality reaches
  the target share of the best single model's (best on train);
* **per task kind**: one policy per router task kind (what a `rules:` entry matches):
  the cheapest combination (train quality and cost are share-weighted sums over the
  kinds, so merging the kinds' train Pareto fronts one by one is exact) whose combined
  train quality reaches the target;

and measures them on the test split with bootstrap intervals (the same resamples as
the other routers), next to the zero router at the same cost. The train-frontier
policies, measured on test, form the cascade curves (their AIQ is comparable with the
other curves). Nothing here sees a test outcome before the choice is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from benchmarks import cascades as cz
from benchmarks import metrics as mx
from benchmarks.datasets import Dataset
from benchmarks.replay import RouterResult, profile_estimates

__all__ = ["Choice", "evaluate_agreement", "infer_extract", "allocate", "curve_aiq_diff_ci", "GLOBAL", "PER_KIND", "NO_AGREEMENT"]

GLOBAL = "quotaroute:agreement-cascade"
PER_KIND = "quotaroute:agreement-cascade per task kind"
NO_AGREEMENT = ("code",)  # extractor specs whose equality is too strict to vote on: single models only


@dataclass
class Choice:
    """A chosen cascade: one policy per task kind ("*" = every prompt)."""

    name: str
    policies: dict[str, cz.Policy]
    param: float | None  # unused (kept for the report's `param` field)
    train_quality: float
    train_cost: float
    test: cz.Outcome | None = None


def infer_extract(answers: Any) -> str:
    """The extractor spec the answers look like: choice letters, numbers, code hashes, else text."""
    vals = [str(a).strip() for a in np.ravel(answers) if a is not None and str(a).strip()]
    if not vals:
        return "text"
    if all(len(v) == 1 and v.isalpha() and v.upper() == v for v in vals):
        return "choice"

    def isnum(v: str) -> bool:
        try:
            float(v.replace(",", ""))
            return True
        except ValueError:
            return False

    if all(isnum(v) for v in vals):
        return "number"
    if all(8 <= len(v) <= 64 and all(ch in "0123456789abcdef" for ch in v) for v in vals):
        return "code"
    return "text"


def _compose(parts: dict[str, cz.Outcome], masks: dict[str, Any], P: int) -> cz.Outcome:
    out = cz.Outcome(np.zeros(P), np.zeros(P), np.zeros(P, np.int64), np.zeros(P, np.int64), np.zeros(P, np.int64),
                     np.zeros(P, bool), np.full(P, -1, np.int64))
    for k, o in parts.items():
        m = masks[k]
        for f in ("quality", "cost", "calls", "stages", "rounds", "escalated", "replied"):
            getattr(out, f)[m] = getattr(o, f)[m]
    return out


def _run(choice: Choice, ds: Dataset, A: Any, qprof: Any, kinds: Any, fallback: cz.Policy) -> cz.Outcome:
    if "*" in choice.policies:
        return cz.simulate(choice.policies["*"], A, ds.quality, ds.cost_usd, qprof)
    masks = {k: kinds == k for k in set(kinds)}
    parts = {k: cz.simulate(choice.policies.get(k, fallback), A, ds.quality, ds.cost_usd, qprof) for k in masks}
    return _compose(parts, masks, ds.n_prompts)


def _summary(o: cz.Outcome, best_q: float, best_c: float) -> dict[str, Any]:
    q, c = float(o.quality.mean()), float(o.cost.mean())
    return {"quality": q, "cost_usd": c, "cost_per_1k_queries_usd": 1000 * c,
            "quality_pct_of_best_single": 100 * q / best_q, "cost_pct_of_best_single": 100 * c / best_c,
            "escalation_rate": float(o.escalated.mean()), "calls_mean": float(o.calls.mean()),
            "stages_run_mean": float(o.stages.mean()), "stages_max": int(o.stages.max()),
            "rounds_mean": float(o.rounds.mean()), "rounds_max": int(o.rounds.max())}


def _boot(o: cz.Outcome, test: Dataset, idx: Any, best: int) -> dict[str, Any]:
    """Bootstrap intervals (same resamples as the other routers) and the paired
    comparison with the zero router at the cascade's own cost in each resample."""
    qb, cb = o.quality[idx].mean(1), o.cost[idx].mean(1)
    Qs, Cs = test.quality[idx].mean(1), test.cost_usd[idx].mean(1)  # (B, M) single models per resample
    dz = np.empty(len(idx))
    for b in range(len(idx)):
        xs, ys = mx.nondecreasing_hull(Cs[b], Qs[b])
        dz[b] = qb[b] - float(np.interp(cb[b], xs, ys, left=ys[0], right=ys[-1]))
    qp, cp = 100 * qb / Qs[:, best], 100 * cb / Cs[:, best]

    def ci(v: Any) -> list[float]:
        return [float(x) for x in np.quantile(v, [0.025, 0.975])]

    return {"quality_ci95": ci(qb), "cost_usd_ci95": ci(cb), "escalation_rate_ci95": ci(o.escalated[idx].mean(1)),
            "quality_pct_of_best_single_ci95": ci(qp), "cost_pct_of_best_single_ci95": ci(cp),
            "quality_minus_zero_router_ci95": ci(dz)}


def _curve_aiq_boot(points: Sequence[cz.Outcome], test: Dataset, idx: Any, c_lo: float, c_hi: float, anchor: int) -> list[float]:
    """95% interval of AIQ(curve) - AIQ(zero router) over the resamples (bounds fixed)."""
    Qs, Cs = test.quality[idx].mean(1), test.cost_usd[idx].mean(1)
    pq = np.array([o.quality[idx].mean(1) for o in points])  # (N, B)
    pc = np.array([o.cost[idx].mean(1) for o in points])
    d = np.empty(len(idx))
    for b in range(len(idx)):
        zx, zy = mx.nondecreasing_hull(Cs[b], Qs[b])
        cx, cy = mx.nondecreasing_hull(np.r_[Cs[b, anchor], pc[:, b]], np.r_[Qs[b, anchor], pq[:, b]])
        d[b] = mx.aiq(cx, cy, c_lo, c_hi) - mx.aiq(zx, zy, c_lo, c_hi)
    return [float(x) for x in np.quantile(d, [0.025, 0.975])]


def curve_aiq_diff_ci(a: Sequence[tuple[Any, Any]], b: Sequence[tuple[Any, Any]], test: Dataset, idx: Any,
                      c_lo: float, c_hi: float, anchor: int) -> list[float]:
    """95% interval of AIQ(curve a) - AIQ(curve b) over the bootstrap resamples (paired:
    the same prompts in both; bounds fixed). A curve is its points' per-prompt (quality,
    cost) arrays; both hulls start at the cheapest single model (`anchor`), like the
    report's curves."""
    Qa, Cs = test.quality[idx].mean(1)[:, anchor], test.cost_usd[idx].mean(1)[:, anchor]

    def means(pts: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
        return np.array([np.asarray(q)[idx].mean(1) for q, _c in pts]), np.array([np.asarray(c)[idx].mean(1) for _q, c in pts])

    (aq, ac), (bq, bc) = means(a), means(b)
    d = np.empty(len(idx))
    for r in range(len(idx)):
        ax, ay = mx.nondecreasing_hull(np.r_[Cs[r], ac[:, r]], np.r_[Qa[r], aq[:, r]])
        bx, by = mx.nondecreasing_hull(np.r_[Cs[r], bc[:, r]], np.r_[Qa[r], bq[:, r]])
        d[r] = mx.aiq(ax, ay, c_lo, c_hi) - mx.aiq(bx, by, c_lo, c_hi)
    return [float(x) for x in np.quantile(d, [0.025, 0.975])]


def allocate(kinds: Sequence[str], wk: dict[str, float], kq: dict[str, Any], kc: dict[str, Any]) -> list[tuple[float, float, dict[str, int]]]:
    """The global allocation across task kinds: the train Pareto front of combinations
    (one candidate per kind; total quality and cost = the kinds' means weighted by their
    shares `wk`). An exact knapsack: merge the kinds' own Pareto fronts one by one,
    pruning dominated partial sums (every Lagrangian choice, argmax q - lambda c, is on it,
    and so are the points between). Sorted by cost; quality strictly rising."""
    front: list[tuple[float, float, dict[str, int]]] = [(0.0, 0.0, {})]
    for k in kinds:
        opts = [(wk[k] * float(kq[k][i]), wk[k] * float(kc[k][i]), i) for i in _pareto(kq[k], kc[k])]
        merged = sorted(((q + dq, c + dc, {**p, k: i}) for q, c, p in front for dq, dc, i in opts), key=lambda x: (x[1], -x[0]))
        front, best = [], -np.inf
        for x in merged:
            if x[0] > best + 1e-12:
                front.append(x)
                best = x[0]
    return front


def _pareto(q: Any, c: Any) -> list[int]:
    order = np.lexsort((-q, c))
    out, best = [], -np.inf
    for i in order:
        if q[i] > best + 1e-12:
            out.append(int(i))
            best = q[i]
    return out


def evaluate_agreement(train: Dataset, test: Dataset, *, idx: Any, targets: Sequence[float] = (0.97, 1.0), pool: int = 7,
                       extract: dict[str, str] | None = None, margin: float = 1.0) -> tuple[dict[str, Any], list[RouterResult], dict[str, Choice]]:
    """The `agreement` report section, the test points (for curves and the plot) and
    the chosen cascades (for --export-config), keyed "<global|per-kind>@<target>".

    A candidate reaches a target on train when its per-prompt quality minus target x
    the best single model's, averaged, is at least `margin` standard errors above 0
    (paired; 0 = the plain mean rule). The margin keeps the cheapest candidate that
    reaches the target on train by luck (many candidates sit near it) from being chosen."""
    if train.answers is None or test.answers is None:
        return {"available": False, "reason": "the data set has no `answer` column: answer agreement cannot be replayed"}, [], {}
    Atr, Ate = cz.answer_classes(train.answers, train.parse_ok), cz.answer_classes(test.answers, test.parse_ok)
    qtr, _ = profile_estimates(train, train, by="kind")
    qte, _ = profile_estimates(train, test, by="kind")
    ktr, kte = np.array(train.task_kinds()), np.array(test.task_kinds())
    pols, info = cz.candidates(train.cost_usd.mean(0), train.quality.mean(0), pool=pool)
    s = info["strong"]
    names = train.models
    tr_out = [cz.simulate(p, Atr, train.quality, train.cost_usd, qtr) for p in pols]
    TQ = np.array([o.quality for o in tr_out])  # (N, P_train)
    TC = np.array([o.cost for o in tr_out])
    gq, gc = TQ.mean(1), TC.mean(1)
    bq_tr = float(train.quality[:, s].mean())
    kinds = sorted({str(k) for k in ktr})
    ext = dict(extract) if extract else {}
    for k in kinds:
        ext.setdefault(k, infer_extract(train.answers[ktr == k]))
    per_kind = len(kinds) > 1  # one task kind: the per-kind choice is the global one
    kmask = {k: ktr == k for k in kinds}
    # per task kind: its own candidates (pool, strong and finals from the kind's train means;
    # single models only where the answers have no sound equality), simulated on its prompts
    kpols: dict[str, list[cz.Policy]] = {}
    KQ: dict[str, Any] = {}
    kq: dict[str, Any] = {}
    kc: dict[str, Any] = {}
    for k in kinds if per_kind else []:
        m = kmask[k]
        kpols[k], _ = cz.candidates(train.cost_usd[m].mean(0), train.quality[m].mean(0), pool=pool,
                                    agreement=ext[k] not in NO_AGREEMENT)
        outs = [cz.simulate(p, Atr[m], train.quality[m], train.cost_usd[m], qtr[m]) for p in kpols[k]]
        KQ[k] = np.array([o.quality for o in outs])
        kq[k], kc[k] = KQ[k].mean(1), np.array([o.cost.mean() for o in outs])
    wk = {k: float(kmask[k].mean()) for k in kinds}
    combos = allocate(kinds, wk, kq, kc) if per_kind else []  # [(train q, train c, {kind: policy index})]
    strong_pol = cz.Policy((cz.Stage("single", (s,)),))

    qbest = train.quality[:, s]
    n_tr = train.n_prompts
    CQ = np.zeros((len(combos), n_tr))
    for r, (_q, _c, pick) in enumerate(combos):
        for k, i in pick.items():
            CQ[r, kmask[k]] = KQ[k][i]

    def lower(Qs: Any, t: float) -> Any:
        """Paired lower bound of mean(q - t * q_best) on train, in quality units."""
        d = Qs - t * qbest
        return d.mean(1) - margin * d.std(1, ddof=1) / np.sqrt(n_tr) if n_tr > 1 else d.mean(1)

    chosen: dict[str, Choice] = {}
    for t in targets:
        lb = lower(TQ, t)
        ok = np.flatnonzero(lb >= -1e-12)
        i = int(ok[np.argmin(gc[ok])]) if ok.size else int(np.argmax(lb))
        chosen[f"global@{t:.2f}"] = Choice(GLOBAL, {"*": pols[i]}, None, float(gq[i]), float(gc[i]))
        if not per_kind:
            continue
        lbc = lower(CQ, t)
        okc = np.flatnonzero(lbc >= -1e-12)
        j = int(okc[np.argmin([combos[x][1] for x in okc])]) if okc.size else int(np.argmax(lbc))
        q_, c_, pick = combos[j]
        chosen[f"per-kind@{t:.2f}"] = Choice(PER_KIND, {k: kpols[k][x] for k, x in pick.items()}, None, float(q_), float(c_))

    bq, bc = float(test.quality[:, s].mean()), float(test.cost_usd[:, s].mean())
    out_ch: dict[str, Any] = {}
    for key, ch in chosen.items():
        ch.test = _run(ch, test, Ate, qte, kte, strong_pol)
        row = {"router": ch.name, "target_pct": 100 * float(key.split("@")[1]), "param": ch.param,
               "policy": {k: {"label": p.label(names), "stages": p.describe(names)} for k, p in ch.policies.items()},
               "train": {"quality": ch.train_quality, "cost_usd": ch.train_cost,
                         "quality_pct_of_best_single": 100 * ch.train_quality / bq_tr,
                         "cost_pct_of_best_single": 100 * ch.train_cost / float(train.cost_usd[:, s].mean())},
               **_summary(ch.test, bq, bc), **_boot(ch.test, test, idx, s)}
        lo, hi = row["quality_minus_zero_router_ci95"]
        row["quality_minus_zero_router_at_same_cost"] = _zero_gap(ch.test, test)
        row["beats_zero_router"] = "yes" if lo > 0 else "no (worse)" if hi < 0 else "not significant"
        row["met_target"] = row["quality_pct_of_best_single"] >= 100 * float(key.split("@")[1]) - 1e-9 and row["cost_pct_of_best_single"] <= 20.0
        out_ch[key] = row

    # curves: the train Pareto fronts (global; per task kind), measured on test
    front = _pareto(gq, gc)
    g_pts = [cz.simulate(pols[i], Ate, test.quality, test.cost_usd, qte) for i in front]
    cache: dict[tuple[str, int], cz.Outcome] = {}
    masks = {k: kte == k for k in set(kte)}
    strong_te = cz.simulate(strong_pol, Ate, test.quality, test.cost_usd, qte)
    k_pts, k_params = [], []
    for q_, c_, pick in combos:
        for k, j in pick.items():
            if (k, j) not in cache:
                cache[k, j] = cz.simulate(kpols[k][j], Ate, test.quality, test.cost_usd, qte)
        k_pts.append(_compose({k: cache[str(k), pick[str(k)]] if str(k) in pick else strong_te for k in masks}, masks, test.n_prompts))
        k_params.append(c_)
    results = [RouterResult(f"{GLOBAL}: {pols[i].label(names)}", "agreement", float(o.quality.mean()), float(o.cost.mean()), None,
                            o.quality, o.cost, None, GLOBAL) for i, o in zip(front, g_pts)]
    results += [RouterResult(PER_KIND, "agreement", float(o.quality.mean()), float(o.cost.mean()), tc, o.quality, o.cost, None, PER_KIND)
                for tc, o in zip(k_params, k_pts)]
    singles_c, singles_q = test.cost_usd.mean(0), test.quality.mean(0)
    c_lo, c_hi = float(singles_c.min()), float(singles_c.max())
    anchor = int(singles_c.argmin())
    aiq_ci = {GLOBAL: _curve_aiq_boot(g_pts, test, idx, c_lo, c_hi, anchor)}
    if per_kind:
        aiq_ci[PER_KIND] = _curve_aiq_boot(k_pts, test, idx, c_lo, c_hi, anchor)
    frontier = [{"policy": pols[i].label(names), "stages": pols[i].describe(names), "train_quality": float(gq[i]), "train_cost_usd": float(gc[i]),
                 **_summary(o, bq, bc)} for i, o in zip(front, g_pts)]
    agree = _agreement_stats(Ate, test, info["cheap_pool"])
    rep = {"available": True,
           "extract": ext,
           "search": {"strong": names[s], "cheap_pool": [names[j] for j in info["cheap_pool"]], "finals": [names[j] for j in info["finals"]],
                      "n_candidates": len(pols), "targets_pct": [100 * t for t in targets],
                      "margin_standard_errors": margin, "per_kind_combinations_on_train_front": len(combos),
                      "per_kind_candidates": {k: len(v) for k, v in kpols.items()},
                      "single_models_only": sorted(k for k in kpols if ext[k] in NO_AGREEMENT)},
           "best_single": {"name": names[s], "quality": bq, "cost_usd": bc},
           "chosen": out_ch, "frontier": frontier, "aiq_minus_zero_router_ci95": aiq_ci, "agreement": agree,
           "answers_read_pct": {m: float(100 * (Ate[:, j] >= 0).mean()) for j, m in enumerate(test.models)}}
    return rep, results, chosen


def _zero_gap(o: cz.Outcome, test: Dataset) -> float:
    xs, ys = mx.nondecreasing_hull(test.cost_usd.mean(0), test.quality.mean(0))
    return float(o.quality.mean() - np.interp(o.cost.mean(), xs, ys, left=ys[0], right=ys[-1]))


def _agreement_stats(A: Any, test: Dataset, cols: Sequence[int]) -> list[dict[str, Any]]:
    """For every pair of cheap models: how often they agree on test, and how often the
    agreed answer is right (the signal the cascade lives on)."""
    out = []
    for x, y in [(a, b) for i, a in enumerate(cols) for b in cols[i + 1:]]:
        agree = (A[:, x] == A[:, y]) & (A[:, x] >= 0)
        right = test.quality[:, x] >= 0.5
        out.append({"models": [test.models[x], test.models[y]], "agree_rate": float(agree.mean()),
                    "right_when_agree": float(right[agree].mean()) if agree.any() else None,
                    "right_when_disagree": float(right[~agree].mean()) if (~agree).any() else None})
    return out
