"""Real `quotaroute serve` processes sharing one ledger (two on one SQLite file, three on
one redis-server) in front of a fake OpenAI-compatible vendor on 127.0.0.1:

* 25 concurrent requests on a key whose budget has room for 3: the vendor gets 3;
* kill -9 of a replica with calls in flight, restart past the reservation lifetime:
  the usage counted equals the calls the vendor answered, and the pool stays shut;
* Redis killed mid-run, under `fail_closed` and under `local_fallback`: never a 500,
  calls already answered reach the client, and the pool is never overspent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from router.server.auth import hash_key
from tests.router.quota.conftest import free_port, redis_prefix, redis_url  # noqa: F401 - fixtures
from tests.router.quota.test_redis_down import kill, start_redis

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
TOKEN, ADMIN = "qr-ledger-proc-key-0123456789", "qr-ledger-proc-admin-987654321"
BODY = b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,' \
       b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],' \
       b'"usage":{"prompt_tokens":5000,"completion_tokens":5000,"total_tokens":10000}}'


class Vendor:
    """An OpenAI-compatible vendor on loopback. The user message `sleep:<s>` delays the
    answer; `received` / `answered` count calls (an answer to a proxy that died still counts:
    the vendor billed it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received = 0
        self.answered = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        from aiohttp import web

        async def chat(req: Any) -> Any:
            body = await req.json()
            self.received += 1
            text = body["messages"][-1]["content"]
            if isinstance(text, str) and text.startswith("sleep:"):
                await asyncio.sleep(float(text[6:]))
            self.answered += 1
            return web.Response(body=BODY, content_type="application/json")

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", chat)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def write_config(path: Path, vendor: Vendor, ledger: str, *, key_budget: Decimal | None = None,
                 pool: int | None = None) -> Path:
    key = f"  - id: team\n    hash: \"{hash_key(TOKEN)}\"\n"
    if key_budget is not None:
        key += f"    budget_usd: \"{key_budget}\"\n    budget_period: day\n"
    quotas = ""
    if pool is not None:
        quotas = (f"quotas:\n  - id: up-daily\n    models: [\"openai:gpt-4o-mini\"]\n    on_exhaust: block\n"
                  f"    limits: [{{per: day, requests: {pool}}}]\n")
    path.write_text(
        f"providers:\n  openai:\n    base_url: http://127.0.0.1:{vendor.port}/v1\n    api_key_env: QR_TEST_UPSTREAM\n"
        f"models:\n  include: [openai:gpt-4o-mini]\npolicy:\n  default: cheapest\n{quotas}"
        f"ledger:\n{ledger}"
        f"server:\n  admin_key: \"{hash_key(ADMIN)}\"\n  keys:\n{key}")
    return path


class Proxy:
    def __init__(self, config: Path, home: Path, ttl_s: float | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "QUOTAROUTE_HOME": str(home), "QR_TEST_UPSTREAM": "sk-test-upstream-0123456789"}
        if ttl_s is not None:
            env["QR_TEST_LEDGER_TTL_S"] = str(ttl_s)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--port", str(self.port),
             "--router-factory", "tests.router.server.ledger_factory:build"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode()[-2000:])
            try:
                if httpx2.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx2.HTTPError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("proxy did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


async def chat(client: httpx2.AsyncClient, proxy: Proxy, text: str = "hi") -> httpx2.Response | None:
    try:
        return await client.post(proxy.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TOKEN}"},
                                 json={"model": "auto", "messages": [{"role": "user", "content": text}]})
    except httpx2.HTTPError:
        return None  # the proxy was killed under this request


