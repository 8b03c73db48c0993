"""`quotaroute spend`: report the proxy's spend log (requests, tokens, exact cost)."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from decimal import Decimal

from router.config import home
from router.errors import MissingExtra
from router.server.spendlog import parse_since, summarize

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Report the proxy's spend log, grouped by day, model, key or provider."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", choices=["day", "model", "key", "provider"], default="day", help="group rows by (default day)")
    p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD, an ISO datetime, or relative: 7d, 12h, 30m")
    p.add_argument("--key", metavar="ID", help="only this proxy key id")
    p.add_argument("--db", metavar="PATH", help="spend log (default $QUOTAROUTE_HOME/spend.sqlite)")
    p.add_argument("--config", metavar="FILE", help="read the store the config's server section names "
                   "(server.store: postgres reads PostgreSQL; sqlite reads server.spend_db)")
    p.add_argument("--dsn-env", metavar="VAR", help="read the PostgreSQL spend log whose DSN is in this variable")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since)
    except ValueError as e:
        print(f"quotaroute spend: {e}", file=sys.stderr)
        return 2
    path = args.db or str(home() / "spend.sqlite")
    dsn_env = None if args.db else args.dsn_env
    if args.config and not args.db and not dsn_env:
        try:
            from router.config import load_config  # lazy: only with --config

            sc = load_config(args.config).server
        except Exception as e:  # noqa: BLE001 - a bad config is one line
            print(f"quotaroute spend: {e}", file=sys.stderr)
            return 2
        if sc.store == "postgres":
            dsn_env = sc.dsn_env
        elif sc.spend_db and sc.spend_db != "off":
            path = os.path.expanduser(sc.spend_db)
    if dsn_env:
        dsn = os.environ.get(dsn_env, "").strip()
        if not dsn:
            print(f"quotaroute spend: the environment variable {dsn_env} (the PostgreSQL DSN) is not set",
                  file=sys.stderr)
            return 2
        path = f"PostgreSQL (${dsn_env})"
        try:
            from router.server import pgstore  # lazy: psycopg is the optional extra `postgres`

            rows = pgstore.summarize(dsn, by=args.by, since=since, key_id=args.key)
        except MissingExtra:
            raise
        except Exception as e:  # noqa: BLE001 - unreachable server, bad DSN: one line, never the DSN
            print(f"quotaroute spend: cannot read the spend log from {path}: {type(e).__name__}", file=sys.stderr)
            return 2
    else:
        try:
            rows = summarize(path, by=args.by, since=since, key_id=args.key)
        except (sqlite3.Error, OSError, ArithmeticError) as e:  # not a spend log, unreadable, or a corrupt row
            print(f"quotaroute spend: cannot read {path} as a spend log: {e}", file=sys.stderr)
            return 2
    total = sum((r["cost_usd"] for r in rows), Decimal(0))
    if args.json:
        out = {"db": path, "by": args.by, "since": args.since, "total_cost_usd": format(total, "f"),
               "rows": [{**r, "cost_usd": format(r["cost_usd"], "f")} for r in rows]}
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console  # lazy: import time (rich), only when printing
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"no requests in {path}" + (f" since {args.since}" if args.since else ""))
        return 0
    t = Table(title=f"quotaroute spend by {args.by}" + (f" since {args.since}" if args.since else ""))
    for col, just in ((args.by, "left"), ("requests", "right"), ("errors", "right"), ("input tok", "right"),
                      ("output tok", "right"), ("cost USD", "right"), ("mean ms", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(str(r[args.by]), f"{r['requests']:,}", f"{r['errors']:,}", f"{r['input_tokens']:,}",
                  f"{r['output_tokens']:,}", format(r["cost_usd"], "f"), f"{r['mean_latency_ms']:.1f}")
    t.add_section()
    t.add_row("total", f"{sum(r['requests'] for r in rows):,}", f"{sum(r['errors'] for r in rows):,}",
              f"{sum(r['input_tokens'] for r in rows):,}", f"{sum(r['output_tokens'] for r in rows):,}",
              format(total, "f"), "")
    console.print(t)
    return 0
