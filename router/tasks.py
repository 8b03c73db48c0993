"""What a request needs: task kind, language, capabilities and size.

`extract_features(req)` is rule-based and cheap enough to run on every request
(tens of microseconds for a 2k-token prompt): it looks at the *last user
message* only, scans a bounded head and tail of it with one precompiled regex
per task kind, and estimates the CJK share from the UTF-8 byte length (CJK
characters take 3 bytes) before confirming with a regex on a sample.

A learned model (router/predictor.py, trained by benchmarks/learned.py) can refine per-model quality through the
`QualityPredictor` protocol; the engine calls it when one is configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from router.tokens import OUTPUT_PRIORS
from router.types import TASK_KINDS, ChatRequest

__all__ = [
    "Features",
    "QualityPredictor",
    "extract_features",
    "classify_task",
    "fast_estimate_tokens",
    "last_user_text",
    "DEFAULT_OUTPUT_TOKENS",
]

# Typical answer length per task kind (the cost model's priors, router/tokens.py), used
# for the cost estimate when the caller gave no max_tokens (a cap, not a prediction).
DEFAULT_OUTPUT_TOKENS = OUTPUT_PRIORS

_HEAD = 1200  # characters scanned at the start of the last user message
_TAIL = 400  # ... and at its end (instructions usually sit at one of the two)


@dataclass(frozen=True, slots=True)
class Features:
    task: str = "chat"
    chinese: bool = False
    needs: frozenset[str] = frozenset()
    input_tokens: int = 0
    expected_output_tokens: int = 0
    max_output_tokens: int | None = None  # the caller's max_tokens, if any
    user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    task_source: str = "rules"  # "rules" | "metadata" | "default"

    @property
    def total_tokens(self) -> int:
        """Input plus the output the request may use (for context-window checks)."""
        out = self.max_output_tokens if self.max_output_tokens is not None else self.expected_output_tokens
        return self.input_tokens + out


@runtime_checkable
class QualityPredictor(Protocol):
    """Predicts each model's chance of answering this request well (0..1).

    Returns None (or omits a model) to fall back to the catalog's task-quality
    profile. Must be fast and do no I/O: it runs inside the pure routing core.
    """

    def predict(self, features: Features, text: str, model_ids: Sequence[str]) -> Mapping[str, float] | None: ...


# ------------------------------------------------------------------ task rules
# Words are matched as whole ASCII tokens (set intersection), phrases and CJK
# keywords by substring: both run at C speed, unlike a regex alternation.

_KEYWORDS: dict[str, tuple[float, str, tuple[str, ...]]] = {
    # kind: (weight, space-separated words, phrases / CJK keywords)
    "translation": (3.0, "translate translation translating translated", (
        "into english", "into french", "into german", "into spanish", "into chinese", "into japanese",
        "to english", "to french", "to german", "to spanish", "to chinese", "to japanese", "in english",
        "翻译", "译成", "译为", "翻成", "英译中", "中译英")),
    "summarization": (3.0, "summary summarize summarise summarizing summarising tldr tl condense recap gist abstract",
                      ("key points", "main points", "tl;dr", "in a nutshell", "总结", "摘要", "概括", "归纳")),
    "extraction": (2.0, "extract extraction parse fields field entities entity structured json csv yaml schema "
                        "classify label tag", ("pull out", "key-value", "key value", "named entit", "提取", "抽取", "解析")),
    "code": (1.0, "function python javascript typescript rust golang java cpp sql regex bug debug compile compiler "
                  "stacktrace traceback exception refactor code script algorithm implement def return import class "
                  "api endpoint html css bash shell dockerfile kubernetes async await",
             ("```", "c++", "stack trace", "unit test", "def ", "();", "){", "代码", "编程", "函数", "程序")),
    "math": (1.5, "solve equation equations integral derivative prove proof theorem calculate compute probability "
                  "matrix polynomial sum product arithmetic geometry algebra calculus",
             ("how many", "\\frac", "\\sum", "\\int", "求解", "方程", "计算", "证明", "概率", "积分")),
    "reasoning": (1.0, "why reason reasoning logic logical puzzle riddle deduce infer explain compare tradeoff "
                       "tradeoffs analyze analyse evaluate",
                  ("step by step", "step-by-step", "pros and cons", "trade-off", "which of the following",
                   "multiple choice", "fill in the blank", "为什么", "推理", "分析", "逻辑")),
    "creative": (2.0, "story poem haiku lyrics sonnet fiction novel slogan screenplay imagine creative brainstorm "
                      "limerick tagline", ("故事", "诗", "小说", "创意", "歌词")),
}
_TOKEN_TABLE = bytes((c if (48 <= c <= 57 or 97 <= c <= 122) else 32) for c in range(256))


def _gate(phrase: str) -> bytes | None:
    """The phrase's first whole word: the phrase is only searched when that word occurs."""
    toks = phrase.encode().translate(_TOKEN_TABLE).split()
    return toks[0] if toks and phrase[:1].isalnum() else None


