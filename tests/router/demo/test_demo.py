"""The demo in a reduced mode: real proxy on loopback, replayed models, openai client."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from router.cli import main


def test_demo_reduced_mode_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--prompts", "24", "--concurrency", "4", "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert printed["n_prompts"] == report["n_prompts"] == 24
    by = {r["strategy"]: r for r in report["strategies"]}
    assert set(by) == {"free-first", "balanced", "cheapest", "always-best"}
    for r in by.values():
        assert r["requests"] == 24 and r["errors"] == 0
    # free quota is used first, and the best model is the dearest
    assert by["free-first"]["free_requests"] > 0
    assert by["always-best"]["free_requests"] == 0
    assert by["always-best"]["quality_pct_of_best"] == 100.0
    from decimal import Decimal

    assert Decimal(by["free-first"]["cost_usd"]) < Decimal(by["always-best"]["cost_usd"])
    md = (out / "report.md").read_text()
    assert "recorded" in md and "| strategy |" in md
    assert (out / "demo.png").stat().st_size > 1000
    # nothing keeps running: only the main thread (and pytest's own) remain
    assert not [t for t in threading.enumerate() if t.name == "quotaroute-demo-proxy"]


def test_demo_port_taken_exits_nonzero_with_message(tmp_path, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        rc = main(["demo", "--prompts", "2", "--port", str(port), "--out", str(tmp_path / "x")])
    finally:
        s.close()
    assert rc != 0
    assert f"port {port}" in capsys.readouterr().err


def test_demo_unwritable_output_exits_nonzero(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["demo", "--prompts", "2", "--out", str(blocker / "sub")])
    assert rc != 0
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--strategies", "nope"], ["--prompts", "0"]])
def test_demo_bad_arguments(tmp_path, capsys, bad):
    assert main(["demo", "--out", str(tmp_path / "o"), *bad]) != 0
