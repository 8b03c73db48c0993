"""ChatRequest validation: token limits and adapter-owned passthrough fields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from router import Router
from router.types import ADAPTER_OWNED, MAX_TOKENS_LIMIT, ChatRequest, Message

MSGS = [Message(role="user", content="hi")]


@pytest.mark.parametrize("bad", [-5, 0, -1_000_000, True, False, 5.0, "5", MAX_TOKENS_LIMIT + 1, 10**400])
def test_max_tokens_must_be_a_sane_positive_integer(bad: object) -> None:
    with pytest.raises(ValidationError) as ei:
        ChatRequest(messages=MSGS, max_tokens=bad)
    assert ei.value.errors()[0]["loc"] == ("max_tokens",)


@settings(max_examples=50, derandomize=True)
@given(st.integers(1, MAX_TOKENS_LIMIT))
def test_max_tokens_in_range_is_kept(n: int) -> None:
    assert ChatRequest(messages=MSGS, max_tokens=n).max_tokens == n


@pytest.mark.parametrize("field", sorted(ADAPTER_OWNED))
def test_extra_body_cannot_carry_fields_the_adapter_owns(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ChatRequest(messages=MSGS, extra_body={field: 1})
    # a known sampling knob is lifted into its normalized field (translated per vendor, never forwarded blindly)
    lifted = ChatRequest(messages=MSGS, extra_body={"seed": 7, "x_custom": 1})
    assert (lifted.seed, lifted.extra_body) == (7, {"x_custom": 1})


def test_sdk_keyword_overrides_are_validated() -> None:
    router = Router(policy="cheapest")
    try:
        with pytest.raises(ValidationError):
            router.explain(ChatRequest(messages=MSGS), max_tokens=-5)
        with pytest.raises(ValidationError):
            router.explain("hi", max_tokens=-5)
        plan = router.explain(ChatRequest(messages=MSGS), max_tokens=MAX_TOKENS_LIMIT)
        assert plan.steps and all(s.expected_cost_usd >= 0 for s in plan.steps)
    finally:
        router.close()


# ---------------------------------------------------------------- the normalized reasoning setting


def test_reasoning_from_each_vendor_shape() -> None:
    from router.types import Reasoning

    assert Reasoning.from_openai("high") == Reasoning(effort="high")
    assert Reasoning.from_anthropic({"type": "enabled", "budget_tokens": 2048}) == Reasoning(budget_tokens=2048)
    assert Reasoning.from_anthropic({"type": "adaptive"}, "max") == Reasoning(effort="max")
    assert Reasoning.from_anthropic({"type": "disabled"}).off
    assert Reasoning.from_gemini({"thinkingBudget": 0}).off
    assert Reasoning.from_gemini({"thinkingBudget": -1}) == Reasoning()
    assert Reasoning.from_gemini({"thinkingBudget": 512}) == Reasoning(budget_tokens=512)
    assert Reasoning.from_gemini({"thinkingLevel": "LOW"}) == Reasoning(effort="low")
    with pytest.raises(ValueError):
        Reasoning.from_gemini({"thinkingLevel": "low", "thinkingBudget": 5})
    with pytest.raises(ValueError):
        Reasoning.from_anthropic({"type": "sometimes"})


def test_passthrough_reasoning_fields_are_lifted_into_the_normalized_setting() -> None:
    msgs = [{"role": "user", "content": "x"}]
    r = ChatRequest(messages=msgs, extra_body={"thinking": {"type": "enabled", "budget_tokens": 3000}, "foo": 1})
    assert r.reasoning is not None and r.reasoning.budget_tokens == 3000 and r.extra_body == {"foo": 1}
    r = ChatRequest(messages=msgs, extra_body={"reasoning_effort": "minimal"})
    assert r.reasoning is not None and r.reasoning.effort == "minimal" and r.extra_body == {}
    with pytest.raises(ValueError):
        ChatRequest(messages=msgs, extra_body={"reasoning_effort": "extreme"})
