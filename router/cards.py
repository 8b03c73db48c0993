"""Per-card routing data computed once: capabilities, context, regions, task
quality, and USD-per-token rates (linear prices precomputed; tiered or
time-discounted prices cached per tier and per minute)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from router.policies import compile_globs

__all__ = ["CardInfo", "Candidates", "card_info", "prepare", "globs"]

_ZERO = Decimal(0)
_MILLION = Decimal(1_000_000)


class CardInfo:
    __slots__ = ("card", "id", "provider", "caps", "ctx", "max_out", "regions", "tq", "price", "rate_in",
                 "rate_out", "local", "cn", "qdefault", "fx", "fxrate", "_rates", "_disc", "thinks",
                 "_bounds", "unpriced")

    def __init__(self, card: Any, fx: Any = None) -> None:
        self.card = card
        self.id = card.id
        self.provider = card.provider
        self.caps = frozenset(card.capabilities or ())
        self.ctx = card.context_window or 0
        self.max_out = getattr(card, "max_output", None) or 0
        self.regions = frozenset(getattr(card, "regions", None) or ())
        self.tq = dict(getattr(card, "task_quality", None) or {})
        self.local = "local" in self.regions
        self.cn = "cn" in self.regions
        self.thinks = "reasoning" in self.caps  # bills hidden reasoning tokens on hard tasks
        qf = getattr(card, "quality", None)
        self.qdefault = float(qf(None)) if callable(qf) else 0.5
        self.fx = fx
        self.price = price = card.price
        self.unpriced = price is None and not self.local  # never routed as if $0 (local models cost 0)
        self.rate_in: Decimal | None = None
        self.rate_out: Decimal | None = None
        self.fxrate = _fx_rate(price.currency, fx) if price is not None else None
        self._rates: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}
        self._disc: tuple[Any, Any] = (None, None)
        # minutes in which a time discount starts/stops being valid (its active state can
        # change inside them, so the per-minute cache is bypassed there)
        self._bounds = frozenset(
            b.replace(second=0, microsecond=0, tzinfo=b.tzinfo or timezone.utc)
            for d in (price.time_discounts if price is not None else ())
            for b in (d.valid_from, d.valid_until) if b is not None)
        if price is not None and self.fxrate is not None and not price.tiers and not price.time_discounts:
            # linear price: USD per token, computed once
            self.rate_in = price.input * self.fxrate / _MILLION
            self.rate_out = price.output * self.fxrate / _MILLION
            if self.rate_in < 0 or self.rate_out < 0:  # expected costs must never be negative
                raise AssertionError(f"negative USD rate for {self.id} (price or FX rate < 0)")

    def slow_cost(self, din: Decimal, dout: Decimal, in_tok: int, now: datetime,
                  minute: datetime | None = None) -> Decimal | None:
        """Tiered and/or time-discounted prices: per-(tier, discount) rates, cached; the
        active discount is cached per minute (windows are HH:MM granular)."""
        price = self.price
        if price is None or self.fxrate is None:
            return _ZERO if (price is None and self.local) else None
        tier = -1
        for i, t in enumerate(price.tiers):
            if in_tok > t.above_input_tokens:
                tier = i
        di = -1
        if price.time_discounts:
            key = minute if minute is not None else now.replace(second=0, microsecond=0)
            if self._bounds and key in self._bounds:  # a validity bound inside this minute: no caching
                key = now
            if self._disc[0] != key:
                disc = price.discount_at(now)
                self._disc = (key, -1 if disc is None else next(
                    i for i, d in enumerate(price.time_discounts) if d is disc))
            di = self._disc[1]
        rk = (tier, di)
        r = self._rates.get(rk)
        if r is None:
            rates = price.rates(in_tok, at=now)
            r = self._rates[rk] = (rates["input"] * self.fxrate / _MILLION, rates["output"] * self.fxrate / _MILLION)
        return din * r[0] + dout * r[1]


def _fx_rate(currency: str, fx: Any) -> Decimal | None:
    if currency == "USD":
        return Decimal(1)
    try:
        if fx is None:
            from router.pricing import DEFAULT_FX as fx
        return fx.rate(currency)
    except Exception:
        return None


_CACHE: dict[str, CardInfo] = {}


def card_info(card: Any, fx: Any = None) -> CardInfo:
    info = _CACHE.get(card.id)
    if info is None or info.card is not card or info.fx is not fx:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        info = _CACHE[card.id] = CardInfo(card, fx)
    return info


class Candidates(tuple):  # type: ignore[type-arg]
    """A tuple of model cards with their routing data precomputed (`prepare()`); pass
    it to `choose()` instead of a plain list to skip the per-call cache lookups."""

    infos: tuple[CardInfo, ...]
    fx: Any
    static_cache: dict[Any, Any]


def prepare(cards: Sequence[Any], fx: Any = None) -> Candidates:
    c = Candidates(cards)
    c.infos = tuple(CardInfo(x, fx) for x in cards)
    c.fx = fx
    c.static_cache = {}  # engine memo of request-size-independent filters
    return c


_GLOBS: dict[tuple[str, ...], Any] = {}


def globs(patterns: tuple[str, ...]) -> Any:
    g = _GLOBS.get(patterns)
    if g is None:
        g = _GLOBS[patterns] = compile_globs(patterns)
    return g


# ------------------------------------------------------------------ choose


_CardInfo = CardInfo
