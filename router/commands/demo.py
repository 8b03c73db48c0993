"""`quotaroute demo`: the whole idea, offline, in one command.

Starts the real proxy (SQLite ledger in a temporary folder) with replay providers
that stand for the models of the bundled benchmark data and answer with their
recorded outcomes, example free quotas, and sends the held-out prompts through it
with the official openai client. Ends with a table and writes report.md, report.json
and a plot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HELP = "run the offline demo: the real proxy + replayed models + example free quotas; ends with a report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=int, default=None, help="number of held-out prompts (default: all 945)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    p.add_argument("--out", default="quotaroute-demo", help="folder for report.md, report.json, demo.png")
    p.add_argument("--port", type=int, default=0, help="proxy port on 127.0.0.1 (default 0: a free port)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategies", default="free-first,balanced,cheapest,always-best",
                   help="comma-separated subset of: free-first, balanced, cheapest, always-best")
    p.add_argument("--json", action="store_true", help="print the final table as JSON (no live view)")


def _fail(msg: str) -> int:
    print(f"quotaroute demo: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from router.demo.proxy import PortTaken, check_port
    from router.demo.report import print_table, summary_rows, write_report
    from router.demo.run import run_strategy, strategies
    from router.demo.ui import LiveUI, QuietUI
    from router.demo.world import build_world

    out = Path(args.out).expanduser().resolve()
    try:  # fail before any work if the report cannot be written
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        return _fail(f"cannot write to {out}: {e.strerror or e}")
    if args.port:
        try:
            check_port(args.port)
        except PortTaken as e:
            return _fail(str(e))
    wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
    known = {s.name: s for s in strategies()}
    bad = [w for w in wanted if w not in known]
    if bad:
        return _fail(f"unknown strategy {bad[0]!r}; choose from {', '.join(known)}")
    if args.prompts is not None and args.prompts < 1:
        return _fail("--prompts must be at least 1")

    try:
        import openai  # noqa: F401 - the demo's application side
    except ImportError:
        return _fail("the demo plays an application that uses the official openai client; "
                     "install it with: pip install -e '.[demo]'")
    console = Console(stderr=args.json)
    t0 = time.perf_counter()
    console.print("[bold]quotaroute demo[/] — offline: replayed models answer with their [bold]recorded[/] outcomes "
                  "(RouterBench), free quotas are examples, no API keys, nothing leaves this machine.")
    with console.status("loading the bundled data and training the task-fit model on the train split..."):
        world = build_world(n_prompts=args.prompts, seed=args.seed)
    limits = {}
    for p in world.pools:
        if p.limits:
            w = p.limits[0]
            limits[p.id] = f"{w.requests} requests/{w.per}"
        elif p.grant is not None and p.grant.usd is not None:
            limits[p.id] = f"${p.grant.usd} one-time credit"
    console.print(f"{world.test.n_prompts} held-out prompts, {len(world.catalog)} models on "
                  f"{len(world.providers)} vendors; example free quotas: "
                  + "; ".join(f"{k} = {v}" for k, v in limits.items()))
    live = console.is_terminal and not args.json and not os.environ.get("CI")
    ui = LiveUI(console, limits) if live else QuietUI(console)
    results = []
    for name in wanted:
        s = known[name]
        try:
            r = run_strategy(world, s, concurrency=max(1, args.concurrency), port=args.port, ui=ui)
        except PortTaken as e:
            return _fail(str(e))
        results.append(r)
        console.print(f"  {s.label}: {len(r.requests)} requests in {r.seconds:.1f}s, quality {r.quality:.3f}, "
                      f"cost ${r.cost_usd:.4f}, {r.free_requests} on free quota, {r.errors} errors")
    rows = summary_rows(results)
    meta = {"pools": [{"id": k, "limit": v, "source": next(p.source for p in world.pools if p.id == k)} for k, v in limits.items()],
            "seconds_total": round(time.perf_counter() - t0, 1), "seed": args.seed}
    try:
        paths = write_report(out, results, rows, world.test.n_prompts, meta)
    except OSError as e:
        return _fail(f"cannot write the report to {out}: {e.strerror or e}")
    if args.json:
        print(json.dumps({"n_prompts": world.test.n_prompts, "strategies": rows, **paths, **meta}, indent=2))
    else:
        print_table(console, rows, world.test.n_prompts)
        console.print(f"report: {paths['report_md']}  plot: {paths['plot']}  ({meta['seconds_total']} s)")
    errors = sum(r.errors for r in results)
    if errors:
        console.print(f"[red]{errors} requests failed[/] (see report.json)")
        return 1
    return 0
