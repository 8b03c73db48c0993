"""Final-answer extraction and equality: what answer-agreement cascades compare.

An `Extractor` turns a model's reply text into a short normalised answer string
(a number, a choice letter, a short string, a code hash) or `None` when no answer
could be read, and says whether two normalised answers are the same answer the way
a grader would judge them (numeric tolerance, literal equality).

Specs (config `extract:` and `extractor(spec)`):
    number            the last number in the text (thousands separators, fractions,
                      units and currency signs stripped); equal within `tolerance`
    choice            a multiple-choice letter (A-J)
    json:<field>      a field of a JSON object in the text (e.g. `json:answer`)
    regex:<pattern>   the first group (or whole match) of the last match
    code              a short hash of the normalised first code block
    text              the whole reply, case- and whitespace-folded

This module is pure: no I/O, nothing at import beyond compiling a few patterns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Extractor", "extractor", "for_task", "SPECS"]

SPECS: tuple[str, ...] = ("number", "choice", "json:<field>", "regex:<pattern>", "code", "text")


@dataclass(frozen=True)
class Extractor:
    """Reads a final answer out of reply text and compares two of them."""

    spec: str
    tolerance: float = 1e-6

    def extract(self, text: str | None) -> str | None:
        """The normalised final answer in `text`, or None when none could be read."""
        raise NotImplementedError  # filled in by the answers work

    def same(self, a: str | None, b: str | None) -> bool:
        """True when two normalised answers are the same answer (None never matches)."""
        if a is None or b is None:
            return False
        return a == b


def extractor(spec: str | Mapping[str, Any], *, tolerance: float | None = None) -> Extractor:
    """Build an extractor from a spec string (see the module doc) or `{spec:, tolerance:}`.

    Raises ValueError with a readable message for an unknown spec or a bad regex."""
    raise NotImplementedError  # filled in by the answers work


def for_task(task: str | None) -> Extractor | None:
    """The default extractor for a task kind (math -> number, ...), or None where no
    sound final-answer equality exists (creative, chat, summarization, translation)."""
    raise NotImplementedError  # filled in by the answers work

