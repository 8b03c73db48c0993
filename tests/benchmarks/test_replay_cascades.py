"""Answer-agreement cascades in the replay: exact simulation on answers whose right
answer is known, selection on train, the exported config snippet (round trip)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from benchmarks import cascades as cz
from benchmarks.cascades_eval import evaluate_agreement, infer_extract
from benchmarks.cascades_export import build_snippet, check_snippet, pick_choice, write_snippet
from benchmarks.datasets import Dataset, load
from router.cli import main
from router.errors import ConfigError

C1, C2, C3, CS = 0.001, 0.002, 0.004, 0.1  # costs of cheap1, cheap2, cheap3, strong


def _tiny(answers: list[list[str | None]], right: list[str]) -> tuple[Dataset, np.ndarray]:
    """Prompts whose right answer is `right[i]`; quality = 1 where a model's answer is it."""
    A = np.array(answers, dtype=object)
    P, M = A.shape
    Q = np.array([[1.0 if A[i, j] == right[i] else 0.0 for j in range(M)] for i in range(P)])
    C = np.tile(np.array([C1, C2, C3, CS][:M]), (P, 1))
    ds = Dataset("tiny", [f"p{i}" for i in range(P)], [""] * P, np.array(["gsm8k"] * P), ["cheap1", "cheap2", "cheap3", "strong"][:M],
                 Q, C, np.ones((P, M), np.int64), np.ones((P, M), np.int64), None, {}, A, A != None)  # noqa: E711
    return ds, cz.answer_classes(A)


QPROF = None  # expected quality for "the strongest model of a stage": strong > cheap3 > cheap2 > cheap1


def _qprof(P: int, M: int = 4) -> np.ndarray:
    return np.tile(np.arange(M, dtype=float) / 10, (P, 1))


def test_consensus_then_strong_costs_escalation_and_stages():
    ds, A = _tiny([["7", "7", "1", "7"],      # cheap pair agrees, right
                   ["7", "8", "1", "7"],      # disagree -> strong
                   [None, None, "1", "7"],    # nothing read never agrees -> strong
                   ["5", "5.0", "1", "7"]],   # agree on a wrong answer (5 == 5.0): accepted, quality 0
                  ["7", "7", "7", "7"])
    pol = cz.Policy((cz.Stage("consensus", (0, 1), 2), cz.Stage("single", (3,))))
    o = cz.simulate(pol, A, ds.quality, ds.cost_usd, _qprof(4))
    assert o.cost == pytest.approx([C1 + C2, C1 + C2 + CS, C1 + C2 + CS, C1 + C2])
    assert list(o.quality) == [1, 1, 1, 0]
    assert list(o.escalated) == [False, True, True, False] and o.escalated.mean() == 0.5
    assert list(o.stages) == [1, 2, 2, 1] and list(o.rounds) == [1, 2, 2, 1] and list(o.calls) == [2, 3, 3, 2]
    assert list(o.replied) == [0, 3, 3, 0]  # the first (cheapest) agreeing model's reply


def test_lazy_majority_calls_the_third_only_on_disagreement():
    ds, A = _tiny([["4", "4", "9", "4"],      # first two agree: 2 calls, 1 round
                   ["1", "4", "4", "4"],      # third breaks the tie with the second: reply of cheap2
                   ["1", "2", "3", "4"]],     # no majority -> strong
                  ["4", "4", "4"])
    pol = cz.Policy((cz.Stage("lazy-majority", (0, 1, 2)), cz.Stage("single", (3,))))
    o = cz.simulate(pol, A, ds.quality, ds.cost_usd, _qprof(3))
    assert o.cost == pytest.approx([C1 + C2, C1 + C2 + C3, C1 + C2 + C3 + CS])
    assert list(o.calls) == [2, 3, 4] and list(o.rounds) == [1, 2, 3] and list(o.stages) == [1, 1, 2]
    assert list(o.replied) == [0, 1, 3] and list(o.quality) == [1, 1, 1]


