"""Scorers for live-benchmark answers: each returns a quality in [0, 1].

Deterministic scorers (exact, normalized, regex, keywords, numeric, json_schema)
are pure. ``python_tests`` runs the answer's code with the item's tests in a
fresh ``python -I`` subprocess in a temp dir, with resource limits, killed at
its timeout. ``judge`` asks a configured model for a score with a rubric; its
cost is reported separately from the answer's cost.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from router.types import ChatRequest, Message

__all__ = [
    "Score",
    "JudgeFn",
    "score_answer",
    "extract_code",
    "extract_number",
    "extract_json",
    "normalize_text",
    "validate_schema",
    "run_python_tests",
    "parse_judge_score",
]

# (model_id, request) -> (answer text, cost in USD)
JudgeFn = Callable[[str, ChatRequest], Awaitable[tuple[str, Decimal]]]


@dataclass(frozen=True)
class Score:
    quality: float
    detail: str = ""
    judge_cost_usd: Decimal = Decimal(0)


# ---------------------------------------------------------------- text helpers

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalize_text(s: str) -> str:
    """NFKC, lower case, punctuation and whitespace removed (CJK characters kept)."""
    s = unicodedata.normalize("NFKC", s).casefold()
    return _PUNCT.sub("", s)


_NUM = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?")


def extract_number(text: str) -> float | None:
    """The answer's number: a ``\\boxed{..}``, an 'answer is/答案' phrase, else the last number."""
    text = unicodedata.normalize("NFKC", text)
    for pat in (r"\\boxed\{([^}]*)\}", r"(?i)(?:final answer|answer)\s*(?:is|:|=)?\s*\**\s*([^\n]*)",
                r"(?:答案|结果)\s*(?:是|为|:|=)?\s*([^\n]*)"):
        m = list(re.finditer(pat, text))
        if m:
            nums = _NUM.findall(m[-1].group(1))
            if nums:
                return _to_float(nums[0])
    nums = _NUM.findall(text)
    return _to_float(nums[-1]) if nums else None


def _to_float(s: str) -> float | None:
    s = s.replace(",", "").replace("−", "-").replace(" ", "")
    try:
        if "/" in s:
            a, b = s.split("/")
            return float(a) / float(b)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


_FENCE = re.compile(r"```([A-Za-z0-9_+\-]*)[^\n]*\n(.*?)```", re.S)


def extract_code(text: str) -> str:
    """The longest fenced python (or untagged) block; else the whole answer."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    py = [b for lang, b in blocks if lang in ("python", "py", "python3", "")]
    if py:
        return max(py, key=len)
    if blocks:
        return max((b for _, b in blocks), key=len)
    return text


def extract_json(text: str) -> Any:
    """Parse the answer's JSON: the whole text, a fenced block, or the outermost {...}/[...]."""
    cands = [text.strip()]
    cands += [b for _, b in _FENCE.findall(text)]
    for o, c in (("{", "}"), ("[", "]")):
        i, j = text.find(o), text.rfind(c)
        if 0 <= i < j:
            cands.append(text[i:j + 1])
    for c in cands:
        try:
            return json.loads(c)
        except (json.JSONDecodeError, ValueError):
            continue
    raise ValueError("no JSON found in the answer")


# ---------------------------------------------------------------- JSON schema

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate_schema(value: Any, schema: dict[str, Any]) -> list[str]:
    """Errors of `value` against `schema` (empty = valid). Uses `jsonschema` when it
    is importable, else a small validator for type/properties/required/items/enum/
    minimum/maximum/minItems/maxItems/pattern/additionalProperties."""
    try:
        import jsonschema  # lazy: optional (a small validator stands in without it)
    except ImportError:
        return _mini_validate(value, schema, "$")
    v = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in v.iter_errors(value)]


def _mini_validate(v: Any, s: dict[str, Any], at: str) -> list[str]:
    errs: list[str] = []
    t = s.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPES.get(x, lambda _: True)(v) for x in types):
            return [f"{at}: expected {t}, got {type(v).__name__}"]
    if "enum" in s and v not in s["enum"]:
        errs.append(f"{at}: {v!r} not in enum")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and v < s["minimum"]:
            errs.append(f"{at}: below minimum")
        if "maximum" in s and v > s["maximum"]:
            errs.append(f"{at}: above maximum")
    if isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
        errs.append(f"{at}: does not match pattern")
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                errs.append(f"{at}: missing required {k!r}")
        props = s.get("properties", {})
        for k, val in v.items():
            if k in props:
                errs += _mini_validate(val, props[k], f"{at}/{k}")
            elif s.get("additionalProperties") is False:
                errs.append(f"{at}: unexpected property {k!r}")
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append(f"{at}: too few items")
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append(f"{at}: too many items")
        if isinstance(s.get("items"), dict):
            for i, x in enumerate(v):
                errs += _mini_validate(x, s["items"], f"{at}/{i}")
    return errs


