"""The official anthropic SDK against a real `quotaroute serve` subprocess whose Anthropic
provider points at a loopback server answering with Anthropic's real JSON/SSE: cache_control,
a two-turn thinking round trip with signatures (stream and not) and count_tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic

from tests.support.threaded_upstream import ThreadedUpstream
from tests.providers._native_helpers import fixture_reader
from tests.router.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
ANT = fixture_reader("anthropic")
MODEL = "anthropic:claude-sonnet-4-6"
TOOLS = [{"name": "get_weather", "description": "Current weather",
          "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}]


class AnthropicUpstream(ThreadedUpstream):
    """Anthropic on loopback (aiohttp): /v1/messages and /v1/messages/count_tokens from fixtures."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def routes(self) -> dict[str, Any]:
        from aiohttp import web

        async def messages(req: Any) -> Any:
            body = await req.json()
            self.bodies.append(body)
            self.paths.append(req.path)
            if req.path.endswith("/count_tokens"):
                return web.Response(body=ANT("count_tokens.json"), content_type="application/json")
            if body.get("stream"):
                return web.Response(body=ANT("stream_thinking.sse"), content_type="text/event-stream")
            last = body["messages"][-1]["content"]
            done = isinstance(last, list) and last[0]["type"] == "tool_result"
            return web.Response(body=ANT("message_after_tool.json" if done else "message_thinking_tool_use.json"),
                                content_type="application/json")

        return {"/v1/messages": messages, "/v1/messages/count_tokens": messages}


def test_anthropic_sdk_against_quotaroute_serve(tmp_path: Any) -> None:
    with AnthropicUpstream() as up:
        port = free_port()
        cfg = tmp_path / "quotaroute.yaml"
        cfg.write_text(f"providers:\n  anthropic:\n    base_url: http://127.0.0.1:{up.port}\n"
                       f"    api_key_env: TEST_ANTHROPIC_KEY\nmodels:\n  include: [{MODEL}]\n"
                       f"server:\n  port: {port}\n")
        env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "TEST_ANTHROPIC_KEY": "sk-ant-test-upstream"}
        p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            from tests.router.server.test_live import _up, _wait

            assert _wait(lambda: _up(url), 60), p.stderr.read1().decode() if p.poll() is not None else "not up"
            c = anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)
            system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
            q = {"role": "user", "content": "What's the weather in Paris?"}
            thinking = {"type": "enabled", "budget_tokens": 2000}
            raw = c.messages.with_raw_response.create(model="auto", max_tokens=4000, system=system, tools=TOOLS,
                                                      thinking=thinking, messages=[q])
            m1 = raw.parse()
            assert up.bodies[0]["system"] == system and "thinking" in up.bodies[0]  # (translated per model)
            # 412 in x $3 + 98 out x $15 per 1M (genai-prices list price of Claude Sonnet 4.6)
            assert Decimal(raw.headers["x-quotaroute-cost-usd"]) == Decimal("0.002706")
            vendor = json.loads(ANT("message_thinking_tool_use.json"))["content"]
            assert [b.model_dump(exclude_none=True) for b in m1.content] == vendor
            m2 = c.messages.create(model="auto", max_tokens=4000, system=system, tools=TOOLS, thinking=thinking,
                                   messages=[q, {"role": "assistant", "content": m1.content},
                                             {"role": "user", "content": [{"type": "tool_result", "content": "15 C",
                                                                           "tool_use_id": m1.content[1].id}]}])
            assert m2.content[0].text.startswith("It is currently")
            assert up.bodies[1]["messages"][1]["content"] == vendor  # signature unchanged on the second turn
            with c.messages.stream(model="auto", max_tokens=4000, thinking=thinking, messages=[q]) as st:
                final = st.get_final_message()
            assert final.content[0].type == "thinking" and final.content[0].signature.startswith("EvQB")
            counted = c.messages.with_raw_response.count_tokens(model="auto", system=system, messages=[q])
            assert counted.parse().input_tokens == 2095 and counted.headers["x-quotaroute-token-count"] == "exact"
            assert up.paths[-1] == "/v1/messages/count_tokens" and "max_tokens" not in up.bodies[-1]
        finally:
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=20)