_RULES: tuple[tuple[str, float, frozenset[bytes], tuple[tuple[bytes | None, bytes], ...], tuple[str, ...]], ...] = tuple(
    (kind, w, frozenset(x.encode() for x in words.split()),
     tuple((_gate(p), p.encode()) for p in phrases if p.isascii()),
     tuple(p for p in phrases if not p.isascii()))
    for kind, (w, words, phrases) in _KEYWORDS.items()
)
_MATH_EXPR = re.compile(rb"\d\s*[-+*/^=<>]\s*[\d(x-z]")
# Multiple choice: options "A) ...", "A. ...", "A: ..." at a line start, or "(A) ..." anywhere.
_OPTIONS = tuple(tuple(p % x for p in (b"\n%s)", b"(%s) ", b"\n%s. ", b"\n%s: ", b"\n%s.\t"))
                 for x in (b"A", b"B"))
_MC_CUES = frozenset(b"answer answers choice choices choose correct option options question select which blank".split())
_MC_SCORE = 4.0  # beats weak keyword evidence of any kind; loses to two explicit translate/summarize hits
# "Write a (python) function ...", MBPP's "Your code should pass these tests: assert f(...) == ..."
_CODE_ASK = re.compile(rb"\b(?:write|implement|create|complete)\s+(?:a\s+|an\s+|the\s+)?(?:[a-z+#]+\s+)?"
                       rb"(?:function|program|script|class|method)\b")
_ASSERT_CALL = re.compile(rb"\bassert\s+\(?[A-Za-z_][\w.]*\(")
_CODE_SCORE = 3.5
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")
_KIND_INDEX = {k: i for i, k in enumerate(TASK_KINDS)}
_CJK_SAMPLE = 600


def last_user_text(req: ChatRequest) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            return m.text()
    return req.messages[-1].text() if req.messages else ""


