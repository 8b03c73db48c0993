"""Exact per-token pricing: `cost(usage, price)` is a pure function of its inputs.

All prices are Decimal amounts per 1,000,000 tokens in the price's own currency
(`Price.currency`); `FxRates` converts to USD. Arithmetic is exact Decimal end to
end — nothing is rounded until a caller formats a figure for display
(`quantize_display`).

Usage semantics (see `router.types.Usage`): `input_tokens` *includes* the cache-read
and cache-write tokens; `output_tokens` *includes* the reasoning tokens. So a bill is

    (input - cache_read - cache_write) * input
  + cache_read  * cache_read_price   (None -> input price)
  + cache_write * cache_write_price  (None -> input price)
    (of those, cache_write_1h at cache_write_1h_price: None -> 2x input, Anthropic's 1-hour TTL rate)
  + (output - reasoning) * output
  + reasoning   * reasoning_price    (None -> output price)

Tiers follow the industry "cliff" model (genai-prices, Gemini, Anthropic 1M context):
when the request's total input tokens exceed `above_input_tokens`, *all* tokens of the
request are billed at that tier's rates. Time discounts (DeepSeek off-peak) apply when
`at` falls in one of their windows; `at=None` means list price (no window applies).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router import localtime
from router.errors import UnknownPrice
from router.types import Usage

__all__ = [
    "PRICE_FIELDS",
    "PriceTier",
    "TimeDiscount",
    "Price",
    "FxRates",
    "DEFAULT_FX",
    "Cost",
    "cost",
    "estimate_cost_usd",
    "quantize_display",
]

MILLION = Decimal(1_000_000)
PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dec(v: Any) -> Any:
    """Accept int/str/Decimal; floats go through str() so 0.1 stays 0.1."""
    if v is None or isinstance(v, Decimal):
        return v
    if isinstance(v, bool):
        raise ValueError("a price must be a number, not a boolean")
    if isinstance(v, (int, float)):
        return Decimal(str(v))
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except ArithmeticError:
            raise ValueError(f"not a number: {v!r}") from None
        if not d.is_finite():
            raise ValueError(f"not a finite number: {v!r}")
        return d
    return v


class PriceTier(_Frozen):
    """Rates used when the request's input tokens exceed `above_input_tokens`.
    Fields left None inherit the base price's value."""

    above_input_tokens: int = Field(ge=0)
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    @field_validator(*PRICE_FIELDS, mode="before")
    @classmethod
    def _decimal(cls, v: Any) -> Any:
        return _dec(v)

    @model_validator(mode="after")
    def _not_negative(self) -> "PriceTier":
        _non_negative(self, PRICE_FIELDS)
        return self


def _non_negative(obj: Any, fields: Any) -> None:
    """A negative price (or multiplier) would make an expected cost negative, which fits every cap."""
    for f in fields:
        x = getattr(obj, f)
        if x is not None and x < 0:
            raise ValueError(f"{f} must be >= 0")


class TimeDiscount(_Frozen):
    """A recurring local-time window with a multiplier or replacement prices.

    `start`/`end` are "HH:MM" in `tz` ("UTC", "+08:00" or an IANA name); end "24:00"
    means midnight; end < start wraps past midnight. `days` restricts the window to
    weekdays (of the local date at `at`), e.g. ["sat", "sun"]. `valid_from`/`valid_until`
    bound the policy in absolute time. Replacement prices win over `multiplier`; fields
    left None keep the (tier-resolved) base price times `multiplier` (default 1).
    """

    start: str
    end: str
    tz: str = "UTC"
    days: tuple[int, ...] | None = None
    multiplier: Decimal | None = None
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    label: str = "time discount"
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @field_validator("multiplier", *PRICE_FIELDS, mode="before")
    @classmethod
    def _decimal(cls, v: Any) -> Any:
        return _dec(v)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return localtime.check_hhmm(v)

    @field_validator("tz")
    @classmethod
    def _tz_ok(cls, v: str) -> str:
        localtime.zone(v)  # raises ValueError on an unknown zone
        return v

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        return localtime.weekdays(v)

    @model_validator(mode="after")
    def _something(self) -> "TimeDiscount":
        if self.multiplier is None and all(getattr(self, f) is None for f in PRICE_FIELDS):
            raise ValueError("a time discount needs a multiplier or replacement prices")
        _non_negative(self, ("multiplier", *PRICE_FIELDS))
        return self

    def active(self, at: datetime) -> bool:
        return localtime.in_window(at, self.start, self.end, self.tz, self.days, self.valid_from, self.valid_until)