def test_vote_ties_last_stage_fallback_and_chains():
    ds, A = _tiny([["A", "B", "B", "A"],      # 2-2 tie (m=2): the earliest model's answer wins (A, cheap1)
                   ["A", "B", "C", "D"]],     # no agreement in a last consensus stage: its strongest model answers
                  ["B", "C"])
    pol = cz.Policy((cz.Stage("consensus", (0, 1, 2, 3), 2),))
    o = cz.simulate(pol, A, ds.quality, ds.cost_usd, _qprof(2))
    assert list(o.replied) == [0, 3] and list(o.quality) == [0, 0]
    assert o.cost == pytest.approx([C1 + C2 + C3 + CS] * 2) and not o.escalated.any()
    chain = cz.Policy((cz.Stage("consensus", (0, 1), 2), cz.Stage("consensus", (2, 3), 2)))
    o2 = cz.simulate(chain, A, ds.quality, ds.cost_usd, _qprof(2))
    assert list(o2.stages) == [2, 2] and list(o2.replied) == [3, 3]  # stage 2 disagrees -> its strongest (strong)
    assert chain.label(ds.models) == "agree2/2(cheap1+cheap2) > agree2/2(cheap3+strong)"


def test_answer_classes_and_extract_guess():
    A = np.array([["1,000", "1000.0", "", None], ["B", "b", " b ", "x"]], dtype=object)
    cls = cz.answer_classes(A)
    assert cls[0, 0] == cls[0, 1] and cls[0, 2] == cls[0, 3] == -1
    assert cls[1, 0] == cls[1, 1] == cls[1, 2] != cls[1, 3]
    assert (cz.answer_classes(A, np.array([[False, True, True, True], [True] * 4]))[0] == [-1, 0, -1, -1]).all()
    assert infer_extract(np.array([["A", "B"], [None, "C"]], dtype=object)) == "choice"
    assert infer_extract(np.array([["12", "-3.5"]], dtype=object)) == "number"
    assert infer_extract(np.array([["3f2a9c0d11", "00aa11bb22"]], dtype=object)) == "code"
    with pytest.raises(ValueError):
        cz.Stage("consensus", (0, 1), 3)


# ------------------------------------------------------------------ selection on train, reported on test


def _agreeing(n: int, seed: int, *, agree_right: bool = True, kinds: tuple[str, ...] = ("gsm8k",)) -> Dataset:
    """When the two cheapest agree (half the prompts) the agreed answer is right
    (`agree_right`) or wrong; else one of them is right; strong is always right."""
    rng = np.random.default_rng(seed)
    A = np.empty((n, 4), dtype=object)
    for i in range(n):
        if rng.random() < 0.5:
            a = "42" if agree_right else "41"
            A[i, :2] = a
        else:
            A[i, 0], A[i, 1] = ("42", "17") if rng.random() < 0.5 else ("17", "42")
        A[i, 2] = "3"  # a third cheap model that is always wrong (a third vote never helps)
        A[i, 3] = "42"
    Q = (A == "42").astype(float)
    C = np.tile(np.array([C1, C2, C3, CS]), (n, 1))
    tasks = np.array([kinds[i % len(kinds)] for i in range(n)])
    return Dataset("agree", [f"q{seed}-{i}" for i in range(n)], [""] * n, tasks, ["openai:gpt-5-nano", "gemini:gemini-2.5-flash-lite",
                   "deepseek:deepseek-flash", "openai:gpt-4.1"], Q, C, np.ones((n, 4), np.int64), np.ones((n, 4), np.int64), None, {}, A, A != None)  # noqa: E711


def _idx(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, n, size=(200, n))


