"""Streaming benchmark: many concurrent long streams, direct vs through the proxies, in one run.

    python -m benchmarks.stream_bench [--concurrency 50,200,500,1000] [--duration 10] [--json]
    quotaroute bench streams ...

A fake vendor (`benchmarks.stream_load upstream`) streams N chunks D ms apart
(default 100 x 20 ms, ~50 tokens/s). For every concurrency level the same load
(`benchmarks.stream_load load`, its own process) runs against each target in turn:

    direct             the fake vendor itself (the floor)
    quotaroute         `quotaroute serve`, 1 worker, OpenAI in and out (pass-through path)
    quotaroute-2w      `quotaroute serve --workers 2`
    quotaroute-events  1 worker, OpenAI in and out with `server.limits.stream_splice: false` (every
                       chunk takes the event path; the splice's own before/after in the same run)
    quotaroute-xlate   1 worker, Anthropic Messages in, OpenAI-compatible vendor out (translating path)
    quotaroute-anthropic  1 worker, Anthropic Messages in and out (the native Anthropic adapter; the
                       fake vendor's /v1/messages stream)
    litellm            the LiteLLM proxy from its own venv (skipped with a note when absent)

Reported per cell: streams/s, TTFT and added TTFT (vs direct) p50/p99, inter-chunk
gap p50/p99/p99.9, starved streams (no first token within 5 s), errors, the proxy's
CPU per 1,000 chunks (user+sys of the proxy's process tree over the cell) and its
RSS at the end of the cell. The generator's own CPU share is reported; above 0.9 it
is the bottleneck and the cell says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.proxy_overhead import (
    PROXY_KEY,
    ROOT,
    UPSTREAM_KEY,
    _stop,
    _wait_http,
    free_port,
    rss_kb,
    start_litellm,
    start_quotaroute,
)

__all__ = ["HELP", "add_arguments", "run", "table", "cpu_seconds"]

HELP = "Measure many concurrent streams: TTFT, inter-chunk gaps, starvation and CPU per chunk, direct vs proxies."
TARGETS = ("direct", "quotaroute", "quotaroute-2w", "quotaroute-events", "quotaroute-xlate", "quotaroute-anthropic",
           "litellm")
NO_SPLICE = "  limits:\n    stream_splice: false\n"  # appended under the benchmark config's `server:`
ANTHROPIC_MODEL = "anthropic:claude-haiku-4-5"
ANTHROPIC_CONFIG = """\
# benchmark config: the Anthropic Messages API, pointed at the fake vendor
providers:
  anthropic:
    base_url: http://127.0.0.1:{upstream}
    api_key_env: BENCH_UPSTREAM_KEY
models:
  include: [{model}]
policy:
  default: cheapest
