"""Read per-model prices from the pinned genai-prices package (offline, bundled data).

Imported lazily by `router.catalog.load_catalog`; importing genai_prices costs ~0.2 s.
Converts genai-prices' `ModelPrice` (Decimal or `TieredPrices` per field) and its
conditional prices (start dates, daily time windows) into our `Price`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from router.pricing import Price, TimeDiscount

__all__ = ["genai_price", "genai_version"]

_FIELDS = {"input": "input_mtok", "output": "output_mtok", "cache_read": "cache_read_mtok",
           "cache_write": "cache_write_mtok", "cache_write_1h": "cache_write_1h_mtok"}


@cache  # the installed version does not change in a process; reading it parses the metadata (~5 ms)
def genai_version() -> str:
    from importlib.metadata import version  # lazy: import time (importlib.metadata)

    return version("genai-prices")


def _value_at(v: Any, start: int | None) -> Decimal | None:
    """The field's price for requests above `start` input tokens (None = base)."""
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v
    price = v.base
    if start is not None:
        for t in sorted(v.tiers, key=lambda t: t.start):
            if t.start <= start:
                price = t.price
    return price


def _convert(mp: Any, input_only: bool = False) -> dict[str, Any] | None:
    raw = {ours: getattr(mp, theirs, None) for ours, theirs in _FIELDS.items()}
    if input_only and raw["input"] is not None:
        raw["output"] = Decimal(0)  # embeddings: only input is billed
    if raw["input"] is None or raw["output"] is None:
        return None  # e.g. OpenRouter ':free' rows carry no price at all
    starts = sorted({t.start for v in raw.values() if v is not None and not isinstance(v, Decimal) for t in v.tiers})
    out: dict[str, Any] = {k: _value_at(v, None) for k, v in raw.items() if v is not None}
    out["tiers"] = [
        {"above_input_tokens": s, **{k: _value_at(v, s) for k, v in raw.items() if v is not None
                                     and k != "cache_write_1h"}} for s in starts  # 1h writes scale with input
    ]
    return out


def genai_price(provider_id: str, model_ref: str, now: datetime, *, input_only: bool = False) -> Price | None:
    """Price of `model_ref` at `provider_id` as genai-prices knows it at `now`, or None.
    `input_only`: an embedding model (its output price, if any, is not billed: 0)."""
    from genai_prices import types as gt  # lazy: import time (genai_prices ~0.2 s)
    from genai_prices.data_snapshot import get_snapshot

    try:
        _, model = get_snapshot().find_provider_model(model_ref, None, provider_id, None)
    except LookupError:
        return None
    windows: list[tuple[Any, Any]] = []
    if isinstance(model.prices, list):
        base = model.prices[0].prices
        for cp in model.prices:  # later entries take precedence (genai-prices semantics)
            c = cp.constraint
            if c is None:
                continue
            if isinstance(c, gt.StartDateConstraint):
                if c.active(now):
                    base, windows = cp.prices, []  # windows listed before a newer base no longer apply
            elif isinstance(c, gt.TimeOfDateConstraint):
                windows.append((c, cp.prices))
    else:
        base = model.prices
    data = _convert(base, input_only)
    if data is None:
        return None
    discounts = []
    for c, mp in windows:
        w = _convert(mp, input_only)
        if w is None:
            continue
        discounts.append(TimeDiscount(
            label="time-of-day price", tz="UTC", start=c.start_time.strftime("%H:%M"),
            end=c.end_time.strftime("%H:%M"), **{k: w[k] for k in ("input", "output", "cache_read", "cache_write") if k in w},
        ))
    return Price(
        **data,
        currency="USD",
        time_discounts=tuple(discounts),
        source=f"genai-prices {genai_version()} ({provider_id}/{model.id})",
        as_of=f"genai-prices {genai_version()} data",
    )
