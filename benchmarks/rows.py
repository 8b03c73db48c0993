"""Row reading for `benchmarks.datasets` and `benchmarks.dataset_formats`: (line number,
row dict) from CSV or JSONL files, gzip-compressed or not, lenient numbers (empty or
NaN -> None), and the `DatasetError` both raise. A JSONL
line that is not a JSON object yields a row with an ``__error__`` message (counted as
skipped by the loaders), never an exception.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from typing import Any, Iterator

from router.errors import ConfigError

__all__ = ["DatasetError", "open_text", "iter_rows", "num"]


class DatasetError(ConfigError):
    """A dataset file that cannot be used as is (names file, line and column)."""


def open_text(path: str) -> io.TextIOBase:
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_rows(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row dict) for CSV or JSONL (by extension, .gz allowed)."""
    base = path[:-3] if path.endswith(".gz") else path
    with open_text(path) as fh:
        if base.endswith((".jsonl", ".ndjson", ".json")):
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    yield n, {"__error__": f"invalid JSON: {e.msg}"}
                    continue
                yield n, obj if isinstance(obj, dict) else {"__error__": "row is not a JSON object"}
        else:
            csv.field_size_limit(1 << 30)
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, row


def num(v: Any) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    x = float(v)
    if math.isnan(x):
        return None
    return x
