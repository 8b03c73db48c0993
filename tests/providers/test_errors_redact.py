"""Keys never leak: redact(), register_secret(), safe headers on errors, adapter reprs."""

from __future__ import annotations

import httpx

from providers._http import Call, make_error, parse_error_body, status_class
from providers.openai import OpenAIProvider
from router.errors import ProviderError, RateLimited, redact, register_secret


def test_redact_known_key_shapes():
    for key in ["sk-proj-abcdefghijklmnop1234", "sk-ant-api03-abcdefghijkl", "sk-or-v1-0123456789abcdef",
                "AIzaSyA1234567890abcdefghijklmnopqrs", "gsk_abcdefghijklmnop1234", "AKIAIOSFODNN7EXAMPLE"]:
        out = redact(f"the key {key} was rejected")
        assert key not in out and "***" in out


def test_redact_bearer_and_key_assignments():
    assert "tok123456789" not in redact("Authorization: Bearer tok123456789")
    assert "abcdef123456" not in redact('{"api_key": "abcdef123456"}')
    assert "abcdef123456" not in redact("https://x/v1?key=abcdef123456")
    assert redact(None) == "" and redact("") == ""
    assert redact("nothing secret here") == "nothing secret here"


def test_register_secret_removes_shapeless_keys():
    odd = "bce-v3/ALTAK-odd-shaped/0123abcd"
    register_secret(odd)
    assert odd not in redact(f"upstream said: bad token {odd}!")
    register_secret("abc")  # too short to register safely: ignored
    assert redact("abc") == "abc"


def test_error_body_headers_and_message_scrubbed():
    key = "sk-live-secret-0123456789"
    body = f'{{"error":{{"message":"Incorrect API key provided: {key}","code":"invalid_api_key"}}}}'.encode()
    info = parse_error_body(body, 401)
    e = make_error(status_class(401), info, call=Call("openai", "gpt-4o"),
                   headers={"Authorization": f"Bearer {key}", "Set-Cookie": "s=1", "x-request-id": "r1",
                            "retry-after": "2"})
    assert isinstance(e, ProviderError)
    for text in (str(e), repr(e), e.body, e.message):
        assert key not in text
    assert e.headers == {"x-request-id": "r1", "retry-after": "2"}
    assert e.retry_after is None  # only rate limits / unavailable carry retry_after


def test_rate_limited_gets_retry_after_and_should_retry_false_disables_retry():
    info = parse_error_body(b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}', 429)
    e = make_error(RateLimited, info, call=Call("openai"), headers={"retry-after": "3", "x-should-retry": "false"},
                   now=0.0)
    assert e.retry_after == 3.0 and e.retryable is False and e.rate_limits.retry_after_s == 3.0


def test_parse_error_body_never_raises():
    for junk in [b"", b"null", b"[]", b"[1,2]", b'"str"', b"{", b"\xff\xfe", b"<html>oops</html>", b'{"error":5}',
                 b'{"error":{"code":{"nested":1}}}', b'[{"error":{"code":"x","message":"m"}}]']:
        info = parse_error_body(junk, 500)
        assert info.status == 500


async def test_adapter_repr_has_no_key():
    key = "sk-adapter-secret-987654321"
    p = OpenAIProvider(api_key=key, vendor="deepseek", client=httpx.AsyncClient())
    assert key not in repr(p) and "deepseek" in repr(p)
    assert key not in redact(f"leaked {key}")
