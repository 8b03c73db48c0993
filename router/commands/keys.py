"""`quotaroute keys create|list|revoke|rotate`: manage proxy keys at run time.

The command talks to a running proxy's admin API (`/admin/keys`) with the admin key,
so every change goes through the same validation and reaches every worker and
replica within a second. The admin key is read from an environment variable
(`QUOTAROUTE_ADMIN_KEY`, or the one `--admin-key-env` names), never from the command
line (it would show in `ps` and the shell history).

    export QUOTAROUTE_ADMIN_KEY=qr-...
    quotaroute keys create ci-bot --budget-usd 5 --model auto --rpm 60 --tag ci
    quotaroute keys list
    quotaroute keys rotate ci-bot
    quotaroute keys revoke ci-bot
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

__all__ = ["HELP", "add_arguments", "run", "parse_expiry"]

HELP = "Create, list, rotate and revoke proxy keys on a running proxy (admin API)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["create", "list", "revoke", "rotate"])
    p.add_argument("id", nargs="?", help="the key id (create, revoke, rotate)")
    p.add_argument("--url", help="the proxy (default http://127.0.0.1:<server.port of the config>)")
    p.add_argument("--config", metavar="FILE", help="config file (for the default --url)")
    p.add_argument("--admin-key-env", default="QUOTAROUTE_ADMIN_KEY", metavar="VAR",
                   help="environment variable holding the admin key (default QUOTAROUTE_ADMIN_KEY)")
    p.add_argument("--budget-usd", metavar="USD", help="hard budget per period")
    p.add_argument("--period", choices=["day", "month", "total"], help="budget period (default server.budget_period)")
    p.add_argument("--model", action="append", metavar="NAME", help="allowed model or glob (repeat); default any")
    p.add_argument("--rpm", type=int, help="requests per minute")
    p.add_argument("--tpm", type=int, help="tokens per minute")
    p.add_argument("--user", help="pin the `user` scope of this key's requests")
    p.add_argument("--tag", action="append", metavar="TAG", help="pin a tag (repeat)")
    p.add_argument("--expires", metavar="WHEN", help="ISO datetime, or relative: 30d, 12h, 90m")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def parse_expiry(value: str, now: float | None = None) -> float | str:
    """`30d` / `12h` / `90m` -> unix time; anything else is passed on as ISO text (the API checks it)."""
    v = value.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    if v[-1:] in units and v[:-1].isdigit() and len(v) <= 8:
        return (time.time() if now is None else now) + int(v[:-1]) * units[v[-1]]
    return v


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    from router.config import load_config  # lazy: only when the port comes from the config

    cfg = load_config(args.config)
    return f"http://127.0.0.1:{cfg.server.port}"


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"id": args.id}
    for name, val in (("budget_usd", args.budget_usd), ("budget_period", args.period), ("models", args.model),
                      ("rpm", args.rpm), ("tpm", args.tpm), ("user", args.user), ("tags", args.tag)):
        if val is not None:
            body[name] = val
    if args.expires:
        body["expires_at"] = parse_expiry(args.expires)
    return body


def run(args: argparse.Namespace) -> int:
    import httpx  # lazy: import time

    token = os.environ.get(args.admin_key_env, "").strip()
    if not token:
        print(f"quotaroute keys: set {args.admin_key_env} to the admin key", file=sys.stderr)
        return 2
    if args.action != "list" and not args.id:
        print(f"quotaroute keys {args.action}: give the key id", file=sys.stderr)
        return 2
    try:
        base = _base_url(args)
    except Exception as e:  # noqa: BLE001 - a bad config is one line
        print(f"quotaroute keys: {e}", file=sys.stderr)
        return 2
    path = {"create": "/admin/keys", "list": "/admin/keys", "revoke": f"/admin/keys/{args.id}",
            "rotate": f"/admin/keys/{args.id}/rotate"}[args.action]
    method = {"create": "POST", "list": "GET", "revoke": "DELETE", "rotate": "POST"}[args.action]
    try:
        r = httpx.request(method, base + path, headers={"authorization": f"Bearer {token}"},
                          json=_body(args) if args.action == "create" else None, timeout=30)
    except httpx.HTTPError as e:
        print(f"quotaroute keys: cannot reach the proxy at {base}: {e}", file=sys.stderr)
        return 2
    try:
        data = r.json()
    except ValueError:
        data = {"error": {"message": r.text[:300]}}
    if r.status_code >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        where = f" ({err['param']})" if err.get("param") else ""
        print(f"quotaroute keys {args.action}: {r.status_code} {err.get('message', '')}{where}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if args.action in ("create", "rotate"):
        print(f"key {data['id']}: {data['key']}")
        print("This secret is shown once; the proxy stores only its hash.", file=sys.stderr)
    elif args.action == "revoke":
        print(f"key {args.id} revoked")
    else:
        _table(data["data"])
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console  # lazy: only when printing
    from rich.table import Table

    t = Table(title="proxy keys")
    for col in ("id", "source", "budget USD", "period", "models", "rpm", "tpm", "user", "tags", "expires"):
        t.add_column(col)
    for k in rows:
        exp = k.get("expires_at")
        t.add_row(k["id"], k.get("source", ""), k.get("budget_usd") or "-", k.get("budget_period") or "-",
                  ",".join(k.get("models") or []) or "any", str(k.get("rpm") or "-"), str(k.get("tpm") or "-"),
                  k.get("user") or "-", ",".join(k.get("tags") or []) or "-",
                  time.strftime("%Y-%m-%d %H:%M", time.gmtime(exp)) if exp else "-")
    Console().print(t)
