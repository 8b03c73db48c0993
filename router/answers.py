"""Final-answer extraction and equality: what answer-agreement cascades compare.

An `Extractor` turns a model's reply text into a short normalised answer string
(a number, a choice letter, a short string, a code hash) or `None` when no answer
could be read, and says whether two normalised answers are the same answer the way
a grader would judge them (numeric tolerance, literal equality).

Specs (config `extract:` and `extractor(spec)`):
    number            the final number: after a GSM8K-style `#### `, else inside the last
                      LaTeX `\\boxed{..}`, else after the last "answer is"/"Answer:", else
                      the last number in the text. Thousands separators, fractions (3/4,
                      \\frac{3}{4}), units, currency and percent signs are stripped; the
                      answer is a canonical decimal string ("1234.5", "-3", "0.75").
                      Two different whole numbers are different answers; otherwise equal
                      when |a-b| <= tolerance * max(1, |a|, |b|) (relative and absolute at
                      once; default tolerance 1e-6), so 0.333333 matches 1/3 at 1e-6.
    choice            a multiple-choice letter A-J: the last explicitly stated answer
                      ("Answer: (B)", "the answer is B", "**B**", "\\boxed{B}"), else a
                      reply that opens with the letter ("B", "B) heat insulation", "(C).").
                      A lone "A"/"I" inside prose is an article or a pronoun, not an answer.
    json:<field>      a field of a JSON object in the text (the last object holding it;
                      a dotted path `a.b` reaches into nested objects). Strings are text-
                      normalised, numbers are canonical decimals (compared with tolerance).
    regex:<pattern>   the last match of the pattern: its first group if it has one, else
                      the whole match; whitespace collapsed, case kept. Two answers that are
                      both numbers compare with tolerance, others literally.
    code              a 12-hex sha256 prefix of the normalised first code block (```
                      fenced or [PYTHON]..[/PYTHON]; the whole text when there is none):
                      comments, blank lines and trailing whitespace removed. Equal hashes
                      mean the same program text, a sound but strict equality.
    text              the whole reply, casefolded, whitespace collapsed, trailing
                      punctuation and surrounding quotes stripped.

`for_task(kind)` picks the default per task kind: math -> number; every other kind ->
None, so a cascade for those kinds must name its `extract:` spec:
  * code: equal code hashes are a sound equality but a rare one: on RouterBench's MBPP
    replies two cheap models wrote the same normalised code for 0-3% of the prompts, so
    a default code cascade would escalate almost always and cost more than the strong
    model alone. `extract: code` opts in.
  * reasoning: replies are free prose with no agreed answer shape; multiple-choice
    workloads name `extract: choice`.
  * extraction, summarization, translation, creative, chat: no grader-style equality.

This module is pure: no I/O, nothing at import beyond compiling a few patterns.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

__all__ = ["Extractor", "extractor", "for_task", "SPECS"]

SPECS: tuple[str, ...] = ("number", "choice", "json:<field>", "regex:<pattern>", "code", "text")

# Replies longer than this are read from their tail (answers sit at the end) or, for
# code, their head (the first block): bounds the work per reply whatever a model sends.
MAX_SCAN = 64_000
MAX_PATTERN = 500
_SIG_DIGITS = 15  # canonical decimals keep this many significant digits

# ------------------------------------------------------------------ numbers

_NUM = (
    r"(?<![\w./])"  # not inside a word, after a decimal point or in a date
    r"(?=[-+\u2212]?\.?\d)"  # a digit must follow: no empty matches
    r"(?P<sign>[-+\u2212])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?"
    r"(?:\.(?P<frac>\d+))?"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
    r"(?:[eE](?P<exp>[-+]?\d{1,3}))?"
    r"(?![\d/]|,\d)"  # not cut out of a longer number or a date (units may follow: 12kg)
)
_NUM_RE = re.compile(_NUM)
_GSM_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_CUE = re.compile(r"answer\**\s*(?:is|was|would\s+be|will\s+be|=|:)\s*[:=]?", re.IGNORECASE)
_CUE_REACH = 40  # the number stated by the cue sits within this many characters after it
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_LATEX_NOISE = re.compile(r"\\(?:left|right|,|;|!|quad|qquad|displaystyle|text\{[^{}]*\}|mathrm\{[^{}]*\}|\$|%)")


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _canon(value: Fraction) -> str:
    """A canonical decimal string: integers plain, others to 15 significant digits."""
    if value.denominator == 1:
        return str(value.numerator)
    d = Decimal(value.numerator) / Decimal(value.denominator)
    d = round(d, max(0, _SIG_DIGITS - d.adjusted() - 1))
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "0") else s


def _to_fraction(m: re.Match[str]) -> Fraction | None:
    ip, fp, den, exp = m.group("int"), m.group("frac"), m.group("den"), m.group("exp")
    if ip is None and fp is None:
        return None
    try:
        v = Fraction(Decimal((ip or "0").replace(",", "") + ("." + fp if fp else "")))
        if den is not None:
            if fp is not None:  # "1.5/2" is not a fraction anyone writes; read the 2
                return Fraction(Decimal(den))
            dv = Fraction(Decimal(den))
            if dv == 0:
                return None
            v = v / dv
        if exp is not None:
            v = v * Fraction(10) ** int(exp)
    except (InvalidOperation, ValueError, ZeroDivisionError, OverflowError):
        return None
    if m.group("sign") in ("-", "\u2212"):
        v = -v
    return v


def _last_number(text: str) -> str | None:
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    text = _LATEX_NOISE.sub(" ", text)
    last = None
    for m in _NUM_RE.finditer(text):
        v = _to_fraction(m)
        if v is not None:
            last = v
    return None if last is None else _canon(last)


def _number(text: str) -> str | None:
    text = text[-MAX_SCAN:]
    gsm = _GSM_RE.findall(text)
    if gsm:
        got = _last_number(gsm[-1])
        if got is not None:
            return got
    box = _boxed(text)
    if box is not None:
        got = _last_number(box)
        if got is not None:
            return got
    cues = list(_ANSWER_CUE.finditer(text))
    if cues:
        line = text[cues[-1].end() :].split("\n", 1)[0]
        line = _LATEX_NOISE.sub(" ", _LATEX_FRAC.sub(r"\1/\2", line)).replace("$", " ")
        m = _NUM_RE.search(line)
        if m is not None and m.start() <= _CUE_REACH:
            v = _to_fraction(m)
            if v is not None:
                return _canon(v)
    return _last_number(text)


def _num_value(s: str) -> Fraction | None:
    try:
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError):
        return None


def _close(a: str, b: str, tol: float) -> bool | None:
    """Numeric equality within tolerance, or None when either is not a number."""
    x, y = _num_value(a), _num_value(b)
    if x is None or y is None:
        return None
    if x == y:
        return True
    if x.denominator == 1 and y.denominator == 1:
        return False  # two different whole numbers are two answers, however large
    scale = max(1.0, abs(float(x)), abs(float(y)))
    return abs(float(x - y)) <= tol * scale


# ------------------------------------------------------------------ choice letters

_L = r"[A-J]"
# an explicit statement: "answer is (B)", "Answer: **C**", "correct option: D", "I choose B"
_CHOICE_CUE = re.compile(
    r"(?:answer|option|choice|choose|select|pick)(?:\s+(?:is|would\s+be|will\s+be|should\s+be))?"
    r"\s*[:=]?\s*(?:\*\*|__)?\s*[\(\[]?\s*(" + _L + r")\s*[\)\]]?(?:\*\*|__)?(?![\w'])",
    re.IGNORECASE,
)
_CHOICE_BOLD = re.compile(r"(?:\*\*|__)\s*[\(\[]?(" + _L + r")[\)\]]?[.:]?\s*(?:\*\*|__)")
# the reply opens with the letter: "B", "(B)", "B)", "B.", "B:", "B) heat insulation", "D ("
_CHOICE_HEAD = re.compile(
    r"^\s*(?:\*\*|__)?\s*[\(\[]?(" + _L + r")(?:\s*[\)\]:.,]|\s*(?:\*\*|__)|\s*\(|[ \t]*(?:\n|$))"
)


def _choice(text: str) -> str | None:
    text = text[-MAX_SCAN:]
    box = _boxed(text)
    if box is not None:
        m = re.fullmatch(r"\s*(?:\\text\{)?\s*\(?(" + _L + r")\)?\s*\}?\s*", box)
        if m:
            return m.group(1)
    cues = list(_CHOICE_CUE.finditer(text))
    # the cue words are matched case-insensitively; the letter itself must be a capital
    cues = [m for m in cues if m.group(1).isupper()]
    if cues:
        return cues[-1].group(1)
    bold = _CHOICE_BOLD.findall(text)
    if bold:
        return bold[-1]
    m = _CHOICE_HEAD.match(text)
    if m:
        return m.group(1)
    return None


# ------------------------------------------------------------------ text, json, regex

_TRAIL_PUNCT = ".,;:!?\u3002\uff01\uff1f"
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


def _text(text: str) -> str | None:
    s = " ".join(text.casefold().split())
    s = s.rstrip(_TRAIL_PUNCT + " ")
    if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
        s = s[1:-1].strip().rstrip(_TRAIL_PUNCT + " ")
    return s or None


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON value that starts with `{` in the text, in order."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    i = text.find("{")
    while i >= 0:
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        out.append(obj)
        i = text.find("{", end)
    return out


def _json_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _canon(Fraction(Decimal(repr(v)))) if math.isfinite(v) else None
    if isinstance(v, str):
        t = v.strip()
        n = _num_value(t.replace(",", "")) if re.fullmatch(r"[-+]?\d[\d,]*(?:\.\d+)?", t) else None
        return _canon(n) if n is not None else _text(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_field(text: str, path: tuple[str, ...]) -> str | None:
    found: Any = None
    ok = False
    for obj in _json_objects(text[-MAX_SCAN:]):
        cur = obj
        for key in path:
            if isinstance(cur, dict) and key in cur:
                cur = cur[key]
            else:
                break
        else:
            found, ok = cur, True
    return _json_value(found) if ok else None


# ------------------------------------------------------------------ code

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_TAGGED = re.compile(r"\[PYTHON\]\s*\n?(.*?)(?:\[/PYTHON\]|\Z)", re.DOTALL)
_LINE_COMMENT = re.compile(r"^\s*(?:#|//)")


def _code_block(text: str) -> str:
    text = text[:MAX_SCAN].replace("\r\n", "\n").replace("\r", "\n")
    hits = [m for m in (_FENCE.search(text), _TAGGED.search(text)) if m is not None]
    if hits:
        return min(hits, key=lambda m: m.start()).group(1)
    return text


def _strip_python_comments(code: str) -> str | None:
    """The code without `#` comments, by Python's own tokenizer; None if it is not Python."""
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(toks)
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        return None


