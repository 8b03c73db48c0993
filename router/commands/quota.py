"""`quotaroute quota`: every free-quota pool with used/limit, a bar and the next
reset in local and vendor time."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from router.errors import ConfigError, LedgerUnavailable
from router.quota.cli_support import add_common_arguments, bar, fmt_time, no_config_note, open_ledger
from router.quota.viewbuild import pool_rows

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Show free-quota pools (catalog free tiers + config `quotas:`): used/limit, next reset in local and vendor time."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--model", metavar="ID", action="append", help="also show per-model pools for this provider:model")


async def _rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None, str]:
    ledger, path, url = open_ledger(args.config, args.store, read_only=True)
    try:
        now = datetime.now(timezone.utc)
        ledger.track(args.model or ())
        rows = await pool_rows(ledger, now)
    finally:
        await ledger.aclose()
    return rows, path, url


def run(args: argparse.Namespace) -> int:
    try:
        rows, path, url = asyncio.run(_rows(args))
    except (ConfigError, LedgerUnavailable) as e:
        print(f"quotaroute quota: {e}", file=sys.stderr)
        return 2
    no_config_note("quota", path)
    if args.json:
        out = []
        for r in rows:
            r = dict(r)
            r["resets_at"] = datetime.fromtimestamp(r["resets_at"], timezone.utc).isoformat() if r["resets_at"] else None
            for k in ("used", "limit"):
                r[k] = str(r[k]) if isinstance(r[k], Decimal) else r[k]
            out.append(r)
        print(json.dumps({"config": path, "store": url, "pools": out}, indent=2))
        return 0
    from rich.console import Console  # lazy: import time (rich), only when printing
    from rich.table import Table

    t = Table(title=f"quota pools ({path or 'catalog defaults'}; ledger {url})", title_justify="left")
    for col in ("pool / applies to", "limit", "used / limit", "", "next reset (local)", "vendor time"):
        wrap = col == "pool / applies to"
        t.add_column(col, no_wrap=not wrap, overflow="fold", min_width=30 if wrap else None)
    last = None
    for r in rows:
        used, lim = r["used"], r["limit"]
        full = used >= lim or r["exhausted_until"]
        style = "red" if full else ("yellow" if lim and used / lim >= Decimal("0.8") else "green")
        kind = ("free" if r["free"] else r["kind"]) + f", then {r['on_exhaust']}"
        first = r["pool"] != last
        last = r["pool"]
        label = f"[bold]{r['pool']}[/] ({kind})\n[dim]{', '.join(r['applies_to'])}[/]" if first else ""
        reset = f"[red]exhausted until {fmt_time(datetime.fromisoformat(r['exhausted_until']))}[/]" if r["exhausted_until"] else ""
        per = r["window"].replace(" (rolling)", " rolling").replace(" (calendar)", "")
        t.add_row(label, f"{r['metric']}/{per}" if per not in ("grant", "credit") else f"{per} {r['metric']}",
                  f"{used:,} / {lim:,}", f"[{style}]{bar(float(used), float(lim), 10)}[/]",
                  reset or fmt_time(r["resets_at"], short=True),
                  fmt_time(r["resets_at"], r["tz"], short=True) if r["resets_at"] else "", end_section=False)
    con = Console()
    if con.width < 140:
        con = Console(width=140)  # a narrow pipe/terminal: keep the columns readable
    con.print(t)
    return 0
