"""Recorded per-prompt x per-model outcomes as numpy matrices (offline routing evaluation).

The generic *long* format has one row per (prompt, model)::

    prompt_id, task, prompt, model, quality, input_tokens, output_tokens, cost_usd[, split][, answer, parse_ok]

* ``quality`` in 0..1 (correctness or a judge score);
* ``cost_usd`` may be absent/empty: it is then computed from the catalog price of the
  model (``router.catalog`` + ``router.pricing``); a model without a price is an error;
* token counts may be absent/empty: they are estimated from the prompt text
  (``router.tokens.estimate_tokens``, or ~4 characters per token without it);
* ``prompt`` may be empty on later rows of the same ``prompt_id`` (compact files);
* ``split`` (``train``/``test``) is optional;
* ``answer`` (optional): the model's final answer, normalised by ``router.answers``
  (a number, a choice letter, a short string, a code hash), empty when none was read;
  ``parse_ok`` (optional, 1/0 or true/false): whether an answer was read (when absent it
  is "``answer`` is not empty"). Loaded as ``Dataset.answers`` / ``Dataset.parse_ok``.

CSV, JSONL, optionally gzip-compressed (``.gz``). Loaders also read RouterBench's wide
CSV and AlpacaEval annotation files. Unknown columns raise `DatasetError`; bad rows are
skipped and *counted* (``Dataset.skipped``), never silently used.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np

from benchmarks.dataset_formats import iter_alpacaeval, iter_routerbench
from benchmarks.names import MODEL_ID_MAP, TASK_KIND_MAP, genai_rates, task_kind
from benchmarks.rows import DatasetError, iter_rows as _iter_rows, num as _num, open_text as _open_text
from router.catalog import load_catalog
from router.pricing import estimate_cost_usd
from router.tokens import estimate_tokens as _est

__all__ = [
    "LONG_COLUMNS",
    "TASK_KIND_MAP",
    "MODEL_ID_MAP",
    "DatasetError",
    "Dataset",
    "load",
    "load_long",
    "load_routerbench",
    "load_alpacaeval",
    "load_shipped",
    "shipped_path",
    "split",
    "task_kind",
    "estimate_tokens",
    "from_long_rows",
]

LONG_COLUMNS = ("prompt_id", "task", "prompt", "model", "quality", "input_tokens", "output_tokens", "cost_usd", "split",
                "answer", "parse_ok")
_TRUE, _FALSE = frozenset({"1", "1.0", "true", "yes"}), frozenset({"0", "0.0", "false", "no"})
_REQUIRED = ("prompt_id", "model", "quality")

def estimate_tokens(text: str) -> int:
    """Token estimate for a prompt or an answer (`router.tokens.estimate_tokens`)."""
    return int(_est(text))


@dataclass
class Dataset:
    """Outcomes as matrices: rows = prompts, columns = models (float64; ints for tokens)."""

    name: str
    prompt_ids: list[str]
    prompts: list[str]
    tasks: Any  # np.ndarray[str] (P,)
    models: list[str]
    quality: Any  # (P, M) float
    cost_usd: Any  # (P, M) float
    input_tokens: Any  # (P, M) int
    output_tokens: Any  # (P, M) int
    split: Any = None  # np.ndarray[str] (P,) or None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    # Final answers (the optional `answer` / `parse_ok` columns), or None when the data
    # has none: answers (P, M) object array of normalised answer strings, "" = none read;
    # parse_ok (P, M) bool. Equal strings are the same answer (numbers are canonical
    # decimals: `router.answers.extractor("number").same` adds the tolerance).
    answers: Any = None
    parse_ok: Any = None

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    @property
    def n_models(self) -> int:
        return len(self.models)

    def task_kinds(self) -> list[str]:
        return [task_kind(t) for t in self.tasks]

    def subset(self, idx: Any) -> "Dataset":
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return replace(
            self,
            prompt_ids=[self.prompt_ids[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            tasks=self.tasks[idx],
            quality=self.quality[idx],
            cost_usd=self.cost_usd[idx],
            input_tokens=self.input_tokens[idx],
            output_tokens=self.output_tokens[idx],
            split=None if self.split is None else self.split[idx],
            skipped=dict(self.skipped),
            answers=None if self.answers is None else self.answers[idx],
            parse_ok=None if self.parse_ok is None else self.parse_ok[idx],
        )

    def select_models(self, models: Iterable[str]) -> "Dataset":
        want = list(models)
        missing = [m for m in want if m not in self.models]
        if missing:
            raise DatasetError(f"models not in dataset {self.name}: {missing}; have {self.models}")
        j = [self.models.index(m) for m in want]
        return replace(
            self,
            models=want,
            quality=self.quality[:, j],
            cost_usd=self.cost_usd[:, j],
            input_tokens=self.input_tokens[:, j],
            output_tokens=self.output_tokens[:, j],
            answers=None if self.answers is None else self.answers[:, j],
            parse_ok=None if self.parse_ok is None else self.parse_ok[:, j],
        )

    def summary(self) -> str:
        sk = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{self.name}: {self.n_prompts} prompts x {self.n_models} models, tasks {sorted(set(self.tasks))}; skipped {sk}"


# ------------------------------------------------------------------ costs of rows without cost_usd


def _price_fn(model: str, cache: dict[str, Any]) -> Any:
    """f(input_tokens, output_tokens) -> USD for a model without a recorded cost:
    the catalog's price for its catalog id (`MODEL_ID_MAP`), else genai-prices' list
    price (historical models the catalog no longer lists), else DatasetError."""
    if model in cache:
        return cache[model]
    mid = MODEL_ID_MAP.get(model, model)
    fn = None
    try:
        if "__catalog__" not in cache:
            cache["__catalog__"] = load_catalog()
        card = cache["__catalog__"].get(mid)
        if card.price is not None:
            price = card.price
            fn = lambda i, o: float(estimate_cost_usd(price, i, o))  # noqa: E731
    except Exception:  # not in the catalog: try genai-prices below
        pass
    if fn is None and ":" in mid:
        rates = genai_rates(mid)
        if rates is not None:
            fn = lambda i, o, r=rates: i * r[0] + o * r[1]  # noqa: E731
    if fn is None:
        raise DatasetError(
            f"cost_usd is missing and model {model!r} (catalog id {mid!r}) has no price in the catalog or genai-prices; "
            "give cost_usd in the file or map the model in benchmarks.datasets.MODEL_ID_MAP",
            file=cache.get("__source__"), key="cost_usd",
        )
    cache[model] = fn
    return fn


def _price_cost(model: str, input_tokens: int, output_tokens: int, cache: dict[str, Any]) -> float:
    """USD cost of one call from list prices (see `_price_fn`)."""
    return _price_fn(model, cache)(input_tokens, output_tokens)


def load_long(path: str, *, name: str | None = None) -> "Dataset":
    """Load the generic long format (CSV/JSONL, optionally .gz)."""
    return from_long_rows(_iter_rows(path), source=path, name=name or os.path.basename(path))


def from_long_rows(rows: Iterable[tuple[int, dict[str, Any]]], *, source: str = "<rows>", name: str = "dataset",
                   unpriced: str = "error") -> "Dataset":
    """Build a Dataset from (line, row-dict) pairs in the long format. A model whose
    cost must come from a price it does not have raises DatasetError, or with
    ``unpriced="skip"`` is dropped and counted in ``skipped``."""
    skipped: Counter[str] = Counter()
    cells: dict[tuple[str, str], tuple[float, int | None, int | None, float | None]] = {}
    prompt_text: dict[str, str] = {}
    prompt_task: dict[str, str] = {}
    prompt_split: dict[str, str] = {}
    order: dict[str, None] = {}
    models: dict[str, None] = {}
    answers: dict[tuple[str, str], tuple[str, bool | None]] = {}
    has_answer = has_parse_ok = False
    checked = False
    allowed = frozenset(LONG_COLUMNS)
    for line, row in rows:
        if "__error__" in row:
            skipped["unparseable row"] += 1
            continue
        if None in row:  # csv: more values than header columns
            skipped["more values than columns"] += 1
            continue
        if not row.keys() <= allowed:  # every row: JSONL rows may differ
            unknown = sorted(set(row) - allowed)
            raise DatasetError(f"unknown columns {unknown}; expected {list(LONG_COLUMNS)}", file=source, line=line, key=unknown[0])
        if not checked:
            missing = [c for c in _REQUIRED if c not in row]
            if missing:
                raise DatasetError(f"missing required columns {missing}", file=source, line=line, key=missing[0])
            checked = True
        pid, model = str(row.get("prompt_id") or "").strip(), str(row.get("model") or "").strip()
        if not pid or not model:
            skipped["missing prompt_id or model"] += 1
            continue
        try:
            q = _num(row.get("quality"))
            it, ot, c = _num(row.get("input_tokens")), _num(row.get("output_tokens")), _num(row.get("cost_usd"))
        except (TypeError, ValueError):
            skipped["non-numeric value"] += 1
            continue
        if q is None or not 0.0 <= q <= 1.0:
            skipped["quality missing or outside 0..1"] += 1
            continue
        if any(v is not None and v < 0 for v in (it, ot, c)):
            skipped["negative tokens or cost"] += 1
            continue
        if (pid, model) in cells:
            skipped["duplicate (prompt_id, model)"] += 1
            continue
        if "answer" in row or "parse_ok" in row:
            try:
                ok = _flag(row.get("parse_ok"))
            except ValueError:
                skipped["parse_ok not 1/0/true/false"] += 1
                continue
            has_answer |= "answer" in row
            has_parse_ok |= ok is not None
            ans = row.get("answer")
            answers[(pid, model)] = ("" if ans is None else str(ans).strip(), ok)
        cells[(pid, model)] = (q, None if it is None else int(it), None if ot is None else int(ot), c)
        order.setdefault(pid, None)
        models.setdefault(model, None)
        text = str(row.get("prompt") or "")
        if text and pid not in prompt_text:
            prompt_text[pid] = text
        prompt_task.setdefault(pid, str(row.get("task") or "default"))
        if row.get("split"):
            prompt_split.setdefault(pid, str(row["split"]).strip().lower())
    ds = _assemble(name, source, list(order), list(models), cells, prompt_text, prompt_task, prompt_split, skipped, unpriced)
    if has_answer or has_parse_ok:
        ds.answers, ds.parse_ok = _answer_matrices(ds, answers)
    return ds


def _flag(v: Any) -> bool | None:
    """parse_ok as a bool (1/0, true/false, yes/no); None when empty or absent."""
    if v is None or isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if not s:
        return None
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"parse_ok {v!r}")


def _answer_matrices(ds: "Dataset", answers: dict[tuple[str, str], tuple[str, bool | None]]) -> tuple[Any, Any]:
    """(answers, parse_ok) as (P, M) arrays; a missing answer is "", and a missing
    parse_ok is "the answer is not empty"."""
    P, M = ds.n_prompts, ds.n_models
    ans = np.full((P, M), "", dtype=object)
    ok = np.zeros((P, M), dtype=bool)
    for i, pid in enumerate(ds.prompt_ids):
        for j, m in enumerate(ds.models):
            a, flag = answers.get((pid, m), ("", None))
            ans[i, j] = a
            ok[i, j] = bool(a) if flag is None else flag
    return ans, ok


def _assemble(name, source, pids, models, cells, texts, tasks, splits, skipped, unpriced="error") -> "Dataset":  # type: ignore[no-untyped-def]
    if not pids:
        raise DatasetError(f"no usable rows (skipped: {dict(skipped)})", file=source)
    price_cache: dict[str, Any] = {"__source__": source}
    need_price = {m for (_p, m), v in cells.items() if v[3] is None}
    for m in [m for m in models if m in need_price]:
        try:
            _price_fn(m, price_cache)
        except DatasetError:
            if unpriced != "skip":
                raise
            skipped[f"model without a price, dropped: {m}"] += sum(1 for (_p, mm) in cells if mm == m)
            models = [x for x in models if x != m]
    if not models:
        raise DatasetError("no model left after dropping models without a price", file=source)
    keep = []
    for pid in pids:
        if all((pid, m) in cells for m in models):
            keep.append(pid)
        else:
            skipped["prompt lacks some models (incomplete row set)"] += 1
    if not keep:
        raise DatasetError("no prompt has an outcome for every model", file=source)
    P, M = len(keep), len(models)
    q = np.zeros((P, M))
    c = np.zeros((P, M))
    it = np.zeros((P, M), dtype=np.int64)
    ot = np.zeros((P, M), dtype=np.int64)
    for i, pid in enumerate(keep):
        text = texts.get(pid, "")
        est_in = None
        for j, m in enumerate(models):
            qq, ti, to, cc = cells[(pid, m)]
            if ti is None:
                est_in = est_in if est_in is not None else estimate_tokens(text)
                ti = est_in
            to = 1 if to is None else to
            if cc is None:
                cc = _price_cost(m, ti, to, price_cache)
            q[i, j], it[i, j], ot[i, j], c[i, j] = qq, ti, to, cc
    split_arr = None
    if splits:
        split_arr = np.array([splits.get(p, "") for p in keep])
        bad = sorted(set(split_arr) - {"train", "test"})
        if bad:
            raise DatasetError(f"split values must be 'train' or 'test', got {bad}", file=source, key="split")
    return Dataset(
        name=name,
        prompt_ids=keep,
        prompts=[texts.get(p, "") for p in keep],
        tasks=np.array([tasks[p] for p in keep]),
        models=models,
        quality=q,
        cost_usd=c,
        input_tokens=it,
        output_tokens=ot,
        split=split_arr,
        skipped=dict(skipped),
    )


# ------------------------------------------------------------------ other layouts (rows from benchmarks.dataset_formats)


def load_routerbench(path: str, *, name: str | None = None) -> "Dataset":
    """RouterBench's wide CSV (a file or a directory of them); tokens are estimated from
    the prompt (input) and set to 1 (output); each response's final answer is read into
    ``Dataset.answers`` (`benchmarks.dataset_formats.answer_spec`)."""
    return from_long_rows(iter_routerbench(path), source=path,
                          name=name or "routerbench:" + os.path.basename(path.rstrip("/")))


def load_alpacaeval(path: str, *, name: str | None = None) -> "Dataset":
    """AlpacaEval annotations (quality = preference - 1). ``cost_usd`` is not recorded for
    the evaluated models, so it comes from the catalog prices; unpriced models are skipped."""
    return from_long_rows(iter_alpacaeval(path), source=path, name=name or "alpacaeval", unpriced="skip")


# ------------------------------------------------------------------ dispatch, shipped data, split


def shipped_path() -> str:
    return os.path.join(os.path.dirname(__file__), "data", "routerbench_compact.csv.gz")


def load_shipped() -> "Dataset":
    """The compact RouterBench-derived dataset shipped with the project (no responses)."""
    return load_long(shipped_path(), name="routerbench-compact (shipped)")


def load(path: str | None = None, fmt: str | None = None) -> "Dataset":
    """Load by format (``long``, ``routerbench``, ``alpacaeval``) or guess from the path."""
    if path is None:
        return load_shipped()
    if not os.path.exists(path):
        raise DatasetError("dataset path does not exist", file=path)
    if fmt is None:
        if os.path.isdir(path):
            fmt = "alpacaeval" if (os.path.isdir(os.path.join(path, "results")) or "alpaca" in path.lower()) else "routerbench"
        elif os.path.basename(path) == "annotations.json":
            fmt = "alpacaeval"
        else:
            fmt = "long"
            if path.endswith((".csv", ".csv.gz")):
                with _open_text(path) as fh:
                    header = fh.readline()
                if "eval_name" in header and "sample_id" in header:
                    fmt = "routerbench"
    if fmt == "long":
        return load_long(path)
    if fmt == "routerbench":
        return load_routerbench(path)
    if fmt == "alpacaeval":
        return load_alpacaeval(path)
    raise DatasetError(f"unknown dataset format {fmt!r} (long, routerbench, alpacaeval)", file=path)


def split(ds: "Dataset", test_fraction: float | None = None, seed: int = 0) -> tuple["Dataset", "Dataset"]:
    """(train, test). ``test_fraction=None`` uses the recorded ``split`` column when the
    dataset has one (else 0.3); otherwise a random split stratified by task."""
    if test_fraction is None and ds.split is not None and (ds.split == "test").any() and (ds.split == "train").any():
        return ds.subset(ds.split == "train"), ds.subset(ds.split == "test")
    frac = 0.3 if test_fraction is None else float(test_fraction)
    if not 0.0 < frac < 1.0:
        raise DatasetError(f"test fraction must be in (0, 1), got {frac}")
    rng = np.random.default_rng(seed)
    test = np.zeros(ds.n_prompts, dtype=bool)
    for t in sorted(set(ds.tasks)):
        idx = np.flatnonzero(ds.tasks == t)
        k = int(round(len(idx) * frac))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        test[rng.permutation(idx)[:k]] = True
    return ds.subset(~test), ds.subset(test)