def _code(text: str) -> str | None:
    code = _code_block(text)
    stripped = _strip_python_comments(code)
    if stripped is not None:
        lines = stripped.split("\n")
    else:  # not tokenizable (another language or a cut-off reply): whole-line comments only
        lines = [ln for ln in code.split("\n") if not _LINE_COMMENT.match(ln)]
    kept = [ln.rstrip() for ln in lines if ln.strip()]
    if not kept:
        return None
    return hashlib.sha256("\n".join(kept).encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------ the extractor


@dataclass(frozen=True)
class Extractor:
    """Reads a final answer out of reply text and compares two of them."""

    spec: str
    tolerance: float = 1e-6
    _kind: str = field(default="", init=False, repr=False, compare=False)
    _arg: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind, arg = _parse_spec(self.spec)
        tol = self.tolerance
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"extract tolerance must be a finite number >= 0, got {tol!r}")
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_arg", arg)

    def extract(self, text: str | None) -> str | None:
        """The normalised final answer in `text`, or None when none could be read."""
        if not isinstance(text, str) or not text.strip():
            return None
        kind = self._kind
        if kind == "number":
            return _number(text)
        if kind == "choice":
            return _choice(text)
        if kind == "code":
            return _code(text)
        if kind == "text":
            return _text(text[-MAX_SCAN:])
        if kind == "json":
            return _json_field(text, self._arg)
        # regex
        last = None
        for m in self._arg.finditer(text[-MAX_SCAN:]):
            last = m
        if last is None:
            return None
        got = last.group(1) if self._arg.groups else last.group(0)
        got = " ".join((got or "").split())
        return got or None

    def same(self, a: str | None, b: str | None) -> bool:
        """True when two normalised answers are the same answer (None never matches)."""
        if a is None or b is None:
            return False
        if self._kind in ("number", "json", "regex"):
            close = _close(a, b, float(self.tolerance))
            if close is not None:
                return close
        return a == b


