"""Each adapter family's `embed()` against vendor-shaped fixtures (respx): the request body on
the wire, vectors in input order, usage (reported or estimated), errors mapped as for chat."""

from __future__ import annotations

import base64
import json
import struct

import httpx
import pytest
import respx

from providers._http import Call
from providers.bedrock import BedrockProvider
from providers.embed import decode_base64, parse_openai
from providers.gemini import GeminiProvider
from providers.registry import build_provider
from providers.retry import RetryPolicy
from providers.vendors import VENDORS
from router import errors as E
from router.embed_types import EmbedCall
from tests.providers._oai_helpers import KEY, fx, json_resp

V0 = [0.0023064255, -0.009327292, -0.0028842222, 0.021504618]
E_CALL = Call("openai", "m")
V1 = [-0.011945467, 0.0065531843, 0.017732754, -0.0060254526]
ROWS = {  # vendor -> (model, fixture, reported prompt tokens or None)
    "openai": ("text-embedding-3-small", "openai/embeddings.json", 8),
    "mistral": ("mistral-embed", "mistral/embeddings.json", 15),
    "dashscope": ("text-embedding-v4", "dashscope/embeddings.json", 23),
    "zhipu": ("embedding-3", "zhipu/embeddings.json", 12),
    "siliconflow": ("BAAI/bge-m3", "siliconflow/embeddings.json", 9),
    "together": ("BAAI/bge-large-en-v1.5", "together/embeddings.json", None),
    "ollama": ("nomic-embed-text", "ollama/embeddings.json", 5),
    "vllm": ("BAAI/bge-m3", "vllm/embeddings.json", 6),
}


def make(vendor: str, **kw):
    return build_provider(vendor, api_key=KEY, client=httpx.AsyncClient(), retry=RetryPolicy(max_attempts=1), **kw)


@pytest.mark.parametrize("vendor", sorted(ROWS))
@respx.mock
async def test_openai_compatible_rows(vendor: str) -> None:
    model, fixture, tokens = ROWS[vendor]
    route = respx.post(VENDORS[vendor].base_url.rstrip("/") + "/embeddings").mock(
        return_value=json_resp(200, fixture))
    p = make(vendor)
    r = await p.embed(EmbedCall(model=model, inputs=("hello", "world"), dimensions=512, user="u1"))
    body = json.loads(route.calls[0].request.content)
    assert body == {"model": model, "input": ["hello", "world"], "encoding_format": "float", "dimensions": 512,
                    "user": "u1"}
    assert route.calls[0].request.headers.get("authorization") == f"Bearer {KEY}"
    assert r.vectors == [V0, V1]  # by `index` (Together's are out of order in the fixture)
    if tokens is None:
        assert not r.usage_reported and r.usage.input_tokens > 0  # estimated
    else:
        assert r.usage_reported and r.usage.input_tokens == tokens and r.usage.output_tokens == 0
    assert KEY not in repr(p)


@respx.mock
async def test_token_ids_and_no_optional_fields() -> None:
    route = respx.post("https://api.openai.com/v1/embeddings").mock(return_value=json_resp(200, "openai/embeddings.json"))
    await make("openai").embed(EmbedCall(model="text-embedding-3-small", inputs=([15339, 1917], [1, 2, 3])))
    assert json.loads(route.calls[0].request.content) == {
        "model": "text-embedding-3-small", "input": [[15339, 1917], [1, 2, 3]], "encoding_format": "float"}


@respx.mock
async def test_azure_deployment_url() -> None:
    route = respx.post("https://myres.openai.azure.com/openai/deployments/emb-prod/embeddings").mock(
        return_value=json_resp(200, "openai/embeddings.json"))
    p = make("azure", base_url="https://myres.openai.azure.com", deployment="emb-prod")
    r = await p.embed(EmbedCall(model="text-embedding-3-small", inputs=("a", "b")))
    assert r.vectors == [V0, V1]
    req = route.calls[0].request
    assert req.headers["api-key"] == KEY and "api-version=" in str(req.url)


@pytest.mark.parametrize("status,body,err", [
    (429, b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}', E.RateLimited),
    (400, "openai/embeddings_error_400.json", E.BadRequest),
    (401, b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}',
     E.AuthFailed),
    (503, b'<html>bad gateway</html>', E.Unavailable),
])
@respx.mock
async def test_errors_mapped_like_chat(status, body, err) -> None:
    respx.post("https://api.openai.com/v1/embeddings").mock(return_value=json_resp(status, body))
    with pytest.raises(err) as ei:
        await make("openai").embed(EmbedCall(model="text-embedding-3-small", inputs=("a",)))
    assert KEY not in str(ei.value)


