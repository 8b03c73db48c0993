"""Tiny synthetic datasets for the replay benchmark tests."""

from __future__ import annotations

import csv
import gzip
import json
import os
from typing import Any

import numpy as np

from benchmarks.datasets import Dataset

MODELS = ("cheap", "mid", "strong")
COST = (0.0001, 0.0005, 0.005)


def synthetic(n: int = 300, seed: int = 0, *, tasks: tuple[str, ...] = ("arc-challenge", "mbpp", "winogrande")) -> Dataset:
    """Prompts with a learnable signal: the word 'hard' makes the cheap models fail;
    'code' prompts need the strong model."""
    rng = np.random.default_rng(seed)
    prompts, tk, q = [], [], []
    for i in range(n):
        task = tasks[i % len(tasks)]
        hard = rng.random() < 0.5
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"], size=6))
        prompts.append(f"{'hard' if hard else 'easy'} question {i}: {words}")
        tk.append(task)
        if hard:
            row = [0.0, float(rng.random() < 0.3), 1.0]
        else:
            row = [1.0, 1.0, float(rng.random() < 0.95)]
        if task == "mbpp":
            row = [0.0, row[1] * float(rng.random() < 0.5), row[2]]
        q.append(row)
    Q = np.array(q)
    C = np.tile(np.array(COST), (n, 1)) * rng.uniform(0.8, 1.2, size=(n, 1))
    return Dataset(
        name="synthetic", prompt_ids=[f"p{i}" for i in range(n)], prompts=prompts, tasks=np.array(tk), models=list(MODELS),
        quality=Q, cost_usd=C, input_tokens=np.full((n, 3), 50), output_tokens=np.full((n, 3), 5), split=None, skipped={},
    )


def write_long(ds: Dataset, path: str, *, extra: dict[str, Any] | None = None) -> str:
    rows = []
    for i, pid in enumerate(ds.prompt_ids):
        for j, m in enumerate(ds.models):
            rows.append({"prompt_id": pid, "task": ds.tasks[i], "prompt": ds.prompts[i], "model": m, "quality": ds.quality[i, j],
                         "input_tokens": int(ds.input_tokens[i, j]), "output_tokens": int(ds.output_tokens[i, j]),
                         "cost_usd": float(ds.cost_usd[i, j]), **(extra or {})})
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        if ".jsonl" in path:
            for r in rows:
                fh.write(json.dumps({k: (str(v) if isinstance(v, np.str_) else v) for k, v in r.items()}) + "\n")
        else:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def write_routerbench(path: str) -> str:
    """A 3-row RouterBench wide CSV: one good row, one defective (2-part prompt), one NaN."""
    models = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"]
    cols = ["", "sample_id", "prompt", "eval_name"]
    for m in models:
        cols += [m, f"{m}|model_response", f"{m}|total_cost"]
    cols.append("oracle_model_to_route_to")
    rows = [
        ["0", "mbpp.dev.1", "['Write a function to add two numbers.']", "mbpp", "1.0", "['def add(a, b): return a + b']", "0.004", "0.0", "['oops']", "0.0002", "gpt-4-1106-preview"],
        ["1", "arc-challenge.val.19", "['Q1', 'Q2']", "arc-challenge", "", "['A']", "0.004", "", "['B']", "0.0002", "no_model_correct"],
        ["2", "arc-challenge.val.20", "['Which is heavier?\\nA) 1kg\\nB) 2kg']", "arc-challenge", "1.0", "['B']", "0.0035", "", "['B']", "0.0002", "gpt-4-1106-preview"],
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)
    return path


def write_alpacaeval(root: str, extra_models: tuple[str, ...] = ()) -> str:
    models = [("gpt4_1106_preview", [1.5, 1.5, 1.5]), ("gpt-3.5-turbo-1106", [1.2, 1.9, 1.0])]
    models += [(m, [1.1, 1.1, 1.1]) for m in extra_models]
    for model, prefs in models:
        d = os.path.join(root, "results", model, "weighted_alpaca_eval_gpt4_turbo")
        os.makedirs(d, exist_ok=True)
        items = [{"instruction": f"Instruction {i}", "dataset": "oasst", "generator_1": "gpt4_1106_preview", "output_1": "ref",
                  "generator_2": model, "output_2": "an answer " * (i + 1), "annotator": "weighted_alpaca_eval_gpt4_turbo",
                  "preference": p} for i, p in enumerate(prefs)]
        with open(os.path.join(d, "annotations.json"), "w", encoding="utf-8") as fh:
            json.dump(items, fh)
    return root