def _match_expected(value: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(value, dict) and all(k in value and _match_expected(value[k], e) for k, e in expected.items())
    if isinstance(expected, list):
        return isinstance(value, list) and len(value) == len(expected) and all(
            _match_expected(a, b) for a, b in zip(value, expected))
    if isinstance(expected, str) and isinstance(value, str):
        return normalize_text(value) == normalize_text(expected)
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)
    return bool(value == expected)


# ---------------------------------------------------------------- python tests

_HARNESS = r'''
import json, sys, traceback
ns = {"__name__": "solution"}
out = {"passed": 0, "total": 0, "error": None}
try:
    exec(compile(open("solution.py", encoding="utf-8").read(), "solution.py", "exec"), ns)
    tests = open("tests.py", encoding="utf-8").read()
    fns_before = set(ns)
    exec(compile(tests, "tests.py", "exec"), ns)   # top-level asserts: one test
    names = [n for n in ns if n.startswith("test_") and n not in fns_before and callable(ns[n])]
    if not names:
        out["total"] += 1; out["passed"] += 1
    for name in names:
        out["total"] += 1
        try:
            ns[name](); out["passed"] += 1
        except Exception as e:
            out["error"] = out["error"] or f"{name}: {type(e).__name__}: {e}"[:300]
except Exception as e:
    out["total"] = max(out["total"], 1)
    out["error"] = (traceback.format_exception_only(type(e), e)[-1].strip())[:300]
sys.stdout.flush()
print("\n@@RESULT@@" + json.dumps(out))
'''


_LIMITS = r'''
import resource, sys
cpu_s, mem_mb = int(sys.argv[1]), int(sys.argv[2])
for res, val in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, mem_mb * 1024 * 1024),
                 (resource.RLIMIT_FSIZE, 16 * 1024 * 1024), (resource.RLIMIT_CORE, 0)):
    try:
        resource.setrlimit(res, (val, val))
    except (ValueError, OSError):
        pass
del resource, cpu_s, mem_mb, res, val
'''


