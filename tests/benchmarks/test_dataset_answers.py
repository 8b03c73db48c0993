"""The optional `answer` / `parse_ok` columns of the long format, and the shipped answers."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from benchmarks import datasets as D
from benchmarks.dataset_formats import answer_spec, read_answer, response_text
from router.answers import extractor

HEAD = "prompt_id,task,model,quality,cost_usd"


def _write(tmp_path, text: str, name: str = "d.csv") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_long_csv_with_answers(tmp_path):
    p = _write(tmp_path, HEAD + ",answer,parse_ok\n"
               "p1,gsm8k,a,1,0.1,18,1\n"
               "p1,gsm8k,b,0,0.2,,0\n"
               "p2,gsm8k,a,1,0.1,0.5,\n"    # parse_ok empty: "answer is not empty"
               "p2,gsm8k,b,1,0.2,,\n")
    ds = D.load(p)
    assert ds.answers.tolist() == [["18", ""], ["0.5", ""]]
    assert ds.parse_ok.tolist() == [[True, False], [True, False]]
    sub = ds.subset([1]).select_models(["b", "a"])
    assert sub.answers.tolist() == [["", "0.5"]] and sub.parse_ok.tolist() == [[False, True]]


def test_long_without_answers_still_loads(tmp_path):
    ds = D.load(_write(tmp_path, HEAD + "\np1,t,a,1,0.1\np1,t,b,0,0.2\n"))
    assert ds.answers is None and ds.parse_ok is None
    assert ds.subset([0]).answers is None and ds.select_models(["b"]).parse_ok is None


def test_long_jsonl_answers_and_bad_parse_ok(tmp_path):
    rows = [
        {"prompt_id": "p1", "model": "a", "quality": 1, "cost_usd": 0.1, "answer": 42, "parse_ok": True},
        {"prompt_id": "p1", "model": "b", "quality": 0, "cost_usd": 0.2, "answer": None, "parse_ok": False},
        {"prompt_id": "p2", "model": "a", "quality": 1, "cost_usd": 0.1, "answer": "B"},  # parse_ok absent
        {"prompt_id": "p2", "model": "b", "quality": 1, "cost_usd": 0.2, "answer": "B", "parse_ok": "maybe"},
        {"prompt_id": "p3", "model": "a", "quality": 1, "cost_usd": 0.1},  # no answer keys at all
        {"prompt_id": "p3", "model": "b", "quality": 1, "cost_usd": 0.2},
    ]
    p = _write(tmp_path, "\n".join(json.dumps(r) for r in rows), "d.jsonl")
    ds = D.load(p)
    assert ds.skipped["parse_ok not 1/0/true/false"] == 1
    assert ds.skipped["prompt lacks some models (incomplete row set)"] == 1  # p2 lost its b row
    assert ds.prompt_ids == ["p1", "p3"]
    assert ds.answers.tolist() == [["42", ""], ["", ""]]
    assert ds.parse_ok.tolist() == [[True, False], [False, False]]


def test_routerbench_answer_helpers():
    assert answer_spec("arc-challenge") == answer_spec("mmlu-college-physics") == "choice"
    assert answer_spec("gsm8k") == "number" and answer_spec("mbpp") == "code" and answer_spec("mt-bench") is None
    assert response_text("['B\\n']") == "B\n" and response_text("not a literal") == "not a literal"
    assert read_answer(extractor("choice"), "D)") == ("D", "1")
    assert read_answer(extractor("choice"), "I do") == ("", "0")
    assert read_answer(None, "anything") == ("", "")


def test_shipped_answers():
    ds = D.load_shipped()
    assert ds.answers.shape == ds.quality.shape == (3150, 11)
    for task, floor in (("arc-challenge", 0.96), ("winogrande", 0.96), ("mbpp", 0.99)):
        r = ds.tasks == task
        assert ds.parse_ok[r].mean() >= floor
        read = ds.answers[r][ds.parse_ok[r]]
        pattern = r"[0-9a-f]{12}" if task == "mbpp" else r"[A-J]"
        assert all(re.fullmatch(pattern, a) for a in read)
        assert not ds.answers[r][~ds.parse_ok[r]].any()
    # the letters agree with the recorded grades: correct replies to one prompt give one letter
    for i in np.flatnonzero(ds.tasks != "mbpp"):
        right = {ds.answers[i, j] for j in range(ds.n_models) if ds.quality[i, j] == 1 and ds.parse_ok[i, j]}
        wrong = {ds.answers[i, j] for j in range(ds.n_models) if ds.quality[i, j] == 0 and ds.parse_ok[i, j]}
        assert len(right) <= 1 and not right & wrong


def test_routerbench_subset_answers_match_shipped(shared_dir):
    ds = D.load(os.path.join(shared_dir, "datasets", "routerbench-subset"))
    shipped = D.load_shipped()
    j = [ds.models.index(m) for m in shipped.models]
    i = [ds.prompt_ids.index(p) for p in shipped.prompt_ids]
    assert (ds.answers[np.ix_(i, j)] == shipped.answers).all()
    assert (ds.parse_ok[np.ix_(i, j)] == shipped.parse_ok).all()
