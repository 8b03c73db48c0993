"""Each scorer on a passing and a failing answer; the code scorer's sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from benchmarks import scorers
from benchmarks.scorers import extract_code, extract_number, parse_judge_score, score_answer, validate_schema
from benchmarks.suite import SuiteItem
from router.types import ChatRequest, Message


def item(scorer: dict[str, Any], task: str = "chat", reference: str | None = None) -> SuiteItem:
    return SuiteItem(id="i", task=task, messages=(Message(role="user", content="q"),), scorer=scorer,
                     reference=reference)


@pytest.mark.parametrize("scorer,good,bad", [
    ({"type": "exact", "expected": "943"}, " 943\n", "943."),
    ({"type": "normalized", "expected": "Canberra"}, "canberra.", "Sydney"),
    ({"type": "normalized", "expected": "负面", "contains": True}, "情感：负面。", "正面"),
    ({"type": "regex", "pattern": r"(?m)^Alice\W*$"}, "Dan > Alice\nAlice", "Bob"),
    ({"type": "regex", "all": ["a", "b"], "none": ["z"]}, "ab", "abz"),
    ({"type": "keywords", "keywords": ["refund", "twice|duplicate"], "min_fraction": 1.0},
     "Wants a refund of the duplicate charge", "Wants a refund"),
    ({"type": "numeric", "expected": 1157.63, "abs_tol": 0.006}, "so about $1,157.625. Answer: 1157.63",
     "Answer: 1157"),
    ({"type": "numeric", "expected": 7.2, "abs_tol": 0.01}, "合作需要 36/5 天。答案：7.2", "答案：8"),
    ({"type": "numeric", "expected": 0.5}, r"The result is \boxed{1/2}.", "The result is 2."),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
     'Here:\n```json\n{"n": 3}\n```', '{"n": "three"}'),
    ({"type": "json_schema", "schema": {"type": "array", "items": {"type": "string"}}, "expected": ["a", "b"]},
     '["a", "B"]', '["a"]'),
])
async def test_deterministic_scorers(scorer: dict[str, Any], good: str, bad: str) -> None:
    assert (await score_answer(item(scorer), good)).quality == 1.0
    assert (await score_answer(item(scorer), bad)).quality == 0.0


async def test_json_schema_partial_credit_on_expected_fields() -> None:
    sc = {"type": "json_schema", "schema": {"type": "object"}, "expected": {"a": 1, "b": "x"}}
    s = await score_answer(item(sc), '{"a": 1, "b": "y"}')
    assert s.quality == 0.5 and "1/2" in s.detail
    assert (await score_answer(item(sc), "not json at all")).quality == 0.0


def test_mini_validator_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def fake_import(name, *a, **k):  # type: ignore[no-untyped-def]
        if name == "jsonschema":
            raise ImportError
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"type": "string", "pattern": "^[A-Z]{3}$"}, "n": {"type": "number", "minimum": 0}}}
    assert validate_schema({"a": "EUR"}, schema) == []
    assert validate_schema({"a": "eur"}, schema)
    assert validate_schema({"a": "EUR", "n": -1}, schema)
    assert validate_schema({"a": "EUR", "x": 1}, schema)
    assert validate_schema({}, schema)
    assert validate_schema([1, "x"], {"type": "array", "items": {"type": "integer"}, "maxItems": 3})


def test_extractors() -> None:
    assert extract_number("I think 3, no wait: Answer: -1,204.5") == -1204.5
    assert extract_number("nothing here") is None
    txt = "Try:\n```python\ndef f():\n    return 1\n```\nUsage:\n```\nf()\n```"
    assert "def f" in extract_code(txt)
    assert extract_code("def g(): pass") == "def g(): pass"


TESTS = "def test_add():\n    assert add(2, 3) == 5\ndef test_neg():\n    assert add(-1, 1) == 0\n"


async def test_python_tests_pass_and_fail() -> None:
    sc = {"type": "python_tests", "tests": TESTS, "timeout_s": 10}
    ok = await score_answer(item(sc, "code"), "```python\ndef add(a, b):\n    return a + b\n```")
    assert ok.quality == 1.0 and "2/2" in ok.detail
    half = await score_answer(item(sc, "code"), "```python\ndef add(a, b):\n    return 5\n```")
    assert half.quality == 0.5
    broken = await score_answer(item(sc, "code"), "```python\ndef add(a, b) return\n```")
    assert broken.quality == 0.0 and "SyntaxError" in broken.detail


async def test_python_tests_runaway_is_killed_at_timeout() -> None:
    sc = {"type": "python_tests", "tests": "assert True\n", "timeout_s": 1}
    s = await score_answer(item(sc, "code"), "```python\nwhile True:\n    pass\n```")
    assert s.quality == 0.0 and "timeout" in s.detail


async def test_python_tests_sandbox_is_isolated_and_limited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # runs in a fresh temp dir, with no inherited env secrets, and memory capped
    import os

    os.environ["SOME_API_KEY_FOR_TEST"] = "sk-secret-value-123456"
    try:
        code = ("import os\nCWD = os.getcwd()\nENV = dict(os.environ)\n")
        tests = (f"assert CWD != {str(tmp_path)!r}\nassert 'SOME_API_KEY_FOR_TEST' not in ENV\n"
                 "import os\nassert os.path.exists('solution.py')\n")
        s = await scorers.run_python_tests(code, tests, timeout_s=10)
        assert s.quality == 1.0, s.detail
    finally:
        del os.environ["SOME_API_KEY_FOR_TEST"]
    hog = await scorers.run_python_tests("x = bytearray(4 * 1024 ** 3)\n", "assert True\n", timeout_s=10,
                                         memory_mb=256)
    assert hog.quality == 0.0 and "MemoryError" in hog.detail


def test_parse_judge_score() -> None:
    assert parse_judge_score("ok\nSCORE: 7") == 0.7
    assert parse_judge_score("Score = 4/5") == 0.8
    assert parse_judge_score("score: 15") == 1.0
    assert parse_judge_score("no number") is None


async def test_judge_scorer_reports_its_cost_and_prompt() -> None:
    seen: list[ChatRequest] = []

    async def judge(model: str, req: ChatRequest) -> tuple[str, Decimal]:
        seen.append(req)
        assert model == "j:m"
        return "good summary\nSCORE: 9", Decimal("0.00012")

    it = item({"type": "judge", "rubric": "be strict"}, "summarization", reference="REF")
    s = await score_answer(it, "the answer", judge=judge, judge_model="j:m")
    assert s.quality == 0.9 and s.judge_cost_usd == Decimal("0.00012")
    body = seen[0].messages[0].text()
    assert "be strict" in body and "REF" in body and "the answer" in body
    async def mumble(model: str, req: ChatRequest) -> tuple[str, Decimal]:
        return "I like it", Decimal("0.0001")

    bad = await score_answer(it, "x", judge=mumble, judge_model="j:m")
    assert bad.quality == 0.0 and bad.judge_cost_usd == Decimal("0.0001")
    gate = item({"type": "judge", "pass_score": 8, "model": "j:m"}, "creative")
    assert (await score_answer(gate, "x", judge=judge)).quality == 1.0
    with pytest.raises(ValueError):
        await score_answer(it, "x")
