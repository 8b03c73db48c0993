"""How well the rule-based task classifier (`router.tasks`) agrees with dataset labels.

    python -m benchmarks.task_classifier [--data FILE] [--json]

Runs `router.tasks.extract_features` on every prompt of the shipped RouterBench-derived
data (or `--data`, any format `benchmarks.datasets.load` reads), as the last user
message of a `ChatRequest`, and prints the confusion table: dataset task -> router task
kind counts, with the share that agrees with `benchmarks.datasets.TASK_KIND_MAP` (the
kinds `benchmarks.learned` was trained with), and the median classification time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from benchmarks.datasets import load, load_shipped
from benchmarks.names import task_kind
from router.tasks import extract_features
from router.types import TASK_KINDS, ChatRequest, Message

__all__ = ["confusion", "shipped_pairs", "main"]


def shipped_pairs(path: str | None = None) -> list[tuple[str, str]]:
    """(dataset task, prompt) for every prompt of the dataset (default: the shipped one)."""
    ds = load(path) if path else load_shipped()
    return [(str(t), p) for t, p in zip(ds.tasks, ds.prompts)]


def confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """{"tasks": {dataset task: {"expected": kind, "n": N, "agree": share, "kinds": {kind: count}}},
    "agree": overall share, "median_us": per prompt}."""
    counts: dict[str, Counter[str]] = {}
    times: list[float] = []
    pc = time.perf_counter
    for task, prompt in pairs:
        req = ChatRequest(messages=[Message(role="user", content=prompt)])
        t0 = pc()
        kind = extract_features(req).task
        times.append(pc() - t0)
        counts.setdefault(task, Counter())[kind] += 1
    out: dict[str, Any] = {"tasks": {}}
    agree = total = 0
    for task in sorted(counts):
        c = counts[task]
        exp = task_kind(task)
        n = sum(c.values())
        out["tasks"][task] = {"expected": exp, "n": n, "agree": c[exp] / n if n else 0.0,
                              "kinds": dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))}
        agree += c[exp]
        total += n
    out["agree"] = agree / total if total else 0.0
    out["n"] = total
    out["median_us"] = statistics.median(times) * 1e6 if times else 0.0
    return out


def _table(res: dict[str, Any]) -> str:
    kinds = [k for k in TASK_KINDS if any(k in t["kinds"] for t in res["tasks"].values())]
    w = max([len("dataset task")] + [len(t) for t in res["tasks"]])
    lines = [f"{'dataset task':<{w}}  {'expected':<9} {'n':>5}  {'agree':>6}  " + " ".join(f"{k:>13}" for k in kinds)]
    for task, t in res["tasks"].items():
        lines.append(f"{task:<{w}}  {t['expected']:<9} {t['n']:>5}  {t['agree']:>6.1%}  "
                     + " ".join(f"{t['kinds'].get(k, 0):>13}" for k in kinds))
    lines.append(f"overall agreement {res['agree']:.1%} over {res['n']} prompts; "
                 f"median extract_features {res['median_us']:.1f} us per prompt")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset file (default: the shipped RouterBench-derived data)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    a = ap.parse_args(argv)
    res = confusion(shipped_pairs(a.data))
    print(json.dumps(res, indent=2) if a.json else _table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
