"""`quotaroute route --explain "prompt"`: the ranked route plan with a reason for
every candidate, without calling any model.

Without --config it ranks the bundled catalog (every model) against the catalog's
default free tiers; with --config it uses that file's providers (key names only:
no key needs to be set to explain), models, quotas, budgets, policy and rules.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from decimal import Decimal
from typing import Any

from router.errors import ConfigError, UnknownModel

__all__ = ["HELP", "add_arguments", "run", "explain_router"]

HELP = "Explain the ranked route plan for a prompt (filters, scores, reasons), without calling anything."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="the user message to route (use - to read stdin)")
    p.add_argument("--explain", action="store_true", help="show the plan with reasons (the default; kept for clarity)")
    p.add_argument("--config", metavar="FILE", help="config YAML (default: $QUOTAROUTE_CONFIG, "
                                                    "./quotaroute.yaml, $QUOTAROUTE_HOME/config.yaml)")
    p.add_argument("--policy", metavar="P", help="free-first | cheapest | best | balanced | cascade")
    p.add_argument("--model", metavar="M", default="auto",
                   help="auto, auto:cheap, auto:best, auto:free, auto:balanced, cascade:<name> (from the config), "
                        "or a provider:model to pin")
    p.add_argument("--system", metavar="TEXT", help="a system prompt")
    p.add_argument("--max-tokens", type=int, metavar="N", help="the request's max_tokens")
    p.add_argument("--task", metavar="KIND", help="force the task kind (metadata task override)")
    p.add_argument("--tools", action="store_true", help="the request carries tools")
    p.add_argument("--image", action="store_true", help="the request carries an image")
    p.add_argument("--json-mode", action="store_true", help="the request asks for JSON output")
    p.add_argument("--user", metavar="U", help="end-user id (for rules and budgets)")
    p.add_argument("--tag", metavar="T", action="append", help="request tag (repeatable)")
    p.add_argument("--all", action="store_true", help="list every dropped candidate (default: the first 25)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def explain_router(config: str | None, policy: str | None) -> Any:
    """A Router for explaining only: providers are named, never built (no keys needed)."""
    from router.config import build_cascades, build_policy, build_rules, find_config, load_config  # lazy: import time (config, Router, pydantic): `--help` stays fast
    from router.config.build import build_catalog, build_routes, provider_specs
    from router.sdk import Router

    from router.quota.cli_support import no_config_note, open_ledger

    path = find_config(config)
    if path is None:
        no_config_note("route", None)
        return Router(policy=policy or "free-first")
    cfg = load_config(path)
    catalog = build_catalog(cfg)
    specs = provider_specs(cfg)
    providers: dict[str, dict[str, None]] | None = None
    if specs:
        providers = {}
        for name, p in specs.items():
            if p.enabled:
                envs = [p.api_key_env] if isinstance(p.api_key_env, str) else list(p.api_key_env or [name])
                providers[name] = {e: None for e in envs}
    ledger = open_ledger(path, read_only=True)[0]  # read-only: the recorded counters, never a new ledger file
    return Router(catalog=catalog, providers=providers, ledger=ledger, policy=build_policy(cfg, policy),
                  rules=build_rules(cfg), cascades=build_cascades(cfg), config=cfg, **build_routes(cfg, catalog, providers))


def _request(args: argparse.Namespace, prompt: str) -> Any:
    from router.types import ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool  # lazy: import time (`--help` and other commands stay fast)

    content: Any = prompt
    if args.image:
        content = [TextPart(text=prompt), ImagePart(url="data:image/png;base64,iVBORw0KGgo=")]
    meta: dict[str, Any] = {}
    if args.task:
        meta["task"] = args.task
    if args.tag:
        meta["tags"] = list(args.tag)
    return ChatRequest(
        model=args.model, messages=[Message(role="user", content=content)], system=args.system,
        max_tokens=args.max_tokens, user=args.user, metadata=meta,
        tools=[Tool(name="tool")] if args.tools else None,
        response_format=ResponseFormat(type="json_object") if args.json_mode else None)


def run(args: argparse.Namespace) -> int:
    from router.types import MAX_TOKENS_LIMIT  # lazy: import time (`--help` and other commands stay fast)

    if args.max_tokens is not None and not 1 <= args.max_tokens <= MAX_TOKENS_LIMIT:
        print(f"quotaroute route: --max-tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}, "
              f"got {args.max_tokens}", file=sys.stderr)
        return 2
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        router = explain_router(args.config, args.policy)
        try:
            plan = router.explain(_request(args, prompt))
        finally:
            router.close()
    except (ConfigError, UnknownModel, ValueError) as e:
        print(f"quotaroute route: {_one_line(e)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    _print(plan, show_all=args.all)
    return 0 if plan.steps else 1


def _one_line(e: Exception) -> str:
    """A pydantic ValidationError's first error as `field: message`; other errors as is."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return f"{'.'.join(str(x) for x in first.get('loc', ()))}: {first.get('msg')}"
        except Exception:  # noqa: BLE001 - not a pydantic error after all
            pass
    return " ".join(str(e).split())


