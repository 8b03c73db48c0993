from router.types import (
    ChatRequest,
    FinishEvent,
    Message,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
    accumulate,
)


def test_accumulate_text_tools_usage():
    evs = [
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        ToolCallDelta(index=0, id="c1", name="f", arguments='{"a":'),
        ToolCallDelta(index=0, arguments="1}"),
        UsageEvent(usage=Usage(input_tokens=10)),
        UsageEvent(usage=Usage(output_tokens=7)),
        FinishEvent(finish_reason="tool_calls", id="r1", model="m"),
    ]
    r = accumulate(evs, provider="p")
    assert r.text == "Hello"
    assert r.tool_calls[0].arguments == '{"a":1}'
    assert r.usage.input_tokens == 10 and r.usage.output_tokens == 7
    assert r.finish_reason == "tool_calls" and r.model == "m" and r.id == "r1"


def test_accumulate_without_finish_is_unknown_and_no_usage_flagged():
    r = accumulate([TextDelta(text="x")])
    assert r.finish_reason == "unknown"
    assert r.usage_reported is False


def test_request_parses_openai_shapes():
    req = ChatRequest.model_validate(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "url": "data:image/png;base64,AA"}]},
            ],
        }
    )
    assert req.system_text() == "be brief"
    assert isinstance(req.messages[1], Message) and req.messages[1].text() == "hi"
    assert len(req.messages[1].images()) == 1