def test_selection_uses_train_only_and_reports_test_with_cis():
    train, test = _agreeing(400, 1), _agreeing(300, 2)
    rep, pts, chosen = evaluate_agreement(train, test, idx=_idx(300))
    row = rep["chosen"]["global@1.00"]
    assert row["policy"]["*"]["label"] == "agree2/2(gpt-5-nano+gemini-2.5-flash-lite) > gpt-4.1"
    assert row["quality"] == 1.0
    # half the prompts escalate: cost = C1 + C2 + 0.5 * CS (up to the sample's share)
    esc = row["escalation_rate"]
    assert row["cost_usd"] == pytest.approx(C1 + C2 + esc * CS)
    assert 0.4 < esc < 0.6 and row["rounds_max"] == 2 and row["stages_max"] == 2
    assert row["quality_ci95"][0] <= row["quality"] <= row["quality_ci95"][1]
    assert row["beats_zero_router"] == "yes" and row["met_target"] is False  # 50% escalation to a 100x model
    assert rep["extract"] == {"math": "number"} and pts and all(p.family == "agreement" for p in pts)
    # the same choice on a test split where the agreed answers are wrong: chosen on train, so it pays there
    bad, _pts, _ch = evaluate_agreement(train, _agreeing(300, 3, agree_right=False), idx=_idx(300))
    b = bad["chosen"]["global@1.00"]
    assert b["policy"] == row["policy"] and b["quality"] < 0.6 and b["beats_zero_router"] == "no (worse)"


def test_per_task_kind_choice_and_no_answer_column():
    train, test = _agreeing(400, 1, kinds=("gsm8k", "arc-challenge")), _agreeing(300, 2, kinds=("gsm8k", "arc-challenge"))
    rep, _pts, _ch = evaluate_agreement(train, test, idx=_idx(300))
    assert set(rep["chosen"]) == {"global@0.97", "global@1.00", "per-kind@0.97", "per-kind@1.00"}
    assert set(rep["chosen"]["per-kind@1.00"]["policy"]) == {"math", "reasoning"}
    no = Dataset(**{**train.__dict__, "answers": None, "parse_ok": None})
    rep2, pts2, ch2 = evaluate_agreement(no, no, idx=_idx(400))
    assert rep2 == {"available": False, "reason": "the data set has no `answer` column: answer agreement cannot be replayed"}
    assert pts2 == [] and ch2 == {}


# ------------------------------------------------------------------ export: snippet shape, YAML round trip, the config loader


def _agreement_report(kinds: tuple[str, ...] = ("gsm8k",)) -> dict:
    train, test = _agreeing(400, 1, kinds=kinds), _agreeing(300, 2, kinds=kinds)
    return json.loads(json.dumps(evaluate_agreement(train, test, idx=_idx(300))[0]))  # what report.json holds


def test_export_round_trip(tmp_path):
    ag = _agreement_report()
    assert pick_choice(ag, 1.0) == "global@1.00"
    out = write_snippet(ag, str(tmp_path / "c.yaml"), dataset="agree", target=1.0)
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert data == build_snippet(ag, "global@1.00") and out["cascades"] == ["replay"]
    assert data == {"cascades": {"replay": {"extract": "number", "stages": [
        {"mode": "consensus", "k": 2, "m": 2, "models": ["openai:gpt-5-nano", "gemini:gemini-2.5-flash-lite"], "policy": "cheapest"},
        {"mode": "single", "models": ["openai:gpt-4.1"]}]}}, "policy": {"default": "cascade:replay"}}
    check_snippet(data)


def test_export_per_kind_writes_rules():
    ag = _agreement_report(("gsm8k", "arc-challenge"))
    ag["extract"] = {"math": "number", "reasoning": "choice"}
    snip = build_snippet(ag, "per-kind@1.00")
    assert {r["match"]["task"] for r in snip["rules"]} == {"math", "reasoning"}
    for r in snip["rules"]:
        assert ("cascade" in r and r["cascade"] in snip["cascades"]) or r.get("models")
    with pytest.raises(ValueError):  # one cascade cannot carry two extractors
        build_snippet(ag, "global@1.00")


