"""Final-answer extractors on the shapes models really reply with.

The reply shapes follow what the RouterBench responses look like (a bare letter with a
trailing newline, "D)", a reply cut off after two words, a WinoGrande name instead of the
letter, code in ``` fences with CRLF line ends or in [PYTHON] tags, prose around a code
block) and the usual chain-of-thought endings of math replies ("#### 18", \\boxed{..},
"The answer is 18."), written here as short snippets of our own.
"""

from __future__ import annotations

import pytest

from router.answers import SPECS, Extractor, extractor, for_task

# ------------------------------------------------------------------ number


@pytest.mark.parametrize("reply,want", [
    # GSM8K reference style and chain-of-thought endings
    ("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18 every day.\n#### 18", "18"),
    ("First, 48 / 2 = 24 clips in May.\nSo 48 + 24 = 72 in total.\nThe answer is 72.", "72"),
    ("Step 1: 5 boxes of 12 pens is 60 pens.\nStep 2: 60 - 15 = 45.\n\nAnswer: 45", "45"),
    ("The final answer is $\\boxed{1,250}$.", "1250"),
    ("**Answer:** 42 marbles", "42"),
    ("Final answer: **$3.75**", "3.75"),
    ("So the probability is $\\boxed{\\frac{3}{4}}$", "0.75"),
    ("Therefore x = \\boxed{-\\dfrac{1}{2}}", "-0.5"),
    # thousands separators, currency, units, percent
    ("The house cost $1,234,567.00 after the renovation.", "1234567"),
    ("She runs 3.5 km a day.", "3.5"),
    ("The discount is 25%.", "25"),
    ("It weighs 12kg", "12"),
    ("He needs 3/4 of a cup.", "0.75"),
    ("The temperature fell to \u22127 degrees.", "-7"),
    # the stated answer wins over a later number in a remark
    ("The answer is 42 (we used step 3 to get there).", "42"),
    # last number when nothing is stated
    ("10 apples plus 5 apples makes 15", "15"),
    # dates and versions are not answers
    ("Posted 12/25/2023", None),
    ("I cannot solve this problem.", None),
    ("", None),
])
def test_number_shapes(reply, want):
    assert extractor("number").extract(reply) == want


def test_number_canonical_form_and_tolerance():
    ex = extractor("number")
    assert ex.extract("0.50") == ex.extract("1/2") == "0.5"
    assert ex.extract("#### 7.000") == "7"
    assert ex.same(ex.extract("1/3"), ex.extract("0.333333333"))  # within 1e-6
    assert ex.same("2", "1.9999999")
    assert not ex.same("1000000", "1000001")  # different whole numbers never match
    assert not ex.same("0.5", "0.6")
    assert not ex.same(None, None) and not ex.same("1", None)
    loose = extractor({"spec": "number", "tolerance": 0.01})
    assert loose.tolerance == 0.01 and loose.same("3.14", "3.1416")
    assert not extractor("number").same("3.14", "3.1416")


# ------------------------------------------------------------------ choice


@pytest.mark.parametrize("reply,want", [
    # RouterBench multiple-choice shapes: bare letters, with ")" or ":" or a newline
    ("B", "B"), ("A\n", "A"), ("D)", "D"), ("A:", "A"), ("D (", "D"), (" C ", "C"),
    ("B) a nonstick surface.", "B"), ("(C).", "C"), ("A\n\nBecause heat rises.", "A"),
    # cut-off refusals, a WinoGrande name instead of a letter, an article
    ("I do", None), ("Unfortunately I", None), ("Based on", None), ("Laura", None), ("A chart", None),
    # stated answers in longer replies; the last stated one wins
    ("Answer: (B)", "B"),
    ("Looking at each option, plants need light. The answer is C.", "C"),
    ("The correct answer is **B) heat insulation**", "B"),
    ("**D**", "D"),
    ("**Answer:** B", "B"),
    ("The answer is: (C) because the others conduct heat.", "C"),
    ("At first glance A looks right, but option C matches the definition, so the answer is C", "C"),
    ("Option D is correct.", "D"),
    ("$\\boxed{E}$", "E"),
    ("The answer is a bit unclear from the passage.", None),
])
def test_choice_shapes(reply, want):
    assert extractor("choice").extract(reply) == want


def test_choice_equality_is_literal():
    ex = extractor("choice")
    assert ex.same("B", ex.extract("B)\n"))
    assert not ex.same("A", "B")


# ------------------------------------------------------------------ json, regex, text


