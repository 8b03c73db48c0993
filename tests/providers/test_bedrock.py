"""Bedrock Converse / ConverseStream adapter: SigV4, binary event stream, typed errors (respx, offline)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from urllib.parse import quote

import httpx
import pytest
import respx

import providers.bedrock as bedrock
from providers.bedrock import BedrockProvider, build_body
from providers.retry import NO_RETRY, RetryPolicy
from router.errors import (
    AuthFailed,
    BadRequest,
    ConfigError,
    ContextTooLong,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
)
from router.types import ChatRequest, Message, Tool, ToolCall, accumulate

from tests.providers._native_helpers import FIXTURES, Sleeps, collect, request_factory

FIX = FIXTURES / "bedrock"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HOST = "https://bedrock-runtime.eu-west-1.amazonaws.com"
URL = f"{HOST}/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
SURL = f"{HOST}/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
AK, SK, TOKEN = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLEsessiontoken0123"
ES = {"content-type": "application/vnd.amazon.eventstream"}


# -------------------------------------------------------------- test-only event-stream encoder


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude(total, headers len, CRC) + string headers + payload + CRC."""
    hb = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
                  for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(hb) + len(payload) + 4, len(hb))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def event(kind: str, payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, body)


def exception(kind: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}, body)


def events_file(name: str) -> bytes:
    return b"".join(event(k, v) for k, v in json.loads((FIX / name).read_text()))


def captured_error_frame() -> bytes:
    return base64.b64decode((FIX / "model_stream_error.eventstream.b64").read_text())


def test_encoder_matches_a_real_captured_frame() -> None:
    payload = b'{"message":"Model Stream Error","originalStatusCode":500,"originalMessage":"The model stream failed."}'
    assert frame({":message-type": "exception", ":exception-type": "modelStreamErrorException",
                  ":content-type": "application/json"}, payload) == captured_error_frame()


# -------------------------------------------------------------- helpers


req = request_factory(MODEL, "Hi")


def provider(retry: object = NO_RETRY, **kw: object) -> BedrockProvider:
    opts: dict[str, object] = {"aws_access_key_id": AK, "aws_secret_access_key": SK, "aws_session_token": TOKEN}
    opts.update(kw)
    return BedrockProvider(region="eu-west-1", client=httpx.AsyncClient(), retry=retry, clock=lambda: 1.0e9,
                           **opts)  # type: ignore[arg-type]


def chunked(data: bytes, n: int = 7) -> httpx.Response:
    async def gen():  # frames split across network chunks
        for i in range(0, len(data), n):
            yield data[i:i + n]
    return httpx.Response(200, content=gen(), headers=ES)


def error_response(name: str) -> httpx.Response:
    e = json.loads((FIX / "errors.json").read_text())[name]
    return httpx.Response(e["status"], content=json.dumps(e["body"]).encode(), headers=e["headers"])


# -------------------------------------------------------------- request


