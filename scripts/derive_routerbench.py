"""Derive the shipped compact dataset from ../shared/datasets/routerbench-subset.

    python scripts/derive_routerbench.py [--src DIR] [--out benchmarks/data/routerbench_compact.csv.gz]

What it does (reproducible, deterministic):

* reads RouterBench's wide CSVs (ARC-Challenge, MBPP, WinoGrande rows only: the subset
  holds nothing else, and all three benchmarks allow redistribution with attribution);
* drops the 14 defective rows (2-element prompt, NaN quality) and every prompt where
  any model's correctness is missing (14 more: gpt-3.5-turbo-1106 is blank there);
* keeps, per (prompt, model): correctness (0/1), RouterBench's USD cost, the input
  tokens estimated from the full 5-shot prompt and the output tokens estimated from
  the response text. The response texts themselves are NOT written;
* writes the prompt text once per prompt: for ARC and WinoGrande only the final
  question (the 5 worked examples are one fixed prefix per task, and only add input
  tokens, which are already counted in ``input_tokens``); MBPP task descriptions whole;
* keeps RouterDC's train/test split in the ``split`` column;
* reads each response's final answer with ``router.answers`` (the task's spec in
  ``benchmarks.dataset_formats.ANSWER_SPECS``: a choice letter for ARC and WinoGrande,
  a 12-hex hash of the normalised code for MBPP) into ``answer``, and whether one could
  be read into ``parse_ok`` (1/0). Only these short normalised answers are written.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.dataset_formats import iter_routerbench  # noqa: E402
from benchmarks.datasets import LONG_COLUMNS, estimate_tokens  # noqa: E402

ALLOWED_TASKS = {"arc-challenge", "mbpp", "winogrande"}  # see benchmarks/data/ATTRIBUTION.md


def question_only(task: str, text: str) -> str:
    """The final question of a k-shot prompt (ARC/WinoGrande); other prompts whole."""
    if task in ("arc-challenge", "winogrande") and "\n\n" in text:
        q = text.rsplit("\n\n", 1)[1]
        if task == "winogrande" and not q.startswith("Please answer"):
            q = "Please answer with the letter of the correct answer.\n\n" + q
        return q
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--src", default=os.path.join(here, "..", "..", "shared", "datasets", "routerbench-subset"))
    ap.add_argument("--out", default=os.path.join(here, "..", "benchmarks", "data", "routerbench_compact.csv.gz"))
    args = ap.parse_args(argv)

    import ast

    rows: dict[str, list[dict[str, object]]] = {}
    skipped: Counter[str] = Counter()
    for _line, r in iter_routerbench(args.src, responses=True):
        if "__error__" in r:
            skipped[r["__error__"]] += 1
            continue
        if r["task"] not in ALLOWED_TASKS:
            skipped[f"task {r['task']} not redistributable"] += 1
            continue
        rows.setdefault(str(r["prompt_id"]), []).append(r)
    out_rows = []
    models: list[str] = []
    for pid, cells in rows.items():
        if any(str(c["quality"]).strip() in ("", "nan") for c in cells):
            skipped["prompt with a missing correctness value"] += 1
            continue
        text = str(cells[0]["prompt"])
        n_in = estimate_tokens(text)
        for k, c in enumerate(sorted(cells, key=lambda c: str(c["model"]))):
            if str(c["model"]) not in models:
                models.append(str(c["model"]))
            try:
                resp = ast.literal_eval(str(c["response"]))
                resp_text = "\n".join(map(str, resp)) if isinstance(resp, list) else str(resp)
            except (ValueError, SyntaxError):
                resp_text = str(c["response"])
            out_rows.append(
                {
                    "prompt_id": pid,
                    "task": c["task"],
                    "prompt": question_only(str(c["task"]), text) if k == 0 else "",
                    "model": c["model"],
                    "quality": f"{float(str(c['quality'])):g}",
                    "input_tokens": n_in,
                    "output_tokens": estimate_tokens(resp_text),
                    "cost_usd": f"{float(str(c['cost_usd'])):.4g}",
                    "split": c["split"],
                    "answer": c["answer"],
                    "parse_ok": c["parse_ok"],
                }
            )
    # Model-major order: the prompt text sits in the first model's block only, which
    # gzip compresses far better than interleaved rows (the loader does not care).
    out_rows.sort(key=lambda r: models.index(str(r["model"])))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(LONG_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(out_rows)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(buf.getvalue().encode("utf-8"))
    n_prompts = len({r["prompt_id"] for r in out_rows})
    print(f"wrote {args.out}: {n_prompts} prompts x {len(models)} models, {len(out_rows)} rows, {os.path.getsize(args.out)} bytes")
    print("skipped:", dict(skipped))
    for task in sorted({str(r["task"]) for r in out_rows}):
        oks = [r["parse_ok"] == "1" for r in out_rows if r["task"] == task]
        print(f"answers read, {task}: {sum(oks)}/{len(oks)} ({sum(oks) / len(oks):.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
