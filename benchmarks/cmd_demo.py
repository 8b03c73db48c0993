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
from typing import TYPE_CHECKING, Any

from router.extras import need

if TYPE_CHECKING:
    from router.demo.world import World

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
    # lazy: import time (rich, the proxy's server stack): `quotaroute demo --help` stays fast
    from rich.console import Console

    from router.demo.proxy import PortTaken, check_port
    from router.demo.report import print_table, summary_rows, write_report
    from router.demo.run import run_strategy, strategies
    from router.demo.ui import LiveUI, QuietUI

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
        import openai  # noqa: F401 - lazy: optional extra [demo], the demo's application side
    except ImportError:
        return _fail("the demo plays an application that uses the official openai client; "
                     "install it with: pip install -e '.[demo]'")
    need("matplotlib", extra="demo", purpose="the demo's plot")  # fail before any work
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


def build_world(*, n_prompts: int | None = None, seed: int = 0, dataset: Any = None) -> "World":
    """Load the bundled data, split it, train the task-fit predictor on the train
    split, and build the replay deployments for the test split."""
    # lazy: import time (numpy, pydantic, the bundled data): `quotaroute demo --help` stays fast
    import numpy as np

    from benchmarks.datasets import load_shipped, split
    from benchmarks.learned import train as train_predictor
    from providers.replay import Outcome, ReplayProvider, prompt_key
    from router.catalog import Catalog
    from router.demo.world import DEMO_MODELS, World, demo_cards, demo_pools
    from router.quota.spec import load_quota_config

    ds = dataset if dataset is not None else load_shipped()
    models = tuple(m for m in DEMO_MODELS if m.dataset_name in ds.models)
    train, test = split(ds, None, seed)
    if n_prompts is not None and n_prompts < test.n_prompts:
        rng = np.random.default_rng(seed)
        test = test.subset(np.sort(rng.choice(test.n_prompts, size=n_prompts, replace=False)))
    outcomes: dict[str, dict[tuple[str, str], Outcome]] = {}
    col = {m.dataset_name: test.models.index(m.dataset_name) for m in models}
    for i, text in enumerate(test.prompts):
        key = prompt_key(text)
        for m in models:
            j = col[m.dataset_name]
            prov = m.id.split(":", 1)[0]
            outcomes.setdefault(prov, {})[(key, m.id.split(":", 1)[1])] = Outcome(
                quality=float(test.quality[i, j]),
                input_tokens=int(test.input_tokens[i, j]),
                output_tokens=int(test.output_tokens[i, j]),
                label=test.prompt_ids[i],
            )
    providers = {p: ReplayProvider(p, table) for p, table in outcomes.items()}
    pools, _ = load_quota_config({"quotas": demo_pools(test.n_prompts)}, file="<demo quotas>", include_defaults=False)
    predictor = train_predictor(train.select_models([m.dataset_name for m in models]), "ridge")
    # the predictor speaks dataset names; give it the demo ids
    predictor.model_ids = [next(m.id for m in models if m.dataset_name == n) for n in predictor.models]
    return World(Catalog(demo_cards(models, train)), providers, pools, predictor, train, test, models)