def test_build_body_converse_shape() -> None:
    r = ChatRequest(
        model=MODEL, system="Be brief.",
        messages=[
            Message(role="user", content=[{"type": "text", "text": "Look"},
                                          {"type": "image_url", "url": "data:image/png;base64,iVBORw0KGgo="}]),
            Message(role="assistant", tool_calls=[ToolCall(id="t1", name="bash", arguments='{"command":"ls"}')]),
            Message(role="tool", tool_call_id="t1", content="a.txt"),
        ],
        tools=[Tool(name="bash", description="Run", parameters={"type": "object"})], tool_choice="required",
        max_tokens=256, temperature=0.3, top_p=0.8, stop=["STOP"],
        extra_body={"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}},
    )
    b = build_body(r)
    assert b["system"] == [{"text": "Be brief."}]
    assert b["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert b["messages"][1]["content"] == [{"toolUse": {"toolUseId": "t1", "name": "bash", "input": {"command": "ls"}}}]
    assert b["messages"][2] == {"role": "user", "content": [{"toolResult": {"toolUseId": "t1",
                                                                             "content": [{"text": "a.txt"}]}}]}
    assert b["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.3, "topP": 0.8, "stopSequences": ["STOP"]}
    assert b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    assert b["toolConfig"]["toolChoice"] == {"any": {}}
    assert b["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024


def test_image_urls_must_be_inline() -> None:
    with pytest.raises(BadRequest):
        build_body(req(messages=[Message(role="user", content=[{"type": "image_url", "url": "https://x/a.png"}])]))


# -------------------------------------------------------------- signing / auth


@respx.mock
async def test_sigv4_signed_request_with_encoded_model_id() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=(FIX / "converse_text.json").read_bytes()))
    r = await provider().complete(req())
    sent = route.calls.last.request
    assert b"%3A0/converse" in sent.url.raw_path
    auth = sent.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AK}/") and "/eu-west-1/bedrock/aws4_request" in auth
    assert "SignedHeaders=" in auth and "host" in auth and "x-amz-date" in auth and "x-amz-security-token" in auth
    assert sent.headers["x-amz-security-token"] == TOKEN and "x-amz-date" in sent.headers
    assert r.text.endswith('There are **3** "r"s in "strawberry."') and r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (22, 57)
    assert r.provider_details["metrics"] == {"latencyMs": 1864}


def verify_sigv4(sent: httpx.Request, secret: str, region: str, service: str = "bedrock") -> bool:
    """Independent SigV4 check (AWS docs, "Create a signed AWS API request") over the bytes httpx sent."""
    auth = sent.headers["authorization"]
    fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    amz_date = sent.headers["x-amz-date"]
    canonical = "\n".join([
        sent.method,
        quote(sent.url.raw_path.decode().split("?")[0], safe="/~"),  # non-S3: the path is encoded twice
        sent.url.query.decode(),
        "".join(f"{h}:{' '.join(sent.headers[h].split())}\n" for h in signed),
        ";".join(signed),
        hashlib.sha256(sent.content).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return fields["Credential"].endswith(scope) and hmac.compare_digest(expected, fields["Signature"])


@respx.mock
async def test_signature_verifies_on_the_bytes_actually_sent() -> None:
    route = respx.post(SURL).mock(return_value=chunked(events_file("stream_text.events.json")))
    await collect(provider(), req(messages=[Message(role="user", content="Grüße, 你好")]))
    sent = route.calls.last.request
    assert verify_sigv4(sent, SK, "eu-west-1")
    assert not verify_sigv4(sent, SK + "x", "eu-west-1")


@respx.mock
async def test_bedrock_api_key_is_a_bearer_token() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=(FIX / "converse_text.json").read_bytes()))
    p = BedrockProvider(api_key="ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl", region="eu-west-1", client=httpx.AsyncClient(),
                        retry=NO_RETRY)
    await p.complete(req())
    assert route.calls.last.request.headers["authorization"] == "Bearer ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"
    assert "ABSK" not in repr(p)


def test_missing_botocore_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bedrock, "_have_botocore", lambda: False)
    with pytest.raises(ConfigError, match=r"quotaroute\[bedrock\]"):
        BedrockProvider(aws_access_key_id=AK, aws_secret_access_key=SK)
    BedrockProvider(api_key="bedrock-api-key-example")  # bearer auth needs no botocore


def test_secrets_stay_out_of_repr() -> None:
    p = provider()
    assert SK not in repr(p) and AK not in repr(p) and TOKEN not in repr(p) and "eu-west-1" in repr(p)


# -------------------------------------------------------------- non-streaming


@respx.mock
async def test_complete_tool_use_and_cache_write() -> None:
    respx.post(URL).mock(side_effect=[
        httpx.Response(200, content=(FIX / "converse_tool_use.json").read_bytes()),
        httpx.Response(200, content=(FIX / "converse_cache_write.json").read_bytes())])
    p = provider()
    r = await p.complete(req())
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].id == "tool-use-id"
    assert json.loads(r.tool_calls[0].arguments) == {"command": "ls -l"}
    u = (await p.complete(req())).usage
    assert (u.input_tokens, u.cache_write_tokens, u.cache_read_tokens, u.output_tokens) == (1550, 1536, 0, 17)


# -------------------------------------------------------------- streaming


@respx.mock
async def test_stream_text_from_binary_frames() -> None:
    route = respx.post(SURL).mock(return_value=chunked(events_file("stream_text.events.json")))
    evs = await collect(provider(), req())
    assert route.calls.last.request.headers["accept"] == "application/vnd.amazon.eventstream"
    r = accumulate(evs)
    assert r.text.startswith('Let me count the "r"s') and r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (22, 55) and evs[-1].kind == "finish"
    assert r.provider_details["metrics"] == {"latencyMs": 2040}


@respx.mock
async def test_stream_tool_use_with_cache_read() -> None:
    respx.post(SURL).mock(return_value=chunked(events_file("stream_tool_use_cached.events.json"), 64))
    r = accumulate(await collect(provider(), req()))
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "test-tool"
    assert json.loads(r.tool_calls[0].arguments) == {"value": "Sparkle Day"}
    assert (r.usage.input_tokens, r.usage.cache_read_tokens, r.usage.output_tokens) == (1149, 1024, 45)


@respx.mock
async def test_stream_reasoning() -> None:
    respx.post(SURL).mock(return_value=chunked(events_file("stream_reasoning.events.json"), 1000))
    r = accumulate(await collect(provider(), req()))
    assert r.reasoning == 'Let me count the r\'s in "strawberry":' and r.text.startswith("There are **3**")


