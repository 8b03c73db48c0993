"""The proxy benchmark's pure pieces (the benchmark itself is a script, not a test)."""

from __future__ import annotations

from benchmarks.proxy_overhead import _derive, _median, parse_wrk, table

WRK_OUT = """Running 5s test @ http://127.0.0.1:4000/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    26.55ms    4.10ms  60.01ms   90.00%
    Req/Sec     1.21k    95.23     1.40k    72.00%
  Latency Distribution
     50%  812.00us
     75%   27.01ms
     90%    1.20ms
     99%    2.50s
  6012 requests in 5.00s, 5.21MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1202.31
Transfer/sec:      1.04MB
"""


def test_parse_wrk_units_and_errors() -> None:
    r = parse_wrk(WRK_OUT)
    assert r == {"p50_ms": 0.812, "p90_ms": 1.2, "p99_ms": 2500.0, "rps": 1202.31, "requests": 6012, "errors": 7}


def test_derive_ratios_and_table() -> None:
    run = {"p50_c1_ms": 0.05, "p99_c1_ms": 0.2, "rps_c1": 9000.0, "rps_cN": 50000.0, "p50_cN_ms": 0.5, "errors": 0}
    q = _median([{**run, "p50_c1_ms": 0.9, "rps_cN": 1500.0}, {**run, "p50_c1_ms": 0.7, "rps_cN": 1300.0}])
    res = {"concurrency": 32, "duration_s": 5, "workers": 1, "repeat": 2, "notes": ["x"], "loadavg_start": 1.0,
           "loadavg_end": 1.0, "router_mode": "full", "direct": run, "quotaroute": q,
           "litellm": {**run, "p50_c1_ms": 10.05, "rps_cN": 100.0}}
    _derive(res)
    assert q["p50_c1_ms"] == 0.8 and q["added_p50_c1_ms"] == 0.75
    assert res["throughput_ratio_vs_litellm"] == 14.0
    assert res["added_latency_ratio_litellm_over_quotaroute"] == 13.3
    assert "quotaroute" in table(res) and "14.0x" in table(res)


def test_cache_hit_row() -> None:
    run = {"p50_c1_ms": 0.05, "p99_c1_ms": 0.2, "rps_c1": 9000.0, "rps_cN": 50000.0, "p50_cN_ms": 0.5, "errors": 0}
    res = {"concurrency": 32, "duration_s": 5, "workers": 1, "repeat": 1, "notes": [], "loadavg_start": 1.0,
           "loadavg_end": 1.0, "router_mode": "full", "direct": run, "quotaroute": {**run, "p50_c1_ms": 1.05},
           "quotaroute+cache": {**run, "p50_c1_ms": 0.25}}
    _derive(res)
    assert res["quotaroute+cache"]["added_p50_c1_ms"] == 0.2 and "quotaroute+cache" in table(res)


def test_tracing_row_ratio_and_table() -> None:
    run = {"p50_c1_ms": 0.5, "p99_c1_ms": 0.9, "rps_c1": 2000.0, "rps_cN": 8000.0, "p50_cN_ms": 2.0, "errors": 0}
    res = {"concurrency": 32, "duration_s": 5, "workers": 1, "repeat": 1, "notes": [], "loadavg_start": 1.0,
           "loadavg_end": 1.0, "router_mode": "full", "direct": {**run, "p50_c1_ms": 0.1},
           "quotaroute": dict(run), "+tracing": {**run, "p50_c1_ms": 0.7}, "otlp_sink": {"requests": 3, "bytes": 9000}}
    _derive(res)
    assert res["+tracing"]["added_p50_c1_ms"] == 0.6 and res["tracing_added_ratio"] == 1.5
    out = table(res)
    assert "+tracing" in out and "with tracing / without: 1.5x (OTLP sink got 3 exports, 9,000 bytes)" in out
