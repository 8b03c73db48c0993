"""The streaming benchmark's parts, small: the fake vendor (OpenAI and Anthropic
streams), the load generator's measurements, and one tiny run of `stream_bench`
through real `quotaroute serve` processes (the event path and the splice)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from benchmarks import stream_bench, stream_load
from benchmarks.proxy_overhead import _stop


@pytest.fixture
def vendor(tmp_path: Any) -> Any:
    p, port = stream_bench._start_upstream(argparse.Namespace(chunks=5, gap_ms=5.0), tmp_path)
    try:
        yield port
    finally:
        _stop(p)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_the_fake_vendor_streams_and_the_generator_measures(vendor: int, wire: str) -> None:
    path = "/v1/messages" if wire == "anthropic" else "/v1/chat/completions"
    body = stream_bench._body("m", wire)
    r = stream_load.run_load(f"http://127.0.0.1:{vendor}{path}", 3, 1.0, body, "", 0.05, 5.0, wire, 10.0)
    assert r["errors"] == 0 and r["streams_ok"] >= 6 and r["starved"] == 0, r
    per_stream = 8 if wire == "openai" else 5  # data events: 5 texts (+ finish, usage, [DONE]) / (+ opening, ping...)
    assert r["events"] >= r["streams_ok"] * per_stream, r
    assert 4.0 <= r["gap_p50_ms"] <= 50.0, r  # the vendor's 5 ms cadence (loose: a busy machine)
    assert r["ttft_p50_ms"] is not None and 0 <= r["loadgen_cpu_share"] < 1


def test_a_tiny_run_through_the_proxy(capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    stream_bench.add_arguments(p)
    args = p.parse_args(["--concurrency", "2", "--duration", "1", "--chunks", "5", "--gap-ms", "5",
                         "--targets", "direct,quotaroute,quotaroute-events", "--json"])
    assert stream_bench.run(args) == 0
    res = json.loads(capsys.readouterr().out)
    cells = {c["target"]: c for c in res["cells"]}
    assert set(cells) == {"direct", "quotaroute", "quotaroute-events"}
    for name in ("quotaroute", "quotaroute-events"):
        c = cells[name]
        assert c["errors"] == 0 and c["streams_ok"] > 0 and c["cpu_ms_per_1k_chunks"] > 0, c
        assert c["added_ttft_p50_ms"] is not None and c["rss_mib"] > 0, c
    assert "quotaroute-events" in stream_bench.table(res)
