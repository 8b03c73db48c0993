"""`quotaroute bench live`: run a task suite against real (or --fake) models."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["HELP", "add_arguments", "run", "build_backend", "amain"]

HELP = (
    "Run a task suite (YAML/JSONL) against real models through the adapters and the quota ledger; "
    "score every answer; record quality, tokens, exact cost, latency and TTFT; resumable (SQLite); "
    "hard --budget-usd cap. Writes results.csv (long format for `bench replay`), report.md/json and plots."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", required=True, help="suite file (.yaml/.yml or .jsonl)")
    p.add_argument("--models", required=True, help="comma-separated provider:model ids")
    p.add_argument("--config", help="quotaroute config (providers, keys by env var, quotas): calls go through the "
                   "Router with the model pinned (default: $QUOTAROUTE_CONFIG, ./quotaroute.yaml, $QUOTAROUTE_HOME/config.yaml)")
    p.add_argument("--repeats", type=int, default=1, help="calls per (model, item) (default 1)")
    p.add_argument("--concurrency", type=int, default=4, help="parallel calls per model (default 4)")
    p.add_argument("--budget-usd", help="hard cap on spend (answers + judge, incl. cached spend in --out)")
    p.add_argument("--out", help="output dir (default bench-live/<suite name>); holds the resumable cache")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--fake", action="store_true",
                   help="offline: scripted fake models (fake:good, fake:cheap, fake:judge) - NOT real measurements")
    p.add_argument("--judge", help="judge model for `judge` scorers (overrides the suite's judge)")
    p.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                   help="USD per 1M input,output tokens for a model the catalog lacks (repeatable)")
    p.add_argument("--max-wait", type=float, default=60.0, help="cap on one rate-limit wait in seconds (default 60)")
    p.add_argument("--no-ledger", action="store_true",
                   help="without --config: do not apply the catalog's default free tiers (bill everything at list price)")
    p.add_argument("--no-stream", action="store_true", help="use non-streaming calls (no TTFT)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")


def _parse_prices(items: list[str]) -> dict[str, Any]:
    from benchmarks.live_backends import SimplePrice
    from router.errors import ConfigError

    out: dict[str, Any] = {}
    for it in items:
        model, _, rest = it.partition("=")
        parts = rest.split(",")
        try:
            if not model or len(parts) != 2:
                raise InvalidOperation
            out[model.strip()] = SimplePrice(Decimal(parts[0]), Decimal(parts[1]))
        except InvalidOperation:
            raise ConfigError(f"expected MODEL=IN,OUT (USD per 1M tokens), got {it!r}", key="--price") from None
    return out


def _direct_providers(vendors: set[str]) -> dict[str, Any]:
    """Adapters from providers.registry (keys from each vendor's env var, e.g. DEEPSEEK_API_KEY).
    The adapters' own retries are off: the runner waits on rate limits itself (bounded)."""
    from providers.registry import build_provider
    from providers.retry import NO_RETRY

    return {v: build_provider(v, name=v, retry=NO_RETRY) for v in sorted(vendors)}


def build_backend(args: argparse.Namespace, suite: Any, models: list[str], judge: str | None) -> Any:
    from benchmarks.live_backends import DirectBackend, RouterBackend, resolve_prices
    from router.errors import ConfigError

    overrides = _parse_prices(args.price)
    everyone = models + ([judge] if judge and judge not in models else [])
    if args.fake:
        from benchmarks.live_fake import FakeBenchProvider, fake_prices

        bad = [m for m in everyone if not m.startswith("fake:")]
        if bad:
            raise ConfigError(f"--fake takes only fake:* models (fake:good, fake:cheap, fake:judge), got {bad}",
                              key="--models")
        prices = {**fake_prices(everyone), **overrides}
        return DirectBackend({"fake": FakeBenchProvider("fake", suite)}, prices, stream=not args.no_stream)
    if not args.config:
        from router.config import find_config

        args.config = find_config()  # $QUOTAROUTE_CONFIG, ./quotaroute.yaml, $QUOTAROUTE_HOME/config.yaml
    if args.config:
        from router.errors import UnknownModel
        from router.sdk import Router

        router = Router.from_config(args.config)
        for m in everyone:
            try:
                router.catalog.get(m)
            except UnknownModel as e:
                raise ConfigError(f"{e}", key="--models") from None
        try:
            prices = resolve_prices(everyone, overrides)
        except ConfigError:
            if args.budget_usd is not None:
                raise
            prices = {}
        return RouterBackend(router, prices, stream=not args.no_stream)
    prices = resolve_prices(everyone, overrides)
    ledger = None
    if not args.no_ledger:  # the catalog's default free tiers, in memory for this run
        from router.quota.defaults import default_pools
        from router.quota.ledger import Ledger
        from router.quota.memory_store import MemoryStore

        ledger = Ledger(MemoryStore(), default_pools())
    return DirectBackend(_direct_providers({m.partition(":")[0] for m in everyone}), prices,
                         stream=not args.no_stream, ledger=ledger)


class _Progress:
    """A rich progress bar with running cost (stderr; silent when not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self.bar = Progress(TextColumn("[bold]live bench"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[cost]}"), TimeElapsedColumn(), console=console, transient=False)
        self.task = self.bar.add_task("calls", total=1, cost="$0")

    def __call__(self, runner: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=runner.total, completed=runner.done,
                            cost=f"spent ${runner.spent:.4f}" + (" (budget stop)" if runner.budget_stop else ""))

    def __enter__(self) -> "_Progress":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.live import RunOptions, run_live
    from benchmarks.live_cache import ResultCache
    from benchmarks.live_report import write_outputs
    from benchmarks.suite import load_suite
    from router.errors import ConfigError

    suite = load_suite(args.suite)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(":" not in m for m in models) or len(set(models)) != len(models):
        raise ConfigError("give distinct provider:model ids, comma-separated", key="--models")
    if args.repeats < 1 or args.concurrency < 1:
        raise ConfigError("must be >= 1", key="--repeats/--concurrency")
    budget = None
    if args.budget_usd is not None:
        try:
            budget = Decimal(args.budget_usd)
        except InvalidOperation:
            raise ConfigError(f"not a number: {args.budget_usd!r}", key="--budget-usd") from None
    needs_judge = any(it.scorer["type"] == "judge" and not it.scorer.get("model") for it in suite.items)
    judge = args.judge or ("fake:judge" if args.fake and needs_judge else None) or (
        suite.judge.model if suite.judge else None)
    backend = build_backend(args, suite, models, judge if needs_judge else None)
    out = args.out or os.path.join("bench-live", suite.name)
    os.makedirs(out, exist_ok=True)
    cache = ResultCache(os.path.join(out, "cache.sqlite"))
    progress = _Progress(not (args.no_progress or args.json))
    opts = RunOptions(repeats=args.repeats, concurrency=args.concurrency, budget_usd=budget,
                      max_rate_wait_s=args.max_wait, on_progress=progress)
    try:
        with progress:
            summary = await run_live(suite, models, backend, cache, opts, judge_model=judge)
    finally:
        cache.close()
        await backend.aclose()
    report = write_outputs(out, summary, plots=not args.no_plots)
    report["out_dir"] = out
    if args.fake:
        report["fake"] = "scripted fake models: figures show the harness, not any real model"
    return report


def run(args: argparse.Namespace) -> int:
    from benchmarks.live_report import render_table
    from router.errors import ConfigError, QuotarouteError

    try:
        report = asyncio.run(amain(args))
    except ConfigError as e:
        print(f"quotaroute bench live: {e}", file=sys.stderr)
        return 2
    except QuotarouteError as e:
        print(f"quotaroute bench live: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        if report.get("fake"):
            print(f"[--fake] {report['fake']}")
        print(render_table(report))
        print(f"\n{report['total_calls']} calls: {report['calls_made']} made, {report['cached']} cached, "
              f"{report['skipped']} skipped in {report['elapsed_s']} s; spent ${Decimal(report['spent_usd']):.6f} "
              f"(judge ${Decimal(report['judge_usd']):.6f}). Results: {report['out_dir']}/results.csv, report.md")
    if report["budget_stop"]:
        print(f"STOPPED: {report['budget_stop']}", file=sys.stderr)
    for m, d in report["per_model"].items():
        if d["stopped"]:
            print(f"note: {m} stopped early: {d['stopped']}", file=sys.stderr)
        if d["unfinished"]:
            left = ", ".join(f"{n} {k}" for k, n in sorted(d["unfinished"].items()))
            print(f"note: {m}: unfinished calls ({left}) are retried by the next run", file=sys.stderr)
    return 0
