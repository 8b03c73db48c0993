"""The one error tree. Adapters map vendor errors to these at a single boundary
(status first, then the vendor's structured code, message matching last); the proxy
maps every one to the response a client gets in one place (`router.server.errors`).

    QuotarouteError
    ├── ProviderError               an upstream call failed: provider, model, status, retryable, fallback, route
    │   ├── RateLimited             a short-window limit: retry after `retry_after`
    │   ├── QuotaExhausted          a free quota, grant or balance is gone: switch models
    │   ├── AuthFailed              our upstream key was refused
    │   ├── BadRequest              the vendor refused the request
    │   │   ├── UnencodableRequest  the request could not be encoded for the vendor (the client's mistake)
    │   │   └── ContextTooLong      a model with a larger window may take it
    │   ├── ContentFiltered
    │   ├── Unavailable             5xx, overloaded, transport failure
    │   │   ├── UpstreamBusy        our own upstream pool for the host is full (503 + Retry-After)
    │   │   ├── MalformedResponse   an answer we cannot parse
    │   │   └── TruncatedResponse   an answer ended by an error finish
    │   └── Timeout
    ├── NoRouteAvailable            no step of the plan answered: plan, attempts, last_error, route
    ├── BudgetExceeded              a hard budget refused the request: attempts, route
    ├── PoolUnavailable             a block-on-exhaust pool cannot take the request now
    ├── LedgerUnavailable           the shared ledger cannot be reached (fail closed)
    ├── ConfigError (ValueError)    malformed configuration or data file: file, line, key
    │   └── DatasetError            (benchmarks.rows) a dataset file that cannot be used as is
    ├── UnknownModel (KeyError)     a name not in the catalog: model, suggestions
    │   └── ModelNotServed          a catalog model whose provider is not configured here (a 404)
    ├── UnknownPrice
    ├── MissingExtra                an optional extra is not installed (the message names it)
    └── ProxyError                  the proxy's own answers to a client
        ├── Failure                 an error response to send: status, type, code, param
        ├── WireError (ValueError)  a client mistake in the request body (400 naming the path)
        └── ClientGone              the client went away mid-request

`route` (the `router.result.RouteInfo` of the walk down the plan) is set on the
errors the router raises after trying a plan: a `ProviderError` that stops the walk,
`NoRouteAvailable` and `BudgetExceeded`. Errors are matched by class, never by name.

Upstream API keys never appear here: `body` is scrubbed by `redact()` and headers
are filtered to an allow-list before they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from router.result import Attempt, RouteInfo

__all__ = [
    "QuotarouteError",
    "MissingExtra",
    "ProviderError",
    "RateLimited",
    "QuotaExhausted",
    "AuthFailed",
    "BadRequest",
    "UnencodableRequest",
    "ContextTooLong",
    "ContentFiltered",
    "Unavailable",
    "UpstreamBusy",
    "Timeout",
    "MalformedResponse",
    "TruncatedResponse",
    "NoRouteAvailable",
    "BudgetExceeded",
    "PoolUnavailable",
    "LedgerUnavailable",
    "ConfigError",
    "UnknownModel",
    "ModelNotServed",
    "UnknownPrice",
    "ProxyError",
    "Failure",
    "WireError",
    "ClientGone",
    "ANTHROPIC_TYPES",
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
    route: RouteInfo | None = None  # set when this error stops the walk down a plan

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


class UpstreamBusy(Unavailable):
    """Our own capacity towards the vendor is used up: every pooled connection to the
    host is busy and the wait queue is full (or no connection freed within the pool
    timeout). Not the vendor's fault: never counted against health, not retried on the
    same model; the router tries the next step, and a client that gets it sees 503 with
    Retry-After."""

    retryable = False
    vendor_fault = False
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
    """No step of the plan answered (or the plan was empty): `attempts` says what was
    tried, `last_error` the last failure, `route` the walk as `RouteInfo`."""

    route: RouteInfo | None = None

    def __init__(self, message: str, *, plan: Any = None, attempts: list[Attempt] | None = None,
                 last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.plan = plan
        self.attempts: list[Attempt] = attempts or []
        self.last_error = last_error


class BudgetExceeded(QuotarouteError):
    """A hard budget cannot cover the request. Raised by the ledger; when the budget
    stopped every step of a plan, the router re-raises it with `attempts` and `route`."""

    route: RouteInfo | None = None

    def __init__(self, message: str, *, budget_id: str = "", limit_usd: Any = None, spent_usd: Any = None):
        super().__init__(message)
        self.budget_id = budget_id
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.attempts: list[Attempt] = []


class PoolUnavailable(QuotarouteError):
    """A block-on-exhaust pool (free tier, rate limit, credit balance) cannot take
    this request now: the router should pick another model."""

    def __init__(self, message: str, *, pool_id: str, model_id: str, reason: str, resets_at: datetime | None = None):
        super().__init__(message)
        self.pool_id, self.model_id, self.reason, self.resets_at = pool_id, model_id, reason, resets_at


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
    """A model name that is not in the catalog (or not served here: `ModelNotServed`).
    `model` is the name asked for, `suggestions` close catalog ids (no duplicates)."""

    def __init__(self, message: str = "unknown model", *, model: str | None = None,
                 suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.model = model
        self.suggestions = tuple(suggestions)

    def __str__(self) -> str:  # KeyError quotes its arg; keep the message readable
        return str(self.args[0]) if self.args else "unknown model"


class ModelNotServed(UnknownModel):
    """A catalog model whose provider is not configured here: a client's 4xx, never a 503."""


class UnknownPrice(QuotarouteError):
    """No known price for a model: never billed as $0 silently."""


class MissingExtra(QuotarouteError):
    """An optional dependency is not installed (the message names the extra; see router.extras)."""


# ------------------------------------------------------------------ the proxy's own answers
class ProxyError(QuotarouteError):
    """Base of the errors the proxy raises about a client's request or connection."""


ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
                   429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
                   504: "timeout_error"}


class Failure(ProxyError):
    """An error response to send: status, message, OpenAI type/code/param. Every string
    of the body is redacted and bounded (`router.server.errors.failure_from` maps every
    other error to one)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, retry_after: float | None = None, model: str = "", provider: str = "",
                 reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, redact(message), _clean(type) or "api_error"
        self.code, self.param = _clean(code), _clean(param)
        self.retry_after, self.model, self.provider, self.reason = retry_after, model, provider, reason
        self.upstream_ms = 0.0  # time spent waiting on vendors (excluded from the overhead header)
        self.cost_usd = Decimal(0)

    def openai_body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}})

    def anthropic_body(self) -> bytes:
        return orjson.dumps({"type": "error", "error": {"type": ANTHROPIC_TYPES.get(self.status, "api_error"),
                                                        "message": self.message}})


def _clean(s: str | None) -> str | None:
    """A short identifier field of an error body (type, code, param): redacted and bounded."""
    if s is None:
        return None
    return redact(str(s))[:200] or None


class WireError(ProxyError, ValueError):
    """A client error in the request body: 400 (or `status`) with an OpenAI-style body."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type


class ClientGone(ProxyError):
    """The client disconnected before the answer was sent."""
