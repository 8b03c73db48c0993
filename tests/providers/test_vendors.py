"""Every OpenAI-compatible vendor row: URL, auth header, key never leaked, a basic completion
and a stream; then each vendor's quirks and error codes against real-format fixtures."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from providers.base import Provider
from providers.registry import build_provider, list_vendors
from providers.retry import RetryPolicy
from providers.vendors import VENDORS, get_vendor
from router import errors as E
from router.types import accumulate
from tests.providers._oai_helpers import KEY, collect, fx, fx_headers, json_resp, provider, req, sse_headers

AZURE_ENDPOINT = "https://myres.openai.azure.com"


def url_for(name: str) -> str:
    if name == "azure":
        return f"{AZURE_ENDPOINT}/openai/deployments/gpt4o-prod/chat/completions"
    return VENDORS[name].base_url.rstrip("/") + "/chat/completions"


def make(name: str, **kw):
    extra = {"base_url": AZURE_ENDPOINT, "deployment": "gpt4o-prod"} if name == "azure" else {}
    return build_provider(name, api_key=KEY, client=httpx.AsyncClient(),
                          retry=RetryPolicy(max_attempts=1), **extra, **kw)


def leaks(obj) -> bool:
    return KEY in repr(obj) or KEY in str(obj)


REQUIRED = {"openai", "azure", "deepseek", "moonshot", "zhipu", "dashscope", "minimax", "yi", "stepfun", "baichuan",
            "qianfan", "ark", "hunyuan", "siliconflow", "groq", "mistral", "together", "openrouter", "ollama", "vllm"}


def test_every_required_vendor_has_a_row():
    assert REQUIRED <= set(VENDORS)
    assert VENDORS["zhipu"].base_url.endswith("/api/paas/v4")
    assert VENDORS["dashscope"].base_url.endswith("/compatible-mode/v1")
    assert VENDORS["qianfan"].base_url.endswith("/v2")
    assert {r.name for r in list_vendors()} == set(VENDORS)
    assert get_vendor("Kimi").name == "moonshot" and get_vendor("doubao").name == "ark"
    for r in list_vendors():
        assert r.regions <= {"cn", "us", "eu", "local"} and r.env_var.endswith("_API_KEY")


@pytest.mark.parametrize("name", sorted(VENDORS))
@respx.mock
async def test_row_basic_completion_and_stream(name):
    row = VENDORS[name]
    route = respx.post(url_for(name)).mock(side_effect=[
        json_resp(200, "openai/chat_completion.json"),
        httpx.Response(200, content=fx("openai/chat_stream.sse"), headers=sse_headers())])
    p = make(name)
    assert isinstance(p, Provider) and p.name == name and not leaks(p)
    res = await p.complete(req("some-model"))
    assert res.text.startswith("The image shows") and res.usage.input_tokens == 1117
    sent = route.calls[0].request
    if row.auth == "api-key":
        assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
        assert sent.url.params["api-version"] == "2024-10-21"
    else:
        assert sent.headers["authorization"] == f"Bearer {KEY}"
    evs = await collect(p, req("some-model"))
    r2 = accumulate(evs)
    assert r2.text == "Hello! How can I help?" and r2.usage.output_tokens == 10
    body = json.loads(route.calls[1].request.content)
    assert body["model"] == "some-model" and body["stream"] is True
    await p.aclose()


@pytest.mark.parametrize("name", sorted(VENDORS))
@respx.mock
async def test_row_errors_never_leak_the_key(name):
    # An upstream that echoes the key in its error message and headers.
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                                 "code": "invalid_api_key"}}).encode()
    respx.post(url_for(name)).mock(return_value=json_resp(401, body, {"authorization": f"Bearer {KEY}",
                                                                      "x-request-id": "req_1"}))
    with pytest.raises(E.AuthFailed) as ei:
        await make(name).complete(req())
    e = ei.value
    for text in (str(e), repr(e), e.body, e.message, json.dumps(e.headers)):
        assert KEY not in text
    assert "authorization" not in e.headers and e.headers["x-request-id"] == "req_1"


def test_local_vendors_need_no_key_but_cloud_ones_do(monkeypatch):
    p = build_provider("ollama", client=httpx.AsyncClient())
    assert "authorization" not in p._headers()
    with pytest.raises(E.ConfigError, match="DEEPSEEK_API_KEY"):
        build_provider("deepseek")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-from-env-123456789")
    p = build_provider("deepseek", client=httpx.AsyncClient())
    assert p._headers()["authorization"] == "Bearer sk-from-env-123456789"
    with pytest.raises(E.ConfigError, match="unknown vendor"):
        build_provider("nope", api_key="x")
    with pytest.raises(E.ConfigError, match="base_url"):
        build_provider("azure", api_key="k")


def test_native_adapters_built_lazily_by_path(monkeypatch):
    from providers import registry

    calls = {}

    class Fake:
        def __init__(self, **kw):
            calls.update(kw)

    monkeypatch.setattr(registry, "_load", lambda path: (calls.setdefault("path", path), Fake)[1])
    build_provider("anthropic", api_key="k", base_url="http://x", extra_opt=1)
    assert calls["path"] == "providers.anthropic:AnthropicProvider" and calls["extra_opt"] == 1
    assert "name" not in calls  # None keywords are not forwarded (adapters keep their defaults)
    calls.clear()
    build_provider("gemini", api_key="g")
    assert calls["path"] == "providers.gemini:GeminiProvider"
    calls.clear()
    build_provider("bedrock", region="us-east-1")
    assert calls["path"] == "providers.bedrock:BedrockProvider" and "api_key" not in calls


def test_registry_import_loads_no_adapter():
    import subprocess
    import sys

    code = ("import sys, providers.registry, providers.vendors\n"
            "print(sorted(m for m in ('providers.openai','providers.anthropic','providers.gemini',"
            "'providers.bedrock','httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ quirks


@respx.mock
async def test_deepseek_reasoning_content_and_cache_hit_tokens():
    respx.post(url_for("deepseek")).mock(side_effect=[
        httpx.Response(200, content=fx("deepseek/reasoning_stream.sse"), headers=sse_headers()),
        json_resp(200, "deepseek/chat_completion.json")])
    p = provider("deepseek")
    evs = await collect(p, req("deepseek-reasoner"))
    assert [e.kind for e in evs[:2]] == ["reasoning", "reasoning"]
    res = accumulate(evs)
    assert res.reasoning == "9.11 vs 9.8: compare tenths." and res.text == "9.8 is greater."
    assert (res.usage.output_tokens, res.usage.reasoning_tokens) == (250, 239)
    res = await p.complete(req("deepseek-chat"))
    assert (res.usage.input_tokens, res.usage.cache_read_tokens) == (1290, 1280)


def test_deepseek_cache_fields_without_openai_details():
    from providers._openai_events import parse_usage

    u = parse_usage({"prompt_cache_hit_tokens": 30, "prompt_cache_miss_tokens": 12, "completion_tokens": 5})
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens) == (42, 30, 5)


@respx.mock
async def test_deepseek_insufficient_system_resource_finish():
    respx.post(url_for("deepseek")).mock(return_value=json_resp(200, "deepseek/finish_insufficient_resource.json"))
    res = await provider("deepseek").complete(req())
    assert res.finish_reason == "error" and res.provider_details["finish_reason_raw"] == "insufficient_system_resource"


@respx.mock
async def test_moonshot_usage_in_choice_and_tool_calls_without_index():
    respx.post(url_for("moonshot")).mock(side_effect=[
        httpx.Response(200, content=fx("moonshot/stream_choice_usage.sse"), headers=sse_headers()),
        httpx.Response(200, content=fx("moonshot/tool_stream_no_index.sse"), headers=sse_headers())])
    p = provider("moonshot")
    res = accumulate(await collect(p, req("kimi-k2-0711-preview")))
    assert res.text == "你好！" and (res.usage.input_tokens, res.usage.output_tokens) == (19, 13)
    assert res.usage.cache_read_tokens == 8
    res = accumulate(await collect(p, req()))
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("search:0", "search", '{"q":"kimi"}'), ("calc:1", "calc", "{}")]


@respx.mock
async def test_groq_usage_in_x_groq():
    respx.post(url_for("groq")).mock(return_value=httpx.Response(200, content=fx("groq/stream_x_groq.sse"),
                                                                 headers=sse_headers()))
    res = accumulate(await collect(provider("groq"), req()))
    assert res.text == "Fast answer." and (res.usage.input_tokens, res.usage.output_tokens) == (42, 3)


@respx.mock
async def test_openrouter_comments_ignored_and_usage_parsed():
    respx.post(url_for("openrouter")).mock(return_value=httpx.Response(
        200, content=fx("openrouter/stream_ok.sse"), headers=sse_headers()))
    res = accumulate(await collect(provider("openrouter"), req("openai/gpt-4o")))
    assert res.text == "Hi" and res.usage.input_tokens == 10 and res.model == "openai/gpt-4o"


@respx.mock
async def test_openrouter_mid_stream_error_is_typed_and_keeps_text():
    respx.post(url_for("openrouter")).mock(return_value=httpx.Response(
        200, content=fx("openrouter/stream_mid_error.sse"), headers=sse_headers()))
    got = []
    with pytest.raises(E.Unavailable, match="Provider disconnected") as ei:
        async for ev in provider("openrouter", retries=3).stream(req()):
            got.append(ev)
    assert [e.text for e in got if e.kind == "text"] == ["Once upon"]
    assert ei.value.code == "server_error"
    assert respx.calls.call_count == 1  # output already seen: no retry


@respx.mock
async def test_minimax_error_inside_http_200():
    respx.post(url_for("minimax")).mock(side_effect=[
        json_resp(200, "minimax/error_200_1008.json"), json_resp(200, "minimax/error_200_1002.json"),
        json_resp(200, "minimax/chat_completion.json")])
    p = provider("minimax")
    with pytest.raises(E.QuotaExhausted, match="insufficient balance") as ei:
        await p.complete(req())
    assert ei.value.code == "1008"
    with pytest.raises(E.RateLimited):
        await p.complete(req())
    res = await p.complete(req("MiniMax-M1"))  # base_resp.status_code 0 = fine
    assert res.text == "Hello! How can I help you today?" and res.usage.input_tokens == 56


@respx.mock
async def test_minimax_error_frame_in_stream_and_json_error_instead_of_stream():
    respx.post(url_for("minimax")).mock(side_effect=[
        httpx.Response(200, content=fx("minimax/stream_error_frame.sse"), headers=sse_headers()),
        json_resp(200, "minimax/error_200_1008.json")])
    p = provider("minimax")
    with pytest.raises(E.RateLimited, match="rate limit"):
        await collect(p, req())
    with pytest.raises(E.QuotaExhausted):
        await collect(p, req())


# ------------------------------------------------------------------ error code tables (vendor -> our error)

CASES = [
    # vendor, status, fixture, headers fixture, expected, code
    ("deepseek", 402, "deepseek/error_402.json", None, E.QuotaExhausted),
    ("moonshot", 429, "moonshot/error_quota.json", None, E.QuotaExhausted),
    ("moonshot", 403, "moonshot/error_quota.json", None, E.QuotaExhausted),
    ("moonshot", 429, "moonshot/error_rate.json", None, E.RateLimited),
    ("moonshot", 400, "moonshot/error_context.json", None, E.ContextTooLong),
    ("zhipu", 429, "zhipu/error_1113.json", None, E.QuotaExhausted),
    ("zhipu", 429, "zhipu/error_1302.json", None, E.RateLimited),
    ("zhipu", 400, "zhipu/error_1301.json", None, E.ContentFiltered),
    ("zhipu", 400, "zhipu/error_1261.json", None, E.ContextTooLong),
    ("dashscope", 400, "dashscope/error_arrearage.json", None, E.QuotaExhausted),
    ("dashscope", 429, "dashscope/error_throttling.json", None, E.RateLimited),
    ("dashscope", 429, "dashscope/error_insufficient_quota.json", None, E.RateLimited),
    ("dashscope", 400, "dashscope/error_data_inspection.json", None, E.ContentFiltered),
    ("ark", 403, "ark/error_overdue.json", None, E.QuotaExhausted),
    ("ark", 429, "ark/error_rate.json", None, E.RateLimited),
    ("groq", 429, "groq/error_tpd.json", "groq/error_tpd.headers.json", E.QuotaExhausted),
    ("groq", 429, "groq/error_tpm.json", None, E.RateLimited),
    ("openrouter", 402, "openrouter/error_402.json", None, E.QuotaExhausted),
    ("openrouter", 429, "openrouter/error_429_free_daily.json", "openrouter/error_429_free_daily.headers.json",
     E.QuotaExhausted),
    ("openrouter", 429, "openrouter/error_429.json", "openrouter/error_429.headers.json", E.RateLimited),
    ("openrouter", 403, "openrouter/error_403_moderation.json", None, E.ContentFiltered),
    ("azure", 400, "azure/error_content_filter.json", None, E.ContentFiltered),
    ("azure", 429, "azure/error_429.json", "azure/error_429.headers.json", E.RateLimited),
    ("qianfan", 429, "qianfan/error_rpm.json", None, E.RateLimited),
    ("qianfan", 400, "qianfan/error_tokens_too_long.json", None, E.ContextTooLong),
    ("siliconflow", 429, "siliconflow/error_429.json", None, E.RateLimited),
    ("siliconflow", 403, "siliconflow/error_30001.json", None, E.QuotaExhausted),
    ("together", 403, "together/error_context_403.json", None, E.ContextTooLong),
    ("mistral", 402, "mistral/error_402.json", None, E.QuotaExhausted),
    ("vllm", 400, "vllm/error_context.json", None, E.ContextTooLong),
    ("stepfun", 451, "stepfun/error_451.json", None, E.ContentFiltered),
    ("ollama", 404, "ollama/error_404.json", None, E.BadRequest),
    ("openai", 429, "openai/error_insufficient_quota.json", None, E.QuotaExhausted),
]


@pytest.mark.parametrize("vendor,status,path,hpath,cls", CASES, ids=[f"{c[0]}-{c[2].split('/')[1]}-{c[1]}" for c in CASES])
@respx.mock
async def test_vendor_error_mapping(vendor, status, path, hpath, cls):
    headers = fx_headers(hpath) if hpath else {}
    respx.post(url_for(vendor)).mock(return_value=json_resp(status, path, headers))
    p = make(vendor)
    with pytest.raises(E.ProviderError) as ei:
        await p.complete(req())
    assert type(ei.value) is cls, ei.value
    assert ei.value.status == status and ei.value.provider == vendor
    assert ei.value.rate_limits is not None
    if cls is E.QuotaExhausted:
        assert not ei.value.retryable


@respx.mock
async def test_openrouter_rate_limit_retry_after_from_ms_epoch_reset():
    respx.post(url_for("openrouter")).mock(return_value=json_resp(
        429, "openrouter/error_429.json", fx_headers("openrouter/error_429.headers.json")))
    with pytest.raises(E.RateLimited) as ei:
        await provider("openrouter").complete(req())  # clock = 1_745_000_000
    assert ei.value.retry_after == 460.0 and ei.value.rate_limits.remaining_requests == 0


@respx.mock
async def test_azure_retry_after_ms_preferred():
    respx.post(url_for("azure")).mock(return_value=json_resp(429, "azure/error_429.json",
                                                             fx_headers("azure/error_429.headers.json")))
    with pytest.raises(E.RateLimited) as ei:
        await make("azure").complete(req())
    assert ei.value.retry_after == 5.82 and ei.value.rate_limits.remaining_tokens == 0