@pytest.mark.parametrize("bad, key", [
    ({"cascades": {"x": {"stages": [{"mode": "single", "models": ["a"]}]}}}, "cascades.x.extract"),
    ({"cascades": {"x": {"extract": "number", "stages": [{"mode": "consensus", "k": 2, "m": 3, "models": ["a", "b"]}]}}}, "cascades.x.stages.0.m"),
    ({"cascades": {"x": {"extract": "number", "stages": []}}}, "cascades.x.stages"),
    ({"cascades": {"bad name!": {"extract": "number", "stages": [{"mode": "single"}]}}}, "cascades.bad name!"),
    ({"cascades": {"x": {"extract": "number", "stages": [{"mode": "single"}]}}, "rules": [{"cascade": "y"}]}, "rules.0.cascade"),
    ({"cascades": {"x": {"extract": "number", "stages": [{"mode": "single"}]}}, "policy": {"default": "cascade:y"}}, "policy.default"),
])
def test_check_snippet_refuses_what_the_router_would(bad, key):
    with pytest.raises(ConfigError) as e:
        check_snippet(bad)
    assert e.value.key == key


def test_exported_snippet_loads_with_the_config_loader(tmp_path):
    """`quotaroute serve` reads the snippet as is: the project's loader accepts it."""
    from router.config import load_config
    from router.config.schema import QuotarouteConfig

    if "cascades" not in QuotarouteConfig.model_fields:
        pytest.skip("the config schema has no `cascades:` section yet (the router's cascade work adds it)")
    path = tmp_path / "quotaroute.yaml"
    write_snippet(_agreement_report(), str(path), dataset="agree", target=1.0)
    cfg = load_config(str(path))
    assert "replay" in cfg.cascades and cfg.policy.default == "cascade:replay"


# ------------------------------------------------------------------ the command, data-set agnostic


def _write_long_with_answers(ds: Dataset, path: str) -> str:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt_id", "task", "prompt", "model", "quality", "cost_usd", "answer", "parse_ok", "split"])
        w.writeheader()
        for i, pid in enumerate(ds.prompt_ids):
            for j, m in enumerate(ds.models):
                a = ds.answers[i, j]
                w.writerow({"prompt_id": pid, "task": ds.tasks[i], "prompt": f"question {pid}", "model": m, "quality": ds.quality[i, j],
                            "cost_usd": ds.cost_usd[i, j], "answer": a or "", "parse_ok": int(a is not None),
                            "split": "train" if i < 200 else "test"})
    return path


def test_cli_reports_and_exports_cascades(tmp_path, capsys):
    data = _write_long_with_answers(_agreeing(300, 5), str(tmp_path / "d.csv"))
    ds = load(data)
    assert ds.answers is not None and ds.answers[0, 3] == "42" and ds.parse_ok[0, 3]
    cfg = tmp_path / "cascade.yaml"
    rc = main(["bench", "replay", "--dataset", data, "--out", str(tmp_path / "o"), "--json", "--learners", "knn", "--no-ood",
               "--export-config", str(cfg), "--cascade-target", "1.0"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    ag = rep["agreement"]
    assert ag["available"] and "global@1.00" in ag["chosen"]
    assert "quotaroute:agreement-cascade" in rep["aiq"] and rep["targets"]["agreement_cascade"]["choice"] == "global@1.00"
    assert rep["outputs_extra"]["config"]["path"] == str(cfg)
    check_snippet(yaml.safe_load(cfg.read_text()))
    assert "Answer-agreement cascades" in (tmp_path / "o" / "report.md").read_text()
    assert (tmp_path / "o" / "frontier.png").stat().st_size > 10_000  # cascade points drawn against the frontier


def test_cli_export_without_answers_is_a_clear_error(tmp_path, capsys):
    from tests.benchmarks.replay_helpers import synthetic, write_long

    data = write_long(synthetic(90), str(tmp_path / "d.csv"))
    rc = main(["bench", "replay", "--dataset", data, "--out", str(tmp_path / "o"), "--learners", "knn", "--no-ood", "--no-plot",
               "--test-fraction", "0.3", "--export-config", str(tmp_path / "c.yaml")])
    assert rc == 2 and "no `answer` column" in capsys.readouterr().err
