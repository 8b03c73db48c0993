"""Rate-limit header parsing: OpenAI, Anthropic, OpenRouter, Retry-After."""

from datetime import datetime, timezone

import httpx

from providers.ratelimit import parse_duration, parse_rate_limits, parse_reset, retry_after_seconds, suggested_wait

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=timezone.utc).timestamp()


def test_go_durations():
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("12ms") == 0.012
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("2m59.56s") == 179.56
    assert parse_duration("1.5") == 1.5
    assert parse_duration("soon") is None
    assert parse_duration("") is None


def test_openai_headers():
    # header set as sent by api.openai.com (openai rate-limit guide)
    h = httpx.Headers({
        "x-ratelimit-limit-requests": "60", "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "59", "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
    })
    s = parse_rate_limits(h, NOW)
    assert (s.limit_requests, s.remaining_requests, s.limit_tokens, s.remaining_tokens) == (60, 59, 150000, 149984)
    assert s.reset_requests_s == 1.0 and s.reset_tokens_s == 360.0
    assert s.retry_after_s is None and s.observed_at == NOW


def test_anthropic_headers_rfc3339():
    h = {
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-11-29T08:00:01Z",
        "anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-input-tokens-reset": "2026-11-29T08:00:02Z",
        "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "1000",
        "anthropic-ratelimit-output-tokens-reset": "2026-11-29T08:00:30+00:00",
        "retry-after": "7",
    }
    s = parse_rate_limits(h, NOW)
    assert (s.limit_requests, s.remaining_requests, s.reset_requests_s) == (50, 49, 1.0)
    # output family is the more constraining one (1000/8000 < 29000/30000)
    assert (s.limit_tokens, s.remaining_tokens, s.reset_tokens_s) == (8000, 1000, 30.0)
    assert s.retry_after_s == 7.0


def test_anthropic_combined_tokens_preferred():
    h = {"anthropic-ratelimit-tokens-limit": "100", "anthropic-ratelimit-tokens-remaining": "0",
         "anthropic-ratelimit-tokens-reset": "2026-11-29T08:01:00Z",
         "anthropic-ratelimit-input-tokens-remaining": "5"}
    s = parse_rate_limits(h, NOW)
    assert (s.limit_tokens, s.remaining_tokens, s.reset_tokens_s) == (100, 0, 60.0)
    assert suggested_wait(s) == 60.0


def test_openrouter_ms_epoch_reset():
    h = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int((NOW + 12.5) * 1000))}
    s = parse_rate_limits(h, NOW)
    assert (s.limit_requests, s.remaining_requests) == (20, 0)
    assert abs(s.reset_requests_s - 12.5) < 1e-6
    assert suggested_wait(s) == s.reset_requests_s


def test_reset_forms():
    assert parse_reset(str(NOW + 5), NOW) == 5.0  # epoch seconds
    assert parse_reset("20", NOW) == 20.0
    assert parse_reset("2026-11-29T07:00:00Z", NOW) == 0.0  # past clamps to 0
    assert parse_reset("garbage", NOW) is None


def test_retry_after_variants():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "Sun, 29 Nov 2026 08:00:10 GMT"}, NOW) == 10.0
    assert retry_after_seconds({"retry-after": "nonsense"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_empty_and_garbage_headers():
    s = parse_rate_limits({"x-ratelimit-limit-requests": "lots", "content-type": "application/json"}, NOW)
    assert s.is_empty()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = ["x-ratelimit-reset-tokens", "x-ratelimit-limit-requests", "anthropic-ratelimit-tokens-reset",
          "anthropic-ratelimit-output-tokens-remaining", "X-RateLimit-Reset", "retry-after", "retry-after-ms"]


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(_NAMES), st.text(max_size=30), max_size=7))
def test_garbage_header_values_never_raise(h):
    s = parse_rate_limits(h, NOW)
    for v in (s.reset_tokens_s, s.reset_requests_s, s.retry_after_s):
        assert v is None or v >= 0
    suggested_wait(s)
