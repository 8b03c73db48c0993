"""Proxy overhead benchmark: the same load sent direct to a static upstream (nginx),
through `quotaroute serve`, and through the LiteLLM proxy, in one run.

    python -m benchmarks.proxy_overhead [--duration 10] [--soak-seconds 300] [--json]
    quotaroute bench proxy ...

Everything runs on 127.0.0.1; every load loop is wrk with a fixed duration.
Reports: added p50 latency at concurrency 1 (proxy p50 - direct p50), throughput
at concurrency 32, the ratio quotaroute/LiteLLM, and RSS growth over a soak.
LiteLLM runs from its own virtualenv (default /tmp/litellm-venv, never a project
dependency); it is skipped with a note when that venv is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "run", "parse_wrk", "bench_router"]

HELP = "Measure the proxy's added latency, throughput and memory vs direct nginx and the LiteLLM proxy."
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NGINX, WRK = "/usr/sbin/nginx", "/usr/bin/wrk"
UPSTREAM_KEY = "sk-bench-upstream-not-a-real-key-0000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=8.0, help="seconds per load measurement (default 8)")
    p.add_argument("--concurrency", type=int, default=32, help="connections for the throughput run (default 32)")
    p.add_argument("--repeat", type=int, default=1, help="interleaved rounds over all targets; medians reported")
    p.add_argument("--soak-seconds", type=float, default=20.0, help="soak length for RSS growth (300 for the real figure)")
    p.add_argument("--soak-concurrency", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="quotaroute worker processes (default 1)")
    p.add_argument("--router", choices=["auto", "full", "passthrough"], default="auto",
                   help="full = the real Router from a config; passthrough = one adapter, no routing (proxy layer only)")
    p.add_argument("--ledger", choices=["default", "memory", "sqlite"], default="default",
                   help="quotaroute's ledger store (default: the proxy default, SQLite in the bench temp dir)")
    p.add_argument("--spend-store", choices=["sqlite", "postgres"], default="sqlite",
                   help="postgres: also measure a quotaroute whose spend log and keys are in PostgreSQL (row qr-postgres)")
    p.add_argument("--pg-dsn-env", default="QUOTAROUTE_DATABASE_URL", metavar="VAR",
                   help="the variable holding the PostgreSQL DSN for --spend-store postgres")
    p.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp", help="upstream client for passthrough")
    p.add_argument("--litellm-venv", default="/tmp/litellm-venv")
    p.add_argument("--skip-litellm", action="store_true")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--tracing", action="store_true",
                   help="add a row: a second quotaroute with OpenTelemetry tracing on, exporting OTLP/HTTP to a local sink")
    p.add_argument("--cache-hit", action="store_true",
                   help="add a row: a second quotaroute with the response cache on, sent the same request (every "
                        "request after the first is a hit)")


# ---------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback only
                if r.status < 500:
                    return True
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    return False


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> dict[str, Any]:
    """wrk --latency output -> {p50_ms, p90_ms, p99_ms, rps, requests, errors}."""
    res: dict[str, Any] = {}
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m:
            res[key] = round(float(m.group(1)) * _UNIT[m.group(2)], 4)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    res["errors"] = errs
    return res


def wrk(url: str, conns: int, seconds: float, body: str, key: str = "") -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODY": body, "BENCH_KEY": key}
    cmd = [WRK, "-t1", f"-c{conns}", f"-d{max(1, int(seconds))}s", "--latency", "--timeout", "10s",
           "-s", str(HERE / "upstream" / "post.lua"), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out)


def measure(url: str, body: str, args: argparse.Namespace, key: str = "") -> dict[str, Any]:
    wrk(url, 4, 2, body, key)  # warm-up (connections, lazy imports, caches)
    c1 = wrk(url, 1, args.duration, body, key)
    cN = wrk(url, args.concurrency, args.duration, body, key)
    return {"p50_c1_ms": c1.get("p50_ms"), "p99_c1_ms": c1.get("p99_ms"), "rps_c1": c1["rps"],
            "rps_cN": cN["rps"], "p50_cN_ms": cN.get("p50_ms"), "errors": c1["errors"] + cN["errors"]}


def rss_kb(pid: int) -> int:
    """RSS of a process and its children (uvicorn workers), in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except OSError:
            continue
    return total