def _window(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + "\n" + text[-_TAIL:]


def _multiple_choice(raw: bytes, words: set[bytes]) -> bool:
    """Options A and B ("A) ..." at a line start, or "(A) ..." inline) and a question/answer cue."""
    if b"b" not in words:  # option "B" is a one-letter word: a set lookup, not a scan
        return False
    raw = b"\n" + raw  # an option on the first line
    start = 0
    for pats in _OPTIONS:  # an A option, then a B option after it
        for p in pats:
            i = raw.find(p, start)
            if i >= 0:
                start = i
                break
        else:
            return False
    return bool(words & _MC_CUES) or b"?" in raw or b" _ " in raw


def _few_shot_qa(low: bytes) -> bool:
    """Worked examples: several "Answer:" / "Question:" / "Q:" lines."""
    for p in (b"answer:", b"question:", b"\nq:"):
        i = low.find(p)
        if i >= 0 and low.find(p, i + 1) >= 0:
            return True
    return False


def _code_ask(raw: bytes, low: bytes, words: set[bytes]) -> bool:
    """An explicit request for code ("write a python function ..."), or test asserts."""
    if b"assert" in words and _ASSERT_CALL.search(raw):
        return True
    if (b"function" in words or b"program" in words or b"script" in words or b"class" in words
            or b"method" in words):
        return _CODE_ASK.search(low) is not None
    return False


def classify_task(text: str) -> str:
    """The most likely task kind for `text` (rules; 'chat' when nothing matches).

    Keyword evidence is scored per kind; two structural signals override weak
    keyword evidence: a multiple-choice question (options "A) ... B) ..." and an
    answer cue: ARC, MMLU, WinoGrande style) is "reasoning", an explicit request
    for code ("write a python function ...", test asserts: MBPP style) is "code".
    Few-shot worked examples ("Question: ... Answer: ..." repeated) lean to
    "reasoning" unless another kind (e.g. math) has stronger evidence."""
    w = _window(text)
    raw = w.encode("utf-8")  # bytes: ASCII lower-casing and tokenising at C speed
    low = raw.lower()
    words = set(low.translate(_TOKEN_TABLE).split())  # multi-byte UTF-8 bytes become separators
    has_multibyte = len(raw) != len(w)
    has_ops = b"=" in raw or b"+" in raw or b"*" in raw or b"^" in raw
    shots = b"answer" in words or b"question" in words or b"q" in words
    if shots:
        shots = _few_shot_qa(low)
    best, best_score = "chat", 0.0
    for kind, weight, kws, phrases, cjk in _RULES:
        hits = len(words & kws) if words else 0
        for gate, p in phrases:
            if (gate is None or gate in words) and p in low:
                hits += 1
        if has_multibyte:
            for p in cjk:  # single-character find is memchr-fast; full search only on a hit
                if w.find(p[0]) >= 0 and p in w:
                    hits += 1
        if kind == "math" and has_ops and _MATH_EXPR.search(raw, 0, 800):
            hits += 2
        elif kind == "reasoning" and shots:
            hits += 2
        if hits:
            score = weight * (1.0 + min(hits, 5) * 0.25)
            if score > best_score:
                best, best_score = kind, score
    if best_score < _MC_SCORE and _multiple_choice(raw, words):
        return "reasoning"
    if best_score < _CODE_SCORE and _code_ask(raw, low, words):
        return "code"
    return best


def _sample(text: str, n: int = _CJK_SAMPLE) -> str:
    return text if len(text) <= 2 * n else text[:n] + text[-n:]


def _cjk_ratio(text: str) -> float:
    """Share of CJK ideographs (approx.: 3-byte UTF-8 characters in a head+tail sample,
    0 when Japanese kana or Korean hangul are present)."""
    if not text or text.isascii():
        return 0.0
    sample = _sample(text)
    three = (len(sample.encode("utf-8", "surrogatepass")) - len(sample)) / 2
    if three * 5 < len(sample):
        return 0.0
    if _KANA_HANGUL.search(sample, 0, 400):
        return 0.0
    return min(1.0, three / len(sample))


def fast_estimate_tokens(text: str) -> int:
    """~4 characters per token for Latin text, ~0.7 token per CJK character."""
    n = len(text)
    if not n:
        return 0
    if text.isascii():
        return n // 4 + 1
    sample = _sample(text, 1000)
    multi = (len(sample.encode("utf-8", "surrogatepass")) - len(sample)) / 2 * (n / len(sample))
    return int((n - multi) / 4 + multi * 0.7) + 1


def _estimate_request_tokens(req: ChatRequest) -> int:
    total = fast_estimate_tokens(req.system or "")
    for m in req.messages:
        c = m.content
        if isinstance(c, str):
            total += fast_estimate_tokens(c) + 4
        elif c:
            for p in c:
                total += fast_estimate_tokens(p.text) if p.type == "text" else (
                    fast_estimate_tokens(p.thinking) if p.type == "thinking" else 800)
            total += 4
        if m.tool_calls:
            total += sum(fast_estimate_tokens(t.arguments) + 8 for t in m.tool_calls)
    if req.tools:
        total += sum(40 + len(str(t.parameters)) // 4 for t in req.tools)
    return total


def _needs(req: ChatRequest) -> frozenset[str]:
    needs: list[str] = []
    if req.tools:
        needs.append("tools")
    rf = req.response_format
    if rf is not None and rf.type in ("json_schema", "json_object"):
        needs.append("json_schema")
    for m in req.messages:
        c = m.content
        if isinstance(c, list) and any(p.type == "image_url" or (p.type == "document" and p.source != "text")
                                       for p in c):  # PDFs are read as page images: vision models
            needs.append("vision")
            break
    return frozenset(needs)


def _tags(meta: Mapping[str, Any]) -> tuple[str, ...]:
    t = meta.get("tags")
    if t is None:
        return ()
    if isinstance(t, str):
        return tuple(x.strip() for x in t.split(",") if x.strip())
    return tuple(str(x) for x in t)


def extract_features(
    req: ChatRequest,
    *,
    estimate_tokens: Callable[[ChatRequest], int] | None = None,
    expected_output: Callable[[ChatRequest, str], int] | None = None,
    text: str | None = None,
) -> Features:
    """Features of one request (pure, fast). `metadata["task"]` overrides the rules."""
    meta = req.metadata
    if text is None:
        text = last_user_text(req)
    forced = meta.get("task") if meta else None
    if forced in _KIND_INDEX:
        task, source = str(forced), "metadata"
    else:
        task = classify_task(text)
        source = "rules" if task != "chat" else "default"
    inp = estimate_tokens(req) if estimate_tokens is not None else _estimate_request_tokens(req)
    if expected_output is not None:
        out = int(expected_output(req, task))
    else:
        if task == "translation":  # ~ the text to translate
            out = max(64, int(fast_estimate_tokens(text) * 1.1))
        else:
            out = DEFAULT_OUTPUT_TOKENS.get(task) or DEFAULT_OUTPUT_TOKENS.get(None) or 350
        if req.max_tokens is not None:
            out = min(out, req.max_tokens)
    # never negative: a negative count would make every expected cost negative (and fit every cap)
    inp, out = max(0, inp), max(0, out)
    return Features(
        task=task,
        chinese=_cjk_ratio(text) >= 0.2,
        needs=_needs(req),
        input_tokens=inp,
        expected_output_tokens=out,
        max_output_tokens=req.max_tokens,
        user=req.user or (str(meta["user"]) if meta and "user" in meta else None),
        tags=_tags(meta) if meta else (),
        metadata=meta,
        task_source=source,
    )