def _run_sandboxed(d: str, timeout_s: float, memory_mb: int) -> tuple[int | None, bytes, bytes]:
    """Blocking: run the harness in `d` (called in a worker thread so the event loop
    keeps timing other calls). Returns (returncode or None on timeout, stdout, stderr)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": d, "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "harness.py", str(int(math.ceil(timeout_s)) + 1), str(memory_mb)],
        cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        return None, b"", b""
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()


async def run_python_tests(code: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> Score:
    """Run `code` then `tests` in a fresh isolated interpreter (`python -I -S`, empty env,
    temp dir, CPU/memory/file-size limits, own process group killed at the timeout);
    quality = passed/total."""
    with tempfile.TemporaryDirectory(prefix="qr-bench-") as d:
        for name, body in (("solution.py", code), ("tests.py", tests), ("harness.py", _LIMITS + _HARNESS)):
            with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
                fh.write(body)
        rc, out, err = await asyncio.to_thread(_run_sandboxed, d, timeout_s, memory_mb)
    if rc is None:
        return Score(0.0, f"timeout after {timeout_s:g}s (killed)")
    text = out.decode("utf-8", "replace")
    if "@@RESULT@@" not in text:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {rc}"]
        return Score(0.0, f"crashed: {tail[0][:200]}")
    res = json.loads(text.rsplit("@@RESULT@@", 1)[1])
    total = max(1, int(res["total"]))
    q = int(res["passed"]) / total
    return Score(q, f"{res['passed']}/{total} passed" + (f"; {res['error']}" if res.get("error") else ""))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- judge

_JUDGE_SYS = (
    "You are a strict grader. Read the task, the reference answer if any, and the candidate answer. "
    "Apply the rubric. Reply with one line of justification, then a last line exactly 'SCORE: N' "
    "where N is an integer from 0 to 10."
)


def parse_judge_score(text: str) -> float | None:
    m = re.findall(r"(?i)score\s*[:=]\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", text)
    if not m:
        return None
    val, scale = m[-1]
    v = float(val) / (float(scale) if scale else 10.0)
    return min(1.0, max(0.0, v))


def judge_request(item: Any, answer: str, rubric: str, max_tokens: int = 300) -> ChatRequest:
    ref = f"\n\n## Reference answer\n{item.reference}" if item.reference else ""
    body = f"## Task\n{item.prompt}{ref}\n\n## Rubric\n{rubric}\n\n## Candidate answer\n{answer}"
    return ChatRequest(messages=[Message(role="user", content=body)], system=_JUDGE_SYS,
                       max_tokens=max_tokens, temperature=0.0, metadata={"bench_judge": item.id})


# ---------------------------------------------------------------- dispatch


async def score_answer(item: Any, answer: str, *, judge: JudgeFn | None = None,
                       judge_model: str | None = None, judge_rubric: str | None = None) -> Score:
    """Score `answer` for a `SuiteItem` (its `scorer` dict says how)."""
    sc = item.scorer
    kind = sc["type"]
    if kind == "exact":
        a, e = (answer.strip(), str(sc["expected"]).strip()) if sc.get("strip", True) else (answer, str(sc["expected"]))
        return Score(float(a == e), "exact match" if a == e else "differs")
    if kind == "normalized":
        a, e = normalize_text(answer), normalize_text(str(sc["expected"]))
        ok = (e in a) if sc.get("contains") else (a == e)
        return Score(float(ok), "match" if ok else "no match")
    if kind == "regex":
        flags = re.I if sc.get("ignore_case") else 0
        must = ([sc["pattern"]] if "pattern" in sc else []) + list(sc.get("all") or [])
        bad = [p for p in sc.get("none") or [] if re.search(p, answer, flags)]
        missing = [p for p in must if not re.search(p, answer, flags)]
        ok = not bad and not missing
        return Score(float(ok), "ok" if ok else f"missing {missing} forbidden {bad}"[:300])
    if kind == "keywords":
        low = unicodedata.normalize("NFKC", answer).casefold()
        kws = [str(k) for k in sc["keywords"]]
        hits = [k for k in kws if any(alt.strip().casefold() in low for alt in k.split("|"))]
        frac = len(hits) / len(kws)
        forbidden = [str(k) for k in sc.get("forbidden") or [] if str(k).casefold() in low]
        need = float(sc.get("min_fraction", 0.0))
        q = 0.0 if forbidden or frac < need else frac
        return Score(q, f"{len(hits)}/{len(kws)} keywords" + (f"; forbidden {forbidden}" if forbidden else ""))
    if kind == "numeric":
        got = extract_number(answer)
        exp = float(sc["expected"])
        if got is None:
            return Score(0.0, "no number in answer")
        ok = math.isclose(got, exp, rel_tol=float(sc.get("rel_tol", 1e-6)), abs_tol=float(sc.get("abs_tol", 1e-9)))
        return Score(float(ok), f"got {got:g}, expected {exp:g}")
    if kind == "json_schema":
        try:
            value = extract_json(answer)
        except ValueError as e:
            return Score(0.0, str(e))
        errs = validate_schema(value, sc["schema"])
        if errs:
            return Score(0.0, "schema: " + "; ".join(errs[:3]))
        if "expected" in sc:
            exp = sc["expected"]
            if isinstance(exp, dict) and isinstance(value, dict) and exp:
                hit = sum(1 for k, e in exp.items() if k in value and _match_expected(value[k], e))
                return Score(hit / len(exp), f"valid; {hit}/{len(exp)} fields match")
            ok = _match_expected(value, exp)
            return Score(float(ok), "valid; " + ("matches" if ok else "differs from expected"))
        return Score(1.0, "valid")
    if kind == "python_tests":
        return await run_python_tests(extract_code(answer), sc["tests"], timeout_s=float(sc.get("timeout_s", 10)),
                                      memory_mb=int(sc.get("memory_mb", 1024)))
    if kind == "judge":
        model = sc.get("model") or judge_model
        if judge is None or not model:
            raise ValueError(f"item {item.id}: judge scorer but no judge model configured")
        rubric = sc.get("rubric") or judge_rubric or "Score correctness, completeness and clarity."
        text, cost = await judge(model, judge_request(item, answer, rubric))
        q = parse_judge_score(text)
        if q is None:
            return Score(0.0, f"judge reply had no score: {text[:120]!r}", cost)
        if "pass_score" in sc:
            q = float(q * 10 >= float(sc["pass_score"]))
        return Score(q, f"judge {model}: {q:.2f}", cost)
    raise ValueError(f"unknown scorer type {kind!r}")