def pool_left(proxy: Proxy) -> int:
    r = httpx2.get(proxy.url + "/v1/quota", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["pools"]["up-daily"]["remaining_requests"]


def ledger_section(kind: str, tmp_path: Path, request: Any, extra: str = "") -> str:
    if kind == "sqlite":
        return f"  store: sqlite\n  path: {tmp_path / 'ledger.sqlite'}\n"
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return f"  store: redis\n  url: \"{url}?prefix={prefix}\"\n{extra}"


async def reserved_per_call(config: Path, home: Path) -> Decimal:
    """What the router reserves for one `hi` request under this config (same code as serve)."""
    from router.sdk import Router
    from router.types import ChatRequest, Message

    os.environ["QR_TEST_UPSTREAM"] = "sk-test-upstream-0123456789"
    old = os.environ.get("QUOTAROUTE_HOME")
    os.environ["QUOTAROUTE_HOME"] = str(home)
    try:
        r = Router.from_config(str(config))
        plan = await r.aexplain(ChatRequest(model="auto", messages=[Message(role="user", content="hi")]))
        await r.aclose()
    finally:
        if old is None:
            os.environ.pop("QUOTAROUTE_HOME", None)
        else:
            os.environ["QUOTAROUTE_HOME"] = old
    return plan.steps[0].expected_cost_usd


@pytest.mark.parametrize("kind, replicas", [("sqlite", 2), ("redis", 3)])
async def test_25_concurrent_requests_on_a_key_with_room_for_3(kind: str, replicas: int, tmp_path: Path,
                                                               request: Any) -> None:
    vendor = Vendor()
    section = ledger_section(kind, tmp_path, request)
    est = await reserved_per_call(write_config(tmp_path / "probe.yaml", vendor, section), tmp_path)
    # The vendor bills more than was reserved (10,000 tokens), so finished calls never make room.
    config = write_config(tmp_path / "q.yaml", vendor, section, key_budget=est * 3 + est / 2)
    proxies = [Proxy(config, tmp_path) for _ in range(replicas)]
    try:
        async with httpx2.AsyncClient(timeout=60) as c:
            rs = await asyncio.gather(*(chat(c, proxies[i % replicas], "sleep:1") for i in range(25)))
        codes = [r.status_code for r in rs if r is not None]
        assert len(codes) == 25 and codes.count(200) == 3 and codes.count(429) == 22, codes
        assert vendor.received == 3
    finally:
        for p in proxies:
            p.stop()
        vendor.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_kill_9_with_calls_in_flight_then_restart_past_the_reservation_lifetime(kind: str, tmp_path: Path,
                                                                                      request: Any) -> None:
    vendor = Vendor()
    config = write_config(tmp_path / "q.yaml", vendor, ledger_section(kind, tmp_path, request), pool=10)
    ttl = 4.0
    a, b = Proxy(config, tmp_path, ttl), Proxy(config, tmp_path, ttl)
    try:
        async with httpx2.AsyncClient(timeout=60) as c:
            assert [r.status_code for r in await asyncio.gather(chat(c, b), chat(c, b))] == [200, 200]
            in_flight = [asyncio.ensure_future(chat(c, a, "sleep:2")) for _ in range(6)]
            t0 = time.monotonic()
            while vendor.received < 8 and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.02)
            assert vendor.received == 8
            a.kill()  # kill -9 with 6 calls in flight: the vendor still answers (and bills) them
            await asyncio.gather(*in_flight)
            while vendor.answered < 8 and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, ttl + 1.0 - (time.monotonic() - t0)))  # past the reservations' lifetime
            a = Proxy(config, tmp_path, ttl)  # the restart
            assert pool_left(a) == pool_left(b) == 10 - vendor.answered == 2  # counted == answered, not 2 (was 8)
            rs = await asyncio.gather(*(chat(c, p) for p in (a, b, a, b, a)))
            assert sorted(r.status_code for r in rs) == [200, 200, 503, 503, 503]
            assert vendor.answered == 10 and pool_left(b) == 0
    finally:
        a.stop()
        b.stop()
        vendor.close()


@pytest.mark.parametrize("mode", ["fail_closed", "local_fallback"])
async def test_redis_killed_mid_run(mode: str, tmp_path: Path) -> None:
    vendor = Vendor()
    port = free_port()
    redis = start_redis(port, tmp_path)
    section = (f"  store: redis\n  url: \"redis://127.0.0.1:{port}/0?retry_after_s=0.5&socket_timeout_s=1\"\n"
               f"  on_redis_error: {mode}\n  expected_replicas: 3\n")
    config = write_config(tmp_path / "q.yaml", vendor, section, pool=10)
    proxies = [Proxy(config, tmp_path) for _ in range(3)]
    try:
        async with httpx2.AsyncClient(timeout=60) as c:
            first = await asyncio.gather(*(chat(c, proxies[i % 3]) for i in range(4)))
            assert [r.status_code for r in first] == [200] * 4
            slow = [asyncio.ensure_future(chat(c, proxies[i], "sleep:1.5")) for i in range(3)]
            t0 = time.monotonic()
            while vendor.received < 7 and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.02)
            kill(redis)  # Redis dies while 3 calls are at the vendor
            during = await asyncio.gather(*(chat(c, proxies[i % 3]) for i in range(15)))
            slow_codes = [r.status_code for r in await asyncio.gather(*slow)]
            codes = [r.status_code for r in during]
            assert slow_codes == [200, 200, 200]  # answered and billed: returned, not thrown away
            assert 500 not in codes, codes
            if mode == "fail_closed":
                assert codes == [503] * 15
                assert all(r.json()["error"]["code"] == "ledger_unavailable" and int(r.headers["retry-after"]) >= 1
                           for r in during)
                assert vendor.received == 7  # nothing new reached the vendor
            else:
                assert codes.count(200) <= 3 and vendor.received <= 10  # each replica: its share of what was left
                assert set(codes) <= {200, 429, 503}
            redis = start_redis(port, tmp_path)
            await asyncio.sleep(0.6)  # past retry_after_s
            for p in proxies:  # any ledger call replays what was journalled while Redis was down
                pool_left(p)
            assert pool_left(proxies[0]) == 10 - vendor.received  # every answered call is counted once
            after = await asyncio.gather(*(chat(c, proxies[i % 3]) for i in range(12)))
            assert 500 not in [r.status_code for r in after]
            assert vendor.received == 10  # the pool is full: never overspent
    finally:
        for p in proxies:
            p.stop()
        kill(redis)
        vendor.close()
