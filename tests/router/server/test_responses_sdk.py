"""The official openai SDK's Responses client (`responses.create`, stream and not,
`responses.parse`, the `responses.stream` helper, `retrieve`/`delete`) against the proxy
over the real `router.sdk.Router` and real adapters, the vendors faked at the HTTP
level (OpenAI chat completions and Anthropic Messages, real-format fixtures)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from pydantic import BaseModel

from providers.registry import build_provider
from router.catalog import Catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from router.server.spendlog import summarize
from tests.router.routing_helpers import card
from tests.router.server.conftest import KEY_A, KEY_B, keyed_settings, make_app

FIX = Path(__file__).resolve().parents[2] / "fixtures"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": False,
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


class Vendor:
    """An upstream faked at the HTTP level: answers each call with the next fixture and
    records the JSON bodies it was sent."""

    def __init__(self, *answers: tuple[str, int] | str) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        name = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        status = 200
        if isinstance(name, tuple):
            name, status = name
        body = (FIX / name).read_bytes()
        ctype = "text/event-stream" if name.endswith(".sse") else "application/json"
        return httpx.Response(status, content=body, headers={"content-type": ctype})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def vendor_router(oa: Vendor | None = None, an: Vendor | None = None) -> Router:
    cat = Catalog([card("openai:gpt-4o-mini", "1", "2", q=0.7, caps=("tools", "json_schema", "vision")),
                   card("anthropic:claude-sonnet-4-5", "3", "15", q=0.9,
                        caps=("tools", "json_schema", "vision", "reasoning"))])
    provs = {"openai": build_provider("openai", api_key="sk-test", base_url="http://openai.test/v1",
                                      client=(oa or Vendor("openai/chat_completion.json")).client(), name="openai"),
             "anthropic": build_provider("anthropic", api_key="sk-ant-test", base_url="http://anthropic.test",
                                         client=(an or Vendor("anthropic/message_text.json")).client(),
                                         name="anthropic")}
    return Router(catalog=cat, providers=provs, ledger=Ledger(MemoryStore()), policy="cheapest")


def sdk(app: Any, key: str = "unused") -> openai.AsyncOpenAI:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return openai.AsyncOpenAI(api_key=key, base_url="http://t/v1", http_client=hc, max_retries=0)


async def test_non_stream_with_function_tools_to_openai(spend_path: Any) -> None:
    oa = Vendor("openai/tool_call.json")
    app = make_app(vendor_router(oa=oa), spend_path)
    raw = await sdk(app).responses.with_raw_response.create(
        model="openai:gpt-4o-mini", instructions="You answer weather questions.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
        tools=TOOLS, tool_choice="auto", max_output_tokens=200, temperature=0.2, top_p=0.9, user="u-1",
        metadata={"tags": "weather"})
    r = raw.parse()
    calls = [it for it in r.output if it.type == "function_call"]
    assert calls and calls[0].name and calls[0].call_id and json.loads(calls[0].arguments) is not None
    assert r.status == "completed" and r.object == "response" and r.id.startswith("resp_")
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens > 0
    assert r.tools[0].name == "get_weather" and r.instructions == "You answer weather questions."
    h = raw.headers
    assert h["x-quotaroute-model"] == "openai:gpt-4o-mini" and h["x-quotaroute-provider"] == "openai"
    assert Decimal(h["x-quotaroute-cost-usd"]) > 0 and h["x-quotaroute-route-reason"] != "-"
    sent = oa.bodies[-1]  # what the vendor saw: chat completions
    assert sent["messages"][0] == {"role": "system", "content": "You answer weather questions."}
    assert sent["messages"][1]["role"] == "user" and "Paris" in json.dumps(sent["messages"][1]["content"])
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.9
    assert 200 in (sent.get("max_completion_tokens"), sent.get("max_tokens"))
    app.spend.flush()
    rows = summarize(app.spend.path, by="model")
    assert rows and rows[0]["model"] == "openai:gpt-4o-mini"
    import sqlite3

    with sqlite3.connect(app.spend.path) as db:
        assert db.execute("SELECT endpoint, status FROM spend").fetchall() == [("responses", 200)]
    await app.aclose()


class Weather(BaseModel):
    city: str
    temperature_c: int


async def test_json_schema_parse_and_cached_usage(spend_path: Any, tmp_path: Any) -> None:
    body = json.loads((FIX / "openai/chat_completion.json").read_text())
    body["choices"][0]["message"]["content"] = '{"city": "Paris", "temperature_c": 21}'
    (tmp_path / "openai").mkdir()
    (tmp_path / "openai/json.json").write_text(json.dumps(body))
    oa = Vendor(str(tmp_path / "openai/json.json"))
    app = make_app(vendor_router(oa=oa), spend_path)
    r = await sdk(app).responses.parse(model="openai:gpt-4o-mini", input="Weather in Paris as JSON",
                                       text_format=Weather)
    assert r.output_parsed == Weather(city="Paris", temperature_c=21)
    assert r.usage.input_tokens_details.cached_tokens == 1024 and r.usage.input_tokens == 1117
    rf = oa.bodies[-1]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "Weather"
    assert rf["json_schema"]["schema"]["properties"]["temperature_c"]["type"] == "integer"
    await app.aclose()


async def test_stream_from_anthropic_with_thinking(spend_path: Any) -> None:
    an = Vendor("anthropic/stream_thinking.sse")
    app = make_app(vendor_router(an=an), spend_path)
    c = sdk(app)
    stream = await c.responses.create(model="anthropic:claude-sonnet-4-5", input="Think, then answer.",
                                      reasoning={"effort": "medium"}, max_output_tokens=2000, stream=True)
    events = [e async for e in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    for t in ("response.content_part.added", "response.output_text.delta", "response.output_text.done",
              "response.content_part.done", "response.output_item.done"):
        assert t in types
    final = events[-1].response
    assert [it.type for it in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "".join(e.delta for e in events
                                                      if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and final.output_text == text
    assert final.usage.output_tokens > 0 and final.model == "claude-sonnet-4-5"
    sent = an.bodies[-1]  # the Anthropic wire: system prompt out of messages, stream on
    assert sent["stream"] is True and sent["model"] == "claude-sonnet-4-5"
    assert [m["role"] for m in sent["messages"]] == ["user"] and "Think" in json.dumps(sent["messages"])
    await app.aclose()


async def test_stream_helper_with_tool_call(spend_path: Any) -> None:
    oa = Vendor("openai/tool_call_stream.sse")
    app = make_app(vendor_router(oa=oa), spend_path)
    async with sdk(app).responses.stream(model="openai:gpt-4o-mini", input="Weather in Paris?", tools=TOOLS) as st:
        deltas = [e async for e in st if e.type == "response.function_call_arguments.delta"]
        final = await st.get_final_response()
    calls = [it for it in final.output if it.type == "function_call"]
    assert len(calls) == 2  # the fixture's parallel calls, each its own item
    for call in calls:
        assert "".join(d.delta for d in deltas if d.item_id == call.id) == call.arguments
        assert json.loads(call.arguments) and call.call_id and call.name
    assert oa.bodies[-1]["stream"] is True and oa.bodies[-1]["tools"][0]["type"] == "function"
    await app.aclose()


async def test_function_call_output_round_trip_to_anthropic(spend_path: Any) -> None:
    an = Vendor("anthropic/message_tool_use.json", "anthropic/message_text.json")
    app = make_app(vendor_router(an=an), spend_path)
    c = sdk(app)
    first = await c.responses.create(model="anthropic:claude-sonnet-4-5", input="Update the issues.",
                                     tools=[{"type": "function", "name": "updateIssueList", "parameters": {},
                                             "strict": False}])
    call = next(it for it in first.output if it.type == "function_call")
    assert (call.name, call.call_id) == ("updateIssueList", "toolu_01LRmxn9vGM1d2DZSDBowdZ1")
    # the client sends everything back (store=false style), plus the tool's result
    items: list[Any] = [{"role": "user", "content": "Update the issues."}]
    items += [it.model_dump(exclude_none=True) for it in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "3 issues updated"})
    second = await c.responses.create(model="anthropic:claude-sonnet-4-5", input=items, store=False,
                                      tools=[{"type": "function", "name": "updateIssueList", "parameters": {},
                                              "strict": False}])
    assert second.output_text and second.store is False
    msgs = an.bodies[-1]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert any(b.get("type") == "tool_use" and b["id"] == call.call_id for b in msgs[1]["content"])
    assert msgs[2]["content"][0]["type"] == "tool_result" and msgs[2]["content"][0]["tool_use_id"] == call.call_id
    await app.aclose()


async def test_previous_response_id_retrieve_and_delete(spend_path: Any) -> None:
    oa = Vendor("openai/chat_completion.json")
    app = make_app(vendor_router(oa=oa), spend_path)
    c = sdk(app)
    first = await c.responses.create(model="openai:gpt-4o-mini", input="Describe the image.", instructions="terse")
    assert first.store is True
    second = await c.responses.create(model="openai:gpt-4o-mini", input="And the sky?",
                                      previous_response_id=first.id, instructions="also terse")
    assert second.previous_response_id == first.id
    msgs = oa.bodies[-1]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == "also terse"  # instructions are not carried over
    assert msgs[2]["content"] == first.output_text
    # a stream stores too, and can be continued
    s = await c.responses.create(model="openai:gpt-4o-mini", input="more", previous_response_id=second.id,
                                 stream=True)
    done = [e async for e in s][-1]
    assert done.type == "response.completed"
    oa.answers = ["openai/chat_completion.json"]
    third = await c.responses.create(model="openai:gpt-4o-mini", input="last", previous_response_id=done.response.id)
    assert len(oa.bodies[-1]["messages"]) == 7 and third.output_text
    got = await c.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    await c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as ei:
        await c.responses.create(model="openai:gpt-4o-mini", input="x", previous_response_id=first.id)
    assert ei.value.body["param"] == "previous_response_id"
    n = len(oa.bodies)
    nostore = await c.responses.create(model="openai:gpt-4o-mini", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(nostore.id)
    assert len(oa.bodies) == n + 1
    await app.aclose()


async def test_keys_gate_budgets_and_scope_like_chat(spend_path: Any) -> None:
    from tests.router.server.fakes import FakeRouter

    router = FakeRouter()
    from providers.fake import reply

    router.provider.scripts[:] = [reply("hello") for _ in range(6)]
    app = make_app(router, spend_path, keyed_settings())
    a, b = sdk(app, KEY_A), sdk(app, KEY_B)
    with pytest.raises(openai.AuthenticationError):
        await sdk(app, "wrong-key").responses.create(model="auto", input="hi")
    with pytest.raises(openai.PermissionDeniedError):  # team-a may use auto and fake:small only
        await a.responses.create(model="fake:large", input="hi")
    ra = await a.responses.create(model="auto", input="hi", user="end-user-1")
    assert router.scopes[-1]["key"] == "team-a" and router.scopes[-1]["user"] == "end-user-1"
    # another key can neither read nor continue team-a's response
    with pytest.raises(openai.NotFoundError):
        await b.responses.retrieve(ra.id)
    with pytest.raises(openai.BadRequestError):
        await b.responses.create(model="auto", input="x", previous_response_id=ra.id)
    with pytest.raises(openai.NotFoundError):
        await b.responses.delete(ra.id)
    assert (await a.responses.retrieve(ra.id)).id == ra.id
    # team-a's budget (0.0001 USD) is spent after a few answers: 429 as on chat
    status = None
    for _ in range(4):
        try:
            await a.responses.create(model="auto", input="hi")
        except openai.RateLimitError as e:
            status = e.status_code
            break
    assert status == 429
    await app.aclose()


async def test_store_off_refuses_previous_response_id(spend_path: Any) -> None:
    from router.config.schema import ServerResponses
    from router.server.settings import ServerSettings
    from tests.router.server.fakes import FakeRouter

    app = make_app(FakeRouter(), spend_path, ServerSettings(responses=ServerResponses(db="off")))
    assert app.responses is None
    c = sdk(app)
    r = await c.responses.create(model="auto", input="hi")
    assert r.store is False and r.output_text == "ok"
    with pytest.raises(openai.BadRequestError) as ei:
        await c.responses.create(model="auto", input="x", previous_response_id=r.id)
    assert ei.value.body["code"] == "unsupported_parameter" and "off" in ei.value.body["message"]
    await app.aclose()


def test_quotaroute_serve_subprocess_with_the_sync_sdk(tmp_path: Any) -> None:
    """`quotaroute serve` as a subprocess: the sync SDK's create, stream and chain; the
    store lands in $QUOTAROUTE_HOME/responses.sqlite."""
    from tests.router.server.conftest import free_port
    from tests.router.server.test_cli import FACTORY, serve, stop, wait_listening

    port = free_port()
    p = serve(tmp_path, "--port", str(port), *FACTORY)
    try:
        wait_listening(p)
        c = openai.OpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        r = c.responses.create(model="auto", input="hi", tools=TOOLS)
        assert r.output_text == "Hello from the fake upstream!" and r.model == "small"
        with c.responses.stream(model="auto", input="again", previous_response_id=r.id) as st:
            text = "".join(e.delta for e in st if e.type == "response.output_text.delta")
            final = st.get_final_response()
        assert text == final.output_text == "Hello from the fake upstream!"
        assert c.responses.retrieve(final.id).previous_response_id == r.id
    finally:
        stop(p)
    assert (tmp_path / "responses.sqlite").exists()
