"""`quotaroute bench replay`: report schema, --json, errors, the shipped data in a reduced mode."""

from __future__ import annotations

import json
import os

import pytest

from router.cli import main
from tests.benchmarks.replay_helpers import synthetic, write_long

QUICK = ["--learners", "ridge,knn", "--no-ood", "--no-plot"]


def _check_schema(rep: dict) -> None:
    for k in ("dataset", "n_test", "routers", "best_single", "oracle", "aiq", "headline"):
        assert k in rep, k
    assert rep["n_test"] > 0
    for r in rep["routers"]:
        assert {"name", "quality", "cost_usd", "cost_per_1k_queries_usd"} <= set(r)
        assert r["cost_per_1k_queries_usd"] == pytest.approx(1000 * r["cost_usd"])
    assert {"name", "quality", "cost_usd"} <= set(rep["best_single"])
    assert {"quality", "cost_usd"} <= set(rep["oracle"])
    assert {"router", "quality_pct_of_best_single", "cost_pct_of_best_single"} <= set(rep["headline"])
    assert "zero-router (single-model frontier)" in rep["aiq"] and "quotaroute:learned" in rep["aiq"]
    assert rep["oracle"]["quality"] >= rep["best_single"]["quality"] - 1e-9


def test_json_output_and_report_files(tmp_path, capsys):
    data = write_long(synthetic(150), str(tmp_path / "d.csv"))
    out = tmp_path / "out"
    rc = main(["bench", "replay", "--dataset", data, "--out", str(out), "--json", "--test-fraction", "0.3", *QUICK])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    _check_schema(rep)
    assert rep["n_test"] == 45
    assert json.loads((out / "report.json").read_text())["headline"] == rep["headline"]
    md = (out / "report.md").read_text()
    assert "## Headline" in md and "AIQ" in md
    assert rep["quota"].get("strategies") or rep["quota"].get("error")


def test_summary_output_plot_ood_profile_and_model(tmp_path, capsys):
    data = write_long(synthetic(120), str(tmp_path / "d.jsonl"))
    out = tmp_path / "o"
    prof, model = tmp_path / "profile.yaml", tmp_path / "m" / "router"
    rc = main(["bench", "replay", "--dataset", data, "--out", str(out), "--learners", "ridge",
               "--export-profile", str(prof), "--save-model", str(model)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Headline" in text and "Wrote" in text
    assert (out / "frontier.png").stat().st_size > 10_000
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["ood"]) == {"arc-challenge", "mbpp", "winogrande"}
    assert prof.exists() and os.path.exists(str(model) + ".npz") and os.path.exists(str(model) + ".json")


def test_bad_dataset_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,model,quality,colour\np,a,1,red\n")
    assert main(["bench", "replay", "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and str(bad) in err
    assert main(["bench", "replay", "--dataset", str(tmp_path / "missing.csv")]) == 2
    assert main(["bench", "replay", "--learners", "svm"]) == 2


def test_bad_quota_config_is_a_clear_error(tmp_path, capsys):
    data = write_long(synthetic(30), str(tmp_path / "d.csv"))
    q = tmp_path / "q.yaml"
    q.write_text("quotas:\n  - id: x\n")
    assert main(["bench", "replay", "--dataset", data, "--quotas", str(q), "--out", str(tmp_path / "o"), *QUICK]) == 2
    assert str(q) in capsys.readouterr().err


def test_shipped_data_reduced_mode(tmp_path, capsys):
    rc = main(["bench", "replay", "--max-prompts", "600", "--out", str(tmp_path / "o"), "--json", *QUICK])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    _check_schema(rep)
    assert rep["dataset"]["name"].startswith("routerbench-compact")
    assert rep["best_single"]["name"] == "gpt-4-1106-preview"
    assert rep["aiq"]["quotaroute:balanced"] > rep["aiq"]["zero-router (single-model frontier)"]
