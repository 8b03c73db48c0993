"""Shared by `quotaroute quota` and `quotaroute budget`: open the ledger the config
names (SQLite at $QUOTAROUTE_HOME/ledger.sqlite by default), render bars. The config
file is found and read by `router.config` (find_config, load_config)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import router.config as rc
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.stores import build_store

__all__ = ["open_ledger", "no_config_note", "bar", "fmt_time", "add_common_arguments"]


def add_common_arguments(p: Any) -> None:
    p.add_argument("--config", metavar="FILE", help="config YAML with quotas:/budgets: (default: $QUOTAROUTE_CONFIG, "
                   "./quotaroute.yaml, $QUOTAROUTE_HOME/config.yaml; without one, the catalog free tiers)")
    p.add_argument("--store", metavar="URL", help="ledger store: sqlite:///path, redis://host:port/db, memory:// "
                   "(default: config `ledger.store`, else $QUOTAROUTE_HOME/ledger.sqlite)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def open_ledger(config: str | None, store_url: str | None = None, *, read_only: bool = False):  # -> (Ledger, config path, store url)
    """Build the Ledger the CLI shows. Pools/budgets come from the config file
    (through `router.config`); the store is `--store` > the config's `ledger:` section > the
    $QUOTAROUTE_LEDGER_URL variable > the SQLite file $QUOTAROUTE_HOME/ledger.sqlite.
    `read_only` (the commands that only show): a SQLite file that does not exist yet is
    not created (nothing was recorded: an empty in-memory ledger is shown, the url says so)."""
    cfg = rc.load_config(config)  # explicit > $QUOTAROUTE_CONFIG > ./quotaroute.yaml > home
    path = cfg.file
    pools, budgets = cfg.pools, cfg.budget_specs
    if store_url is None and cfg.ledger.store == "redis":
        ledger = rc.build_ledger(cfg)
        return ledger, path, getattr(ledger.store, "url", None) or "redis"
    if store_url is None and cfg.ledger.store == "sqlite":
        file = os.path.expanduser(cfg.ledger.path) if cfg.ledger.path else str(rc.home() / "ledger.sqlite")
        url = "sqlite:///" + file
    else:
        url = store_url or os.environ.get("QUOTAROUTE_LEDGER_URL") or "sqlite:///" + str(rc.home() / "ledger.sqlite")
    if read_only and not url.startswith(("redis://", "rediss://", "unix://", "memory:")):
        file = url[len("sqlite:///"):].partition("?")[0] if url.startswith("sqlite:///") else url
        if not os.path.exists(file):
            return Ledger(MemoryStore(), pools, budgets), path, f"{url} (no file yet: nothing recorded)"
    if store_url is None and cfg.ledger.store == "sqlite":
        ledger = rc.build_ledger(cfg)
        return ledger, path, url
    return Ledger(build_store(url), pools, budgets), path, url


def no_config_note(command: str, path: str | None) -> None:
    """Say on stderr when no config file was found (and where quotaroute looked)."""
    if path is None:
        print(f"quotaroute {command}: no config file found (looked at $QUOTAROUTE_CONFIG, ./quotaroute.yaml, "
              f"{rc.home() / 'config.yaml'}); using the catalog defaults", file=sys.stderr)


def bar(used: float, limit: float, width: int = 20) -> str:
    if limit <= 0:
        return "[" + "#" * width + "]"
    frac = max(0.0, min(1.0, used / limit))
    n = round(frac * width)
    return "[" + "#" * n + "." * (width - n) + "]"


def fmt_time(ts: float | datetime | None, tz: str | None = None, *, short: bool = False) -> str:
    if ts is None:
        return "never"
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts).astimezone()
    fmt = "%m-%d %H:%M %Z" if short else "%Y-%m-%d %H:%M %Z"
    if tz:
        return dt.astimezone(ZoneInfo(tz)).strftime(fmt)
    return dt.astimezone().strftime(fmt)
