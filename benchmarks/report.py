"""Render a replay report: report.json, report.md (tables) and frontier.png."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np

from benchmarks.metrics import hull_quality_at
from router.extras import need

__all__ = ["write_report", "render_markdown", "plot_frontier", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("dataset", "n_test", "routers", "best_single", "oracle", "aiq", "headline")


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item"):  # numpy scalar
        return _clean(x.item())
    return x


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def render_markdown(rep: dict[str, Any]) -> str:
    bs, orc, h = rep["best_single"], rep["oracle"], rep["headline"]
    lines = [
        f"# Replay benchmark: {rep['dataset']['name']}",
        "",
        f"{rep['dataset']['n_prompts']} prompts x {rep['dataset']['n_models']} models; train {rep.get('n_train')} / test {rep['n_test']} "
        f"({rep['dataset']['split']}). Skipped rows: {rep['dataset']['skipped'] or 'none'}. Ran in {rep.get('seconds', 0):.1f} s.",
        "",
        "## Headline",
        "",
        f"Best single model **{bs['name']}**: quality {bs['quality']:.3f}, {1000 * bs['cost_usd']:.3f} USD per 1k queries. "
        f"Oracle: quality {orc['quality']:.3f} at {1000 * orc['cost_usd']:.3f} USD per 1k.",
        "",
        f"Cheapest quotaroute router with >= 97% of the best single model's quality: **{h['router']}** (param {_f(h['param'], 4)}): "
        f"**{h['quality_pct_of_best_single']:.1f}% of its quality at {h['cost_pct_of_best_single']:.1f}% of its cost**"
        + (f" — FLAGGED: {h['note']}" if h.get("flagged") else "")
        + f". Target (>= 97% at <= 20%): {'met' if h.get('met_target') else 'NOT met'}.",
        "",
    ]
    if rep.get("headline_validated"):
        lines += ["Knob chosen on a validation split of train (cheapest setting reaching 97% there), then measured on test:", "",
                  "| router | param | validation quality % / cost % | test quality % | test cost % |", "|---|---|---|---|---|"]
        for g, v in rep["headline_validated"].items():
            if "quality_pct_of_best_single" in v:
                lines.append(f"| {g} | {_f(v['param'], 4)} | {v['validation_quality_pct']:.1f} / {v['validation_cost_pct']:.1f} | "
                             f"{v['quality_pct_of_best_single']:.1f} | {v['cost_pct_of_best_single']:.1f} |")
        lines.append("")
    if rep.get("headline_cascade"):
        lines += ["Cascades (need an answer checker; accuracy is an assumption, see docs):", "", "| checker accuracy | router | quality % | cost % |", "|---|---|---|---|"]
        for acc, hc in rep["headline_cascade"].items():
            lines.append(f"| {acc} | {hc['router']} | {hc['quality_pct_of_best_single']:.1f} | {hc['cost_pct_of_best_single']:.1f} |")
        lines.append("")
    lines += _agreement_md(rep.get("agreement") or {})
    lines += ["## Fixed routers (test split, 95% bootstrap intervals)", "", "| router | quality | 95% CI | USD / 1k queries | 95% CI |", "|---|---|---|---|---|"]
    for r in rep["routers"]:
        if r["family"] in ("single", "baseline", "oracle"):
            qc, cc = r.get("quality_ci95"), r.get("cost_usd_ci95")
            lines.append(f"| {r['name']} | {r['quality']:.3f} | {'-' if not qc else f'{qc[0]:.3f}-{qc[1]:.3f}'} | {r['cost_per_1k_queries_usd']:.3f} | "
                         f"{'-' if not cc else f'{1000 * cc[0]:.3f}-{1000 * cc[1]:.3f}'} |")
    lines += ["", "## Curves (non-decreasing convex hull of each router's sweep)", "",
              f"AIQ bounds: {1000 * rep['aiq_bounds_usd'][0]:.3f} .. {1000 * rep['aiq_bounds_usd'][1]:.3f} USD per 1k queries.", "",
              "| router | AIQ | AIQ (log cost) | max quality | gap to oracle | cost at best-single quality (% of best) | cost for 97% of best (% of best) | cost for 95% of best (% of best) |",
              "|---|---|---|---|---|---|---|---|"]
    bcost = bs["cost_usd"]
    for g, c in sorted(rep["curves"].items(), key=lambda kv: -kv[1]["aiq"]):
        cb = c["cost_at_best_single_quality_usd"]
        lines.append(f"| {g} | {c['aiq']:.4f} | {c['aiq_log']:.4f} | {c['max_quality']:.3f} | {c['gap_to_oracle']:.3f} | "
                     f"{'-' if cb is None else f'{100 * cb / bcost:.1f}'} | {_f(c.get('cost_for_97pct_of_best_single_pct'), 1)} | "
                     f"{_f(c['cost_for_95pct_of_best_single_pct'], 1)} |")
    L = rep.get("learned") or {}
    if L:
        lines += ["", "## Learned router", "", f"Selected by validation AIQ (20% of train): **{L['selected']}**.", "",
                  "| model | validation AIQ | train seconds |", "|---|---|---|"]
        for k, v in L["validation_aiq"].items():
            lines.append(f"| {k} | {v:.4f} | {L['train_seconds'].get(k, 0):.2f} |")
    P = rep.get("pair") or {}
    if P.get("routers"):
        lines += ["", f"## Strong/weak pair: {P['strong']} vs {P['weak']} (RouteLLM metrics)", "",
                  f"q_strong {P['q_strong']:.3f}, q_weak {P['q_weak']:.3f}.", "", "| router | APGR | APGR (hull) | CPT(50%) % strong | CPT(80%) % strong |", "|---|---|---|---|---|"]
        for k, v in P["routers"].items():
            lines.append(f"| {k} | {v['apgr']:.3f} | {v['apgr_hull']:.3f} | {_f(v['cpt50_pct'], 1)} | {_f(v['cpt80_pct'], 1)} |")
    if rep.get("ood"):
        lines += ["", "## Out of distribution (train on the other tasks, test on one)", "", "| test task | router | AIQ | quality % of best | cost % of best |", "|---|---|---|---|---|"]
        for t, row in rep["ood"].items():
            for g, a in row["aiq"].items():
                hh = (row.get("headline") or {}).get(g)
                lines.append(f"| {t} | {g} | {a:.4f} | {_f(hh and hh['quality_pct_of_best_single'], 1)} | {_f(hh and hh['cost_pct_of_best_single'], 1)} |")
    Q = rep.get("quota") or {}
    if Q.get("strategies"):
        lines += ["", f"## Quota-aware replay: one day of traffic, pools {', '.join(Q['pools'])}", "",
                  f"Router: {Q['router']} (param {_f(Q['param'], 4)}).", "",
                  "| strategy | quality | effective USD | list USD | effective USD / 1k | free calls |", "|---|---|---|---|---|---|"]
        for s in Q["strategies"]:
            lines.append(f"| {s['strategy']} | {s['quality']:.3f} | {s['effective_cost_usd']} | {s['list_cost_usd']} | {s['effective_cost_per_1k_queries_usd']:.3f} | {s['free_calls']} |")
    elif Q.get("error"):
        lines += ["", f"Quota-aware replay not run: {Q['error']}"]
    lines.append("")
    return "\n".join(lines)


def _ci(v: Any, scale: float = 1.0, nd: int = 3) -> str:
    return "-" if not v else f"{scale * v[0]:.{nd}f}-{scale * v[1]:.{nd}f}"


def _agreement_md(ag: dict[str, Any]) -> list[str]:
    """The answer-agreement cascade section: choices made on train, measured on test."""
    if not ag:
        return []
    if not ag.get("available"):
        return ["## Answer-agreement cascades", "", f"Not replayed: {ag.get('reason')}.", ""]
    se = ag["search"]
    out = ["## Answer-agreement cascades (knobs chosen on train, measured on test)", "",
           f"Strong model (best on train): {se['strong']}; cheap pool: {', '.join(se['cheap_pool'])}; "
           f"{se['n_candidates']} candidate policies; extractors {ag['extract']}.", "",
           "| choice | policy | quality % of best (95% CI) | cost % of best (95% CI) | USD / 1k | escalation | calls | stages run | rounds (mean/max) | vs zero router at same cost (95% CI) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in ag["chosen"].items():
        pol = "<br>".join(f"{k}: {p['label']}" if k != "*" else p["label"] for k, p in r["policy"].items())
        out.append(f"| {key} | {pol} | {r['quality_pct_of_best_single']:.1f} ({_ci(r['quality_pct_of_best_single_ci95'], nd=1)}) | "
                   f"{r['cost_pct_of_best_single']:.1f} ({_ci(r['cost_pct_of_best_single_ci95'], nd=1)}) | {r['cost_per_1k_queries_usd']:.3f} | "
                   f"{100 * r['escalation_rate']:.1f}% | {r['calls_mean']:.2f} | {r['stages_run_mean']:.2f} | {r['rounds_mean']:.2f}/{r['rounds_max']} | "
                   f"{r['beats_zero_router']} ({_ci(r['quality_minus_zero_router_ci95'], nd=3)}) |")
    out += ["", "AIQ minus the zero router's, 95% interval: " + ", ".join(f"{g}: {_ci(v, nd=4)}" for g, v in ag["aiq_minus_zero_router_ci95"].items()), ""]
    for g, refs in (ag.get("aiq_minus_predict_first_ci95") or {}).items():
        out += [f"AIQ of {g} minus predict-before-call curves, 95% interval: " + ", ".join(f"{r}: {_ci(v, nd=4)}" for r, v in refs.items()), ""]
    if ag.get("agreement"):
        top = sorted((a for a in ag["agreement"] if a["agree_rate"] >= 0.25 and a["right_when_agree"] is not None),
                     key=lambda a: -a["right_when_agree"])[:6]
        out += ["Cheap pairs whose agreement is most often right (at least a quarter of the test prompts agreed; all pairs in report.json):", "",
                "| cheap pair | agree rate | right when they agree | right when they disagree |", "|---|---|---|---|"]
        for a in top:
            out.append(f"| {' + '.join(a['models'])} | {a['agree_rate']:.3f} | {_f(a['right_when_agree'])} | {_f(a['right_when_disagree'])} |")
        out.append("")
    return out


def plot_frontier(rep: dict[str, Any], path: str, results: Sequence[Any] = ()) -> str | None:
    """cost (log) vs quality: single models, random, oracle, the hulls, the headline."""
    # lazy: import time, and matplotlib is an extra ([bench])
    matplotlib = need("matplotlib", extra="bench", purpose="the frontier plot (or pass --no-plot)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: extra [bench]

    fig, ax = plt.subplots(figsize=(10, 6.5))
    for r in rep["routers"]:
        if r["family"] == "single":
            ax.scatter(r["cost_usd"] * 1000, r["quality"], color="grey", s=25, zorder=3)
            ax.annotate(r["name"].split(":", 1)[1].split("/")[-1], (r["cost_usd"] * 1000, r["quality"]), fontsize=7, xytext=(3, -8), textcoords="offset points")
        elif r["family"] == "baseline" and r["name"] == "random":
            ax.scatter(r["cost_usd"] * 1000, r["quality"], marker="x", color="black", label="random")
        elif r["family"] == "oracle":
            ax.scatter(r["cost_usd"] * 1000, r["quality"], marker="*", s=160, color="gold", edgecolor="black", zorder=4, label="oracle")
    styles = {"zero-router": ("black", "--"), "quotaroute:learned": ("tab:red", "-"), "quotaroute:balanced": ("tab:blue", "-"),
              "quotaroute:cheapest-above-floor": ("tab:cyan", "-"), "quotaroute:best-within-cap": ("tab:purple", ":"),
              "quotaroute:learned-knn": ("tab:orange", ":"), "quotaroute:cascade(checker 90%)": ("tab:green", "-."),
              "quotaroute:agreement-cascade": ("tab:brown", "-"), "quotaroute:agreement-cascade per task kind": ("tab:olive", "-")}
    for g, c in rep["curves"].items():
        key = g if g in styles else next((k for k in styles if g.startswith(k)), None)
        if key is None or (key != g and not g.startswith("zero-router")):
            continue
        hx = np.array([p[0] for p in c["hull"]])
        hy = np.array([p[1] for p in c["hull"]])
        grid = np.geomspace(hx[0], max(hx[-1], rep["aiq_bounds_usd"][1]), 200)  # mixing is linear in cost: curved on a log axis
        col, ls = styles[key]
        ax.plot(grid * 1000, hull_quality_at(hx, hy, grid), color=col, linestyle=ls, label=g, lw=1.6)
    for r in rep["routers"]:  # every cascade policy on the train frontier, measured on test
        if r["family"] == "agreement":
            ax.scatter(r["cost_usd"] * 1000, r["quality"], color="tab:brown", s=9, alpha=0.5, zorder=3)
    for n, (key, r) in enumerate(((rep.get("agreement") or {}).get("chosen") or {}).items()):
        ax.scatter(r["cost_usd"] * 1000, r["quality"], marker="P", s=90, color="tab:brown", edgecolor="black", zorder=5,
                   label=None if n else "agreement cascades chosen on train")
        ax.annotate(key, (r["cost_usd"] * 1000, r["quality"]), fontsize=7, xytext=(-10, 8), textcoords="offset points", color="tab:brown")
    h = rep["headline"]
    ax.scatter(h["cost_usd"] * 1000, h["quality"], marker="D", color="tab:red", edgecolor="black", s=60, zorder=5, label=f"headline: {h['router']}")
    bs = rep["best_single"]
    ax.axhline(0.97 * bs["quality"], color="grey", lw=0.6, ls=":")
    ax.axvline(0.2 * bs["cost_usd"] * 1000, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("USD per 1,000 queries (log)")
    ax.set_ylabel("quality (mean correctness)")
    ax.set_title(f"{rep['dataset']['name']}: test split, n={rep['n_test']}")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(rep: dict[str, Any], outdir: str, results: Sequence[Any] = ()) -> dict[str, str | None]:
    os.makedirs(outdir, exist_ok=True)
    clean = _clean(rep)
    pj = os.path.join(outdir, "report.json")
    with open(pj, "w", encoding="utf-8") as fh:
        json.dump(clean, fh, indent=1)
    pm = os.path.join(outdir, "report.md")
    with open(pm, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(clean))
    png = plot_frontier(clean, os.path.join(outdir, "frontier.png"), results)
    return {"json": pj, "md": pm, "png": png}
