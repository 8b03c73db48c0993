"""`quotaroute bench replay`: evaluate models and routing policies on recorded outcomes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from router.extras import need

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "Replay recorded per-prompt outcomes (offline, no network): every single model, random, cheapest, "
    "best single, the oracle, the single-model frontier, quotaroute's policies with their knobs swept, "
    "cascades and the learned router, on a held-out test split; writes report.json, report.md and frontier.png."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="dataset path (default: the shipped RouterBench-derived file)")
    p.add_argument("--format", choices=("long", "routerbench", "alpacaeval"), default=None, help="dataset format (default: guessed)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="random test share, stratified by task (default: the dataset's recorded split, else 0.3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench-replay", help="output directory (default: ./bench-replay)")
    p.add_argument("--json", action="store_true", help="print report.json to stdout instead of the summary")
    p.add_argument("--quotas", default=None, help="YAML config with a `quotas:` section for the quota-aware replay (default: demo quotas)")
    p.add_argument("--learners", default="knn,ridge,logistic,mlp", help="learned models to compare (comma list)")
    p.add_argument("--max-prompts", type=int, default=None, help="random subsample of prompts (quick runs)")
    p.add_argument("--no-ood", action="store_true", help="skip the out-of-distribution runs")
    p.add_argument("--no-plot", action="store_true", help="do not write frontier.png")
    p.add_argument("--export-profile", default=None, metavar="FILE",
                   help="write the learned per-task quality as a catalog task-fit profile (.yaml/.json)")
    p.add_argument("--save-model", default=None, metavar="PREFIX", help="save the selected learned predictor (PREFIX.npz + PREFIX.json)")
    p.add_argument("--export-config", default=None, metavar="FILE",
                   help="write the answer-agreement cascade chosen on train as a config snippet (`cascades:` + policy/rules)")
    p.add_argument("--cascade-target", type=float, default=0.97,
                   help="share of the best single model's train quality the chosen cascade must reach (default 0.97; 1.0 is also reported)")
    p.add_argument("--cascade-pool", type=int, default=7, help="cheap models searched for the agreement stages (cheapest by train cost; default 7)")
    p.add_argument("--cascade-margin", type=float, default=1.0, metavar="Z",
                   help="a cascade reaches the target on train only when it does so by Z paired standard errors (default 1; 0 = the plain mean)")
    p.add_argument("--extract", default=None, metavar="SPEC",
                   help="answer extractor for the exported cascade: one spec (number, choice, code, text, json:<f>, regex:<p>) "
                        "or KIND=SPEC,... (default: guessed from the answers)")


def _extract_arg(arg: str | None, ds: Any) -> dict[str, str] | None:
    """--extract SPEC (every task kind) or KIND=SPEC,... -> {task kind: spec}."""
    if not arg:
        return None
    from router.errors import ConfigError  # lazy: import time (`--help` and other commands stay fast)

    kinds = sorted(set(ds.task_kinds()))
    if "=" not in arg:
        return {k: arg for k in kinds}
    out = {}
    for part in arg.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in kinds or not v.strip():
            raise ConfigError(f"--extract: {part!r}: expected KIND=SPEC with KIND one of {kinds}", key="extract")
        out[k.strip()] = v.strip()
    return out


def _load_quotas(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    import yaml  # lazy: import time (`--help` and other commands stay fast)

    from router.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError(f"cannot read quotas config: {e.strerror}", file=path) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(e, 'problem', e)}", file=path, line=mark.line + 1 if mark else None) from e
    if not isinstance(data, dict) or "quotas" not in data:
        raise ConfigError("expected a mapping with a `quotas:` list", file=path, key="quotas")
    from router.quota.spec import load_quota_config  # lazy: import time (`--help` and other commands stay fast)

    load_quota_config({"quotas": data["quotas"]}, file=path)  # validate now: names file, line, key
    return {"quotas": data["quotas"]}


def run(args: argparse.Namespace) -> int:
    import numpy as np  # lazy: import time (`--help` and other commands stay fast)

    from benchmarks.datasets import DatasetError, load
    from benchmarks.evaluate import evaluate
    from router.predictor import KINDS
    from router.errors import ConfigError

    t0 = time.perf_counter()
    kinds = tuple(k.strip() for k in args.learners.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        print(f"quotaroute bench replay: unknown learner(s) {bad}; choose from {list(KINDS)}", file=sys.stderr)
        return 2
    if not args.no_plot:
        need("matplotlib", extra="bench", purpose="the frontier plot (or pass --no-plot)")  # fail before any work
    if not 0.0 < args.cascade_target <= 1.0 or args.cascade_pool < 2 or args.cascade_margin < 0:
        print("quotaroute bench replay: --cascade-target must be in (0, 1], --cascade-pool >= 2, --cascade-margin >= 0", file=sys.stderr)
        return 2
    try:
        ds = load(args.dataset, args.format)
        quotas = _load_quotas(args.quotas)
        extract = _extract_arg(args.extract, ds)
    except (DatasetError, ConfigError) as e:
        print(f"quotaroute bench replay: {e}", file=sys.stderr)
        return 2
    if args.max_prompts and args.max_prompts < ds.n_prompts:
        ds = ds.subset(np.sort(np.random.default_rng(args.seed).permutation(ds.n_prompts)[: args.max_prompts]))
    console = None if args.json else _console()
    if console is not None:
        console.print(ds.summary())
    steps = ["features", "baselines and policies", "learned router: model selection on a validation split of train",
             "learned router: train on the train split", "cascades", "answer-agreement cascades", "bootstrap intervals", "strong/weak pair (APGR, CPT)",
             *([] if args.no_ood else [f"out-of-distribution: test on {t}" for t in sorted(set(ds.tasks))]),
             "quota-aware replay (a day of traffic)"]
    try:
        if console is None:
            rep, results = evaluate(ds, test_fraction=args.test_fraction, seed=args.seed, kinds=kinds, ood=not args.no_ood,
                                    quotas=quotas, quota_file=args.quotas or "<demo quotas>",
                                    cascade_target=args.cascade_target, cascade_pool=args.cascade_pool, extract=extract,
                                    cascade_margin=args.cascade_margin)
        else:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # lazy: import time (`--help` and other commands stay fast)

            with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True) as prog:
                task = prog.add_task("replay", total=len(steps))

                def step(msg: str) -> None:
                    prog.update(task, description=msg, completed=min(steps.index(msg) if msg in steps else 0, len(steps)))

                rep, results = evaluate(ds, test_fraction=args.test_fraction, seed=args.seed, kinds=kinds, ood=not args.no_ood,
                                        quotas=quotas, quota_file=args.quotas or "<demo quotas>", step=step,
                                        cascade_target=args.cascade_target, cascade_pool=args.cascade_pool, extract=extract,
                                    cascade_margin=args.cascade_margin)
    except (DatasetError, ConfigError) as e:
        print(f"quotaroute bench replay: {e}", file=sys.stderr)
        return 2
    extra = _learned_outputs(args, ds, rep, kinds)
    if args.export_config:
        if not (rep.get("agreement") or {}).get("available"):
            print(f"quotaroute bench replay: --export-config: {rep['agreement'].get('reason')}", file=sys.stderr)
            return 2
        from benchmarks.cascades_export import write_snippet  # lazy: import time (`--help` and other commands stay fast)

        try:
            extra["config"] = write_snippet(rep["agreement"], args.export_config, dataset=ds.name, target=args.cascade_target)
        except (ValueError, ConfigError, OSError) as e:
            print(f"quotaroute bench replay: --export-config: {e}", file=sys.stderr)
            return 2
    rep["outputs_extra"] = extra
    from benchmarks.report import _clean, write_report  # lazy: import time (`--help` and other commands stay fast)

    paths = write_report(rep, args.out, results) if not args.no_plot else _write_no_plot(rep, args.out)
    rep["seconds_total"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(_clean(rep), indent=1))
        return 0
    _print_summary(console, rep, paths)
    return 0


def _write_no_plot(rep: dict[str, Any], out: str) -> dict[str, str | None]:
    from benchmarks.report import _clean, render_markdown  # lazy: import time (numpy)

    os.makedirs(out, exist_ok=True)
    pj, pm = os.path.join(out, "report.json"), os.path.join(out, "report.md")
    with open(pj, "w", encoding="utf-8") as fh:
        json.dump(_clean(rep), fh, indent=1)
    with open(pm, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(_clean(rep)))
    return {"json": pj, "md": pm, "png": None}


def _learned_outputs(args: argparse.Namespace, ds: Any, rep: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """--export-profile / --save-model: retrain the selected learner on the train split."""
    if not (args.export_profile or args.save_model):
        return {}
    from benchmarks.datasets import split  # lazy: import time (`--help` and other commands stay fast)
    from benchmarks.evaluate import KIND_HP
    from benchmarks.learned import export_profile, train

    kind = rep["learned"]["selected"]
    tr, _te = split(ds, args.test_fraction, args.seed)
    pred = train(tr, kind, seed=args.seed, **KIND_HP.get(kind, {}))
    out: dict[str, Any] = {}
    if args.save_model:
        out["model"] = list(pred.save(args.save_model))
    if args.export_profile:
        res = export_profile(pred, ds, args.export_profile)
        out["profile"] = {"path": args.export_profile, "models": len(res["profile"]), "not_in_catalog": res["not_in_catalog"], "catalog_checked": res["catalog_checked"]}
    return out


def _console() -> Any:
    from rich.console import Console  # lazy: import time (`--help` and other commands stay fast)

    return Console(stderr=False)


def _print_summary(console: Any, rep: dict[str, Any], paths: dict[str, str | None]) -> None:
    from rich.table import Table  # lazy: import time (`--help` and other commands stay fast)

    bs, h = rep["best_single"], rep["headline"]
    t = Table(title=f"{rep['dataset']['name']} — test n={rep['n_test']}")
    for c in ("router", "quality", "USD/1k queries", "AIQ"):
        t.add_column(c)
    aiq = rep["aiq"]
    for r in rep["routers"]:
        if r["family"] in ("single", "baseline", "oracle"):
            t.add_row(r["name"], f"{r['quality']:.3f}", f"{r['cost_per_1k_queries_usd']:.3f}", "")
    for g in sorted(aiq, key=lambda g: -aiq[g]):
        t.add_row(g + " (curve)", f"max {rep['curves'][g]['max_quality']:.3f}", "", f"{aiq[g]:.4f}")
    console.print(t)
    console.print(
        f"Headline: [bold]{h['router']}[/bold] reaches {h['quality_pct_of_best_single']:.1f}% of {bs['name']}'s quality "
        f"at {h['cost_pct_of_best_single']:.1f}% of its cost (target >= 97% at <= 20%: {'met' if h['met_target'] else 'NOT met'})"
        + (" [flagged: target quality not reached]" if h.get("flagged") else "")
    )
    for acc, hc in (rep.get("headline_cascade") or {}).items():
        console.print(f"  cascade, checker {acc}: {hc['quality_pct_of_best_single']:.1f}% quality at {hc['cost_pct_of_best_single']:.1f}% cost")
    ag = rep.get("agreement") or {}
    if not ag.get("available"):
        console.print(f"  answer-agreement cascades: not replayed ({ag.get('reason')})")
    for key, row in (ag.get("chosen") or {}).items():
        pol = "; ".join(f"{k}: {p['label']}" if k != "*" else p["label"] for k, p in row["policy"].items())
        console.print(f"  agreement cascade {key} (chosen on train): {row['quality_pct_of_best_single']:.1f}% quality at "
                      f"{row['cost_pct_of_best_single']:.1f}% cost, escalation {100 * row['escalation_rate']:.1f}%, "
                      f"rounds {row['rounds_mean']:.2f}; vs zero router at the same cost: {row['beats_zero_router']} -- {pol}")
    cfg = (rep.get("outputs_extra") or {}).get("config")
    if cfg:
        console.print(f"  exported {cfg['choice']} to {cfg['path']}")
    Q = rep.get("quota") or {}
    for s in Q.get("strategies", []):
        console.print(f"  quota replay {s['strategy']:<16} quality {s['quality']:.3f}  effective {s['effective_cost_usd']} USD (list {s['list_cost_usd']})")
    console.print(f"Wrote {', '.join(p for p in paths.values() if p)} in {rep['seconds_total']:.1f} s")
