"""`quotaroute bench live` end to end in --fake mode (scripted fake models, no network)."""

from __future__ import annotations

import csv
import json
import os

import pytest

from router.cli import main

from .conftest import MINI
from .test_suite import STARTER


def _suite(tmp_path) -> str:  # type: ignore[no-untyped-def]
    p = tmp_path / "mini.yaml"
    p.write_text(MINI.replace("fk:judge", "fake:judge"), encoding="utf-8")
    return str(p)


def test_fake_run_writes_long_format_and_resumes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "out")
    argv = ["bench", "live", "--suite", _suite(tmp_path), "--models", "fake:good,fake:cheap", "--fake",
            "--out", out, "--no-plots", "--repeats", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "[--fake]" in text and "| fake:good |" in text and "16 made" in text
    with open(os.path.join(out, "results.csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["prompt_id", "task", "prompt", "model", "quality", "input_tokens", "output_tokens",
                             "cost_usd"]
    assert len(rows) == 8  # repeats are averaged into one row per (item, model)
    from benchmarks.datasets import load_long

    ds = load_long(os.path.join(out, "results.csv"))
    assert ds.n_prompts == 4 and sorted(ds.models) == ["fake:cheap", "fake:good"]
    rep = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    assert rep["per_model"]["fake:good"]["calls"] == 8
    assert os.path.exists(os.path.join(out, "report.md")) and os.path.exists(os.path.join(out, "calls.csv"))
    # the second run calls nothing
    assert main(argv + ["--json"]) == 0
    rep2 = json.loads(capsys.readouterr().out)
    assert rep2["calls_made"] == 0 and rep2["cached"] == 16 and rep2["spent_usd"] == rep["spent_usd"]


def test_budget_stop_is_reported(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(["bench", "live", "--suite", _suite(tmp_path), "--models", "fake:good", "--fake", "--out",
               str(tmp_path / "o"), "--no-plots", "--budget-usd", "0.01", "--repeats", "5", "--concurrency", "1"])
    cap = capsys.readouterr()
    assert rc == 0 and "STOPPED: budget cap $0.01" in cap.err
    rep = json.load(open(tmp_path / "o" / "report.json", encoding="utf-8"))
    from decimal import Decimal

    assert Decimal(rep["spent_usd"]) <= Decimal("0.01") and rep["skipped"] > 0


@pytest.mark.parametrize("extra,msg", [
    (["--models", "openai:gpt-4o-mini", "--fake"], "--fake takes only fake:"),
    (["--models", "nocolon", "--fake"], "provider:model"),
    (["--models", "fake:good", "--fake", "--budget-usd", "lots"], "--budget-usd"),
    (["--models", "fake:good", "--fake", "--price", "fake:good=1"], "--price"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, extra: list[str], msg: str) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "live", "--suite", _suite(tmp_path), "--out", str(tmp_path / "o"), *extra]) == 2
    assert msg in capsys.readouterr().err


def test_malformed_suite_exit_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "bad.yaml"
    p.write_text("items:\n  - id: a\n    task: chat\n    prompt: hi\n    scorer: {type: nope}\n", encoding="utf-8")
    assert main(["bench", "live", "--suite", str(p), "--models", "fake:good", "--fake"]) == 2
    err = capsys.readouterr().err
    assert f"{p}:5" in err and "scorer.type" in err


def test_missing_key_without_fake(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(["bench", "live", "--suite", _suite(tmp_path), "--models", "deepseek:deepseek-flash",
               "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 2 and "DEEPSEEK_API_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_starter_suite_fake_run(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "st")
    assert main(["bench", "live", "--suite", STARTER, "--models", "fake:good,fake:cheap", "--fake", "--out", out,
                 "--no-plots", "--concurrency", "8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    good, cheap = rep["per_model"]["fake:good"], rep["per_model"]["fake:cheap"]
    assert good["answered"] == cheap["answered"] >= 60
    assert good["quality"] > cheap["quality"] and good["list_cost_usd"] > cheap["list_cost_usd"]