def _stop(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


# ---------------------------------------------------------------- the three targets

def start_nginx(d: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    body = (HERE / "upstream" / "chat_completion.json").read_text().strip().replace("'", "\\'")
    conf = (HERE / "upstream" / "nginx.conf.template").read_text()
    conf = conf.replace("{{DIR}}", str(d)).replace("{{PORT}}", str(port)).replace("{{BODY}}", body)
    (d / "nginx.conf").write_text(conf)
    p = subprocess.Popen([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    if not _wait_http(f"http://127.0.0.1:{port}/v1/models", 10, p):
        raise RuntimeError("nginx did not start: " + (d / "error.log").read_text()[-500:])
    return p, port


def _full_router_available() -> bool:
    try:
        import router.config  # noqa: F401 - a probe: is the full router in this build?
        import router.sdk  # noqa: F401
    except ImportError:
        return False
    return True


def start_quotaroute(d: Path, upstream: int, args: argparse.Namespace,
                     extra: str = "", store: str = "sqlite") -> tuple[subprocess.Popen, int, str, str]:
    port = free_port()
    mode = args.router
    if mode == "auto":
        mode = "full" if _full_router_available() else "passthrough"
    cfg = d / f"quotaroute-{store}.yaml"
    from router.server.auth import hash_key  # lazy: import time (`--help` and other commands stay fast)

    ledger = {"default": "", "memory": "ledger:\n  store: memory\n",
              "sqlite": f"ledger:\n  store: sqlite\n  path: {d / 'ledger.sqlite'}\n"}[args.ledger]
    pg = f"  store: postgres\n  dsn_env: {args.pg_dsn_env}\n" if store == "postgres" else ""
    cfg.write_text(CONFIG.format(upstream=upstream, spend=d / "spend.sqlite", key_hash=hash_key(PROXY_KEY),
                                 ledger=ledger, store=pg) + extra)
    cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--port", str(port),
           "--workers", str(args.workers)]
    if mode == "passthrough":
        cmd += ["--router-factory", "benchmarks.proxy_overhead:bench_router"]
    env = {**os.environ, "QUOTAROUTE_HOME": str(d), "QR_BENCH_UPSTREAM": f"http://127.0.0.1:{upstream}/v1",
           "QR_BENCH_TRANSPORT": args.transport, "PYTHONPATH": str(ROOT), "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    logf = d / f"quotaroute-{store}.log"
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(logf, "w"))
    if not _wait_http(f"http://127.0.0.1:{port}/healthz", 30, p):
        raise RuntimeError("quotaroute did not start: " + logf.read_text()[-2000:])
    return p, port, mode, "openai:gpt-4o-mini"


CONFIG = """\
# benchmark config: one OpenAI-compatible vendor pointed at the local nginx
providers:
  openai:
    base_url: http://127.0.0.1:{upstream}/v1
    api_key_env: BENCH_UPSTREAM_KEY
models:
  include: [openai:gpt-4o-mini]
policy:
  default: cheapest
{ledger}server:
  spend_db: {spend}
{store}  keys:
    - id: bench
      hash: "{key_hash}"
"""
CACHE_ON = "cache:\n  enabled: true\n  store: memory\n"  # the --cache-hit row's proxy (docs/cache.md)
PROXY_KEY = "sk-bench-proxy-key-0123456789abcdef"  # both proxies authenticate the client (a fair comparison)


def start_litellm(d: Path, upstream: int, venv: str) -> tuple[subprocess.Popen | None, int, str]:
    exe = Path(venv) / "bin" / "litellm"
    if not exe.exists():
        return None, 0, f"LiteLLM skipped: {exe} not found (python -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]')"
    port = free_port()
    (d / "litellm.yaml").write_text(
        "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n  telemetry: false\n  drop_params: true\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "LITELLM_MASTER_KEY": PROXY_KEY,
           "LITELLM_LOG": "ERROR", "NO_DOCS": "True"}
    p = subprocess.Popen([str(exe), "--config", str(d / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port),
                          "--num_workers", "1"], env=env, cwd=d, stdout=subprocess.DEVNULL,
                         stderr=open(d / "litellm.log", "w"))
    if not _wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120, p):
        _stop(p)
        return None, 0, "LiteLLM skipped: it did not start (see its log)"
    return p, port, ""


def _body(model: str) -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16})


