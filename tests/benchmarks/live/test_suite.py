"""Suite format: the starter suite loads and is self-consistent; malformed suites
fail with a ConfigError naming file, line and key."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from benchmarks.live_fake import _wrong
from benchmarks.scorers import score_answer
from benchmarks.suite import load_suite
from router.errors import ConfigError
from router.types import TASK_KINDS

STARTER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks", "suites", "starter.yaml")


def test_starter_suite_shape() -> None:
    s = load_suite(STARTER)
    assert len(s) >= 60
    tasks = Counter(it.task for it in s.items)
    assert set(tasks) <= set(TASK_KINDS)
    for need in ("code", "math", "extraction", "summarization", "translation"):
        assert tasks[need] >= 6, need
    kinds = Counter(it.scorer["type"] for it in s.items)
    assert kinds["python_tests"] >= 10 and kinds["numeric"] >= 10 and kinds["json_schema"] >= 8
    chinese = [it for it in s.items if any("\u4e00" <= ch <= "\u9fff" for ch in it.prompt)]
    assert len(chinese) >= 10
    assert all(it.reference for it in s.items)


@pytest.mark.parametrize("with_jsonschema", [True, False])
async def test_starter_references_pass_and_wrong_answers_fail(with_jsonschema: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if not with_jsonschema:  # a plain install has no jsonschema: the built-in validator must agree
        import sys

        monkeypatch.setitem(sys.modules, "jsonschema", None)
    s = load_suite(STARTER)
    for it in s.items:
        if it.scorer["type"] in ("judge", "python_tests"):
            continue  # judge needs a model; code items are covered below (subprocesses are slow)
        assert (await score_answer(it, it.reference)).quality == 1.0, it.id
        assert (await score_answer(it, _wrong(it))).quality == 0.0, it.id


async def test_starter_code_references_pass_their_tests() -> None:
    import asyncio

    s = load_suite(STARTER)
    code = [it for it in s.items if it.scorer["type"] == "python_tests"]
    scores = await asyncio.gather(*(score_answer(it, it.reference) for it in code))
    assert [it.id for it, sc in zip(code, scores) if sc.quality != 1.0] == []


def _write(tmp_path, text: str, name: str = "s.yaml") -> str:  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("body,line,key", [
    ("items:\n  - id: a\n    task: cooking\n    prompt: hi\n    scorer: {type: exact, expected: x}\n", 3, "task"),
    ("items:\n  - id: a\n    task: chat\n    prompt: hi\n    scorer: {type: exact}\n", 5, "scorer.expected"),
    ("items:\n  - id: a\n    task: chat\n    prompt: hi\n    colour: red\n    scorer: exact\n", 5, "colour"),
    ("items:\n  - id: a\n    task: chat\n    scorer: {type: exact, expected: x}\n", 2, "prompt"),
    ("items:\n  - id: a\n    task: chat\n    prompt: hi\n    scorer: {type: regex, pattern: '(['}\n", 5,
     "scorer.pattern"),
    ("items:\n  - id: a\n    task: code\n    prompt: hi\n    scorer: {type: python_tests, tests: 'def ('}\n", 5,
     "scorer.tests"),
    ("items:\n  - id: a\n    task: chat\n    prompt: hi\n    max_tokens: lots\n    scorer: {type: exact, expected: x}\n",
     5, "max_tokens"),
    ("items:\n  - id: a\n    task: chat\n    prompt: hi\n    scorer: {type: judge}\n", 2, "scorer.model"),
    ("items:\n  - {id: a, task: chat, prompt: hi, scorer: {type: exact, expected: x}}\n"
     "  - {id: a, task: chat, prompt: hi, scorer: {type: exact, expected: x}}\n", 3, "id"),
    ("nme: typo\nitems: []\n", None, None),
])
def test_malformed_yaml_names_file_line_key(tmp_path, body: str, line: int | None, key: str | None) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as ei:
        load_suite(path)
    e = ei.value
    assert e.file == path
    if line is not None:
        assert (e.line, e.key) == (line, key), str(e)
    assert path in str(e)


def test_yaml_syntax_error_has_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, "items:\n  - id: a\n    prompt: [unclosed\n")
    with pytest.raises(ConfigError) as ei:
        load_suite(path)
    assert ei.value.line is not None and ei.value.line >= 3


def test_jsonl_suite_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = ('{"suite": {"name": "j", "defaults": {"max_tokens": 64}}}\n'
            '{"id": "x1", "task": "math", "prompt": "1+1?", "scorer": {"type": "numeric", "expected": 2}}\n'
            '{"id": "x2", "task": "chat", "messages": [{"role": "user", "content": "hi"}],'
            ' "scorer": {"type": "regex", "pattern": "h"}}\n')
    s = load_suite(_write(tmp_path, good, "s.jsonl"))
    assert s.name == "j" and len(s) == 2 and s.items[0].max_tokens == 64 and s.items[1].prompt == "hi"
    bad = good + '{"id": "x3", "task": "chat", "prompt": "hi", "scorer": {"type": "exact"}\n'
    with pytest.raises(ConfigError) as ei:
        load_suite(_write(tmp_path, bad, "b.jsonl"))
    assert ei.value.line == 4
    bad2 = good + '{"id": "x3", "task": "chat", "prompt": "hi", "scorer": {"type": "exact"}}\n'
    with pytest.raises(ConfigError) as ei:
        load_suite(_write(tmp_path, bad2, "c.jsonl"))
    assert (ei.value.line, ei.value.key) == (4, "scorer.expected")


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as ei:
        load_suite("/nonexistent/suite.yaml")
    assert ei.value.file == "/nonexistent/suite.yaml"


def test_fingerprint_changes_with_prompt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = load_suite(_write(tmp_path, "items:\n  - {id: a, task: chat, prompt: hi, scorer: {type: regex, pattern: h}}\n"))
    b = load_suite(_write(tmp_path, "items:\n  - {id: a, task: chat, prompt: ho, scorer: {type: regex, pattern: h}}\n",
                          "b.yaml"))
    assert a.items[0].fingerprint() != b.items[0].fingerprint()