class Price(_Frozen):
    """A model's list price per 1M tokens in `currency`."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None  # None = same as input
    cache_write: Decimal | None = None  # None = same as input
    reasoning: Decimal | None = None  # None = same as output
    cache_write_1h: Decimal | None = None  # 1-hour-TTL cache writes; None = 2x input
    currency: str = "USD"
    tiers: tuple[PriceTier, ...] = ()
    time_discounts: tuple[TimeDiscount, ...] = ()
    source: str | None = None
    as_of: str | None = None

    @field_validator(*PRICE_FIELDS, "cache_write_1h", mode="before")
    @classmethod
    def _decimal(cls, v: Any) -> Any:
        return _dec(v)

    @field_validator("currency")
    @classmethod
    def _cur(cls, v: str) -> str:
        v = v.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", v):
            raise ValueError(f"expected an ISO 4217 currency code, got {v!r}")
        return v

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, v: Any) -> Any:
        return v.isoformat() if isinstance(v, (date, datetime)) else v

    @field_validator("tiers")
    @classmethod
    def _sorted(cls, v: tuple[PriceTier, ...]) -> tuple[PriceTier, ...]:
        return tuple(sorted(v, key=lambda t: t.above_input_tokens))

    @model_validator(mode="after")
    def _non_negative(self) -> "Price":
        for f in (*PRICE_FIELDS, "cache_write_1h"):
            x = getattr(self, f)
            if x is not None and x < 0:
                raise ValueError(f"{f} price must be >= 0")
        return self

    @property
    def is_free(self) -> bool:
        return self.input == 0 and self.output == 0 and not self.tiers

    def rates(self, input_tokens: int = 0, *, at: datetime | None = None) -> dict[str, Decimal]:
        """The five effective per-1M rates for a request of this size at this time."""
        return self._rates(input_tokens, self.discount_at(at))

    def cache_write_1h_rate(self, rates: dict[str, Decimal]) -> Decimal:
        """The 1-hour-TTL cache write rate, scaled like the input rate by tiers and discounts."""
        if self.cache_write_1h is None or not self.input:
            return rates["input"] * 2
        return self.cache_write_1h * rates["input"] / self.input

    def _rates(self, input_tokens: int, disc: "TimeDiscount | None") -> dict[str, Decimal]:
        r: dict[str, Decimal] = {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read if self.cache_read is not None else self.input,
            "cache_write": self.cache_write if self.cache_write is not None else self.input,
            "reasoning": self.reasoning if self.reasoning is not None else self.output,
        }
        tier = self.tier_for(input_tokens)
        if tier is not None:
            ti = tier.input if tier.input is not None else r["input"]
            to = tier.output if tier.output is not None else r["output"]
            r = {
                "input": ti,
                "output": to,
                "cache_read": tier.cache_read if tier.cache_read is not None else (
                    self.cache_read * ti / self.input if self.cache_read is not None and self.input else ti),
                "cache_write": tier.cache_write if tier.cache_write is not None else (
                    self.cache_write * ti / self.input if self.cache_write is not None and self.input else ti),
                "reasoning": tier.reasoning if tier.reasoning is not None else (
                    self.reasoning if self.reasoning is not None else to),
            }
        if disc is not None:
            mult = disc.multiplier if disc.multiplier is not None else Decimal(1)
            for f in PRICE_FIELDS:
                rep = getattr(disc, f)
                r[f] = rep if rep is not None else r[f] * mult
            # replacement cache/reasoning prices fall back to the replaced input/output
            if disc.cache_read is None and disc.input is not None and self.cache_read is None:
                r["cache_read"] = r["input"]
            if disc.cache_write is None and disc.input is not None and self.cache_write is None:
                r["cache_write"] = r["input"]
            if disc.reasoning is None and disc.output is not None and self.reasoning is None:
                r["reasoning"] = r["output"]
        return r

    def tier_for(self, input_tokens: int) -> PriceTier | None:
        found = None
        for t in self.tiers:
            if input_tokens > t.above_input_tokens:
                found = t
        return found

    def discount_at(self, at: datetime | None) -> TimeDiscount | None:
        if at is None:
            return None
        for d in self.time_discounts:
            if d.active(at):
                return d
        return None


class FxRates(_Frozen):
    """Rates to USD: 1 unit of `currency` = `rates[currency]` USD. Configurable; the
    bundled defaults carry their date and source."""

    rates: dict[str, Decimal] = Field(default_factory=dict)
    as_of: str | None = None
    source: str | None = None

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for k, x in v.items():
            d = _dec(x)
            if not isinstance(d, Decimal) or d <= 0:
                raise ValueError(f"FX rate for {k} must be a positive number")
            out[str(k).upper()] = d
        out["USD"] = Decimal(1)
        return out

    def rate(self, currency: str) -> Decimal:
        cur = currency.upper()
        if cur == "USD":
            return Decimal(1)
        try:
            return self.rates[cur]
        except KeyError:
            raise UnknownPrice(f"no FX rate for {cur} -> USD; set fx.rates.{cur} in your config") from None

    def to_usd(self, amount: Decimal, currency: str) -> Decimal:
        return amount * self.rate(currency)

    def with_rates(self, rates: dict[str, Any], *, as_of: str | None = None, source: str | None = None) -> "FxRates":
        merged = {**self.rates, **rates}
        return FxRates(rates=merged, as_of=as_of or self.as_of, source=source or self.source)


# Bundled defaults (also in router/data/models.yaml `fx:`, which load_catalog reads).
# 1 CNY ~ 0.1404 USD (7.12 CNY/USD), mid-market, rounded; override in config for billing.
DEFAULT_FX = FxRates(
    rates={"CNY": "0.1404", "EUR": "1.16", "GBP": "1.32", "HKD": "0.1286", "JPY": "0.0066"},
    as_of="2026-11-27",
    source="bundled approximate mid-market rates; configure fx.rates for accounting-grade conversion",
)


class Cost(_Frozen):
    """What a call cost. `native` is in `currency`; `usd` = native * fx rate (exact)."""

    usd: Decimal
    native: Decimal
    currency: str
    breakdown: dict[str, Decimal] = Field(default_factory=dict)  # native amount per component
    tier: int | None = None  # above_input_tokens of the applied tier
    discount: str | None = None  # label of the applied time discount
    fx_rate: Decimal = Decimal(1)

    def display(self, places: int = 6) -> str:
        s = f"${quantize_display(self.usd, places)}"
        if self.currency != "USD":
            s += f" ({quantize_display(self.native, places)} {self.currency})"
        return s


def quantize_display(amount: Decimal, places: int = 6) -> Decimal:
    """Round for display only (banker's rounding is avoided: ROUND_HALF_UP)."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def cost(usage: Usage, price: Price, *, at: datetime | None = None, fx: FxRates | None = None) -> Cost:
    """Exact cost of one call (pure). Raises UnknownPrice for a currency without an FX rate."""
    fx = fx or DEFAULT_FX
    cache_read = max(0, usage.cache_read_tokens)
    cache_write = max(0, usage.cache_write_tokens)
    write_1h = min(max(0, usage.cache_write_1h_tokens), cache_write)
    # input includes the cache tokens; if a vendor reported more cache than input we
    # trust the cache counts (bill at least what was reported) and bill 0 uncached.
    uncached = max(0, usage.input_tokens - cache_read - cache_write)
    reasoning = max(0, usage.reasoning_tokens)  # output includes reasoning; bill at least what was reported
    plain_out = max(0, usage.output_tokens - reasoning)
    total_in = uncached + cache_read + cache_write
    disc = price.discount_at(at)
    r = price._rates(total_in, disc)
    parts = {
        "input": Decimal(uncached) * r["input"] / MILLION,
        "cache_read": Decimal(cache_read) * r["cache_read"] / MILLION,
        "cache_write": Decimal(cache_write - write_1h) * r["cache_write"] / MILLION,
        "output": Decimal(plain_out) * r["output"] / MILLION,
        "reasoning": Decimal(reasoning) * r["reasoning"] / MILLION,
    }
    if write_1h:
        parts["cache_write_1h"] = Decimal(write_1h) * price.cache_write_1h_rate(r) / MILLION
    native = sum(parts.values(), Decimal(0))
    rate = fx.rate(price.currency)
    tier = price.tier_for(total_in)
    return Cost.model_construct(  # fields are built right here: skip re-validation (hot path)
        usd=native * rate,
        native=native,
        currency=price.currency,
        breakdown=parts,
        tier=tier.above_input_tokens if tier else None,
        discount=disc.label if disc else None,
        fx_rate=rate,
    )


def estimate_cost_usd(
    price: Price, input_tokens: int, output_tokens: int, *, at: datetime | None = None, fx: FxRates | None = None
) -> Decimal:
    """USD cost of a request of this size with no cache hits (an upper-bound estimate)."""
    return cost(Usage(input_tokens=max(0, input_tokens), output_tokens=max(0, output_tokens)), price, at=at, fx=fx).usd
