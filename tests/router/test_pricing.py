"""Hand-computed bills: every expected figure below is worked out in the comment."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from router.errors import UnknownPrice
from router.pricing import DEFAULT_FX, Cost, FxRates, Price, TimeDiscount, cost, estimate_cost_usd, quantize_display
from router.types import Usage


def test_openai_with_cached_tokens() -> None:
    # gpt-4.1-mini: 0.40 in, 0.10 cached, 1.60 out per 1M.
    p = Price(input="0.4", cache_read="0.1", output="1.6")
    u = Usage(input_tokens=10_000, cache_read_tokens=6_000, output_tokens=2_000)
    c = cost(u, p)
    # 4,000 uncached * 0.4/1M = 0.0016; 6,000 * 0.1/1M = 0.0006; 2,000 * 1.6/1M = 0.0032
    assert c.usd == D("0.0054")
    assert c.breakdown["input"] == D("0.0016")
    assert c.breakdown["cache_read"] == D("0.0006")
    assert c.breakdown["output"] == D("0.0032")
    assert c.currency == "USD" and c.native == c.usd


def test_anthropic_cache_write_and_read() -> None:
    # claude-sonnet: 3 in, 0.30 cache read, 3.75 cache write (5m), 15 out.
    p = Price(input=3, cache_read="0.3", cache_write="3.75", output=15)
    u = Usage(input_tokens=50_000, cache_read_tokens=20_000, cache_write_tokens=25_000, output_tokens=1_000)
    c = cost(u, p)
    # uncached 5,000*3 = 15,000; read 20,000*0.3 = 6,000; write 25,000*3.75 = 93,750; out 1,000*15 = 15,000
    # total 129,750 / 1M = 0.12975
    assert c.usd == D("0.12975")
    assert c.breakdown["cache_write"] == D("0.09375")


def test_reasoning_price_defaults_to_output_and_can_differ() -> None:
    u = Usage(input_tokens=0, output_tokens=1_000, reasoning_tokens=400)
    assert cost(u, Price(input=1, output=10)).usd == D("0.01")
    # 600 * 10 + 400 * 20 = 14,000 / 1M
    assert cost(u, Price(input=1, output=10, reasoning=20)).usd == D("0.014")


def test_gemini_above_tier_threshold_bills_everything_at_tier() -> None:
    # gemini-2.5-pro: <=200k: 1.25/0.125/10; >200k: 2.5/0.25/15
    p = Price(input="1.25", cache_read="0.125", output=10,
              tiers=[{"above_input_tokens": 200_000, "input": "2.5", "cache_read": "0.25", "output": 15}])
    below = cost(Usage(input_tokens=200_000, output_tokens=1_000), p)
    assert below.usd == D("0.26")  # 200,000*1.25 + 1,000*10 = 260,000 / 1M
    assert below.tier is None
    above = cost(Usage(input_tokens=250_000, cache_read_tokens=50_000, output_tokens=1_000), p)
    # 200,000*2.5 + 50,000*0.25 + 1,000*15 = 500,000 + 12,500 + 15,000 = 527,500 / 1M
    assert above.usd == D("0.5275")
    assert above.tier == 200_000


def test_tier_without_cache_price_scales_base_cache_ratio() -> None:
    p = Price(input=4, cache_read="0.8", output=16, tiers=[{"above_input_tokens": 32_000, "input": 6, "output": 24}])
    r = p.rates(40_000)
    assert r["cache_read"] == D("1.2")  # 20% of the tier's input price, like the base


DEEPSEEK = Price(
    currency="CNY", input=2, cache_read="0.04", output=8,
    time_discounts=[
        {"label": "off-peak", "tz": "+08:00", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00",
         "end": "24:00", "input": 1, "cache_read": "0.02", "output": 4, "valid_from": "2026-08-16T16:00:00Z"},
        {"label": "off-peak", "tz": "+08:00", "days": ["sat", "sun"], "start": "00:00", "end": "24:00",
         "multiplier": "0.5", "valid_from": "2026-08-16T16:00:00Z"},
    ],
)


def test_deepseek_off_peak_and_peak() -> None:
    u = Usage(input_tokens=100_000, cache_read_tokens=80_000, output_tokens=10_000)
    fx = FxRates(rates={"CNY": "0.14"})
    # peak: 20,000*2 + 80,000*0.04 + 10,000*8 = 40,000 + 3,200 + 80,000 = 123,200 / 1M = 0.1232 CNY
    peak = cost(u, DEEPSEEK, at=datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc), fx=fx)  # Wed 10:00 Beijing
    assert peak.native == D("0.1232") and peak.discount is None
    assert peak.usd == D("0.017248")  # 0.1232 * 0.14
    # off-peak Wed 20:00 Beijing = 12:00 UTC: 20,000*1 + 80,000*0.02 + 10,000*4 = 61,600 / 1M
    off = cost(u, DEEPSEEK, at=datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc), fx=fx)
    assert off.native == D("0.0616") and off.discount == "off-peak"
    # Saturday 10:00 Beijing (02:00 UTC): multiplier 0.5 on everything
    sat = cost(u, DEEPSEEK, at=datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc), fx=fx)
    assert sat.native == D("0.0616")
    # before the policy started: list (peak) price even in the evening
    old = cost(u, DEEPSEEK, at=datetime(2026, 8, 12, 12, 0, tzinfo=timezone.utc), fx=fx)
    assert old.native == D("0.1232")
    # at=None -> list price (conservative)
    assert cost(u, DEEPSEEK, fx=fx).native == D("0.1232")


def test_window_wrapping_midnight_utc() -> None:
    # the 2025 DeepSeek policy: off-peak 16:30-00:30 UTC, half price
    p = Price(input=1, output=1, time_discounts=[{"start": "16:30", "end": "00:30", "multiplier": "0.5"}])
    u = Usage(input_tokens=1_000_000)
    assert cost(u, p, at=datetime(2026, 1, 1, 23, 59, tzinfo=timezone.utc)).usd == D("0.5")
    assert cost(u, p, at=datetime(2026, 1, 1, 0, 15, tzinfo=timezone.utc)).usd == D("0.5")
    assert cost(u, p, at=datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)).usd == D("1")
    assert cost(u, p, at=datetime(2026, 1, 1, 16, 29)).usd == D("1")  # naive = UTC


def test_cny_vendor_converted_to_usd() -> None:
    # qwen3-coder-plus (Beijing): 4 CNY in / 16 CNY out per 1M; 1 CNY = 0.1404 USD (bundled)
    p = Price(currency="CNY", input=4, output=16)
    c = cost(Usage(input_tokens=30_000, output_tokens=5_000), p)
    # 30,000*4 + 5,000*16 = 200,000 / 1M = 0.2 CNY; * 0.1404 = 0.02808 USD
    assert c.native == D("0.2") and c.currency == "CNY"
    assert c.usd == D("0.02808") and c.fx_rate == D("0.1404")
    assert "CNY" in c.display()


def test_unknown_currency_is_an_error_not_zero() -> None:
    p = Price(currency="KRW", input=1000, output=1000)
    with pytest.raises(UnknownPrice, match="KRW"):
        cost(Usage(input_tokens=10), p)
    fx = DEFAULT_FX.with_rates({"KRW": "0.00072"})
    assert cost(Usage(input_tokens=1_000_000), p, fx=fx).usd == D("0.72")


def test_estimate_cost_usd_and_exactness() -> None:
    p = Price(input="0.1", output="0.3")
    total = sum((estimate_cost_usd(p, 1, 1) for _ in range(10)), D(0))
    assert total == D("0.000004")  # floats would give 4.000000000000001e-06
    assert isinstance(total, D)
    assert quantize_display(D("0.123456789"), 4) == D("0.1235")


def test_over_reported_cache_never_goes_negative() -> None:
    c = cost(Usage(input_tokens=10, cache_read_tokens=30), Price(input=1, cache_read="0.5", output=1))
    assert c.breakdown["input"] == 0 and c.breakdown["cache_read"] == D("0.000015")


@pytest.mark.parametrize("bad", [
    {"input": -1, "output": 1},
    {"input": "abc", "output": 1},
    {"input": 1, "output": 1, "currency": "dollars"},
    {"input": 1, "output": 1, "time_discounts": [{"start": "25:00", "end": "01:00", "multiplier": 1}]},
    {"input": 1, "output": 1, "time_discounts": [{"start": "01:00", "end": "02:00"}]},
    {"input": 1, "output": 1, "time_discounts": [{"start": "01:00", "end": "02:00", "multiplier": 1, "tz": "Mars/Base"}]},
    {"input": 1, "output": 1, "unknown_field": 2},
])
def test_malformed_prices_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Price.model_validate(bad)


def test_iana_timezone_window() -> None:
    td = TimeDiscount(start="09:00", end="17:00", tz="Asia/Shanghai", multiplier=2)
    assert td.active(datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc))  # 10:00 Beijing
    assert not td.active(datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))


def test_cost_is_a_value() -> None:
    c = cost(Usage(input_tokens=1), Price(input=1, output=1))
    assert isinstance(c, Cost) and c.usd == D("0.000001")


def test_bundled_fx_matches_catalog_yaml() -> None:
    from router.catalog import load_catalog

    cat = load_catalog(use_genai=False)
    assert cat.fx.rates == DEFAULT_FX.rates and cat.fx.as_of == DEFAULT_FX.as_of
    assert load_catalog(use_genai=False, fx={"CNY": "0.139"}).fx.rate("CNY") == D("0.139")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_tok = st.integers(min_value=0, max_value=5_000_000)


@settings(max_examples=60, deadline=None)
@given(a=_tok, b=_tok, c=_tok, d=_tok, e=_tok)
def test_flat_price_bills_are_additive_and_exact(a: int, b: int, c: int, d: int, e: int) -> None:
    p = Price(input="0.15", cache_read="0.075", cache_write="0.1875", output="0.6", reasoning="0.9", currency="CNY")
    u1 = Usage(input_tokens=a + b + c, cache_read_tokens=b, cache_write_tokens=c, output_tokens=d + e,
               reasoning_tokens=e)
    u2 = Usage(input_tokens=a, output_tokens=d)
    assert cost(u1 + u2, p).native == cost(u1, p).native + cost(u2, p).native
    assert cost(u1, p).usd == cost(u1, p).native * DEFAULT_FX.rate("CNY")
    assert cost(u1, p).native >= 0


def test_tiers_and_time_discounts_refuse_negative_prices() -> None:
    """A negative price or multiplier would make an expected cost negative (fits every cap)."""
    import pytest
    from pydantic import ValidationError

    from router.pricing import PriceTier, TimeDiscount

    with pytest.raises(ValidationError, match="multiplier must be >= 0"):
        TimeDiscount(start="00:00", end="08:00", multiplier=-1)
    with pytest.raises(ValidationError, match="output must be >= 0"):
        TimeDiscount(start="00:00", end="08:00", output="-0.5")
    with pytest.raises(ValidationError, match="input must be >= 0"):
        PriceTier(above_input_tokens=200_000, input=-1)


def test_one_hour_cache_writes_have_their_own_rate() -> None:
    u = Usage(input_tokens=2050, cache_write_tokens=2000, cache_write_1h_tokens=1500, output_tokens=100)
    explicit = Price(input="3", output="15", cache_write="3.75", cache_write_1h="6")
    c = cost(u, explicit)
    assert c.usd == D("0.012525")  # 50x3 + 500x3.75 + 1500x6 + 100x15, per 1M
    assert c.breakdown["cache_write_1h"] == D("0.009")
    assert cost(u, Price(input="3", output="15", cache_write="3.75")).usd == D("0.012525")  # default: 2x input
    tiered = Price(input="3", output="15", cache_write="3.75", cache_write_1h="6",
                   tiers=[{"above_input_tokens": 1000, "input": "6", "output": "22.5"}])
    assert cost(u, tiered).breakdown["cache_write_1h"] == D("0.018")  # scales with the tier's input rate
    assert "cache_write_1h" not in cost(Usage(input_tokens=10, output_tokens=1), explicit).breakdown


def test_bundled_claude_prices_carry_the_one_hour_write_rate() -> None:
    from router.catalog import load_catalog

    p = load_catalog().get("anthropic:claude-sonnet-4-6").price
    assert p is not None and p.cache_write_1h == p.input * 2 and p.cache_write == p.input * D("1.25")
    assert p.cache_read == p.input / 10