def test_json_field():
    ex = extractor("json:answer")
    assert ex.extract('Here you go:\n```json\n{"answer": " Paris. ", "why": "capital"}\n```') == "paris"
    assert ex.extract('{"answer": 3.50}') == "3.5" and ex.same("3.5", ex.extract('{"answer": "3.5"}'))
    assert ex.extract('draft {"answer": 1} then final {"answer": "1,200"}') == "1200"  # the last object
    assert ex.extract('{"other": 1}') is None and ex.extract("no json") is None
    assert ex.extract('{"answer": true}') == "true" and ex.extract('{"answer": null}') is None
    nested = extractor("json:result.items")
    assert nested.extract('{"result": {"items": ["b", "a"]}}') == '["b","a"]'


def test_regex_spec_and_readable_errors():
    ex = extractor(r"regex:FINAL:\s*(\w+)")
    assert ex.extract("FINAL: draft\n...\nFINAL:  Done") == "Done"
    assert extractor(r"regex:\d+ cats").extract("3 cats and 4 cats") == "4 cats"
    assert extractor(r"regex:=\s*([\d.]+)").same("2.50", "2.5")
    with pytest.raises(ValueError, match=r"not a valid regular expression: missing \)"):
        extractor("regex:(ab")
    with pytest.raises(ValueError, match="needs a pattern"):
        extractor("regex:")


def test_text_normalisation():
    ex = extractor("text")
    assert ex.extract("  The  Eiffel\nTower.  ") == "the eiffel tower"
    assert ex.extract('"Paris!"') == "paris" and ex.same(ex.extract("PARIS"), ex.extract("paris."))
    assert ex.extract(" \n ") is None


# ------------------------------------------------------------------ code

_FENCED = "Here's a Python function:\n\n```python\ndef add_one(x):\n    # add one\n    return x + 1  # done\n\n```\n\nUse it like add_one(2)."
_CRLF = "Here's a function:\r\n\r\n```python\r\ndef add_one(x):\r\n    return x + 1   \r\n```\r\n"
_TAGGED = " \n[PYTHON]\ndef add_one(x):\n    return x + 1\n[/PYTHON]\n[TESTS]\nassert add_one(1) == 2\n[/TESTS]\n"
_BARE_FENCE = " Sure! Here's one:\n```\ndef add_one(x):\n    return x + 1\n```\nIt adds one."


def test_code_hash_ignores_comments_blank_lines_and_line_ends():
    ex = extractor("code")
    hashes = {ex.extract(r) for r in (_FENCED, _CRLF, _TAGGED, _BARE_FENCE)}
    assert len(hashes) == 1
    (h,) = hashes
    assert h is not None and len(h) == 12 and int(h, 16) >= 0
    other = ex.extract("```python\ndef add_one(y):\n    return y + 1\n```")
    assert not ex.same(h, other)  # a renamed variable is a different program text


def test_code_first_block_cut_off_reply_and_whole_text():
    ex = extractor("code")
    first = ex.extract("```python\ndef f():\n    return 1\n```\nExample:\n```python\nprint(f())\n```")
    assert first == ex.extract("def f():\n    return 1")  # no fence: the whole text
    assert ex.extract("```python\ndef f(:\n    return (1") is not None  # cut off mid-block: still hashed
    assert ex.extract("```python\n# only a comment\n```") is None


# ------------------------------------------------------------------ specs and defaults


def test_specs_and_errors():
    assert SPECS == ("number", "choice", "json:<field>", "regex:<pattern>", "code", "text")
    for spec in ("number", "choice", "json:answer", "regex:x", "code", "text"):
        assert isinstance(extractor(spec), Extractor)
    with pytest.raises(ValueError, match="unknown extract spec 'numbers'"):
        extractor("numbers")
    with pytest.raises(ValueError, match="json: needs a field"):
        extractor("json:")
    with pytest.raises(ValueError, match="tolerance"):
        extractor("number", tolerance=-1)
    with pytest.raises(ValueError, match="unknown keys"):
        extractor({"spec": "number", "tol": 1})
    with pytest.raises(ValueError, match="needs `spec:`"):
        extractor({"tolerance": 1})
    assert extractor({"spec": "number"}).tolerance == 1e-6
    assert extractor("number", tolerance=0.5) == Extractor("number", 0.5)
    assert extractor("number").extract(None) is None


def test_for_task_defaults():
    assert for_task("math") == extractor("number")
    for kind in ("code", "reasoning", "extraction", "summarization", "translation", "creative", "chat", None, "nope"):
        assert for_task(kind) is None


def test_long_replies_are_bounded():
    ex = extractor("number")
    assert ex.extract("word " * 100_000 + "#### 5") == "5"
    assert extractor("choice").extract("x" * 200_000) is None
