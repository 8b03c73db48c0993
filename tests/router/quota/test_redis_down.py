"""Redis unreachable: the configured behaviour, with one clear log line, never a crash."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from router.quota.ledger import Ledger, PoolUnavailable
from router.quota.redis_store import RedisStore
from router.quota.spec import load_quota_config
from router.quota.store import LedgerUnavailable
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