@respx.mock
@pytest.mark.parametrize("kind,cls", [("throttlingException", RateLimited),
                                      ("serviceUnavailableException", Unavailable),
                                      ("validationException", BadRequest),
                                      ("internalServerException", Unavailable)])
async def test_in_stream_exceptions_are_typed(kind: str, cls: type) -> None:
    data = events_file("stream_truncated.events.json") + exception(kind, "Too many requests, please wait.")
    route = respx.post(SURL).mock(return_value=chunked(data, 50))
    with pytest.raises(cls) as ei:
        await collect(provider(RetryPolicy(sleep=Sleeps())), req())
    assert ei.value.code == kind[0].upper() + kind[1:] and route.call_count == 1


@respx.mock
async def test_real_model_stream_error_frame_first_is_retried() -> None:
    route = respx.post(SURL).mock(side_effect=[httpx.Response(200, content=captured_error_frame(), headers=ES),
                                               chunked(events_file("stream_text.events.json"))])
    r = accumulate(await collect(provider(RetryPolicy(sleep=Sleeps())), req()))
    assert r.finish_reason == "stop" and route.call_count == 2


@respx.mock
async def test_stream_cut_or_corrupt_is_malformed() -> None:
    good = events_file("stream_text.events.json")
    tail_usage = event("metadata", {"usage": {"inputTokens": 22, "outputTokens": 3}})
    corrupt = bytearray(good)
    corrupt[40] ^= 0xFF
    respx.post(SURL).mock(side_effect=[chunked(events_file("stream_truncated.events.json") + tail_usage),
                                       chunked(bytes(corrupt)), chunked(good[:-5])])
    p = provider()
    with pytest.raises(MalformedResponse) as ei:
        await collect(p, req())
    assert ei.value.billed_usage.input_tokens == 22
    for _ in range(2):
        with pytest.raises(MalformedResponse):
            await collect(p, req())


# -------------------------------------------------------------- HTTP errors


@respx.mock
@pytest.mark.parametrize("name,cls,code", [
    ("validation", BadRequest, "ValidationException"),
    ("too_long", ContextTooLong, "ValidationException"),
    ("access_denied", AuthFailed, "AccessDeniedException"),
    ("bad_token", AuthFailed, "UnrecognizedClientException"),
    ("not_found", BadRequest, "ResourceNotFoundException"),
    ("throttling", RateLimited, "ThrottlingException"),
    ("tokens_per_day", QuotaExhausted, "ThrottlingException"),
    ("service_quota", QuotaExhausted, "ServiceQuotaExceededException"),
    ("model_timeout", Timeout, "ModelTimeoutException"),
    ("unavailable", Unavailable, "ServiceUnavailableException"),
    ("internal", Unavailable, "InternalServerException"),
    ("type_in_body_only", AuthFailed, "UnrecognizedClientException"),
])
async def test_error_mapping(name: str, cls: type, code: str) -> None:
    respx.post(URL).mock(return_value=error_response(name))
    with pytest.raises(cls) as ei:
        await provider().complete(req())
    e = ei.value
    assert type(e) is cls and e.code == code and e.provider == "bedrock" and e.model == MODEL
    assert e.rate_limits is not None


@respx.mock
async def test_throttling_retried_then_stream_errors_before_first_event() -> None:
    route = respx.post(SURL).mock(side_effect=[error_response("throttling"),
                                               chunked(events_file("stream_text.events.json"))])
    sleeps = Sleeps()
    r = accumulate(await collect(provider(RetryPolicy(sleep=sleeps, rand=lambda: 0.0)), req()))
    assert r.text and route.call_count == 2 and sleeps.waits == [0.25]


@respx.mock
async def test_garbage_and_secret_hygiene() -> None:
    body = json.dumps({"message": f"The request signature we calculated does not match ({SK})"}).encode()
    respx.post(URL).mock(side_effect=[
        httpx.Response(403, content=body, headers={"x-amzn-errortype": "InvalidSignatureException:http://x/"}),
        httpx.Response(200, content=b"<html><title>502 Bad Gateway</title></html>"),
        httpx.Response(200, content=b'{"output": {"message": {"content": [{"text": "cut'),
        httpx.Response(200, json={"output": {}})])
    p = provider()
    with pytest.raises(AuthFailed) as ei:
        await p.complete(req())
    assert SK not in str(ei.value) and SK not in ei.value.body
    for _ in range(3):
        with pytest.raises(MalformedResponse):
            await p.complete(req())


def test_registry_builds_the_native_adapter() -> None:
    from providers.base import Provider
    from providers.registry import build_provider

    p = build_provider("bedrock", region="us-west-2", aws_access_key_id=AK, aws_secret_access_key=SK)
    assert isinstance(p, BedrockProvider) and isinstance(p, Provider)
    assert p._url(MODEL, "converse").startswith("https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic")
