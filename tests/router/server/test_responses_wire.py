"""POST /v1/responses: the request translated to the chat path, the allow-list and
its errors (a 400 naming the Responses path), and the stream's event sequence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.fake import FakeProvider, Script, reply
from router.errors import RateLimited, WireError
from router.server.responses_events import ResponsesEncoder
from router.server.responses_wire import FIELDS, parse_responses_request, to_chat_request
from router.types import FinishEvent, ReasoningDelta, TextDelta, ToolCallDelta, Usage, UsageEvent

TOOL = {"type": "function", "name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def chat(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> Any:
    return to_chat_request(parse_responses_request(body), history)


def test_string_input_and_instructions() -> None:
    req = chat({"model": "auto", "input": "hi", "instructions": "be brief", "max_output_tokens": 64,
                "temperature": 0.3, "top_p": 0.9, "user": "u1", "metadata": {"task": "code"}})
    assert [(m.role, m.content) for m in req.messages] == [("system", "be brief"), ("user", "hi")]
    assert (req.max_tokens, req.temperature, req.top_p, req.user, req.metadata) == (64, 0.3, 0.9, "u1",
                                                                                    {"task": "code"})


def test_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "dev note"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is "}, {"type": "input_image", "image_url": "data:image/png;base64,AA",
                                                         "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}',
         "id": "fc_1", "status": "completed"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"role": "user", "content": "thanks"},
    ]
    req = chat({"model": "auto", "input": items, "tools": [TOOL], "tool_choice": {"type": "function",
                                                                                   "name": "get_weather"}})
    roles = [m.role for m in req.messages]
    assert roles == ["developer", "user", "assistant", "tool", "tool", "user"]
    user = req.messages[1]
    assert user.text() == "what is " and user.images()[0].url == "data:image/png;base64,AA"
    assert user.images()[0].detail == "low"
    asst = req.messages[2]
    assert asst.content == "Let me look." and [c.id for c in asst.tool_calls] == ["call_1", "call_2"]
    assert asst.tool_calls[1].arguments == '{"city":"Rome"}'
    assert [(m.tool_call_id, m.text()) for m in req.messages[3:5]] == [("call_1", "sunny"), ("call_2", "rain")]
    assert req.tools[0].name == "get_weather" and req.tools[0].parameters["properties"]["city"]
    assert req.tool_choice == {"type": "function", "function": {"name": "get_weather"}}


def test_function_call_without_a_message_opens_an_assistant_turn() -> None:
    req = chat({"model": "auto", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"}]})
    assert [(m.role, len(m.tool_calls or [])) for m in req.messages] == [("user", 0), ("assistant", 1), ("tool", 0),
                                                                         ("assistant", 1)]
    assert req.messages[1].content is None


def test_text_format_reasoning_and_passthrough() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
              "additionalProperties": False}
    req = chat({"model": "auto", "input": "x", "text": {"format": {"type": "json_schema", "name": "A",
                                                                   "schema": schema, "strict": True},
                                                        "verbosity": "low"},
                "reasoning": {"effort": "high", "summary": "auto"}, "parallel_tool_calls": False,
                "store": False, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
                "truncation": "disabled", "service_tier": "auto", "stream_options": {"include_obfuscation": False}})
    assert req.response_format.type == "json_schema"
    assert req.response_format.json_schema == {"name": "A", "schema": schema, "strict": True}
    assert not req.extra_body  # typed fields, translated per vendor (providers.params)
    assert req.reasoning is not None and req.reasoning.effort == "high"
    assert req.verbosity == "low" and req.parallel_tool_calls is False
    assert chat({"model": "auto", "input": "x", "text": {"format": {"type": "json_object"}}}).response_format.type \
        == "json_object"
    assert chat({"model": "auto", "input": "x", "text": {"format": {"type": "text"}}}).response_format is None


def test_previous_conversation_goes_between_instructions_and_input() -> None:
    history = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}]
    req = chat({"model": "auto", "input": "two", "instructions": "sys", "previous_response_id": "resp_1"}, history)
    assert [m.text() for m in req.messages] == ["sys", "one", "1", "two"]
    r = parse_responses_request({"model": "auto", "previous_response_id": "resp_1"})  # input may be left out
    assert r.messages == [] and r.previous_response_id == "resp_1"


@pytest.mark.parametrize("body,param,code", [
    ({"model": "auto", "input": "x", "frobnicate": 1}, "frobnicate", "unknown_parameter"),
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "auto"}, "input", "missing_required_parameter"),
    ({"model": "auto", "input": []}, "input", "empty_array"),
    ({"model": "auto", "input": 3}, "input", "invalid_type"),
    ({"model": "auto", "input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role",
     "invalid_value"),
    ({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     "input[0].content[0].text", "invalid_type"),
    ({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1",
                                                               "detail": "auto"}]}]},
     "input[0].content[0].file_id", "unsupported_parameter"),
    ({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type", "unsupported_parameter"),
    ({"model": "auto", "input": [{"role": "user", "content": "x", "color": "red"}]}, "input[0].color",
     "unknown_parameter"),
    ({"model": "auto", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type",
     "unsupported_parameter"),
    ({"model": "auto", "input": [{"type": "teleport"}]}, "input[0].type", "invalid_value"),
    ({"model": "auto", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id",
     "invalid_type"),
    ({"model": "auto", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs"]}]},
     "tools[0].type", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "tools": [{"type": "computer_use_preview"}]}, "tools[0].type",
     "unsupported_parameter"),
    ({"model": "auto", "input": "x", "tools": [{"type": "function", "name": "f", "bogus": 1}]}, "tools[0].bogus",
     "unknown_parameter"),
    ({"model": "auto", "input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type",
     "unsupported_parameter"),
    ({"model": "auto", "input": "x", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"model": "auto", "input": "x", "text": {"format": {"type": "json_schema", "name": "A"}}},
     "text.format.schema", "invalid_type"),
    ({"model": "auto", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
    ({"model": "auto", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value"),
    ({"model": "auto", "input": "x", "reasoning": {"effort": 3}}, "reasoning.effort", "invalid_type"),
    ({"model": "auto", "input": "x", "text": {"verbosity": "loud"}}, "text.verbosity", "invalid_value"),
    ({"model": "auto", "input": "x", "max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ({"model": "auto", "input": "x", "max_output_tokens": 2**31}, "max_output_tokens", "invalid_value"),
    ({"model": "auto", "input": "x", "max_output_tokens": "10"}, "max_output_tokens", "invalid_type"),
    ({"model": "auto", "input": "x", "temperature": 3}, "temperature", "invalid_value"),
    ({"model": "auto", "input": "x", "metadata": {"task": 5}}, "metadata.task", "invalid_type"),
    ({"model": "auto", "input": "x", "store": "yes"}, "store", "invalid_type"),
    ({"model": "auto", "input": "x", "background": True}, "background", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "conversation": "conv_1"}, "conversation", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "service_tier": "priority"}, "service_tier", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "max_tool_calls": 3}, "max_tool_calls", "unsupported_parameter"),
    ({"model": "auto", "input": "x", "model_x": 3}, "model_x", "unknown_parameter"),
    ({"model": "x" * 300, "input": "x"}, "model", "invalid_value"),
])
def test_invalid_requests_name_the_path(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(WireError) as ei:
        chat(body)
    assert (ei.value.param, ei.value.code, ei.value.status) == (param, code, 400), ei.value.message


def test_allow_list_is_explicit() -> None:
    assert {"input", "instructions", "tools", "text", "reasoning", "max_output_tokens", "store",
            "previous_response_id"} <= FIELDS
    assert "messages" not in FIELDS and "max_tokens" not in FIELDS


# ---------------------------------------------------------------- over HTTP (FakeRouter)

async def test_http_errors_are_400_with_the_path(client: Any, fake: FakeProvider) -> None:
    r = await client.post("/v1/responses", json={"model": "auto", "input": "x", "tools": [{"type": "web_search"}]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"], err["type"]) == ("tools[0].type", "unsupported_parameter",
                                                        "invalid_request_error")
    assert "web_search" in err["message"]
    deep: Any = "x"
    for _ in range(80):
        deep = [deep]
    r = await client.post("/v1/responses", json={"model": "auto", "input": deep})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    r = await client.post("/v1/responses", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await client.post("/v1/responses", json={"model": "nope:zzz", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert fake.calls == []  # nothing reached a vendor
    assert (await client.get("/v1/responses")).status_code == 405


# ---------------------------------------------------------------- the stream encoder

def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        head, data = block.split("\n", 1)
        ev = json.loads(data[len("data: "):])
        assert head == "event: " + ev["type"]
        out.append(ev)
    return out


def test_encoder_sequence_reasoning_text_and_interleaved_calls() -> None:
    r = parse_responses_request({"model": "auto", "input": "x"})
    enc = ResponsesEncoder(r, "p:m")
    raw = enc.start()
    for ev in [ReasoningDelta(text="think"), ReasoningDelta(text="ing"), TextDelta(text="Hi"),
               ToolCallDelta(index=0, id="call_a", name="f", arguments='{"x":'),
               ToolCallDelta(index=1, id="call_b", name="g", arguments="{}"),
               ToolCallDelta(index=0, arguments="1}"),
               UsageEvent(usage=Usage(input_tokens=7, output_tokens=9, reasoning_tokens=4, cache_read_tokens=2)),
               FinishEvent(finish_reason="tool_calls")]:
        raw += enc.event(ev)
    raw += enc.end()
    evs = _events(raw)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    types = [e["type"] for e in evs]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert types.index("response.reasoning_text.done") < types.index("response.output_text.delta")
    args = {e["item_id"]: "" for e in evs if e["type"] == "response.function_call_arguments.delta"}
    for e in evs:
        if e["type"] == "response.function_call_arguments.delta":
            args[e["item_id"]] += e["delta"]
    assert sorted(args.values()) == ['{"x":1}', "{}"]
    final = evs[-1]["response"]
    assert [it["type"] for it in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][2]["arguments"] == '{"x":1}' and final["output"][2]["call_id"] == "call_a"
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 4
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 2
    added = [e["output_index"] for e in evs if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in evs if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(done) == [0, 1, 2, 3]


def test_encoder_token_limit_is_incomplete_and_failure_tail() -> None:
    r = parse_responses_request({"model": "auto", "input": "x", "max_output_tokens": 5})
    enc = ResponsesEncoder(r, "p:m")
    raw = enc.start() + enc.event(TextDelta(text="abc")) + enc.event(FinishEvent(finish_reason="length")) + enc.end()
    last = _events(raw)[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["max_output_tokens"] == 5
    from router.server.errors import failure_from

    enc = ResponsesEncoder(r, "p:m")
    raw = enc.start() + enc.event(TextDelta(text="abc")) + enc.failed(failure_from(RateLimited("slow down")))
    evs = _events(raw)
    assert [e["type"] for e in evs[-2:]] == ["error", "response.failed"]
    assert evs[-2]["code"] == "rate_limit_exceeded" and "slow down" in evs[-2]["message"]
    assert evs[-1]["response"]["status"] == "failed" and evs[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
    assert evs[-1]["response"]["output"][0]["content"][0]["text"] == "abc"


async def test_mid_stream_failure_over_http(spend_path: Any) -> None:
    import httpx2

    from tests.router.server.conftest import make_app
    from tests.router.server.fakes import FakeRouter

    fake = FakeProvider(scripts=[Script(events=[TextDelta(text="par")], error=RateLimited("cut", provider="fake"))])
    app = make_app(FakeRouter(fake), spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/responses", json={"model": "auto", "input": "x", "stream": True})
    assert r.status_code == 200
    evs = _events(r.content)
    assert [e["type"] for e in evs[-2:]] == ["error", "response.failed"]
    assert "response.completed" not in [e["type"] for e in evs]
    await app.aclose()
    assert fake.calls and reply  # the vendor was called once