@pytest.mark.parametrize("payload,why", [
    ({"object": "list", "data": [{"index": 0, "embedding": V0}]}, "asked for 2"),
    ({"object": "list", "data": [{"index": 0, "embedding": V0}, {"index": 0, "embedding": V1}]}, "bad index"),
    ({"object": "list", "data": [{"index": 0, "embedding": "nope"}, {"index": 1, "embedding": V1}]}, "base64"),
    ({"error": None}, "no `data`"),
])
@respx.mock
async def test_malformed_answers(payload, why) -> None:
    respx.post("https://api.openai.com/v1/embeddings").mock(return_value=httpx.Response(200, json=payload))
    with pytest.raises(E.MalformedResponse, match=why):
        await make("openai").embed(EmbedCall(model="text-embedding-3-small", inputs=("a", "b")))


def test_base64_answers_are_decoded() -> None:
    b64 = base64.b64encode(struct.pack("<4f", *V0)).decode()
    vecs, usage, _ = parse_openai({"data": [{"index": 0, "embedding": b64}]}, E_CALL, 1)
    assert vecs[0] == pytest.approx(V0, rel=1e-6) and usage is None
    assert decode_base64(b64) == vecs[0]



@respx.mock
async def test_gemini_batch_embed_contents() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    route = respx.post(url).mock(return_value=json_resp(200, "gemini/batch_embed_contents.json"))
    p = GeminiProvider(api_key=KEY, client=httpx.AsyncClient(), retry=RetryPolicy(max_attempts=1))
    r = await p.embed(EmbedCall(model="gemini-embedding-001", inputs=("hello", "world"), dimensions=768))
    req = route.calls[0].request
    assert req.headers["x-goog-api-key"] == KEY and "key=" not in str(req.url)
    assert json.loads(req.content) == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 768},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world"}]}, "outputDimensionality": 768}]}
    assert r.vectors == [V0, V1]
    assert not r.usage_reported and r.usage.input_tokens >= 2  # the API reports no count: an estimate


@respx.mock
async def test_gemini_errors_mapped() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    respx.post(url).mock(return_value=json_resp(429, "gemini/error_429_per_minute.json"))
    p = GeminiProvider(api_key=KEY, client=httpx.AsyncClient(), retry=RetryPolicy(max_attempts=1))
    with pytest.raises((E.RateLimited, E.QuotaExhausted)):
        await p.embed(EmbedCall(model="gemini-embedding-001", inputs=("a",)))


@respx.mock
async def test_bedrock_titan_one_call_per_text() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
    route = respx.post(url).mock(return_value=json_resp(200, "bedrock/titan_embed_v2.json"))
    p = BedrockProvider(api_key="bedrock-key", region="us-east-1", client=httpx.AsyncClient(),
                        retry=RetryPolicy(max_attempts=1))
    r = await p.embed(EmbedCall(model="amazon.titan-embed-text-v2:0", inputs=("hello", "world"), dimensions=512))
    assert route.call_count == 2
    assert json.loads(route.calls[0].request.content) == {"inputText": "hello", "normalize": True, "dimensions": 512}
    assert route.calls[0].request.headers["authorization"] == "Bearer bedrock-key"
    assert r.vectors == [V0, V0] and r.usage.input_tokens == 10 and r.usage_reported


@respx.mock
async def test_bedrock_failure_after_a_text_carries_its_usage() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
    respx.post(url).mock(side_effect=[json_resp(200, "bedrock/titan_embed_v2.json"),
                                      httpx.Response(429, json={"message": "Too many requests"},
                                                     headers={"x-amzn-errortype": "ThrottlingException"})])
    p = BedrockProvider(api_key="bedrock-key", region="us-east-1", client=httpx.AsyncClient(),
                        retry=RetryPolicy(max_attempts=1))
    with pytest.raises(E.RateLimited) as ei:
        await p.embed(EmbedCall(model="amazon.titan-embed-text-v2:0", inputs=("hello", "world")))
    assert ei.value.billed_usage is not None and ei.value.billed_usage.input_tokens == 5


def test_fixture_files_are_json() -> None:
    for _, fixture, _ in ROWS.values():
        assert json.loads(fx(fixture))["data"]
