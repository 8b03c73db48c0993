"""The offline replay benchmark end to end: dataset -> split -> routers -> metrics dict.

`evaluate(ds, ...)` returns the report dict (see docs/replay-benchmark.md for every
field) plus the list of `RouterResult`s for plotting. No I/O except the optional
quota config already parsed by the caller.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from benchmarks import metrics as mx
from benchmarks import replay as rp
from benchmarks.cascades_eval import GLOBAL, PER_KIND, curve_aiq_diff_ci, evaluate_agreement
from benchmarks.cascades_export import pick_choice
from benchmarks.datasets import MODEL_ID_MAP, Dataset, split
from benchmarks.learned import train as fit
from benchmarks.quota_replay import quota_replay
from router.predictor import DEFAULT_HP, featurize

__all__ = ["evaluate", "TARGET_QUALITY", "TARGET_COST", "DEFAULT_PAIR", "QUOTAROUTE_FAMILIES"]

TARGET_QUALITY = 0.97  # of the best single model's quality
TARGET_COST = 0.20  # of the best single model's cost
DEFAULT_PAIR = ("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat")
QUOTAROUTE_FAMILIES = ("policy", "learned")  # predict-before-call routers (cascades reported apart)
KIND_HP: dict[str, dict[str, Any]] = {}  # overrides of router.predictor.DEFAULT_HP (none: the defaults are tuned)


def _curve_stats(rs: list[rp.RouterResult], anchor: rp.RouterResult, c_lo: float, c_hi: float, best: rp.RouterResult, oracle_q: float) -> dict[str, Any]:
    xs, ys = mx.nondecreasing_hull([anchor.cost_usd] + [r.cost_usd for r in rs], [anchor.quality] + [r.quality for r in rs])
    c_best = mx.min_cost_for_quality(xs, ys, best.quality)
    c95 = mx.min_cost_for_quality(xs, ys, 0.95 * best.quality)
    c97 = mx.min_cost_for_quality(xs, ys, TARGET_QUALITY * best.quality)
    return {
        "aiq": mx.aiq(xs, ys, c_lo, c_hi),
        "aiq_log": mx.aiq(xs, ys, c_lo, c_hi, log=True),
        "hull": [[float(x), float(y)] for x, y in zip(xs, ys)],
        "max_quality": float(max(r.quality for r in rs)),
        "gap_to_oracle": float(oracle_q - max(r.quality for r in rs)),
        "cost_at_best_single_quality_usd": c_best,
        "cost_saved_at_best_single_quality_pct": None if c_best is None else 100 * (1 - c_best / best.cost_usd),
        "cost_for_95pct_of_best_single_usd": c95,
        "cost_for_95pct_of_best_single_pct": None if c95 is None else 100 * c95 / best.cost_usd,
        "cost_for_97pct_of_best_single_usd": c97,
        "cost_for_97pct_of_best_single_pct": None if c97 is None else 100 * c97 / best.cost_usd,
    }


def _headline(rs: list[rp.RouterResult], best: rp.RouterResult) -> dict[str, Any]:
    ok = [r for r in rs if r.quality >= TARGET_QUALITY * best.quality]
    flagged = not ok
    pick = min(ok, key=lambda r: (r.cost_usd, -r.quality)) if ok else max(rs, key=lambda r: (r.quality, -r.cost_usd))
    qp, cp = 100 * pick.quality / best.quality, 100 * pick.cost_usd / best.cost_usd
    return {
        "router": pick.name, "group": pick.group, "param": pick.param, "quality": pick.quality, "cost_usd": pick.cost_usd,
        "quality_pct_of_best_single": qp, "cost_pct_of_best_single": cp,
        "flagged": flagged, "note": "no setting reaches 97% of the best single model: closest shown" if flagged else "",
        "met_target": (not flagged) and cp <= 100 * TARGET_COST,
        "_result": pick,
    }


def _learned_curves(train: Dataset, test: Dataset, Xtr: Any, Xte: Any, chat: Any, kinds: tuple[str, ...], seed: int) -> tuple[dict[str, Any], dict[str, list[rp.RouterResult]], dict[str, Any]]:
    preds, curves, secs = {}, {}, {}
    for k in kinds:
        t0 = time.perf_counter()
        p = fit(train, k, X=Xtr, seed=seed, **KIND_HP.get(k, {}))
        secs[k] = time.perf_counter() - t0
        preds[k] = (p, p.predict_matrix(Xte))
        curves[k] = rp.learned_sweep(preds[k][1], chat, test, f"quotaroute:learned-{k}")
    return preds, curves, secs


def evaluate(ds: Dataset, *, test_fraction: float | None = None, seed: int = 0, kinds: tuple[str, ...] = ("knn", "ridge", "logistic", "mlp"),
             ood: bool = True, quotas: dict[str, Any] | None = None, quota_file: str = "<demo quotas>",
             pair: tuple[str, str] = DEFAULT_PAIR, step: Callable[[str], None] | None = None,
             cascade_target: float = TARGET_QUALITY, cascade_pool: int = 7, extract: dict[str, str] | None = None,
             cascade_margin: float = 1.0) -> tuple[dict[str, Any], list[rp.RouterResult]]:
    t_start = time.perf_counter()
    say = step or (lambda _m: None)
    train, test = split(ds, test_fraction, seed)
    say("features")
    X_all = featurize(ds.prompts, ds.task_kinds())
    pos = {pid: i for i, pid in enumerate(ds.prompt_ids)}
    Xtr, Xte = X_all[[pos[p] for p in train.prompt_ids]], X_all[[pos[p] for p in test.prompt_ids]]

    say("baselines and policies")
    base = rp.baselines(train, test, seed=seed)
    singles = [r for r in base if r.family == "single"]
    best = next(r for r in base if r.name.startswith("best-single"))
    oracle = next(r for r in base if r.family == "oracle")
    cheapest = min(singles, key=lambda r: r.cost_usd)
    c_lo, c_hi = min(r.cost_usd for r in singles), max(r.cost_usd for r in singles)
    qhat, chat = rp.profile_estimates(train, test)
    policies = rp.policy_sweeps(qhat, chat, test)

    say("learned router: model selection on a validation split of train")
    vtr, vte = split(train, 0.2, seed + 7) if train.n_prompts >= 50 else (train, train)
    vpos = {pid: i for i, pid in enumerate(train.prompt_ids)}
    vXtr, vXte = Xtr[[vpos[p] for p in vtr.prompt_ids]], Xtr[[vpos[p] for p in vte.prompt_ids]]
    vq, vchat = rp.profile_estimates(vtr, vte)
    _p, vcurves, _s = _learned_curves(vtr, vte, vXtr, vXte, vchat, kinds, seed)
    vsingles = [rp.from_choice(vte, np.full(vte.n_prompts, j), m, "single") for j, m in enumerate(vte.models)]
    vanchor = min(vsingles, key=lambda r: r.cost_usd)
    vbest = max(vsingles, key=lambda r: r.quality)
    vlo, vhi = vanchor.cost_usd, max(r.cost_usd for r in vsingles)
    val_aiq = {k: _curve_stats(v, vanchor, vlo, vhi, vbest, 1.0)["aiq"] for k, v in vcurves.items()}
    chosen = max(val_aiq, key=lambda k: val_aiq[k])

    say("learned router: train on the train split")
    preds, lcurves, secs = _learned_curves(train, test, Xtr, Xte, chat, kinds, seed)
    learned_sel = [rp.RouterResult(**{**r.__dict__, "name": "quotaroute:learned", "group": "quotaroute:learned"}) for r in lcurves[chosen]]

    say("cascades")
    cascades = rp.cascade_sweep(train, test, seed=seed)
    idx = np.random.default_rng(seed).integers(0, test.n_prompts, size=(300, test.n_prompts))
    say("answer-agreement cascades")
    agreement, agree_pts, _choices = evaluate_agreement(train, test, idx=idx, targets=tuple(sorted({cascade_target, 1.0})),
                                                        pool=cascade_pool, extract=extract, margin=cascade_margin)

    groups: dict[str, list[rp.RouterResult]] = {"zero-router (single-model frontier)": singles}
    for r in policies + learned_sel + [r for k in kinds for r in lcurves[k]] + cascades + agree_pts:
        groups.setdefault(r.group, []).append(r)
    curves = {g: _curve_stats(v, cheapest, c_lo, c_hi, best, oracle.quality) for g, v in groups.items()}
    if agreement.get("available"):
        agreement["aiq_minus_predict_first_ci95"] = _aiq_vs_predict_first(groups, curves, test, idx, c_lo, c_hi, int(test.cost_usd.mean(0).argmin()))

    quotaroute_pts = [r for r in policies + learned_sel]
    head = _headline(quotaroute_pts, best)
    head_learned = _headline(learned_sel, best)
    # the knob chosen on the validation split (no test peeking), then applied to test
    vpol = [r for r in rp.policy_sweeps(vq, vchat, vte) if r.group == "quotaroute:balanced"]
    validated = {
        "quotaroute:learned": _validated(vcurves[chosen], learned_sel, vbest, best),
        "quotaroute:balanced": _validated(vpol, [r for r in policies if r.group == "quotaroute:balanced"], vbest, best),
    }
    head_cascade = {f"{a:.0%}": _headline([r for r in cascades if r.param == a], best) for a in sorted({r.param for r in cascades}, reverse=True)}

    say("bootstrap intervals")
    fixed = base + [head["_result"], head_learned["_result"]]
    ci = {id(r): (mx.bootstrap_mean_ci(r.per_prompt_q, idx=idx), mx.bootstrap_mean_ci(r.per_prompt_c, idx=idx)) for r in fixed}

    say("strong/weak pair (APGR, CPT)")
    pair_out: dict[str, Any] = {}
    s, w = _model_index(test, pair[0]), _model_index(test, pair[1])
    if s is not None and w is not None:
        qs, qw = float(test.quality[:, s].mean()), float(test.quality[:, w].mean())
        pair_out = {"strong": test.models[s], "weak": test.models[w], "q_strong": qs, "q_weak": qw, "routers": {}}
        scores = {"profile (per-task train means)": qhat[:, s] - qhat[:, w]}
        scores.update({f"learned-{k}": preds[k][1][:, s] - preds[k][1][:, w] for k in kinds})
        scores["random"] = np.random.default_rng(seed).random(test.n_prompts)
        if qs != qw:
            for name, sc in scores.items():
                sh, qq = rp.pair_sweep(test, s, w, sc)
                pair_out["routers"][name] = {
                    "apgr": mx.apgr(sh, qq, qw, qs), "apgr_hull": mx.apgr(sh, qq, qw, qs, hull=True),
                    "cpt50_pct": _pct(mx.cpt(sh, qq, qw, qs, 0.5)), "cpt80_pct": _pct(mx.cpt(sh, qq, qw, qs, 0.8)),
                }

    ood_out: dict[str, Any] = {}
    if ood and len(set(ds.tasks)) >= 2:
        for t in sorted(set(ds.tasks)):
            say(f"out-of-distribution: test on {t}")
            otr, ote = ds.subset(ds.tasks != t), ds.subset(ds.tasks == t)
            oX = X_all[ds.tasks != t], X_all[ds.tasks == t]
            oq, oc = rp.profile_estimates(otr, ote)
            ob = rp.baselines(otr, ote, seed=seed)
            osing = [r for r in ob if r.family == "single"]
            obest = max(osing, key=lambda r: r.quality)
            oorc = next(r for r in ob if r.family == "oracle")
            oanc = min(osing, key=lambda r: r.cost_usd)
            lo, hi = oanc.cost_usd, max(r.cost_usd for r in osing)
            _pp, oc_curves, _ss = _learned_curves(otr, ote, oX[0], oX[1], oc, (chosen, "knn") if chosen != "knn" else ("knn",), seed)
            row = {"train_tasks": sorted(set(otr.tasks)), "n_test": ote.n_prompts, "best_single": obest.name, "aiq": {}}
            named = {"zero-router": osing, "quotaroute:balanced": [r for r in rp.policy_sweeps(oq, oc, ote) if r.group.endswith("balanced")]}
            named.update({f"quotaroute:learned-{k}": v for k, v in oc_curves.items()})
            for g, v in named.items():
                st = _curve_stats(v, oanc, lo, hi, obest, oorc.quality)
                row["aiq"][g] = st["aiq"]
                row.setdefault("headline", {})[g] = {k: v2 for k, v2 in _headline(v, obest).items() if k != "_result"} if g != "zero-router" else None
            ood_out[str(t)] = row

    quota_out: dict[str, Any] = {}
    say("quota-aware replay (a day of traffic)")
    try:
        hr = head["_result"]
        quota_out = {"router": hr.name, "param": hr.param, **quota_replay(test, hr.choice, _qhat_for(hr, qhat, preds, chosen), config=quotas, config_file=quota_file, seed=seed)}
    except Exception as e:  # reported, never silent
        quota_out = {"error": f"{type(e).__name__}: {e}"}

    routers = []
    for r in base + policies + learned_sel + [r for k in kinds for r in lcurves[k]] + cascades + agree_pts:
        row = {"name": r.name, "family": r.family, "group": r.group, "param": r.param, "quality": r.quality,
               "cost_usd": r.cost_usd, "cost_per_1k_queries_usd": r.cost_per_1k}
        if id(r) in ci:
            (ql, qh_), (cl, ch) = ci[id(r)]
            row["quality_ci95"], row["cost_usd_ci95"] = [ql, qh_], [cl, ch]
        routers.append(row)

    def strip(h: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in h.items() if k != "_result"}
        if id(h["_result"]) in ci:
            out["quality_ci95"], out["cost_usd_ci95"] = [list(x) for x in ci[id(h["_result"])]]
        return out

    seconds = time.perf_counter() - t_start
    report = {
        "dataset": {"name": ds.name, "n_prompts": ds.n_prompts, "n_models": ds.n_models, "models": ds.models,
                    "tasks": {str(t): int((ds.tasks == t).sum()) for t in sorted(set(ds.tasks))}, "skipped": ds.skipped,
                    "split": "recorded" if (test_fraction is None and ds.split is not None) else f"random {test_fraction or 0.3:.2f} stratified by task, seed {seed}"},
        "n_train": train.n_prompts, "n_test": test.n_prompts,
        "routers": routers,
        "best_single": {"name": best.name.split("(", 1)[-1].rstrip(")"), "quality": best.quality, "cost_usd": best.cost_usd},
        "oracle": {"quality": oracle.quality, "cost_usd": oracle.cost_usd},
        "aiq": {g: c["aiq"] for g, c in curves.items()},
        "aiq_log": {g: c["aiq_log"] for g, c in curves.items()},
        "aiq_bounds_usd": [c_lo, c_hi],
        "curves": curves,
        "headline": strip(head),
        "headline_learned": strip(head_learned),
        "headline_validated": validated,
        "headline_cascade": {k: strip(v) for k, v in head_cascade.items()},
        "agreement": agreement,
        "learned": {"selected": chosen, "validation_aiq": val_aiq, "train_seconds": secs, "hyperparameters": {k: {**DEFAULT_HP[k], **KIND_HP.get(k, {})} for k in kinds}},
        "pair": pair_out,
        "ood": ood_out,
        "quota": quota_out,
        "targets": {
            "quality_pct_of_best_single": 100 * TARGET_QUALITY, "cost_pct_of_best_single": 100 * TARGET_COST,
            "headline_met": head["met_target"],
            "learned_aiq_above_zero_router": curves["quotaroute:learned"]["aiq"] > curves["zero-router (single-model frontier)"]["aiq"],
            "learned_aiq_above_knn": curves["quotaroute:learned"]["aiq"] > curves.get("quotaroute:learned-knn", {"aiq": float("inf")})["aiq"] if chosen != "knn" else None,
            "seconds": seconds, "under_60s": seconds < 60,
            **_agreement_targets(agreement, curves, cascade_target),
        },
        "seconds": seconds,
    }
    return report, base + policies + learned_sel + cascades + agree_pts


def _aiq_vs_predict_first(groups: dict[str, list[rp.RouterResult]], curves: dict[str, Any], test: Dataset, idx: Any,
                          c_lo: float, c_hi: float, anchor: int) -> dict[str, Any]:
    """Paired 95% intervals of AIQ(agreement curve) - AIQ(predict-before-call curve), for
    learned-mlp and for the best predict-before-call curve on test."""
    pf = [g for g in curves if g.startswith(("quotaroute:balanced", "quotaroute:best-within-cap", "quotaroute:cheapest-above-floor",
                                             "quotaroute:learned"))]
    refs = sorted({g for g in ("quotaroute:learned-mlp", max(pf, key=lambda g: curves[g]["aiq"]) if pf else None) if g in groups})
    out: dict[str, Any] = {}
    for g in (GLOBAL, PER_KIND):
        if g not in groups:
            continue
        a = [(r.per_prompt_q, r.per_prompt_c) for r in groups[g]]
        out[g] = {ref: curve_aiq_diff_ci(a, [(r.per_prompt_q, r.per_prompt_c) for r in groups[ref]], test, idx, c_lo, c_hi, anchor)
                  for ref in refs}
    return out


def _agreement_targets(agreement: dict[str, Any], curves: dict[str, Any], target: float) -> dict[str, Any]:
    """The cascade targets: the choice made on train, measured on test; AIQ of the best
    quotaroute curve (predict-before-call policies, learned, agreement cascades) vs the
    zero router's."""
    zero = curves["zero-router (single-model frontier)"]["aiq"]
    ours = {g: c["aiq"] for g, c in curves.items() if g.startswith(("quotaroute:balanced", "quotaroute:best-within-cap",
                                                                      "quotaroute:cheapest-above-floor", "quotaroute:learned",
                                                                      "quotaroute:agreement-cascade"))}
    best_g = max(ours, key=lambda g: ours[g]) if ours else None
    out: dict[str, Any] = {"best_quotaroute_curve": best_g, "best_quotaroute_aiq": ours.get(best_g) if best_g else None,
                           "zero_router_aiq": zero, "best_quotaroute_aiq_above_zero_router": bool(best_g and ours[best_g] > zero)}
    if not agreement.get("available"):
        out["agreement_cascade"] = agreement.get("reason")
        return out
    key = pick_choice(agreement, target)
    row = agreement["chosen"][key]
    out["agreement_cascade"] = {"choice": key, "quality_pct_of_best_single": row["quality_pct_of_best_single"],
                                "cost_pct_of_best_single": row["cost_pct_of_best_single"], "met": row["met_target"],
                                "beats_zero_router": row["beats_zero_router"],
                                "quality_minus_zero_router_ci95": row["quality_minus_zero_router_ci95"]}
    # what the test hulls of the cascade curves give at the target cost (for the record: chosen on test)
    bq, bc = agreement["best_single"]["quality"], agreement["best_single"]["cost_usd"]
    for g in (GLOBAL, PER_KIND):
        if g in curves:
            xs, ys = zip(*curves[g]["hull"])
            out["agreement_cascade"].setdefault("test_hull_quality_pct_at_target_cost", {})[g] = \
                100 * float(np.interp(TARGET_COST * bc, xs, ys, left=ys[0], right=ys[-1])) / bq
    return out


