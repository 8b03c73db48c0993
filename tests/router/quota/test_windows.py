from datetime import datetime, timedelta, timezone

import pytest

from router.quota.windows import ROLLING_BUCKETS, Window, calendar_bounds

UTC = timezone.utc


def u(*a):
    return datetime(*a, tzinfo=UTC)


def test_gemini_day_resets_at_pacific_midnight():
    start, end = calendar_bounds("day", "America/Los_Angeles", u(2026, 11, 29, 7, 59))
    assert (start, end) == (u(2026, 11, 28, 8), u(2026, 11, 29, 8))  # PST = UTC-8
    start, end = calendar_bounds("day", "America/Los_Angeles", u(2026, 11, 29, 8, 0))
    assert start == u(2026, 11, 29, 8)


def test_dst_spring_forward_day_is_23_hours():
    start, end = calendar_bounds("day", "America/Los_Angeles", u(2026, 3, 8, 12))
    assert start == u(2026, 3, 8, 8)  # midnight PST
    assert end == u(2026, 3, 9, 7)  # midnight PDT
    assert end - start == timedelta(hours=23)


def test_dst_fall_back_day_is_25_hours():
    start, end = calendar_bounds("day", "America/Los_Angeles", u(2026, 11, 1, 12))
    assert start == u(2026, 11, 1, 7)  # midnight PDT
    assert end == u(2026, 11, 2, 8)  # midnight PST
    assert end - start == timedelta(hours=25)


def test_hour_window_across_spring_forward():
    # 01:30 PST -> the next local hour is 03:00 PDT, one real hour later
    start, end = calendar_bounds("hour", "America/Los_Angeles", u(2026, 3, 8, 9, 30))
    assert (start, end) == (u(2026, 3, 8, 9), u(2026, 3, 8, 10))


def test_shanghai_and_utc_days_and_months():
    assert calendar_bounds("day", "Asia/Shanghai", u(2026, 11, 29, 15, 59))[1] == u(2026, 11, 29, 16)
    assert calendar_bounds("day", "UTC", u(2026, 11, 29, 23, 59, 59)) == (u(2026, 11, 29), u(2026, 11, 30))
    s, e = calendar_bounds("month", "America/Los_Angeles", u(2026, 11, 15))
    assert (s, e) == (u(2026, 11, 1, 7), u(2026, 12, 1, 8))  # month starts in PDT, ends in PST
    assert calendar_bounds("month", "UTC", u(2026, 12, 31, 23))[1] == u(2027, 1, 1)


def test_calendar_slot_and_cache():
    w = Window("day", "calendar", "America/Los_Angeles")
    a = w.slot(u(2026, 3, 8, 12).timestamp())
    b = w.slot(u(2026, 3, 9, 6, 59).timestamp())
    c = w.slot(u(2026, 3, 9, 7, 0).timestamp())
    assert a == b and a.span == (a.charge,)
    assert a.resets_at == u(2026, 3, 9, 7).timestamp()
    assert c.charge != a.charge


def test_rolling_minute_counts_every_bucket_touching_the_last_minute():
    w = Window("minute", "rolling")
    t0 = u(2026, 11, 29, 12, 0, 3).timestamp()
    s0 = w.slot(t0)
    later = w.slot(t0 + 59)
    assert s0.charge in later.span  # 59 s later: still counted
    gone = w.slot(t0 + 60 + 60 / ROLLING_BUCKETS)
    assert s0.charge not in gone.span  # at most one bucket (6 s) late
    assert w.bucket_drop_time(s0.charge) <= t0 + 60 + 60 / ROLLING_BUCKETS


def test_unknown_period():
    with pytest.raises(ValueError):
        calendar_bounds("week", "UTC", u(2026, 1, 1))
