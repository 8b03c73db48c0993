"""Live-benchmark outputs: long-format results.csv (for `bench replay` and the
router's task-fit profile), calls.csv (every call), report.json, report.md and
plots (matplotlib Agg, imported lazily)."""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections import defaultdict
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from benchmarks.live import RunSummary
from benchmarks.live_cache import CallRecord
from router.extras import need

__all__ = ["aggregate_rows", "summarize", "write_outputs", "render_table", "LONG_HEADER"]

LONG_HEADER = ["prompt_id", "task", "prompt", "model", "quality", "input_tokens", "output_tokens", "cost_usd"]


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


def aggregate_rows(records: list[CallRecord]) -> list[dict[str, Any]]:
    """One long-format row per (item, model): repeats averaged; list-price cost."""
    groups: dict[tuple[str, str], list[CallRecord]] = defaultdict(list)
    for r in records:
        if r.final and r.quality is not None:
            groups[(r.item_id, r.model)].append(r)
    rows = []
    for (iid, model), rs in sorted(groups.items()):
        n = len(rs)
        cost = sum((r.list_cost_usd or r.cost_usd for r in rs), Decimal(0)) / n
        rows.append({
            "prompt_id": iid, "task": rs[0].task, "prompt": rs[0].prompt, "model": model,
            "quality": round(sum(r.quality or 0.0 for r in rs) / n, 6),
            "input_tokens": round(sum(r.input_tokens for r in rs) / n),
            "output_tokens": round(sum(r.output_tokens for r in rs) / n),
            "cost_usd": f"{cost.normalize():f}" if cost else "0",
        })
    return rows


def summarize(s: RunSummary) -> dict[str, Any]:
    per_model: dict[str, Any] = {}
    per_task: dict[str, dict[str, Any]] = defaultdict(dict)
    for m in s.models:
        rs = [r for r in s.records if r.model == m]
        ok = [r for r in rs if r.status == "ok" and r.quality is not None]
        lat = [r.latency_ms for r in ok if r.latency_ms is not None]
        ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
        billed = sum((r.cost_usd for r in rs), Decimal(0))
        listc = sum((r.list_cost_usd for r in rs), Decimal(0))
        q = [r.quality for r in rs if r.quality is not None]
        per_model[m] = {
            "calls": len(rs), "answered": len(ok), "errors": len([r for r in rs if r.status != "ok"]),
            "quality": round(statistics.fmean(q), 4) if q else None,
            "input_tokens": sum(r.input_tokens for r in rs), "output_tokens": sum(r.output_tokens for r in rs),
            "cost_usd": str(billed), "list_cost_usd": str(listc),
            "judge_cost_usd": str(sum((r.judge_cost_usd for r in rs), Decimal(0))),
            "free_calls": len([r for r in rs if r.free_quota]),
            "latency_ms_p50": _median(lat), "latency_ms_p95": _pct(lat, 0.95), "ttft_ms_p50": _median(ttft),
            "stopped": s.model_events.get(m, ""), "rate_limit_waits": s.rate_limit_waits.get(m, 0),
            "unfinished": dict(s.unfinished.get(m, {})),
        }
        for task in sorted({r.task for r in rs}):
            tr = [r for r in rs if r.task == task and r.quality is not None]
            if tr:
                per_task[task][m] = {"n": len(tr), "quality": round(statistics.fmean(r.quality for r in tr), 4),
                                     "list_cost_usd": str(sum((r.list_cost_usd for r in tr), Decimal(0)))}
    return {
        "suite": s.suite, "models": s.models, "total_calls": s.total, "calls_made": s.calls_made,
        "cached": s.cached, "skipped": s.skipped, "elapsed_s": round(s.elapsed_s, 3),
        "budget_usd": None if s.budget_usd is None else str(s.budget_usd), "budget_stop": s.budget_stop,
        "spent_usd": str(s.spent_usd), "new_spent_usd": str(s.new_spent_usd), "judge_usd": str(s.judge_usd),
        "per_model": per_model, "per_task": dict(per_task),
    }


