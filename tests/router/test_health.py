"""Circuit breaker and latency EWMA per deployment."""

from __future__ import annotations

from datetime import timedelta

from router.health import HealthBook, deployment_id
from tests.router.routing_helpers import NOW


def test_breaker_opens_half_opens_and_doubles_cooloff():
    hb = HealthBook(failure_threshold=2, cooloff_s=10, max_cooloff_s=25)
    d = deployment_id("p:m", "K1")
    assert d == "p:m@K1" and deployment_id("p:m", None) == "p:m"
    assert not hb.failure(d, NOW) and hb[d].state(NOW) == "closed"
    assert hb.failure(d, NOW) and hb[d].state(NOW) == "open" and not hb[d].available(NOW)
    t = NOW + timedelta(seconds=10)
    assert hb[d].state(t) == "half_open" and hb[d].available(t)
    assert hb.failure(d, t)  # the probe failed: re-open for twice as long
    assert hb[d].open_until == t + timedelta(seconds=20)
    t2 = t + timedelta(seconds=20)
    hb.failure(d, t2)
    assert hb[d].cooloff_s == 25  # capped
    hb.success(d, 100.0, t2 + timedelta(seconds=30))
    assert hb[d].state(t2) == "closed" and hb[d].consecutive_failures == 0


def test_latency_ewma_and_in_flight():
    hb = HealthBook(ewma_alpha=0.5)
    hb.success("d", 100.0, NOW)
    hb.success("d", 200.0, NOW)
    assert hb["d"].latency_ewma_ms == 150.0
    hb.started("d")
    hb.started("d")
    hb.finished("d")
    assert hb["d"].in_flight == 1
    hb.failure("d", NOW), hb.failure("d", NOW), hb.failure("d", NOW)
    assert hb["d"].in_flight == 0  # reset when the circuit opens (a leaked count cannot block the probe)
    hb.finished("d")
    assert hb["d"].in_flight == 0


def test_bad_keys():
    hb = HealthBook()
    hb.mark_bad("K", "401")
    assert not hb["K"].available(NOW) and hb.get("K").bad_reason == "401"
    hb.clear_bad("K")
    assert hb["K"].available(NOW)
    assert "K" in hb.snapshot() and len(hb) == 1 and list(hb) == ["K"]


def test_defaults_recover_within_ten_seconds():
    hb = HealthBook()
    assert (hb.base_cooloff_s, hb.max_cooloff_s, hb.auth_cooloff_s) == (5.0, 10.0, 60.0)
    for _ in range(3):
        hb.failure("d", NOW)
    t = NOW
    for _ in range(5):  # failed probes: 5 s, then 10 s, never more
        t = hb["d"].open_until
        hb.failure("d", t)
        assert hb["d"].cooloff_s <= 10
    assert HealthBook(cooloff_s=30).max_cooloff_s == 30  # a configured cool-off above the cap is kept


def test_admit_claims_one_probe_for_a_half_open_breaker():
    hb = HealthBook(failure_threshold=1, cooloff_s=5)
    assert hb.admit("d", "K", NOW) is False  # closed: an ordinary call
    hb.failure("d", NOW)
    assert hb.admit("d", "K", NOW) is None  # open
    t = NOW + timedelta(seconds=5)
    assert hb.admit("d", "K", t) is True  # half-open: the probe
    hb.started("d")
    assert hb.admit("d", "K", t) is None and not hb["d"].available(t)  # one at a time
    hb.finished("d")
    hb.success("d", 10.0, t)
    assert hb.admit("d", "K", t) is False and hb["d"].state(t) == "closed"


def test_bad_key_cools_off_doubles_and_a_success_clears_it():
    hb = HealthBook(auth_cooloff_s=60, max_auth_cooloff_s=150)
    hb.mark_bad("K", "authentication failed (HTTP 401)", NOW)
    assert hb["K"].blocked(NOW) and hb.admit("m@K", "K", NOW + timedelta(seconds=59)) is None
    t = NOW + timedelta(seconds=60)
    assert hb.admit("m@K", "K", t) is True and hb["K"].probing  # the one probe
    assert hb.admit("m2@K", "K", t) is None  # the key is being probed: nothing else goes
    hb.finished("m@K")
    hb.mark_bad("K", "authentication failed (HTTP 401)", t)  # the probe failed
    assert hb["K"].bad_until == t + timedelta(seconds=120)
    hb.mark_bad("K", "again", t)
    assert hb["K"].bad_cooloff_s == 150  # capped
    t2 = t + timedelta(seconds=150)
    assert hb.admit("m@K", "K", t2) is True
    hb.started("m@K")
    hb.finished("m@K")
    hb.success("m@K", 5.0, t2)
    assert not hb["K"].bad and hb.bad_entries() == {}


def test_a_pair_marked_bad_leaves_the_key_usable_for_other_models():
    hb = HealthBook()
    hb.mark_bad("m1@K", "model not permitted for this key (HTTP 403)", NOW)
    assert not hb["m1@K"].available(NOW) and hb.admit("m1@K", "K", NOW) is None
    assert hb.admit("m2@K", "K", NOW) is False
    assert list(hb.bad_entries()) == ["m1@K"]
