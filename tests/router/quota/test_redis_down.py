"""Redis unreachable: the configured behaviour, with one clear log line, never a crash."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from router.errors import PoolUnavailable
from router.quota.ledger import Ledger
from router.quota.redis_store import RedisStore
from router.quota.spec import load_quota_config
from router.errors import LedgerUnavailable
from router.types import Usage
from tests.router.quota.conftest import free_port

NOW = datetime.now(timezone.utc)


def ledger(store):
    pools, budgets = load_quota_config(
        {"quotas": [{"id": "p", "provider": "w", "limits": [{"per": "day", "requests": 10}]}]},
        file="t", include_defaults=False)
    return Ledger(store, pools, budgets)


def dead_url() -> str:
    return f"redis://:s3cretpass@127.0.0.1:{free_port()}/0"  # nothing listens there


@pytest.fixture(params=["resp", "redis-py"])
def transport(request):
    return request.param


async def test_fail_closed_raises_typed_error_and_logs_once(caplog, transport):
    caplog.set_level(logging.ERROR, logger="quotaroute.ledger")
    L = ledger(RedisStore(dead_url(), on_redis_error="fail_closed", socket_timeout_s=0.5, transport=transport))
    for _ in range(2):
        with pytest.raises(LedgerUnavailable) as ei:
            await L.reserve("w:m", tokens=1, now=NOW)
    assert "fail_closed" in str(ei.value) and "s3cretpass" not in str(ei.value)
    lines = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lines) == 1 and "fail_closed" in lines[0] and "s3cretpass" not in lines[0]
    await L.aclose()


async def test_local_fallback_uses_limit_divided_by_replicas(caplog, transport):
    caplog.set_level(logging.WARNING, logger="quotaroute.ledger")
    L = ledger(RedisStore(dead_url(), on_redis_error="local_fallback", expected_replicas=2, socket_timeout_s=0.5,
                          transport=transport))
    granted = []
    for _ in range(5):
        granted.append(await L.reserve("w:m", tokens=1, now=NOW))
    with pytest.raises(PoolUnavailable):
        await L.reserve("w:m", tokens=1, now=NOW)  # 10 / 2 replicas
    s = await L.commit(granted[0], Usage(input_tokens=1), 0, NOW)
    assert s.live
    v = await L.view(NOW)
    assert v.pools["p"].remaining_requests == 5  # the view shows the unscaled limit minus local usage
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("local_fallback" in m for m in msgs) == 1 and any("last known usage) / 2 expected replicas" in m for m in msgs)
    await L.aclose()


def test_bad_option():
    with pytest.raises(ValueError):
        RedisStore("redis://127.0.0.1:1/0", on_redis_error="ignore")  # type: ignore[arg-type]


async def test_script_flush_falls_back_to_eval(redis_url, redis_prefix, transport):
    from router.quota._resp import RespClient

    L = ledger(RedisStore(redis_url, prefix=redis_prefix, transport=transport))
    await L.reserve("w:m", tokens=1, now=NOW)
    c = RespClient(redis_url)
    assert await c.execute("SCRIPT", "FLUSH") == "OK"
    c.close()
    await L.reserve("w:m", tokens=1, now=NOW)  # NOSCRIPT -> EVAL, no error
    assert (await L.view(NOW)).pools["p"].remaining_requests == 8
    await L.aclose()


async def test_redis_coming_back_is_logged_and_used(caplog, tmp_path):
    import shutil
    import subprocess
    import time

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found on PATH (CI installs it)")
    caplog.set_level(logging.WARNING, logger="quotaroute.ledger")
    port = free_port()
    store = RedisStore(f"redis://127.0.0.1:{port}/0", on_redis_error="local_fallback", retry_after_s=0.0,
                       socket_timeout_s=0.5)
    L = ledger(store)
    await L.reserve("w:m", tokens=1, now=NOW)  # down: local
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                await L.reserve("w:m", tokens=1, now=NOW)
                if store._down_since is None:
                    break
            except PoolUnavailable:
                pass
            time.sleep(0.05)
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await L.aclose()
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- Redis dies mid-run, then comes back

def start_redis(port: int, folder) -> "subprocess.Popen":
    """A redis-server that keeps its data across a kill -9 (append-only file, fsync always)."""
    import shutil
    import socket
    import subprocess
    import time

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found on PATH (CI installs it)")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(64).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


def kill(proc) -> None:
    import signal

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def budget_ledger(store, limit: int = 10):
    pools, budgets = load_quota_config(
        {"quotas": [{"id": "p", "provider": "w", "limits": [{"per": "day", "requests": limit}]}],
         "budgets": [{"id": "b", "period": "total", "limit_usd": "1"}]},
        file="t", include_defaults=False)
    return Ledger(store, pools, budgets)


async def test_fail_closed_keeps_answered_calls_and_copies_them_back(tmp_path):
    from decimal import Decimal

    port = free_port()
    proc = start_redis(port, tmp_path)
    try:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5, retry_after_s=0.0)
        L = budget_ledger(store)
        now = datetime.now(timezone.utc)
        r1 = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.01"), now=now)
        r2 = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.01"), now=now)
        kill(proc)  # the vendor answers r1 while Redis is dead; r2 fails unbilled
        s = await L.commit(r1, Usage(input_tokens=4, output_tokens=6), Decimal("0.02"), now)
        assert s.billed_usd == Decimal("0.02")  # no error: the answer goes back to the client
        assert await L.release(r2, now) is True
        assert store.pending == 2
        with pytest.raises(LedgerUnavailable) as ei:  # nothing new is granted while it is down
            await L.reserve("w:m", tokens=10, now=now)
        assert ei.value.retry_after == 0.0
        proc = start_redis(port, tmp_path)
        v = await L.view(now)  # the journal is replayed first
        assert store.pending == 0
        assert v.pools["p"].remaining_requests == 9
        assert v.budgets[0].spent_usd == Decimal("0.02") and v.budgets[0].reserved_usd == 0
        await L.aclose()
    finally:
        kill(proc)


async def test_local_fallback_starts_from_the_last_known_usage(tmp_path):
    from decimal import Decimal

    port = free_port()
    proc = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        replicas = [budget_ledger(RedisStore(url, on_redis_error="local_fallback", expected_replicas=2,
                                             socket_timeout_s=0.5, retry_after_s=60)) for _ in range(2)]
        now = datetime.now(timezone.utc)
        for i in range(6):  # 6 of 10 used before the outage, spread over both replicas
            L = replicas[i % 2]
            r = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.01"), now=now)
            await L.commit(r, Usage(input_tokens=10), Decimal("0.01"), now)
        for L in replicas:  # both have seen recent totals (each reserve returns them)
            await L.view(now)
        kill(proc)
        granted = 0
        for L in replicas:
            for _ in range(5):
                try:
                    r = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.01"), now=now)
                except PoolUnavailable:
                    continue
                granted += 1
                await L.commit(r, Usage(input_tokens=10), Decimal("0.01"), now)
        assert granted == 4  # (10 - 6) // 2 each: within the limit, not 6 + 2 * 5
        proc = start_redis(port, tmp_path)
        for L in replicas:
            L.store._retry_at = 0.0  # retry now rather than after retry_after_s
            await L.view(now)
            assert L.store.pending == 0
        v = await replicas[0].view(now)
        assert v.pools["p"].remaining_requests == 0  # the outage's usage was copied back
        assert v.budgets[0].spent_usd == Decimal("0.10")
        for L in replicas:
            await L.aclose()
    finally:
        kill(proc)
