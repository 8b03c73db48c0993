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
