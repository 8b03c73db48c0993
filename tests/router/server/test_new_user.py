"""What a new user meets first: /v1/models lists what can be served (with the
x-quotaroute-* headers), a listed-but-unconfigured model is a clear 404, the body's
`model` is the vendor's id, unknown-model messages read cleanly, common spellings and
dated aliases are accepted."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from providers.fake import FakeProvider, reply
from router.catalog import load_catalog
from router.config import build_server_settings, parse_config
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from router.server.settings import ServerSettings
from tests.router.server.conftest import make_app

MSG = [{"role": "user", "content": "hi"}]
HEADERS = ("x-quotaroute-model", "x-quotaroute-provider", "x-quotaroute-cost-usd", "x-quotaroute-route-reason",
           "x-quotaroute-overhead-ms")


def two_providers() -> Router:
    provs = {"openai": FakeProvider(name="openai", scripts=[reply("from openai")]),
             "anthropic": FakeProvider(name="anthropic", scripts=[reply("from anthropic")])}
    return Router(catalog=load_catalog(), providers=provs, ledger=Ledger(MemoryStore()), policy="cheapest")


@pytest.fixture
async def served(spend_path: Any) -> Any:
    app = make_app(two_providers(), spend_path)
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    yield app, hc, openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=hc, max_retries=0)
    await hc.aclose()
    await app.aclose()


async def test_models_lists_only_what_can_be_served_with_the_headers(served: Any) -> None:
    app, hc, _ = served
    r = await hc.get("/v1/models")
    ids = [m["id"] for m in r.json()["data"]]
    assert {"auto", "auto:balanced", "auto:cheap", "auto:best", "auto:free", "auto:cascade"} <= set(ids)
    concrete = [i for i in ids if not i.startswith("auto")]
    assert concrete and {i.split(":")[0] for i in concrete} == {"openai", "anthropic"}, concrete
    assert len(concrete) == len(app.router.model_ids) < len(load_catalog())
    for h in HEADERS:
        assert h in r.headers, h
    one = await hc.get("/v1/models/openai:gpt-5-nano")
    assert one.status_code == 200 and all(h in one.headers for h in HEADERS)
    assert (await hc.get("/v1/models/groq:llama-3.3-70b-versatile")).status_code == 404


async def test_a_listed_but_unconfigured_model_is_a_clear_404_not_a_503(served: Any) -> None:
    _, hc, o = served
    with pytest.raises(openai.NotFoundError) as ei:
        await o.chat.completions.create(model="deepseek:deepseek-flash", messages=MSG)
    msg = ei.value.body["message"]
    assert "not served here" in msg and "deepseek is not configured" in msg and "GET /v1/models" in msg, msg
    assert ei.value.response.headers["x-quotaroute-model"] == "-"


async def test_unknown_model_message_is_flat_and_suggestions_are_unique(served: Any) -> None:
    _, _, o = served
    with pytest.raises(openai.NotFoundError) as ei:
        await o.chat.completions.create(model="openai:gpt-4o-mino", messages=MSG)
    msg = ei.value.body["message"]
    assert msg.startswith("The model `openai:gpt-4o-mino` does not exist"), msg
    assert "unknown model" not in msg and msg.count("`openai:gpt-4o-mini`") == 1, msg
    assert "Did you mean `openai:gpt-4o-mini`" in msg


@pytest.mark.parametrize("asked,served_id", [("gpt-4o", "openai:gpt-4o"), ("openai/gpt-4o-mini", "openai:gpt-4o-mini"),
                                             ("claude-3-5-haiku-latest", "anthropic:claude-haiku-4-5"),
                                             ("gpt-5-nano", "openai:gpt-5-nano")])
async def test_common_spellings_and_dated_aliases_are_accepted(served: Any, asked: str, served_id: str) -> None:
    _, _, o = served
    raw = await o.chat.completions.with_raw_response.create(model=asked, messages=MSG)
    r = raw.parse()
    # the body carries the vendor's model id (clients' own cost tracking knows it); the header the qualified id
    assert r.model == served_id.split(":", 1)[1] and raw.headers["x-quotaroute-model"] == served_id
    chunks = [c async for c in await o.chat.completions.create(model=asked, messages=MSG, stream=True)]
    assert {c.model for c in chunks} == {served_id.split(":", 1)[1]}


async def test_a_setting_keeps_qualified_ids_in_the_body(spend_path: Any) -> None:
    settings = build_server_settings(parse_config({"server": {"response_model": "qualified"}}))
    assert settings.qualified_model_ids and ServerSettings().qualified_model_ids is False
    app = make_app(two_providers(), spend_path, settings)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as hc:
        o = openai.AsyncOpenAI(api_key="x", base_url="http://t/v1", http_client=hc, max_retries=0)
        r = await o.chat.completions.create(model="gpt-5-nano", messages=MSG)
        assert r.model == "openai:gpt-5-nano"
    await app.aclose()


def test_deployments_names_are_listed_as_virtual_models() -> None:
    cfg = parse_config({"deployments": {"nano-pair": [{"model": "openai:gpt-5-nano"}, {"model": "openai:gpt-5-mini"}]}})
    assert build_server_settings(cfg).virtual_models[-1] == "nano-pair"


def test_cascade_names_are_listed_as_virtual_models() -> None:
    cfg = parse_config({"cascades": {"math-agree": {"extract": "number", "stages": [
        {"mode": "consensus", "k": 2, "m": 2, "models": ["openai:gpt-5-nano", "openai:gpt-5-mini"]},
        {"mode": "single", "models": ["openai:gpt-5.5"]}]}}})
    assert build_server_settings(cfg).virtual_models[-1] == "cascade:math-agree"
