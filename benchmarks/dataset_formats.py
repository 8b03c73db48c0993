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
from router.tokens import estimate_tokens

__all__ = ["iter_routerbench", "iter_alpacaeval"]


def _routerbench_files(path: str) -> list[str]:
    if os.path.isdir(path):
        sub = os.path.join(path, "routerbench_zs")
        d = sub if os.path.isdir(sub) else path
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".csv", ".csv.gz")))
        if not files:
            raise DatasetError("no RouterBench CSV files in directory", file=path)
        return files
    return [path]


def iter_routerbench(path: str, *, responses: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Long rows from RouterBench's wide CSV(s) (a file or the routerbench-subset directory).

    With ``responses=True`` each row also carries ``response`` (the model's answer text)
    so a derivation script can estimate output tokens. Defective rows (NaN quality,
    2-element prompts) are yielded as errors and counted by the caller.
    """
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
