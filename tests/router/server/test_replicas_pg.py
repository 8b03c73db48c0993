"""Three real `quotaroute serve` replicas sharing one redis-server (the ledger) and one
PostgreSQL server (runtime keys and the spend log), in front of a fake OpenAI-compatible
vendor on 127.0.0.1:

* a key created through one replica's admin API works on the other two within the
  poll interval (0.25 s by default; bounded loosely here: the box is shared);
* 50 concurrent requests spread over the replicas: a runtime key's budget with room for
  3 calls admits 3, and its rpm of 10 admits 10;
* after a graceful stop, `quotaroute spend` (read from PostgreSQL) shows every request
  exactly once, and the key's cost is exactly what the vendor billed for the calls made.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.router.quota.conftest import redis_prefix, redis_url  # noqa: F401 - fixtures (a real redis-server)
from tests.router.server.pgserver import pg_dsn, pg_server  # noqa: F401 - fixtures (a real PostgreSQL)
from tests.router.server.test_ledger_processes import ADMIN, ROOT, Proxy, Vendor, reserved_per_call, write_config

pytestmark = pytest.mark.slow

AH = {"authorization": f"Bearer {ADMIN}"}


async def _chat(c: httpx2.AsyncClient, proxy: Proxy, token: str, text: str = "hi") -> int | str:
    """The status, or the error code of a 429 (which limit refused it)."""
    r = await c.post(proxy.url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                     json={"model": "auto", "messages": [{"role": "user", "content": text}]})
    return r.json()["error"]["code"] if r.status_code == 429 else r.status_code


def _spend(env: dict[str, str], *argv: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "router.cli", "spend", "--dsn-env", "QR_TEST_PG_DSN", "--json",
                          *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_three_replicas_share_runtime_keys_budgets_rpm_and_spend(tmp_path: Path, pg_dsn: str,
                                                                      redis_url: str, redis_prefix: str,
                                                                      monkeypatch: Any) -> None:
    monkeypatch.setenv("QR_TEST_PG_DSN", pg_dsn)
    vendor = Vendor()
    ledger = f"  store: redis\n  url: \"{redis_url}?prefix={redis_prefix}\"\n"
    est = await reserved_per_call(write_config(tmp_path / "probe.yaml", vendor, ledger), tmp_path)
    config = write_config(tmp_path / "q.yaml", vendor, ledger)
    text = config.read_text().replace("server:\n", "server:\n  store: postgres\n  dsn_env: QR_TEST_PG_DSN\n")
    config.write_text(text)
    proxies = [Proxy(config, tmp_path / f"home{i}") for i in range(3)]
    try:
        async with httpx2.AsyncClient(timeout=60) as c:
            # a key created on replica 0 works on replicas 1 and 2 within the poll interval
            r = await c.post(proxies[0].url + "/admin/keys", headers=AH, json={"id": "probe"})
            assert r.status_code == 201, r.text
            probe, t0 = r.json()["key"], time.monotonic()
            seen: dict[int, float] = {}
            while len(seen) < 2 and time.monotonic() - t0 < 10:
                for i in (1, 2):
                    if i not in seen and await _chat(c, proxies[i], probe) == 200:
                        seen[i] = time.monotonic() - t0
                await asyncio.sleep(0.1)  # unknown-key tries count against the address (20 a minute)
            assert len(seen) == 2 and max(seen.values()) < 3.0, seen  # 0.25 s poll; loose bound on a busy box
            print(f"key visible on the other replicas after {max(seen.values()):.2f} s")

            # budget: room for 3 calls (the vendor bills more than reserved, so answers never make room)
            r = await c.post(proxies[1].url + "/admin/keys", headers=AH,
                             json={"id": "budget", "budget_usd": str(est * 3 + est / 2), "budget_period": "day"})
            budget_key = r.json()["key"]
            r = await c.post(proxies[2].url + "/admin/keys", headers=AH, json={"id": "rpm", "rpm": 10})
            rpm_key = r.json()["key"]
            await asyncio.sleep(1.5)  # every replica has both keys
            before = vendor.received
            codes = await asyncio.gather(*(_chat(c, proxies[i % 3], budget_key, "sleep:1") for i in range(50)))
            assert codes.count(200) == 3 and codes.count("insufficient_quota") == 47, codes
            assert vendor.received - before == 3
            codes = await asyncio.gather(*(_chat(c, proxies[i % 3], rpm_key) for i in range(50)))
            assert codes.count(200) == 10 and codes.count("rate_limit_exceeded") == 40, codes
    finally:
        for p in proxies:
            p.stop()  # graceful: each replica drains its spend queue into PostgreSQL
        vendor.close()
    env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path)}
    rows = {r["key"]: r for r in _spend(env, "--by", "key")["rows"]}
    assert (rows["probe"]["requests"], rows["probe"]["errors"]) == (2, 0)
    assert (rows["budget"]["requests"], rows["budget"]["errors"]) == (50, 47)
    assert (rows["rpm"]["requests"], rows["rpm"]["errors"]) == (50, 40)
    one = Decimal(rows["probe"]["cost_usd"]) / 2
    assert one > 0 and Decimal(rows["budget"]["cost_usd"]) == one * 3 and Decimal(rows["rpm"]["cost_usd"]) == one * 10
    total = _spend(env, "--by", "day")
    assert sum(r["requests"] for r in total["rows"]) == 102