def _parse_spec(spec: Any) -> tuple[str, Any]:
    if not isinstance(spec, str):
        raise ValueError(f"extract spec must be a string, one of {', '.join(SPECS)}; got {spec!r}")
    s = spec.strip()
    if s in ("number", "choice", "code", "text"):
        return s, None
    if s.startswith("json:"):
        path = s[5:].strip()
        parts = tuple(path.split("."))
        if not path or any(not p for p in parts):
            raise ValueError(f"extract spec {spec!r}: json: needs a field name, e.g. json:answer or json:result.value")
        return "json", parts
    if s.startswith("regex:"):
        pat = spec.split(":", 1)[1]
        if not pat:
            raise ValueError(f"extract spec {spec!r}: regex: needs a pattern, e.g. regex:ANSWER: (\\w+)")
        if len(pat) > MAX_PATTERN:
            raise ValueError(f"extract spec regex: the pattern is {len(pat)} characters; at most {MAX_PATTERN}")
        try:
            return "regex", re.compile(pat)
        except re.error as e:
            where = f" at position {e.pos}" if e.pos is not None else ""
            raise ValueError(f"extract spec regex:{pat}: not a valid regular expression: {e.msg}{where}") from e
    raise ValueError(f"unknown extract spec {spec!r}; expected one of {', '.join(SPECS)}")


def extractor(spec: str | Mapping[str, Any], *, tolerance: float | None = None) -> Extractor:
    """Build an extractor from a spec string (see the module doc) or `{spec:, tolerance:}`.

    Raises ValueError with a readable message for an unknown spec or a bad regex."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"spec", "tolerance"}
        if unknown:
            raise ValueError(f"extract: unknown keys {sorted(map(str, unknown))}; allowed: spec, tolerance")
        if "spec" not in spec:
            raise ValueError("extract: a mapping needs `spec:` (one of " + ", ".join(SPECS) + ")")
        if tolerance is None and spec.get("tolerance") is not None:
            tolerance = spec["tolerance"]
        spec = spec["spec"]
    if tolerance is None:
        return Extractor(spec)  # type: ignore[arg-type]
    return Extractor(spec, tolerance)  # type: ignore[arg-type]


_FOR_TASK: dict[str, str] = {"math": "number"}  # why the others have none: the module doc


def for_task(task: str | None) -> Extractor | None:
    """The default extractor for a task kind (math -> number, ...), or None where no
    sound final-answer equality exists (creative, chat, summarization, translation)."""
    spec = _FOR_TASK.get(task or "")
    return Extractor(spec) if spec else None