def _fmt_usd(v: str | Decimal) -> str:
    return f"${Decimal(v):.6f}"


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def render_table(summary: dict[str, Any]) -> str:
    """A plain-text (Markdown) table, one row per model."""
    head = "| model | calls | answered | quality | in tok | out tok | cost (billed) | cost (list) | judge | " \
           "p50 ms | p95 ms | TTFT p50 | stopped early |"
    lines = [head, "|" + "|".join(["---"] * 13) + "|"]
    for m, d in summary["per_model"].items():
        q = "-" if d["quality"] is None else f"{d['quality']:.3f}"
        lines.append(
            f"| {m} | {d['calls']} | {d['answered']} | {q} | {d['input_tokens']} | {d['output_tokens']} | "
            f"{_fmt_usd(d['cost_usd'])} | {_fmt_usd(d['list_cost_usd'])} | {_fmt_usd(d['judge_cost_usd'])} | "
            f"{_fmt_ms(d['latency_ms_p50'])} | {_fmt_ms(d['latency_ms_p95'])} | {_fmt_ms(d['ttft_ms_p50'])} | "
            f"{d['stopped'] or '-'} |")
    tasks = summary["per_task"]
    if tasks:
        models = summary["models"]
        lines += ["", "| task | " + " | ".join(models) + " |", "|" + "|".join(["---"] * (len(models) + 1)) + "|"]
        for t, by in sorted(tasks.items()):
            cells = [f"{by[m]['quality']:.3f} (n={by[m]['n']})" if m in by else "-" for m in models]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out_dir: str, s: RunSummary, *, plots: bool = True) -> dict[str, Any]:
    os.makedirs(out_dir, exist_ok=True)
    rows = aggregate_rows(s.records)
    with open(os.path.join(out_dir, "results.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=LONG_HEADER)
        w.writeheader()
        w.writerows(rows)
    calls_cols = [k for k in asdict(s.records[0])] if s.records else []
    with open(os.path.join(out_dir, "calls.csv"), "w", newline="", encoding="utf-8") as fh:
        if calls_cols:
            w = csv.DictWriter(fh, fieldnames=calls_cols)
            w.writeheader()
            for r in s.records:
                w.writerow({k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(r).items()})
    summary = summarize(s)
    made = []
    if plots and s.records:
        try:
            made = _plots(out_dir, s)
        except Exception as e:  # noqa: BLE001 - plots are a convenience; the data files are written
            summary["plot_error"] = f"{type(e).__name__}: {e}"
    summary["plots"] = made
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as fh:
        fh.write(_markdown(summary))
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    out = [f"# Live benchmark: {summary['suite']}", "",
           f"{summary['total_calls']} calls planned, {summary['calls_made']} made, {summary['cached']} from cache, "
           f"{summary['skipped']} skipped; {summary['elapsed_s']} s; spent {_fmt_usd(summary['spent_usd'])} "
           f"(judge {_fmt_usd(summary['judge_usd'])})" +
           (f"; budget {_fmt_usd(summary['budget_usd'])}" if summary["budget_usd"] else ""), ""]
    if summary["budget_stop"]:
        out += [f"**Stopped by the budget cap:** {summary['budget_stop']}", ""]
    stopped = {m: d["stopped"] for m, d in summary["per_model"].items() if d["stopped"]}
    for m, why in stopped.items():
        out.append(f"- **{m} stopped early:** {why}")
    for m, d in summary["per_model"].items():
        if d["unfinished"]:
            what = ", ".join(f"{n} {k}" for k, n in sorted(d["unfinished"].items()))
            out.append(f"- {m}: calls left unfinished (retried by the next run): {what}")
    if stopped or any(d["unfinished"] for d in summary["per_model"].values()):
        out.append("")
    out += [render_table(summary), ""]
    for p in summary.get("plots", []):
        out.append(f"![{p}]({p})")
    out.append("")
    out.append("`results.csv` is in the long format: `quotaroute bench replay --dataset results.csv --format long`.")
    return "\n".join(out) + "\n"


def _plots(out_dir: str, s: RunSummary) -> list[str]:
    # lazy: import time, and matplotlib is an extra ([bench])
    matplotlib = need("matplotlib", extra="bench", purpose="the live benchmark's plots (or pass --no-plots)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: extra [bench]

    made = []
    tasks = sorted({r.task for r in s.records})
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = "osD^v<>P*X"
    colors = plt.get_cmap("tab10")
    for i, m in enumerate(s.models):
        for ti, t in enumerate(tasks):
            rs = [r for r in s.records if r.model == m and r.task == t and r.quality is not None]
            if not rs:
                continue
            q = statistics.fmean(r.quality for r in rs)
            c = float(sum((r.list_cost_usd for r in rs), Decimal(0)) / len(rs))
            ax.scatter([c], [q], marker=markers[i % len(markers)], color=colors(ti % 10), label=f"{m} / {t}", s=50)
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel("mean list-price cost per call (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{s.suite}: quality vs cost (marker = model, colour = task)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "quality_vs_cost.png"), dpi=110)
    plt.close(fig)
    made.append("quality_vs_cost.png")

    lat = [[r.latency_ms for r in s.records if r.model == m and r.latency_ms is not None] for m in s.models]
    if any(lat):
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.boxplot([x or [0.0] for x in lat])
        ax.set_xticks(range(1, len(s.models) + 1), s.models)
        ax.set_ylabel("latency (ms)")
        ax.set_title("latency per model")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "latency.png"), dpi=110)
        plt.close(fig)
        made.append("latency.png")
    return made
