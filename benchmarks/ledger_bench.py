"""Ledger benchmark: reserve+commit throughput and latency per store, and the
multi-process overspend count (must be 0).

    python benchmarks/ledger_bench.py [--ops 5000] [--concurrency 32] [--json]

Each op is one `reserve()` + one `commit()` on a model whose pools are a typical
free tier (rolling RPM, rolling TPM, calendar RPD in America/Los_Angeles) plus a
hard monthly budget and a soft per-key daily budget. Stores: memory, SQLite (a temp
file, WAL, synchronous=NORMAL) and Redis (its own redis-server on a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from router.errors import BudgetExceeded, PoolUnavailable
from router.quota._resp import RespClient
from router.quota.ledger import Ledger
from router.quota.spec import load_quota_config
from router.quota.stores import build_store
from router.types import Usage

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["main", "bench_store", "overspend"]

POOLS = {
    "quotas": [{"id": "bench-free", "provider": "bench", "free": True, "limits": [
        {"per": "minute", "requests": 10**9}, {"per": "minute", "tokens": 10**12},
        {"per": "day", "requests": 10**9, "reset": "calendar", "tz": "America/Los_Angeles"}]}],
    "budgets": [{"id": "monthly", "period": "month", "limit_usd": "1000000"},
                {"id": "per-key", "scope": "key", "match": "k*", "period": "day", "limit_usd": "1000000", "hard": False}],
}


def _ledger(url: str, prefix: str = "bench:", spec: dict[str, Any] = POOLS):  # -> Ledger
    pools, budgets = load_quota_config(spec, file="bench", include_defaults=False)
    return Ledger(build_store(url, **({"prefix": prefix} if url.startswith("redis") else {})), pools, budgets)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis() -> tuple[subprocess.Popen | None, str | None]:
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(64).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None, None


async def _redis_cpu(url: str | None) -> float:
    if not url or not url.startswith("redis"):
        return 0.0
    c = RespClient(url)
    info = (await c.execute("INFO", "cpu")).decode()
    c.close()
    vals = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(vals["used_cpu_user"]) + float(vals["used_cpu_sys"])


async def bench_store(url: str, ops: int, concurrency: int, transport: str = "resp") -> dict[str, Any]:
    L = _ledger(url, prefix=f"bench{time.monotonic_ns()}:")
    if url.startswith("redis"):
        L.store.transport = transport
    usage = Usage(input_tokens=300, output_tokens=200)
    cost = Decimal("0.000123")
    scope = {"key": "k1"}
    for _ in range(50):  # warm-up (connections, scripts, caches)
        now = datetime.now(timezone.utc)
        r = await L.reserve("bench:m", tokens=500, cost_usd=cost, scope=scope, now=now)
        await L.commit(r, usage, cost, now)
    lat: list[float] = []
    t0 = time.perf_counter()
    for _ in range(ops):
        s = time.perf_counter()
        now = datetime.now(timezone.utc)
        r = await L.reserve("bench:m", tokens=500, cost_usd=cost, scope=scope, now=now)
        await L.commit(r, usage, cost, now)
        lat.append(time.perf_counter() - s)
    seq = ops / (time.perf_counter() - t0)

    async def worker(n: int) -> None:
        for _ in range(n):
            now = datetime.now(timezone.utc)
            r = await L.reserve("bench:m", tokens=500, cost_usd=cost, scope=scope, now=now)
            await L.commit(r, usage, cost, now)

    t0, cpu0, srv0 = time.perf_counter(), time.process_time(), await _redis_cpu(url)
    await asyncio.gather(*(worker(ops // concurrency) for _ in range(concurrency)))
    n_conc = ops // concurrency * concurrency
    conc = n_conc / (time.perf_counter() - t0)
    cpu_us = (time.process_time() - cpu0) / n_conc * 1e6
    srv_us = (await _redis_cpu(url) - srv0) / n_conc * 1e6
    await L.aclose()
    lat.sort()
    return {
        "ops_per_s_sequential": round(seq),
        "ops_per_s_concurrent": round(conc),
        "client_cpu_us_per_op": round(cpu_us, 1),
        "ops_per_client_cpu_s": round(1e6 / cpu_us) if cpu_us else None,
        "redis_server_cpu_us_per_op": round(srv_us, 1) if url.startswith("redis") else None,
        "concurrency": concurrency,
        "p50_ms": round(statistics.median(lat) * 1000, 3),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
        "ops": ops,
    }


OVERSPEND_SPEC = {"quotas": [{"id": "p", "provider": "w", "limits": [{"per": "day", "requests": 60}]}],
                  "budgets": [{"id": "b", "period": "total", "limit_usd": "0.045"}]}


async def _worker(url: str, prefix: str, n: int) -> None:
    L = _ledger(url, prefix, OVERSPEND_SPEC)
    granted = 0

    async def one() -> None:
        nonlocal granted
        now = datetime.now(timezone.utc)
        try:
            r = await L.reserve("w:m", tokens=10, cost_usd=Decimal("0.001"), now=now)
        except (PoolUnavailable, BudgetExceeded):
            return
        granted += 1
        await L.commit(r, Usage(input_tokens=10), Decimal("0.001"), now)

    await asyncio.gather(*(one() for _ in range(n)))
    await L.aclose()
    print(json.dumps({"granted": granted}), flush=True)


async def overspend(url: str, procs: int = 2, per_proc: int = 50) -> dict[str, Any]:
    """`procs` processes x `per_proc` concurrent reservations against a hard budget
    of 45 calls (and a 60-request pool); overspend = calls granted beyond 45."""
    prefix = f"os{time.monotonic_ns()}:"
    ps = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", url, prefix, str(per_proc)],
                           stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    granted = sum(json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1])["granted"] for p in ps)
    L = _ledger(url, prefix, OVERSPEND_SPEC)
    v = await L.view(datetime.now(timezone.utc))
    await L.aclose()
    spent = v.budgets[0].spent_usd
    return {"processes": procs, "attempts": procs * per_proc, "limit_calls": 45, "granted": granted,
            "overspend": max(0, granted - 45), "spent_usd": str(spent), "lost_commits": granted - int(spent / Decimal("0.001"))}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"stores": {}, "overspend": {}, "cpus": os.cpu_count()}
    tmp = tempfile.mkdtemp(prefix="ledger-bench-")
    redis_proc, redis_url = start_redis()
    try:
        urls = {"memory": "memory://", "sqlite": "sqlite:///" + os.path.join(tmp, "bench.sqlite")}
        if redis_url:
            urls["redis"] = redis_url
        for name, url in urls.items():
            n = args.ops if name == "memory" else max(1000, args.ops // 2)
            out["stores"][name] = await bench_store(url, n, args.concurrency)
        if redis_url:
            out["stores"]["redis(redis-py)"] = await bench_store(redis_url, max(1000, args.ops // 4), args.concurrency,
                                                                 transport="redis-py")
        out["load_avg_1m"] = os.getloadavg()[0]
        for name in ("sqlite", "redis"):
            if name in urls:
                url = "sqlite:///" + os.path.join(tmp, "overspend.sqlite") if name == "sqlite" else urls[name]
                out["overspend"][name] = await overspend(url)
    finally:
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


TARGETS = {"memory": 20000, "sqlite": 2000, "redis": 5000}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        asyncio.run(_worker(argv[1], argv[2], int(argv[3])))
        return 0
    p = argparse.ArgumentParser(prog="ledger_bench", description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=10000, help="reserve+commit pairs per store (SQLite/Redis: half)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"ledger bench ({out['cpus']} CPUs, load average {out['load_avg_1m']:.1f}): "
          "one op = reserve + commit (3 pool windows + 2 budgets)")
    print(f"{'store':<16} {'seq ops/s':>10} {'conc ops/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'cli CPU us':>10} "
          f"{'ops/CPU-s':>10} {'srv CPU us':>10} {'target':>7}")
    for name, r in out["stores"].items():
        best = max(r["ops_per_s_sequential"], r["ops_per_s_concurrent"])
        tgt = TARGETS.get(name.split("(")[0], 0)
        ok = "ok" if best >= tgt else "BELOW"
        print(f"{name:<16} {r['ops_per_s_sequential']:>10} {r['ops_per_s_concurrent']:>11} {r['p50_ms']:>8} "
              f"{r['p99_ms']:>8} {r['client_cpu_us_per_op']:>10} {r['ops_per_client_cpu_s'] or '':>10} "
              f"{r['redis_server_cpu_us_per_op'] or '':>10} {tgt:>7} {ok}")
    for name, r in out["overspend"].items():
        print(f"overspend {name}: {r['processes']} processes x {r['attempts'] // r['processes']} concurrent, "
              f"limit {r['limit_calls']} calls -> granted {r['granted']}, overspend {r['overspend']}, "
              f"lost commits {r['lost_commits']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
