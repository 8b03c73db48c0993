"""The demo's closing table, report.md, report.json and plot."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.extras import need

__all__ = ["summary_rows", "print_table", "write_report"]


def summary_rows(results: list[Any]) -> list[dict[str, Any]]:
    best = next((r for r in results if r.strategy.name == "always-best"), None)
    bq = best.quality if best else None
    bc = best.cost_usd if best else None
    rows = []
    for r in results:
        mix = r.model_mix().most_common(3)
        rows.append({
            "strategy": r.strategy.name,
            "label": r.strategy.label,
            "requests": len(r.requests),
            "errors": r.errors,
            "quality": round(r.quality, 4),
            "quality_pct_of_best": round(100 * r.quality / bq, 1) if bq else None,
            "cost_usd": str(r.cost_usd),
            "cost_pct_of_best": round(float(100 * r.cost_usd / bc), 1) if bc else None,
            "free_requests": r.free_requests,
            "models_top3": [f"{m} ({n})" for m, n in mix],
            "proxy_overhead_ms_p50": round(r.overhead_p50(), 3),
            "seconds": round(r.seconds, 2),
        })
    return rows


def print_table(console: Any, rows: list[dict[str, Any]], n_prompts: int) -> None:
    from rich.table import Table  # lazy: import time (rich)

    t = Table(title=f"quotaroute demo: {n_prompts} held-out prompts (RouterBench ARC/MBPP/WinoGrande), recorded outcomes")
    for col, just in (("strategy", "left"), ("quality", "right"), ("% of best", "right"), ("cost $", "right"),
                      ("% of best cost", "right"), ("free reqs", "right"), ("overhead p50 ms", "right")):
        t.add_column(col, justify=just, no_wrap=(col == "strategy"))  # type: ignore[arg-type]
    for r in rows:
        t.add_row(r["strategy"], f"{r['quality']:.3f}", f"{r['quality_pct_of_best']}", f"{Decimal(r['cost_usd']):.4f}",
                  f"{r['cost_pct_of_best']}", str(r["free_requests"]), f"{r['proxy_overhead_ms_p50']:.2f}")
    console.print(t)
    for r in rows:
        console.print(f"  [bold]{r['strategy']}[/]: {r['label']}; top models: {', '.join(r['models_top3'])}")


def _markdown(rows: list[dict[str, Any]], n_prompts: int, meta: dict[str, Any]) -> str:
    lines = [
        "# quotaroute demo report",
        "",
        f"{n_prompts} held-out prompts of the bundled RouterBench-derived data (ARC-Challenge, MBPP, WinoGrande) were sent",
        "through the real quotaroute proxy with the official `openai` client. Every model is a *replay* deployment that",
        "answers with its **recorded** outcome (correct or not, token counts) — not a live model. Free quotas are examples:",
        "",
    ]
    for p in meta.get("pools", []):
        lines.append(f"- `{p['id']}`: {p['limit']} — {p['source']}")
    lines += ["", "| strategy | quality | % of best | cost (USD) | % of best cost | free requests | models (top 3) | proxy overhead p50 (ms) |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['quality']:.3f} | {r['quality_pct_of_best']} | {Decimal(r['cost_usd']):.4f} | "
            f"{r['cost_pct_of_best']} | {r['free_requests']} | {', '.join(r['models_top3'])} | {r['proxy_overhead_ms_p50']:.2f} |"
        )
    lines += [
        "",
        "Quality is the mean recorded correctness of the model each request was routed to. Cost is what the proxy billed",
        "(`x-quotaroute-cost-usd`, exact Decimal): requests covered by a free pool cost $0. Prices are RouterBench's",
        "late-2023 list prices. The task-fit model (ridge over hashed n-grams) was trained on the train split only.",
        "",
        "![cost vs quality](demo.png)",
        "",
    ]
    return "\n".join(lines)


def _plot(results: list[Any], path: Path) -> None:
    # lazy: import time, and matplotlib is an extra ([bench], pulled in by [demo])
    matplotlib = need("matplotlib", extra="demo", purpose="the demo's plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: extra [bench], pulled in by [demo]
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for r in results:
        ax1.scatter([max(float(r.cost_usd), 1e-6)], [r.quality], s=60, label=r.strategy.label)
    ax1.set_xscale("log")
    ax1.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"${v:g}"))
    ax1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.set_xlabel("billed cost for the whole run (USD, log)")
    ax1.set_ylabel("quality (mean recorded correctness)")
    ax1.set_title("cost vs quality per strategy")
    ax1.legend(fontsize=8)
    for r in results:
        total, ys = Decimal(0), []
        for q in r.requests:  # completion order = the order the ledger saw them
            total += q.cost_usd if q.error is None else 0
            ys.append(float(total))
        ax2.plot(range(1, len(ys) + 1), ys, label=r.strategy.label)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_xlabel("requests sent")
    ax2.set_ylabel("cumulative cost (USD)")
    ax2.set_title("running cost: free quota first, then paid")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, results: list[Any], rows: list[dict[str, Any]], n_prompts: int,
                 meta: dict[str, Any]) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = out / "report.md", out / "report.json", out / "demo.png"
    md.write_text(_markdown(rows, n_prompts, meta), encoding="utf-8")
    js.write_text(json.dumps({"n_prompts": n_prompts, "strategies": rows, **meta}, indent=2), encoding="utf-8")
    _plot(results, png)
    return {"report_md": str(md), "report_json": str(js), "plot": str(png)}
