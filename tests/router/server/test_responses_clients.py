"""Third-party clients on /v1/responses, unchanged, against a live proxy (uvicorn on
loopback) over the real Router, the vendor faked at the HTTP level: langchain-openai
with `use_responses_api=True`, and the `llm` CLI with a model marked `responses: true`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.router.server.conftest import LiveServer, make_app
from tests.router.server.test_responses_sdk import FIX, Vendor, vendor_router

ROOT = Path(__file__).resolve().parents[3]


@tool
def get_current_weather(location: str) -> str:
    """The current weather in a city."""
    return "sunny"


def json_answer(tmp_path: Path, content: dict[str, Any]) -> str:
    body = json.loads((FIX / "openai/chat_completion.json").read_text())
    body["choices"][0]["message"]["content"] = json.dumps(content)
    p = tmp_path / "answer.json"
    p.write_text(json.dumps(body))
    return str(p)


def test_langchain_openai_responses_api(spend_path: Any) -> None:
    oa = Vendor("openai/chat_completion.json")
    with LiveServer(make_app(vendor_router(oa=oa), spend_path)) as live:
        llm = ChatOpenAI(model="openai:gpt-4o-mini", base_url=live.url + "/v1", api_key="unused",
                         use_responses_api=True, max_retries=0)
        m = llm.invoke("Describe the picture.")
        assert m.text.startswith("The image shows") and m.response_metadata["id"].startswith("resp_")
        assert m.usage_metadata["input_tokens"] == 1117 and m.usage_metadata["input_token_details"]["cache_read"] == 1024
        oa.answers = ["openai/chat_stream.sse"]
        assert "".join(c.text for c in llm.stream("hi")) == "Hello! How can I help?"
        # tools: the call comes back as a LangChain tool call; its result goes back as function_call_output
        oa.answers = ["openai/tool_call.json", "openai/chat_completion.json"]
        bound = llm.bind_tools([get_current_weather])
        q = HumanMessage("Weather in Boston?")
        ai = bound.invoke([q])
        call = ai.tool_calls[0]
        assert call["name"] == "get_current_weather" and call["args"] == {"location": "Boston, MA"}
        final = bound.invoke([q, ai, ToolMessage("sunny", tool_call_id=call["id"])])
        assert final.text
        sent = oa.bodies[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == call["id"] and sent[2]["tool_call_id"] == call["id"]
        assert oa.bodies[-1]["tools"][0]["function"]["name"] == "get_current_weather"


def test_langchain_structured_output(spend_path: Any, tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        temperature_c: int

    oa = Vendor(json_answer(tmp_path, {"city": "Paris", "temperature_c": 21}))
    with LiveServer(make_app(vendor_router(oa=oa), spend_path)) as live:
        llm = ChatOpenAI(model="openai:gpt-4o-mini", base_url=live.url + "/v1", api_key="unused",
                         use_responses_api=True, max_retries=0)
        got = llm.with_structured_output(Weather, method="json_schema").invoke("Weather in Paris?")
    assert got == Weather(city="Paris", temperature_c=21)
    assert oa.bodies[-1]["response_format"]["type"] == "json_schema"


def _llm(args: list[str], user_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_USER_PATH": str(user_dir)}
    return subprocess.run([sys.executable, "-m", "llm", *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_llm_cli_with_a_responses_model(spend_path: Any, tmp_path: Path) -> None:
    oa = Vendor("openai/chat_stream.sse")
    with LiveServer(make_app(vendor_router(oa=oa), spend_path)) as live:
        (tmp_path / "extra-openai-models.yaml").write_text(
            f"- model_id: qr\n  model_name: openai:gpt-4o-mini\n  api_base: {live.url}/v1\n  responses: true\n"
            "  supports_tools: true\n  supports_schema: true\n")
        p = _llm(["-m", "qr", "say hi"], tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.strip() == "Hello! How can I help?"
        assert oa.bodies[-1]["stream"] is True
        oa.answers = ["openai/chat_completion.json"]
        p = _llm(["-m", "qr", "--no-stream", "-s", "Be terse.", "describe"], tmp_path)
        assert p.returncode == 0 and p.stdout.startswith("The image shows"), p.stderr[-2000:]
        assert oa.bodies[-1]["messages"][0] == {"role": "system", "content": "Be terse."}
        oa.answers = [json_answer(tmp_path, {"city": "Paris", "temperature_c": 21})]
        p = _llm(["-m", "qr", "--no-stream", "--schema", "city, temperature_c int", "weather"], tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        assert json.loads(p.stdout) == {"city": "Paris", "temperature_c": 21}
        assert oa.bodies[-1]["response_format"]["type"] == "json_schema"
