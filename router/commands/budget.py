"""`quotaroute budget`: every spend budget with spent/reserved/limit, a bar and the next reset."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

from router.errors import ConfigError, LedgerUnavailable
from router.quota.cli_support import add_common_arguments, bar, fmt_time, no_config_note, open_ledger

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Show spend budgets (config `budgets:`): spent + reserved / limit in USD, hard or soft, next reset."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)


async def _view(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    ledger, path, url = open_ledger(args.config, args.store, read_only=True)
    try:
        view = await ledger.view(datetime.now(timezone.utc))
        tzs = {b.spec.id: b.spec.tz for b in ledger.budgets}
    finally:
        await ledger.aclose()
    return view, tzs, path, url


def run(args: argparse.Namespace) -> int:
    try:
        view, tzs, path, url = asyncio.run(_view(args))
    except (ConfigError, LedgerUnavailable) as e:
        print(f"quotaroute budget: {e}", file=sys.stderr)
        return 2
    no_config_note("budget", path)
    if args.json:
        out = [{"budget": b.budget_id, "scope": b.scope, "match": b.match, "period": b.period, "hard": b.hard,
                "limit_usd": str(b.limit_usd), "spent_usd": str(b.spent_usd), "reserved_usd": str(b.reserved_usd),
                "headroom_usd": str(b.headroom()), "resets_at": b.resets_at.isoformat() if b.resets_at else None,
                "tz": tzs.get(b.budget_id)} for b in view.budgets]
        print(json.dumps({"config": path, "store": url, "budgets": out}, indent=2))
        return 0
    from rich.console import Console  # lazy: import time (rich), only when printing
    from rich.table import Table

    con = Console()
    if con.width < 125:
        con = Console(width=125)
    if not view.budgets:
        con.print(f"no budgets configured ({path or 'no config file'}); add a `budgets:` section, e.g.\n"
                  "  budgets:\n    - {id: monthly, scope: global, period: month, limit_usd: \"50.00\"}")
        return 0
    t = Table(title=f"budgets ({path}; ledger {url})", title_justify="left")
    for col in ("budget", "scope / period", "spent + reserved / limit USD", "", "next reset (local)", "budget tz"):
        t.add_column(col, no_wrap=col != "budget", overflow="fold", min_width=18 if col == "budget" else None)
    for b in view.budgets:
        used = b.spent_usd + b.reserved_usd
        style = "red" if used >= b.limit_usd else ("yellow" if used >= b.limit_usd * 8 / 10 else "green")
        t.add_row(f"{b.budget_id} ({'hard' if b.hard else 'soft'})", f"{b.scope}={b.match} / {b.period}",
                  f"{b.spent_usd} + {b.reserved_usd} / {b.limit_usd}",
                  f"[{style}]{bar(float(used), float(b.limit_usd), 10)}[/]", fmt_time(b.resets_at, short=True),
                  fmt_time(b.resets_at, tzs.get(b.budget_id), short=True) if b.resets_at else "never")
    con.print(t)
    return 0