server:
  spend_db: {spend}
  keys:
    - id: bench
      hash: "{key_hash}"
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", default="50,200,500,1000", help="comma-separated stream counts")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per cell (default 10)")
    p.add_argument("--chunks", type=int, default=100, help="chunks per stream (default 100)")
    p.add_argument("--gap-ms", type=float, default=20.0, help="ms between the vendor's chunks (default 20)")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset of " + ", ".join(TARGETS))
    p.add_argument("--litellm-venv", default="/tmp/litellm-venv")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a process and its children (uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except OSError:
            continue
    return total


def _start_upstream(args: argparse.Namespace, d: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.stream_load", "upstream", "--port", str(port),
                          "--chunks", str(args.chunks), "--gap-ms", str(args.gap_ms)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                         stderr=open(d / "upstream.log", "w"))
    assert p.stdout is not None
    if p.stdout.readline().strip() != b"listening":
        raise RuntimeError("the fake upstream did not start: " + (d / "upstream.log").read_text()[-1000:])
    return p, port


def _start_anthropic(d: Path, upstream: int) -> tuple[subprocess.Popen, int]:
    """`quotaroute serve` (1 worker) with one Anthropic provider pointed at the fake vendor."""
    from router.server.auth import hash_key  # lazy: import time

    port = free_port()
    cfg = d / "quotaroute.yaml"
    cfg.write_text(ANTHROPIC_CONFIG.format(upstream=upstream, model=ANTHROPIC_MODEL, spend=d / "spend.sqlite",
                                           key_hash=hash_key(PROXY_KEY)))
    env = {**os.environ, "QUOTAROUTE_HOME": str(d), "PYTHONPATH": str(ROOT), "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    logf = d / "quotaroute.log"
    p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--port", str(port),
                          "--workers", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(logf, "w"))
    if not _wait_http(f"http://127.0.0.1:{port}/healthz", 30, p):
        raise RuntimeError("quotaroute did not start: " + logf.read_text()[-2000:])
    return p, port


def _body(model: str, wire: str) -> str:
    msgs = [{"role": "user", "content": "Tell me a long story."}]
    if wire == "anthropic":
        return json.dumps({"model": model, "max_tokens": 1024, "stream": True, "messages": msgs})
    return json.dumps({"model": model, "messages": msgs, "max_tokens": 1024, "stream": True,
                       "stream_options": {"include_usage": True}})


def _load(url: str, c: int, args: argparse.Namespace, body: str, key: str, wire: str) -> dict[str, Any]:
    stream_s = args.chunks * args.gap_ms / 1000
    cmd = [sys.executable, "-m", "benchmarks.stream_load", "load", "--url", url, "--concurrency", str(c),
           "--duration", str(args.duration), "--body", body, "--key", key, "--ramp", str(stream_s), "--wire", wire,
           "--stream-timeout", str(max(60.0, 6 * stream_s))]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=args.duration + 10 * stream_s + 180)
    if out.returncode != 0:
        raise RuntimeError("load generator failed: " + out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> int:
    levels = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    wanted = [t.strip() for t in str(args.targets).split(",") if t.strip()]
    bad = [t for t in wanted if t not in TARGETS]
    if bad:
        print(f"unknown target(s) {', '.join(bad)}; use {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    d = Path(tempfile.mkdtemp(prefix="qr-stream-bench-"))
    res: dict[str, Any] = {"chunks": args.chunks, "gap_ms": args.gap_ms, "duration_s": args.duration,
                           "cores": os.cpu_count(), "notes": [], "cells": [], "loadavg_start": os.getloadavg()[0]}
    procs: list[subprocess.Popen | None] = []
    try:
        up, uport = _start_upstream(args, d)
        procs.append(up)
        targets: dict[str, tuple[str, str, str, str, int]] = {}
        if "direct" in wanted:
            targets["direct"] = (f"http://127.0.0.1:{uport}/v1/chat/completions", _body("gpt-4o-mini", "openai"), "",
                                 "openai", up.pid)
        qargs = argparse.Namespace(router="full", ledger="default", transport="aiohttp", workers=1)
        for name, workers, wire in (("quotaroute", 1, "openai"), ("quotaroute-2w", 2, "openai"),
                                    ("quotaroute-events", 1, "openai"), ("quotaroute-xlate", 1, "anthropic")):
            if name not in wanted:
                continue
            qargs.workers = workers
            sub = d / name
            sub.mkdir()
            qp, qport, _, model = start_quotaroute(sub, uport, qargs, extra=NO_SPLICE if name.endswith("events") else "")
            procs.append(qp)
            path = "/v1/messages" if wire == "anthropic" else "/v1/chat/completions"
            targets[name] = (f"http://127.0.0.1:{qport}{path}", _body(model, wire), PROXY_KEY, wire, qp.pid)
        if "quotaroute-anthropic" in wanted:
            sub = d / "quotaroute-anthropic"
            sub.mkdir()
            ap, aport = _start_anthropic(sub, uport)
            procs.append(ap)
            targets["quotaroute-anthropic"] = (f"http://127.0.0.1:{aport}/v1/messages",
                                               _body(ANTHROPIC_MODEL, "anthropic"), PROXY_KEY, "anthropic", ap.pid)
        if "litellm" in wanted:
            ll, lport, note = start_litellm(d, uport, args.litellm_venv)
            procs.append(ll)
            if ll is None:
                res["notes"].append(note)
            else:
                targets["litellm"] = (f"http://127.0.0.1:{lport}/v1/chat/completions", _body("bench", "openai"),
                                      PROXY_KEY, "openai", ll.pid)
        for name, (url, body, key, wire, _) in targets.items():  # warm-up: connections, lazy imports, caches
            _load(url, 4, argparse.Namespace(**{**vars(args), "duration": 1.0}), body, key, wire)
        total = len(levels) * len(targets)
        k = 0
        for c in levels:
            for name, (url, body, key, wire, pid) in targets.items():
                k += 1
                print(f"[{k}/{total}] {name} at {c} streams ...", file=sys.stderr, flush=True)
                cpu0 = cpu_seconds(pid)
                r = _load(url, c, args, body, key, wire)
                r["proxy_cpu_s"] = round(cpu_seconds(pid) - cpu0, 3)
                r["rss_mib"] = round(rss_kb(pid) / 1024, 1)
                r["target"] = name
                if name != "direct" and r["events"]:
                    r["cpu_ms_per_1k_chunks"] = round(r["proxy_cpu_s"] * 1000 / (r["events"] / 1000), 1)
                res["cells"].append(r)
    finally:
        for p in procs:
            _stop(p)
    res["loadavg_end"] = os.getloadavg()[0]
    _derive(res)
    print(json.dumps(res, indent=2) if args.json else table(res))
    shutil.rmtree(d, ignore_errors=True)
    return 0


def _derive(res: dict[str, Any]) -> None:
    direct = {c["concurrency"]: c for c in res["cells"] if c["target"] == "direct"}
    for c in res["cells"]:
        base = direct.get(c["concurrency"])
        if c["target"] == "direct" or base is None:
            continue
        for q in ("p50", "p99"):
            a, b = c.get(f"ttft_{q}_ms"), base.get(f"ttft_{q}_ms")
            c[f"added_ttft_{q}_ms"] = None if a is None or b is None else round(a - b, 2)
        if c["loadgen_cpu_share"] >= 0.9:
            res["notes"].append(f"{c['target']} at {c['concurrency']}: the load generator used "
                                f"{c['loadgen_cpu_share']:.0%} of a core (it may be the bottleneck)")


def _f(v: Any, w: int, fmt: str = ".1f") -> str:
    return f"{'-':>{w}}" if v is None else f"{v:>{w}{fmt}}"


def table(res: dict[str, Any]) -> str:
    lines = [f"streams: {res['chunks']} chunks x {res['gap_ms']:g} ms per stream, {res['duration_s']:g} s per cell, "
             f"{res['cores']} cores, loadavg {res['loadavg_start']:.1f}->{res['loadavg_end']:.1f}",
             f"{'target':<21}{'streams':>8}{'str/s':>7}{'TTFT p50':>9}{'p99':>8}{'+TTFT p50':>10}{'+p99':>8}"
             f"{'gap p50':>8}{'p99':>7}{'p99.9':>7}{'starved':>8}{'errors':>7}{'CPU ms/1k':>10}{'RSS MiB':>8}"]
    for c in res["cells"]:
        lines.append(f"{c['target']:<21}{c['concurrency']:>8}{c['streams_per_s']:>7.0f}{_f(c['ttft_p50_ms'], 9)}"
                     f"{_f(c['ttft_p99_ms'], 8)}{_f(c.get('added_ttft_p50_ms'), 10)}{_f(c.get('added_ttft_p99_ms'), 8)}"
                     f"{_f(c['gap_p50_ms'], 8)}{_f(c['gap_p99_ms'], 7)}{_f(c['gap_p999_ms'], 7)}{c['starved']:>8}"
                     f"{c['errors']:>7}{_f(c.get('cpu_ms_per_1k_chunks'), 10)}{_f(c['rss_mib'], 8)}")
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream_bench", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