def _print(plan: Any, *, show_all: bool) -> None:
    from rich.console import Console  # lazy: import time (rich), only when printing
    from rich.table import Table

    f = plan.features
    con = Console(width=max(120, shutil.get_terminal_size((120, 40)).columns))
    needs = ", ".join(sorted(f.needs)) or "-"
    con.print(f"[bold]task[/] {f.task} ({f.task_source})  [bold]chinese[/] {f.chinese}  [bold]needs[/] {needs}  "
              f"[bold]tokens[/] {f.input_tokens} in / ~{f.expected_output_tokens} out")
    con.print(f"[bold]policy[/] {plan.policy}" + (f"  [bold]rule[/] {plan.rule}" if plan.rule else ""))
    con.print(f"[bold]route[/] {plan.reason}")
    t = Table(show_lines=False)
    t.add_column("#", justify="right")
    t.add_column("model", no_wrap=True)
    t.add_column("expected $", justify="right", no_wrap=True)
    t.add_column("free")
    t.add_column("quality", justify="right")
    t.add_column("reason")
    kept = sorted((r for r in plan.reasons if r.kept), key=lambda r: r.rank)
    dropped = [r for r in plan.reasons if not r.kept]
    for r in kept:
        t.add_row(str(r.rank), f"[green]{r.model_id}[/]", _money(r.expected_cost_usd), "yes" if r.free else "",
                  _q(r.quality), r.reason)
    limit = len(dropped) if show_all else 25
    for r in dropped[:limit]:
        t.add_row("-", f"[dim]{r.model_id}[/]", _money(r.expected_cost_usd), "", _q(r.quality), f"[dim]{r.reason}[/]")
    con.print(t)
    if len(dropped) > limit:
        con.print(f"... {len(dropped) - limit} more dropped candidates (--all to list them)")
    for s in getattr(plan, "stages", ()):  # a cascade: each stage's models, in the order they are asked
        spares = s.model_ids[s.stage.k:2 * s.stage.k]
        con.print(f"[bold]stage {s.index + 1}[/] {s.stage.describe()} ({s.stage.policy}): "
                  + (", ".join(s.chosen()) or "[red]no model fits[/]")
                  + (f"  [dim]replacements: {', '.join(spares)}[/]" if spares else ""))
    if getattr(plan, "chain", None):
        con.print("[bold]explicit route[/] (fallbacks: in order; deployments: drawn by weight among the healthy)")
        for line in plan.chain:
            con.print(f"  {line}", markup=False)
    if plan.steps and not hasattr(plan, "stages"):
        con.print("[bold]fallback order[/] " + " -> ".join(s.deployment for s in plan.steps))


def _money(d: Any) -> str:
    if d is None:
        return ""
    from router.pricing import quantize_display  # lazy: import time (`--help` and other commands stay fast)

    if d != 0 and abs(d) < Decimal("0.0000005"):  # would show as $0.000000: plain decimals, never 2.5E-7
        return f"${Decimal(f'{d:.3g}'):f}"
    return f"${quantize_display(d, 6)}"


def _q(q: float | None) -> str:
    return "" if q is None else f"{q:.2f}"