def run(args: argparse.Namespace) -> int:
    for exe in (NGINX, WRK):
        if not shutil.which(exe):
            print(f"proxy benchmark needs {exe} (Debian packages nginx and wrk)", file=sys.stderr)
            return 2
    d = Path(tempfile.mkdtemp(prefix="qr-proxy-bench-"))
    os.chmod(d, 0o777)
    procs: list[subprocess.Popen | None] = []
    res: dict[str, Any] = {"concurrency": args.concurrency, "duration_s": args.duration, "workers": args.workers,
                           "ledger": args.ledger,
                           "repeat": args.repeat, "notes": [], "loadavg_start": os.getloadavg()[0]}
    try:
        ng, ngport = start_nginx(d)
        procs.append(ng)
        qr, qport, mode, model = start_quotaroute(d, ngport, args)
        procs.append(qr)
        res["router_mode"] = mode
        qurl = f"http://127.0.0.1:{qport}/v1/chat/completions"
        qbody = _body(model if mode == "full" else "auto")
        targets: dict[str, tuple[str, str, str]] = {
            "direct": (f"http://127.0.0.1:{ngport}/v1/chat/completions", _body("gpt-4o-mini"), ""),
            "quotaroute": (qurl, qbody, PROXY_KEY)}
        if args.spend_store == "postgres":
            pq, pport, _, _ = start_quotaroute(d, ngport, args, store="postgres")
            procs.append(pq)
            targets["qr-postgres"] = (f"http://127.0.0.1:{pport}/v1/chat/completions", qbody, PROXY_KEY)
        if getattr(args, "cache_hit", False):  # the same request to a proxy with the response cache on
            dc = d / "cache-hit"
            dc.mkdir()
            os.chmod(dc, 0o777)
            qc, qcport, _, _ = start_quotaroute(dc, ngport, args, CACHE_ON)
            procs.append(qc)
            targets["quotaroute+cache"] = (f"http://127.0.0.1:{qcport}/v1/chat/completions", qbody, PROXY_KEY)
        if getattr(args, "tracing", False):  # the same proxy with tracing on: every span exported over OTLP/HTTP to a local sink
            sink = OtlpSink()
            dt = d / "tracing"
            dt.mkdir()
            os.chmod(dt, 0o777)
            tr, tport, _, _ = start_quotaroute(dt, ngport, args, sink.config())
            procs.append(tr)
            targets["+tracing"] = (f"http://127.0.0.1:{tport}/v1/chat/completions", qbody, PROXY_KEY)
        if not args.skip_litellm:
            ll, lport, note = start_litellm(d, ngport, args.litellm_venv)
            procs.append(ll)
            if ll is None:
                res["notes"].append(note)
            else:
                targets["litellm"] = (f"http://127.0.0.1:{lport}/v1/chat/completions", _body("bench"), PROXY_KEY)
        # Interleaved rounds: a shared machine's background load hits every target alike; medians reported.
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for _ in range(max(1, args.repeat)):
            for name, (url, body, key) in targets.items():
                runs[name].append(measure(url, body, args, key))
        for name, rs in runs.items():
            res[name] = _median(rs)
        if args.soak_seconds > 0:
            res["soak"] = soak(qr.pid, qurl, qbody, args, PROXY_KEY)
    finally:
        for p in procs:
            _stop(p)
    res["loadavg_end"] = os.getloadavg()[0]
    if getattr(args, "tracing", False):
        res["otlp_sink"] = sink.stop()
    _derive(res)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(table(res))
    shutil.rmtree(d, ignore_errors=True)
    return 0


