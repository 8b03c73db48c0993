"""`quotaroute models`: the model catalog with prices (USD and native currency),
context windows, capabilities and free tiers."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from router.errors import ConfigError

__all__ = ["HELP", "add_arguments", "run", "card_to_json"]

HELP = "List the model catalog: prices per 1M tokens (USD and native currency), context, capabilities, free tiers."

_CAP_SHORT = {"tools": "T", "vision": "V", "json_schema": "J", "reasoning": "R"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", metavar="P", action="append", help="only this provider (repeatable)")
    p.add_argument("--needs", metavar="CAP", action="append",
                   help="only models with this capability: tools, vision, json_schema, reasoning (repeatable)")
    p.add_argument("--free", action="store_true", help="only free models and models with a recurring free tier")
    p.add_argument("--region", metavar="R", help="only models served in this region: us, cn, eu, local")
    p.add_argument("--overrides", metavar="FILE", help="YAML {model_id: {price: ..., ...}} applied on top")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _fmt(d: Decimal | None, places: int = 6) -> str:
    if d is None:
        return ""
    q = d.quantize(Decimal(1).scaleb(-places)).normalize()
    return format(q, "f")


def _prices(card: Any, rate: Decimal) -> dict[str, Any]:
    p = card.price
    if p is None:
        return {"known": False}
    r = p.rates(0)
    native = {k: r[k] for k in ("input", "cache_read", "cache_write", "output")}
    return {
        "known": True,
        "currency": p.currency,
        "native_per_1m": {k: _fmt(v, 8) for k, v in native.items()},
        "usd_per_1m": {k: _fmt(v * rate, 8) for k, v in native.items()},
        "tiers": [{"above_input_tokens": t.above_input_tokens,
                   **{k: _fmt(getattr(t, k), 8) for k in ("input", "cache_read", "cache_write", "output")
                      if getattr(t, k) is not None}} for t in p.tiers],
        "time_discounts": [td.model_dump(mode="json", exclude_none=True) for td in p.time_discounts],
        "source": p.source,
        "as_of": p.as_of,
    }


def card_to_json(card: Any, rate: Decimal) -> dict[str, Any]:
    return {
        "id": card.id,
        "provider": card.provider,
        "model": card.model,
        "aliases": list(card.aliases),
        "tier": card.tier,
        "context_window": card.context_window,
        "max_output": card.max_output,
        "capabilities": sorted(card.capabilities),
        "regions": sorted(card.regions),
        "price": _prices(card, rate),
        "free_tier": card.free_tier,
        "has_free_tier": card.has_free_tier,
        "task_quality": card.task_quality,
        "notes": card.notes,
    }


def _free_label(card: Any) -> str:
    if card.is_local:
        return "local"
    ft = card.free_tier or {}
    if not card.has_free_tier:
        return "sign-up grant" if ft.get("kind") == "grant" else "no"
    kind = ft.get("kind") or ("free model" if card.price is not None and card.price.is_free else "yes")
    limits = ft.get("limits") or {}
    bits = [f"{v:,} {k.upper()}" for k, v in limits.items() if k in ("rpm", "rpd") and isinstance(v, int)]
    return {"rate_limited_free": "free tier", "free_model": "free model", "grant": "grant"}.get(kind, kind) + (
        f" ({', '.join(bits)})" if bits else "")


def run(args: argparse.Namespace) -> int:
    from router.catalog import load_catalog  # lazy: import time (`--help` and other commands stay fast)
    try:
        cat = load_catalog(overrides=args.overrides)
    except ConfigError as e:
        print(f"quotaroute models: {e}", file=sys.stderr)
        return 2
    cards = cat.all()
    if args.provider:
        unknown = [p for p in args.provider if p not in cat.providers()]
        if unknown:
            print(f"quotaroute models: unknown provider {', '.join(unknown)}; known: {', '.join(cat.providers())}",
                  file=sys.stderr)
            return 2
        cards = [c for c in cards if c.provider in args.provider]
    for cap in args.needs or ():
        cards = [c for c in cards if cap in c.capabilities]
    if args.free:
        cards = [c for c in cards if c.has_free_tier]
    if args.region:
        cards = [c for c in cards if args.region in c.regions]

    def rate(c: Any) -> Decimal:
        return cat.fx.rate(c.price.currency) if c.price is not None else Decimal(1)

    if args.json:
        out = {"fx": {"rates": {k: format(v, "f") for k, v in cat.fx.rates.items()}, "as_of": cat.fx.as_of},
               "count": len(cards), "models": [card_to_json(c, rate(c)) for c in cards]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0

    from rich.console import Console  # lazy: import time (rich), only when printing
    from rich.table import Table

    t = Table(title=f"quotaroute models ({len(cards)}) — prices per 1M tokens; FX as of {cat.fx.as_of}",
              caption="caps: T tools, V vision, J json_schema, R reasoning. Cached = cache read; write = cache write.")
    for col, just in (("model", "left"), ("ctx", "right"), ("max out", "right"), ("in $", "right"),
                      ("cached $", "right"), ("write $", "right"), ("out $", "right"), ("native in/out", "right"),
                      ("caps", "left"), ("free", "left"), ("region", "left")):
        t.add_column(col, justify=just, no_wrap=col in ("model", "ctx", "native in/out"))  # type: ignore[arg-type]
    for c in cards:
        p = c.price
        if p is None:
            usd = ["?", "?", "?", "?"]
            native = "unknown"
        else:
            r = p.rates(0)
            fx = rate(c)
            usd = [_fmt(r[k] * fx, 4) for k in ("input", "cache_read", "cache_write", "output")]
            native = "" if p.currency == "USD" else f"{_fmt(r['input'])}/{_fmt(r['output'])} {p.currency}"
            if p.tiers:
                native += " +tiers"
            if p.time_discounts:
                native += " +off-peak"
        caps = "".join(_CAP_SHORT[k] for k in ("tools", "vision", "json_schema", "reasoning") if k in c.capabilities)
        t.add_row(c.id, f"{c.context_window // 1000:,}k", f"{c.max_output // 1000:,}k" if c.max_output else "",
                  *usd, native.strip(), caps, _free_label(c), ",".join(sorted(c.regions)))
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return 0
