"""Shared by `quotaroute quota` and `quotaroute budget`: open the ledger the config
names (SQLite at $QUOTAROUTE_HOME/ledger.sqlite by default), render bars. The config
file is found and read by `router.config` (find_config, load_config)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

__all__ = ["open_ledger", "bar", "fmt_time", "add_common_arguments"]


def add_common_arguments(p: Any) -> None:
    p.add_argument("--config", metavar="FILE", help="config YAML with quotas:/budgets: (default: $QUOTAROUTE_CONFIG, "
                   "./quotaroute.yaml, $QUOTAROUTE_HOME/config.yaml; without one, the catalog free tiers)")
    p.add_argument("--store", metavar="URL", help="ledger store: sqlite:///path, redis://host:port/db, memory:// "
                   "(default: config `ledger.store`, else $QUOTAROUTE_HOME/ledger.sqlite)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def open_ledger(config: str | None, store_url: str | None = None):  # -> (Ledger, config path, store url)
    """Build the Ledger the CLI shows. Pools/budgets come from the config file
    (through `router.config`); the store is `--store` > the config's `ledger:` section > the
    $QUOTAROUTE_LEDGER_URL variable > the SQLite file $QUOTAROUTE_HOME/ledger.sqlite."""
    from router.quota.ledger import Ledger
    from router.quota.store import build_store

    import router.config as rc

    cfg = rc.load_config(config)  # explicit > $QUOTAROUTE_CONFIG > ./quotaroute.yaml > home
    path = cfg.file
    if store_url is None and cfg.ledger.store in ("sqlite", "redis"):
        ledger = rc.build_ledger(cfg)
        store = ledger.store
        url = getattr(store, "url", None) or "sqlite:///" + str(getattr(store, "path", ""))
        return ledger, path, url
    pools, budgets = cfg.pools, cfg.budget_specs
    url = store_url or os.environ.get("QUOTAROUTE_LEDGER_URL") or "sqlite:///" + str(rc.home() / "ledger.sqlite")
    return Ledger(build_store(url), pools, budgets), path, url


def bar(used: float, limit: float, width: int = 20) -> str:
    if limit <= 0:
        return "[" + "#" * width + "]"
    frac = max(0.0, min(1.0, used / limit))
    n = round(frac * width)
    return "[" + "#" * n + "." * (width - n) + "]"


def fmt_time(ts: float | datetime | None, tz: str | None = None, *, short: bool = False) -> str:
    if ts is None:
        return "never"
    from zoneinfo import ZoneInfo

    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts).astimezone()
    fmt = "%m-%d %H:%M %Z" if short else "%Y-%m-%d %H:%M %Z"
    if tz:
        return dt.astimezone(ZoneInfo(tz)).strftime(fmt)
    return dt.astimezone().strftime(fmt)