def _median(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in rs[0]:
        vals = [r[k] for r in rs if r.get(k) is not None]
        out[k] = (sum(vals) if k == "errors" else round(statistics.median(vals), 4)) if vals else None
    return out


def soak(pid: int, url: str, body: str, args: argparse.Namespace, key: str) -> dict[str, Any]:
    """Constant load for soak_seconds; RSS sampled after a warm-up slice and at the end."""
    warm = min(10.0, args.soak_seconds / 5)
    wrk(url, args.soak_concurrency, warm, body, key)
    start = rss_kb(pid)
    r = wrk(url, args.soak_concurrency, args.soak_seconds, body, key)
    end = rss_kb(pid)
    return {"seconds": args.soak_seconds, "concurrency": args.soak_concurrency, "requests": r["requests"], "errors": r["errors"], "rss_start_mib":
            round(start / 1024, 1), "rss_end_mib": round(end / 1024, 1), "rss_growth_mib": round((end - start) / 1024, 1)}


def _derive(res: dict[str, Any]) -> None:
    d, q, ll = res.get("direct"), res.get("quotaroute"), res.get("litellm")
    for name, r in (("quotaroute", q), ("litellm", ll), ("quotaroute+cache", res.get("quotaroute+cache")),
                    ("qr-postgres", res.get("qr-postgres")),
                    ("+tracing", res.get("+tracing"))):
        if r and d and r.get("p50_c1_ms") is not None and d.get("p50_c1_ms") is not None:
            r["added_p50_c1_ms"] = round(r["p50_c1_ms"] - d["p50_c1_ms"], 3)
    pg = res.get("qr-postgres")
    if q and pg and q.get("added_p50_c1_ms") and pg.get("added_p50_c1_ms") is not None:
        res["added_latency_ratio_postgres_over_default"] = round(pg["added_p50_c1_ms"] / max(q["added_p50_c1_ms"], 1e-3), 2)
    t = res.get("+tracing")
    if t and q and t.get("added_p50_c1_ms") is not None and q.get("added_p50_c1_ms"):
        res["tracing_added_ratio"] = round(t["added_p50_c1_ms"] / max(q["added_p50_c1_ms"], 1e-3), 2)
    if q and ll and ll.get("rps_cN"):
        res["throughput_ratio_vs_litellm"] = round(q["rps_cN"] / ll["rps_cN"], 1)
        if ll.get("added_p50_c1_ms"):
            res["added_latency_ratio_litellm_over_quotaroute"] = round(ll["added_p50_c1_ms"] / max(q["added_p50_c1_ms"], 1e-3), 1)


def table(res: dict[str, Any]) -> str:
    c = res["concurrency"]
    lines = [f"proxy overhead ({res['duration_s']:.0f}s per run, median of {res['repeat']} interleaved rounds, "
             f"quotaroute router={res.get('router_mode')}, ledger={res.get('ledger')}, workers={res['workers']}, "
             f"loadavg {res['loadavg_start']:.1f}->{res['loadavg_end']:.1f} on {os.cpu_count()} cores)",
             f"{'target':<16} {'p50 c=1 ms':>11} {'added p50 ms':>13} {'p99 c=1 ms':>11} {'req/s c=' + str(c):>12} "
             f"{'errors':>7}"]
    for name in ("direct", "quotaroute", "quotaroute+cache", "qr-postgres", "+tracing", "litellm"):
        r = res.get(name)
        if not r:
            continue
        lines.append(f"{name:<16} {r['p50_c1_ms'] or 0:>11.3f} {r.get('added_p50_c1_ms', 0.0):>13.3f} "
                     f"{r['p99_c1_ms'] or 0:>11.3f} {r['rps_cN']:>12.0f} {r['errors']:>7}")
    if "throughput_ratio_vs_litellm" in res:
        lines.append(f"throughput quotaroute / LiteLLM at c={c}: {res['throughput_ratio_vs_litellm']}x")
    if "added_latency_ratio_litellm_over_quotaroute" in res:
        lines.append(f"added p50 latency LiteLLM / quotaroute: {res['added_latency_ratio_litellm_over_quotaroute']}x")
    if "added_latency_ratio_postgres_over_default" in res:
        lines.append(f"added p50 latency, PostgreSQL spend store / default: {res['added_latency_ratio_postgres_over_default']}x")
    if "tracing_added_ratio" in res:
        k = res.get("otlp_sink", {})
        lines.append(f"added p50 latency with tracing / without: {res['tracing_added_ratio']}x "
                     f"(OTLP sink got {k.get('requests', 0)} exports, {k.get('bytes', 0):,} bytes)")
    s = res.get("soak")
    if s:
        lines.append(f"soak {s['seconds']:.0f}s c={s['concurrency']}: {s['requests']:,} requests, RSS "
                     f"{s['rss_start_mib']} -> {s['rss_end_mib']} MiB (growth {s['rss_growth_mib']} MiB), "
                     f"errors {s['errors']}")
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


class OtlpSink:
    """A local OTLP/HTTP receiver for the tracing row: accepts every export (200) and
    counts it; what a collector does with the spans is not the proxy's cost."""

    def __init__(self) -> None:
        import threading  # lazy: import time (`--help` and other commands stay fast)
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        got = self.got = {"requests": 0, "bytes": 0}

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                got["requests"] += 1
                got["bytes"] += n
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def config(self) -> str:
        return (f"tracing:\n  enabled: true\n  endpoint: http://127.0.0.1:{self.srv.server_port}/v1/traces\n"
                "  service_name: quotaroute-bench\n")

    def stop(self) -> dict[str, int]:
        self.srv.shutdown()
        self.srv.server_close()
        return dict(self.got)


# ---------------------------------------------------------------- passthrough router (proxy layer only)

def bench_router(config_path: str | None = None) -> Any:
    """`--router-factory` target: one OpenAI-compatible adapter, no routing decision.
    Measures the proxy layer (parse, auth, encode, headers, spend log, metrics) and
    the upstream client; the full Router adds its routing core on top."""
    from providers.registry import build_provider  # lazy: import time (`--help` and other commands stay fast)
    from router.result import Attempt, RoutedResponse, RouteInfo

    if os.environ.get("QR_BENCH_TRANSPORT", "aiohttp") == "httpx":
        import httpx  # lazy: import time (`--help` and other commands stay fast)

        client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=512))
    else:
        from router.server.aiohttp_transport import aiohttp_client  # lazy: import time (`--help` and other commands stay fast)

        client = aiohttp_client()
    prov = build_provider("openai", api_key=os.environ.get("BENCH_UPSTREAM_KEY", UPSTREAM_KEY),
                          base_url=os.environ["QR_BENCH_UPSTREAM"], client=client)

    from router.catalog import load_catalog  # lazy: import time (`--help` and other commands stay fast)

    class Passthrough:  # the proxy's router interface (router.server.context.ProxyRouter), minimal
        policy_name = "passthrough"
        catalog = load_catalog()
        ledger = health = None
        model_ids = ("openai:gpt-4o-mini",)

        async def aexplain(self, req: Any) -> None:
            return None

        async def quota_view(self, now: Any) -> None:
            return None

        async def astream(self, req: Any, *, scope: Any = None) -> Any:
            raise NotImplementedError("the passthrough bench router does not stream")

        async def achat(self, req: Any, *, scope: Any = None) -> Any:
            t = time.perf_counter()
            resp = await prov.complete(req.model_copy(update={"model": "gpt-4o-mini"}))
            ms = (time.perf_counter() - t) * 1000
            route = RouteInfo(model_id="openai:gpt-4o-mini", provider="openai", policy="passthrough",
                              reason="passthrough: single upstream",
                              attempts=[Attempt(model_id="openai:gpt-4o-mini", provider="openai", ok=True,
                                                usage=resp.usage, latency_ms=ms)])
            return RoutedResponse(response=resp, route=route)

        async def aclose(self) -> None:
            await prov.aclose()
            await client.aclose()

    return Passthrough()


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser(description=HELP)
    add_arguments(ap)
    raise SystemExit(run(ap.parse_args()))
