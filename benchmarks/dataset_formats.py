"""Readers for layouts other than the long format: RouterBench's wide CSV and
AlpacaEval's annotation files. Both yield long rows that `benchmarks.datasets` turns
into a `Dataset` with `from_long_rows`, so the same checks, skip counts and pricing
apply."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
from typing import Any, Iterator

from benchmarks.rows import DatasetError, open_text as _open_text
from router.answers import Extractor, extractor
from router.tokens import estimate_tokens

__all__ = ["iter_routerbench", "iter_alpacaeval", "ANSWER_SPECS", "answer_spec", "response_text", "read_answer"]

# RouterBench sub-dataset -> the `router.answers` spec its final answers are read with:
# a choice letter for the multiple-choice sets, the final number for GSM8K, a hash of the
# normalised code for MBPP (equal hashes = the same program text). Names not listed
# (mt-bench, summaries, ...) get no answer: there is no sound equality for free text.
ANSWER_SPECS: dict[str, str] = {
    "arc-challenge": "choice",
    "winogrande": "choice",
    "hellaswag": "choice",
    "mmlu": "choice",
    "gsm8k": "number",
    "mbpp": "code",
}


def answer_spec(task: str) -> str | None:
    """The answer spec for a sub-dataset name (``mmlu-*`` -> ``mmlu``), or None."""
    t = task.strip().lower()
    return ANSWER_SPECS.get(t) or ANSWER_SPECS.get(t.split("-", 1)[0] if t.startswith("mmlu") else "")


def response_text(cell: str) -> str:
    """A RouterBench response cell (a Python list literal of strings) as one text."""
    try:
        resp = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return cell
    return "\n".join(map(str, resp)) if isinstance(resp, list) else str(resp)


def read_answer(ex: Extractor | None, text: str) -> tuple[str, str]:
    """(answer, parse_ok) cells of the long format: ("", "") where the task has no spec."""
    if ex is None:
        return "", ""
    got = ex.extract(text)
    return (got, "1") if got is not None else ("", "0")


def _routerbench_files(path: str) -> list[str]:
    if os.path.isdir(path):
        sub = os.path.join(path, "routerbench_zs")
        d = sub if os.path.isdir(sub) else path
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".csv", ".csv.gz")))
        if not files:
            raise DatasetError("no RouterBench CSV files in directory", file=path)
        return files
    return [path]


def iter_routerbench(path: str, *, responses: bool = False, answers: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """Long rows from RouterBench's wide CSV(s) (a file or the routerbench-subset directory).

    With ``responses=True`` each row also carries ``response`` (the model's answer text)
    so a derivation script can estimate output tokens. With ``answers=True`` (default)
    each row carries ``answer`` and ``parse_ok``, read from the response with the task's
    `answer_spec` (both empty for tasks without one). Defective rows (NaN quality,
    2-element prompts) are yielded as errors and counted by the caller.
    """
    extractors: dict[str, Extractor | None] = {}
    for f in _routerbench_files(path):
        base = os.path.basename(f)
        split_name = "test" if "_test" in base else "train" if "_train" in base else ""
        csv.field_size_limit(1 << 30)
        with _open_text(f) as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for need in ("sample_id", "prompt", "eval_name"):
                if need not in cols:
                    raise DatasetError("not a RouterBench wide CSV", file=f, line=1, key=need)
            models = [c for c in cols if c and "|" not in c and c not in ("sample_id", "prompt", "eval_name", "oracle_model_to_route_to", "Unnamed: 0")]
            for row in reader:
                line = reader.line_num
                try:
                    parts = ast.literal_eval(row["prompt"])
                except (ValueError, SyntaxError):
                    yield line, {"__error__": "unparseable prompt literal"}
                    continue
                if not isinstance(parts, list) or len(parts) != 1:
                    yield line, {"__error__": "defective prompt (not exactly one part)"}
                    continue
                text = "\n".join(str(p) for p in parts)
                # `Unnamed: 0` (blank header) is the row index in RouterBench's source file: unique.
                pid = f"{row['eval_name']}#{row.get('') or row.get('Unnamed: 0') or line}"
                for m in models:
                    out = {
                        "prompt_id": pid,
                        "task": row["eval_name"],
                        "prompt": text,
                        "model": m,
                        "quality": row[m],
                        "cost_usd": row.get(f"{m}|total_cost", ""),
                        "split": split_name,
                    }
                    if responses:
                        out["response"] = row.get(f"{m}|model_response", "")
                    if answers:
                        task = row["eval_name"]
                        if task not in extractors:
                            spec = answer_spec(task)
                            extractors[task] = extractor(spec) if spec else None
                        ex = extractors[task]
                        cell = row.get(f"{m}|model_response") or ""
                        out["answer"], out["parse_ok"] = read_answer(ex, response_text(cell) if ex else "")
                    yield line, out


# ------------------------------------------------------------------ AlpacaEval annotations


def _alpaca_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    root = os.path.join(path, "results") if os.path.isdir(os.path.join(path, "results")) else path
    found = []
    for dirpath, _dirs, files in os.walk(root):
        found += [os.path.join(dirpath, f) for f in files if f == "annotations.json"]
    if not found:
        raise DatasetError("no AlpacaEval annotations.json files found", file=path)
    return sorted(found)


def iter_alpacaeval(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Long rows from AlpacaEval annotations: quality = preference - 1 vs the GPT-4-Turbo
    reference; prompts are joined on the instruction text; token counts are estimated
    from the instruction and the output text (``cost_usd`` is not recorded)."""
    for f in _alpaca_files(path):
        with open(f, encoding="utf-8") as fh:
            try:
                items = json.load(fh)
            except json.JSONDecodeError as e:
                raise DatasetError(f"invalid JSON: {e.msg}", file=f, line=e.lineno) from e
        if not isinstance(items, list):
            raise DatasetError("expected a JSON list of annotations", file=f)
        for n, it in enumerate(items, 1):
            if not isinstance(it, dict) or "instruction" not in it or "generator_2" not in it:
                yield n, {"__error__": "annotation without instruction/generator_2"}
                continue
            pref = it.get("preference")
            if pref is None:
                yield n, {"__error__": "annotation without preference"}
                continue
            instr = str(it["instruction"])
            yield n, {
                "prompt_id": hashlib.sha1(instr.encode()).hexdigest()[:16],
                "task": "alpacaeval",
                "prompt": instr,
                "model": str(it["generator_2"]),
                "quality": float(pref) - 1.0,
                "input_tokens": estimate_tokens(instr),
                "output_tokens": estimate_tokens(str(it.get("output_2") or "")),
            }