def _validated(val: list[rp.RouterResult], test: list[rp.RouterResult], vbest: rp.RouterResult, best: rp.RouterResult) -> dict[str, Any]:
    """Pick the cheapest knob reaching 97% of the best single model on validation, report it on test."""
    ok = [r for r in val if r.quality >= TARGET_QUALITY * vbest.quality]
    pick = min(ok, key=lambda r: r.cost_usd) if ok else max(val, key=lambda r: r.quality)
    t = next((r for r in test if r.param == pick.param), None)
    if t is None:
        return {"param": pick.param, "error": "setting not in the test sweep"}
    return {"param": pick.param, "validation_quality_pct": 100 * pick.quality / vbest.quality,
            "validation_cost_pct": 100 * pick.cost_usd / vbest.cost_usd,
            "quality": t.quality, "cost_usd": t.cost_usd,
            "quality_pct_of_best_single": 100 * t.quality / best.quality, "cost_pct_of_best_single": 100 * t.cost_usd / best.cost_usd}


def _model_index(ds: Dataset, name: str) -> int | None:
    """Column of `name` in `ds`, also matching through catalog ids (gpt4_1106_preview
    and gpt-4-1106-preview are both openai:gpt-4-1106-preview)."""
    if name in ds.models:
        return ds.models.index(name)
    want = MODEL_ID_MAP.get(name, name)
    hits = [j for j, m in enumerate(ds.models) if MODEL_ID_MAP.get(m, m) == want]
    return hits[0] if hits else None


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _qhat_for(r: rp.RouterResult, qhat: Any, preds: dict[str, Any], chosen: str) -> Any:
    return preds[chosen][1] if r.family == "learned" else qhat
