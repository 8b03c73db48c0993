"""The one error tree. Adapters map vendor errors to these at a single boundary
(status first, then the vendor's structured code, message matching last).

Upstream API keys never appear here: `body` is scrubbed by `redact()` and headers
are filtered to an allow-list before they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "QuotarouteError",
    "ProviderError",
    "RateLimited",
    "QuotaExhausted",
    "AuthFailed",
    "BadRequest",
    "UnencodableRequest",
    "ContextTooLong",
    "ContentFiltered",
    "Unavailable",
    "Timeout",
    "MalformedResponse",
    "TruncatedResponse",
    "NoRouteAvailable",
    "BudgetExceeded",
    "LedgerUnavailable",
    "ConfigError",
    "UnknownModel",
    "UnknownPrice",
    "redact",
    "SAFE_HEADER_PREFIXES",
]

# Only these upstream headers are kept on errors/responses (no auth echo, no cookies).
SAFE_HEADER_PREFIXES = (
    "x-ratelimit-",
    "anthropic-ratelimit-",
    "retry-after",
    "retry-after-ms",
    "x-request-id",
    "request-id",
    "x-should-retry",
    "content-type",
    "x-groq-",
    "openai-processing-ms",
)

_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),  # OpenAI/DeepSeek/Moonshot/Anthropic(sk-ant-)/OpenRouter(sk-or-)
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"gsk_[A-Za-z0-9]{16,}"),  # Groq
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[-_]?key|x-goog-api-key|authorization|key)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
]
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a configured secret so `redact` removes it even if it has no known shape."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def redact(text: str | None) -> str:
    if not text:
        return ""
    for s in _extra_secrets:
        if s in text:
            text = text.replace(s, "***")
    for pat in _KEY_PATTERNS:
        if pat.groups:
            text = pat.sub(lambda m: m.group(1) + "***", text)
        else:
            text = pat.sub("***", text)
    return text


def safe_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if not headers:
        return {}
    return {k.lower(): redact(v) for k, v in headers.items() if k.lower().startswith(SAFE_HEADER_PREFIXES)}


class QuotarouteError(Exception):
    """Base of every error quotaroute raises on purpose."""


class ProviderError(QuotarouteError):
    """An upstream call failed. `retryable` says whether the *same* deployment may be
    retried (transient); whether to fall back to another model is the router's call."""

    retryable: bool = False
    fallback: bool = True  # may the router try the next candidate?
    default_status: int | None = None

    def __init__(
        self,
        message: str = "",
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        code: str | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        rate_limits: Any = None,
        billed_usage: Any = None,
    ) -> None:
        self.message = redact(message) or self.__class__.__name__
        self.provider = provider
        self.model = model
        self.status = status if status is not None else self.default_status
        self.code = redact(code) if code else code
        self.body = redact(body)[:2000] if body else ""
        self.headers = safe_headers(headers)
        self.retry_after = retry_after
        self.rate_limits = rate_limits
        # Usage the vendor reported (and so billed) before failing, e.g. a stream that
        # errored after emitting tokens. None = nothing billed.
        self.billed_usage = billed_usage
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.provider}:{self.model}" if self.model else self.provider
        bits = [f"[{where}]" if where else "", self.message]
        if self.status:
            bits.append(f"(HTTP {self.status}{', ' + self.code if self.code else ''})")
        return " ".join(b for b in bits if b)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self)!r})"


class RateLimited(ProviderError):
    """A per-minute/short-window limit: try again after `retry_after`."""

    retryable = True
    default_status = 429


class QuotaExhausted(ProviderError):
    """A free quota, grant or prepaid balance is gone until its reset (or a top-up).
    Not retryable on this deployment: the router must switch."""

    default_status = 429


class AuthFailed(ProviderError):
    fallback = False  # the router marks the key bad; the request itself stops
    default_status = 401


class BadRequest(ProviderError):
    fallback = False
    default_status = 400


class UnencodableRequest(BadRequest):
    """The request could not be encoded for the vendor (nested too deep, a string that is
    not valid UTF-8, ...): the client's mistake, found before anything was sent. Never
    counts against a model's health; the same request would fail on every model, so the
    router stops (400)."""


class ContextTooLong(BadRequest):
    fallback = True  # a model with a larger window may take it


class ContentFiltered(ProviderError):
    fallback = False
    default_status = 400


class Unavailable(ProviderError):
    """5xx, overloaded, transport failure."""

    retryable = True
    default_status = 503


class Timeout(ProviderError):
    retryable = True
    default_status = 504


class MalformedResponse(Unavailable):
    """The vendor answered with something we cannot parse (truncated JSON, an HTML
    error page, a stream with no terminal event). Never silently empty."""

    retryable = False
    default_status = 502


class TruncatedResponse(Unavailable):
    """The vendor ended the answer with an error finish (DeepSeek's
    `insufficient_system_resource`, Zhipu's `network_error`, finish_reason `error`): what
    arrived is incomplete and is never presented as a complete answer. The router bills
    what the vendor billed and falls back. `vendor_fault` is False when the model's own
    output was the problem (Gemini's MALFORMED_FUNCTION_CALL, which a client's tool
    schema can provoke): it still falls back but does not count against health."""

    retryable = False

    def __init__(self, message: str = "", *, vendor_fault: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.vendor_fault = vendor_fault


class NoRouteAvailable(QuotarouteError):
    def __init__(self, message: str, *, plan: Any = None, attempts: list[Any] | None = None):
        super().__init__(message)
        self.plan = plan
        self.attempts = attempts or []


class BudgetExceeded(QuotarouteError):
    def __init__(self, message: str, *, budget_id: str = "", limit_usd: Any = None, spent_usd: Any = None):
        super().__init__(message)
        self.budget_id = budget_id
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd


class LedgerUnavailable(QuotarouteError):
    """The shared quota ledger cannot be reached and `on_redis_error: fail_closed`:
    nothing is granted that cannot be counted (the proxy answers 503 + Retry-After)."""

    def __init__(self, message: str = "quota ledger unavailable", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(QuotarouteError, ValueError):
    """Malformed configuration or data file: names the file, line and key."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        self.file, self.line, self.key = file, line, key
        where = ""
        if file:
            where = f"{file}"
            if line is not None:
                where += f":{line}"
            where += ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class UnknownModel(QuotarouteError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its arg; keep the message readable
        return str(self.args[0]) if self.args else "unknown model"


class UnknownPrice(QuotarouteError):
    """No known price for a model: never billed as $0 silently."""
