"""The config file's schema: pydantic models for every section, `server:` included.

Strict everywhere: an unknown key is an error (`extra="forbid"`), numbers must be
finite (`allow_inf_nan=False`), money is a finite `Decimal` >= 0, and a value that
may be a secret is never echoed in an error. Reference: docs/config.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router._catalog_yaml import line_of
from router.errors import redact
from router.types import TASK_KINDS

__all__ = [
    "QuotarouteConfig", "ProviderCfg", "ProviderTimeouts", "PoolCfg", "ModelsCfg", "PolicyCfg", "RuleCfg", "RuleMatch",
    "CascadeCfg", "CascadeStageCfg", "AnswerCascadeCfg", "DeploymentCfg", "LedgerCfg", "RetryCfg", "HealthCfg", "FxCfg",
    "ServerCfg", "ProxyKeyCfg", "ServerLimits", "CacheCfg", "TracingCfg",
    "PolicyName", "Period", "Money", "line_at", "looks_like_secret",
]

PolicyName = Literal["free-first", "cheapest", "best", "balanced", "cascade"]
_POLICY_NAMES = ("free-first", "cheapest", "best", "balanced", "cascade")
_CASCADE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
Period = Literal["day", "month", "total"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_ID = r"^[A-Za-z0-9._-]{1,64}$"
_HASH = re.compile(r"sha256\$[^$]+\$[0-9a-f]{64}|scrypt\$\d+\$\d+\$\d+\$[^$]+\$[0-9a-f]+")


def looks_like_secret(value: str) -> bool:
    """True for strings shaped like an API key or token (never echo these)."""
    if redact(value) != value:
        return True
    v = value.strip()
    mixed = any(c.isdigit() for c in v) and any(c.islower() for c in v) and any(c.isupper() for c in v)
    return len(v) >= 20 and mixed


def _money(v: Any) -> Any:
    """Finite USD amount >= 0. Floats go through str() so 0.1 stays 0.1."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        raise ValueError("must be an amount of USD (a number like 5 or \"0.25\")")
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v).strip())
    except InvalidOperation:
        raise ValueError("must be an amount of USD (a number like 5 or \"0.25\")") from None
    if not d.is_finite():
        raise ValueError("must be a finite amount of USD, not NaN or infinity")
    if d < 0:
        raise ValueError("must be >= 0")
    return d


Money = Annotated[Decimal, BeforeValidator(_money)]
"""A finite amount of USD >= 0 (NaN, infinity and negatives are refused)."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


# ------------------------------------------------------------------ providers


class ProviderTimeouts(_M):
    """Per-attempt timeouts passed to the adapter as `timeouts={...}` (only the keys given)."""

    connect_s: float | None = Field(None, gt=0, le=3600)
    first_byte_s: float | None = Field(None, gt=0, le=3600)
    idle_s: float | None = Field(None, gt=0, le=3600)


class PoolCfg(_M):
    """Upstream capacity towards this provider's host (the proxy's connection pool)."""

    size: int | None = Field(None, ge=1, le=1_000_000)  # connections in flight; default from `ulimit -n`
    queue: int | None = Field(None, ge=0, le=1_000_000)  # waiters beyond that (FIFO); past it: 503 + Retry-After


class ProviderCfg(_M):
    vendor: str | None = None  # adapter kind or vendor row; default: the provider's name
    api_key_env: str | list[str] | None = None  # env var NAME(S); several = several keys, balanced
    base_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # adapter keyword options (deployment, ...)
    timeouts: ProviderTimeouts | None = None
    pool: PoolCfg | None = None
    enabled: bool = True

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        # Never echo the value: it may be a pasted key.
        for name in [v] if isinstance(v, str) else (v if isinstance(v, list) else []):
            if not isinstance(name, str):
                raise ValueError("expected environment variable NAMES (like OPENAI_API_KEY)")
            if looks_like_secret(name):
                raise ValueError("this looks like an API key, not the NAME of the environment variable that "
                                 "holds it (like OPENAI_API_KEY); the key itself never goes in the config")
            if not _ENV_NAME.fullmatch(name):
                raise ValueError("expected an environment variable NAME (like OPENAI_API_KEY), not a key")
        return v

    @field_validator("options")
    @classmethod
    def _no_inline_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if k in ("api_key", "key", "token", "api_key_env", "timeouts") or "secret" in str(k).lower():
                raise ValueError(f"{k!r} is not an adapter option here: keys go in `api_key_env` (a variable "
                                 "NAME), timeouts in `timeouts:`")
            if isinstance(x, str) and redact(x) != x:  # a known key shape (not every long name)
                raise ValueError(f"option {k!r} looks like a secret: give keys by environment-variable name "
                                 "(`api_key_env`)")
        return v


# ------------------------------------------------------------------ models, policy, rules


class ModelsCfg(_M):
    include: list[str] | None = None  # ids, aliases or globs; default: every model of a configured provider
    exclude: list[str] = Field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # card fields; checked by load.py
    profile: str | None = None  # task-fit profile file {model: {task: quality}}
    predictor: str | None = None  # learned quality predictor (<prefix>.npz/.json)


class CascadeCfg(_M):
    floor: float = Field(0.0, ge=0, le=1)
    max_steps: int = Field(3, ge=1)


class CascadeStageCfg(_M):
    """One stage of an answer-agreement cascade (`cascades.<name>.stages[]`)."""

    mode: Literal["consensus", "lazy-majority", "single"] = "consensus"
    k: StrictInt = Field(2, ge=1, le=8)  # consensus: models called concurrently
    m: StrictInt | None = Field(None, ge=1, le=8)  # consensus: how many must agree (default: a majority of k)
    models: list[str] = Field(default_factory=list)  # candidate ids/aliases/globs (default: every served model)
    policy: Literal["free-first", "cheapest", "best", "balanced"] = "free-first"

    @field_validator("m")
    @classmethod
    def _m(cls, v: int | None, info: ValidationInfo) -> int | None:
        k = info.data.get("k")
        if v is not None and isinstance(k, int) and v > k:
            raise ValueError(f"m ({v}) cannot be more than k ({k}): at most k answers can agree")
        return v

    @model_validator(mode="after")
    def _mode(self) -> "CascadeStageCfg":
        if self.mode != "consensus" and {"k", "m"} & self.model_fields_set:
            raise ValueError(f"k and m apply to consensus stages only ({self.mode} calls "
                             f"{'2, then a third on disagreement' if self.mode == 'lazy-majority' else 'one model'})")
        return self


class AnswerCascadeCfg(_M):
    """An answer-agreement cascade (`cascades.<name>`); clients send model `cascade:<name>`."""

    extract: str | dict[str, Any] | None = None  # required: number, choice, json:<field>, regex:<pat>, code, text
    tolerance: float | None = Field(None, ge=0)  # number extractor
    stream: Literal["buffer", "single"] = "buffer"
    fallback_policy: Literal["free-first", "cheapest", "best", "balanced"] = "free-first"
    stages: list[CascadeStageCfg] = Field(min_length=1, max_length=5)

    @model_validator(mode="after")
    def _extract(self) -> "AnswerCascadeCfg":
        if self.extract is None:
            raise ValueError("a cascade needs `extract:` (number, choice, json:<field>, regex:<pattern>, code or "
                             "text): without it the answers cannot be compared")
        return self


def _check_floors(v: dict[str, float]) -> dict[str, float]:
    for k, q in v.items():
        if k != "default" and k not in TASK_KINDS:
            raise ValueError(f"unknown task kind {k!r}; use one of {', '.join(TASK_KINDS)} or 'default'")
        if not 0 <= q <= 1:
            raise ValueError(f"floor for {k!r} must be in [0, 1]")
    return v


class PolicyCfg(_M):
    default: str = "free-first"  # a policy name, or "cascade:<name>" (a cascade under `cascades:`)
    lambda_: float = Field(0.05, alias="lambda", ge=0)  # balanced: quality points per USD per 1k requests
    quality_floors: dict[str, float] = Field(default_factory=dict)  # task kind (or "default") -> 0..1
    max_cost_usd: Money | None = None
    regions: list[Literal["us", "eu", "cn", "local"]] | None = None
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    max_attempts: int = Field(5, ge=1, le=50)
    chinese_bonus: float = Field(0.05, ge=0, le=1)
    quality_margin: float | None = Field(None, ge=0, le=1)  # relative floor: best kept quality - margin
    cascade: CascadeCfg = Field(default_factory=CascadeCfg)

    @field_validator("quality_floors")
    @classmethod
    def _floors(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_floors(v)

    @field_validator("default")
    @classmethod
    def _default(cls, v: str) -> str:
        if v in _POLICY_NAMES or (v.startswith("cascade:") and _CASCADE_NAME.fullmatch(v[8:])):
            return v
        shown = "" if looks_like_secret(v) or len(v) > 80 else f", got {v!r}"
        raise ValueError(f"Input should be {', '.join(repr(p) for p in _POLICY_NAMES)} or 'cascade:<name>'{shown}")


class RuleMatch(_M):
    task: str | list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    user: str | None = None
    tag: str | None = None

    @field_validator("task")
    @classmethod
    def _task(cls, v: Any) -> Any:
        for t in [v] if isinstance(v, str) else (v or []):
            if t not in TASK_KINDS:
                raise ValueError(f"unknown task kind {t!r}; use one of {', '.join(TASK_KINDS)}")
        return v


class RuleCfg(_M):
    name: str = ""
    match: RuleMatch = Field(default_factory=RuleMatch)
    models: list[str] = Field(default_factory=list)
    policy: PolicyName | None = None
    lambda_: float | None = Field(None, alias="lambda", ge=0)
    max_cost_usd: Money | None = None
    quality_floors: dict[str, float] | None = None
    quality_margin: float | None = Field(None, ge=0, le=1)
    free_only: bool | None = None
    cascade: str | None = None  # matching requests run this cascade (a name under `cascades:`)

    @field_validator("quality_floors")
    @classmethod
    def _floors(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        return None if v is None else _check_floors(v)

    @model_validator(mode="after")
    def _cascade(self) -> "RuleCfg":
        if self.cascade is not None and (self.policy is not None or self.models):
            raise ValueError("a rule with `cascade:` takes its models from the cascade's stages: drop `policy` "
                             "and `models` here")
        return self


class DeploymentCfg(_M):
    """One deployment of a `deployments:` entry (router.chains): a model of a provider,
    optionally one of its keys, drawn by weight among the healthy ones."""

    provider: str | None = None  # default: the model id's own provider
    model: str  # the vendor's model id (with `provider`) or "provider:model"
    weight: float = Field(1.0, gt=0, le=1_000_000)
    key: str | None = Field(None, pattern=_KEY_ID)  # one of the provider's api_key_env names


# ------------------------------------------------------------------ ledger, retry, health, fx


class LedgerCfg(_M):
    """Where quota and budget counters live. `store` is never guessed from the other
    keys: with any other key it must be written; without a `ledger:` section (or with
    an empty one) the caller's documented default applies (SDK: memory, proxy: sqlite)."""

    store: Literal["memory", "sqlite", "redis"] | None = None
    path: str | None = None  # sqlite file; default $QUOTAROUTE_HOME/ledger.sqlite
    url: str | None = None  # redis://host:port/db
    synchronous: Literal["NORMAL", "FULL"] | None = None  # sqlite durability (default NORMAL, WAL)
    on_redis_error: Literal["fail_closed", "local_fallback"] | None = None  # redis unreachable (default fail_closed)
    expected_replicas: int | None = Field(None, ge=1)  # redis local_fallback: each replica gets limit // N

    @field_validator("synchronous", mode="before")
    @classmethod
    def _sync_upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


SQLITE_KEYS = ("path", "synchronous")
REDIS_KEYS = ("url", "on_redis_error", "expected_replicas")


class RetryCfg(_M):
    max_attempts: int = Field(2, ge=1, le=10)  # per deployment, transient errors only (then fall back)
    max_wait_s: float = Field(5.0, ge=0, le=3600)  # a longer Retry-After falls back at once


class HealthCfg(_M):
    failure_threshold: int = Field(3, ge=1)
    cooloff_s: float = Field(5.0, gt=0, le=86400)  # doubled on a failed probe, capped at 10 s (router.health)


def _rate(v: Any) -> Any:
    d = _money(v)
    if d == 0:
        raise ValueError("an exchange rate must be > 0")
    return d


class FxCfg(_M):
    """Exchange rates for non-USD list prices: 1 unit of the currency = rate USD."""

    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[Decimal, BeforeValidator(_rate)]] = Field(
        default_factory=dict)
    as_of: str | None = None
    source: str | None = None

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, v: Any) -> Any:
        return v.isoformat() if isinstance(v, date) else v


# ------------------------------------------------------------------ server (the proxy)


class ProxyKeyCfg(_M):
    """One proxy key (`server.keys[]`): stored as a hash, never in clear text."""

    id: str = Field(pattern=_KEY_ID)
    hash: str
    budget_usd: Money | None = None
    budget_period: Period | None = None  # default: server.budget_period
    models: list[str] | None = None  # allowed model names / globs; None = any
    rpm: StrictInt | None = Field(None, ge=1)
    tpm: StrictInt | None = Field(None, ge=1)  # tokens per minute (input + output)
    user: str | None = Field(None, max_length=256)  # pins the request's `user` scope
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=16)  # pins its tags

    @field_validator("hash", mode="before")
    @classmethod
    def _hash(cls, v: Any) -> Any:
        return _check_hash(v)


def _check_hash(v: Any) -> str:
    # Never echo: a clear-text key pasted here is a secret.
    if not isinstance(v, str) or not _HASH.fullmatch(v):
        raise ValueError("must be a key hash like sha256$<salt>$<hex> (run `quotaroute serve --new-key ID`), "
                         "not a clear-text key")
    return v


class ServerLimits(_M):
    """Limits on what one client connection may cost the proxy (see docs/config.md)."""

    model_config = ConfigDict(frozen=True)

    max_header_bytes: StrictInt = Field(65536, ge=1024, le=16 * 1024 * 1024)
    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    keepalive_timeout_s: float = Field(5.0, gt=0, le=3600)
    max_connections: StrictInt | None = Field(None, ge=1, le=1_000_000)  # None: router.server.limits.default_max_connections()
    stream_write_timeout_s: float = Field(30.0, gt=0, le=3600)
    max_json_depth: StrictInt = Field(64, ge=1, le=1000)
    max_auth_failures_per_minute: StrictInt = Field(20, ge=0, le=1_000_000)  # 0 = no limit (e.g. behind a reverse proxy)
    gc_freeze: bool = True  # freeze the warmed-up startup heap out of every garbage collection
    gc_thresholds: tuple[StrictInt, StrictInt, StrictInt] | None = (50_000, 20, 100)  # None: Python's defaults
    stream_splice: bool = True  # text chunks go from the vendor's socket to the client's in one callback


class ServerResponses(_M):
    """The proxy's store of Responses (`store: true`, `previous_response_id`; docs/proxy.md)."""

    model_config = ConfigDict(frozen=True)

    db: str | None = None  # a path, or "off"; None = $QUOTAROUTE_HOME/responses.sqlite
    ttl_s: float = Field(30 * 86400.0, gt=0, le=10 * 365 * 86400)  # a stored response expires after this
    max_items: StrictInt = Field(10_000, ge=1, le=10_000_000)  # the oldest go first past this
    max_mb: StrictInt = Field(256, ge=1, le=1_000_000)  # stored JSON, all keys together

    @field_validator("db", mode="before")
    @classmethod
    def _db(cls, v: Any) -> Any:
        if v is None or v is False or (isinstance(v, str) and v.strip().lower() in ("off", "none")):
            return "off" if v is not None else None
        if not isinstance(v, str):
            raise ValueError("must be a file path or `off`")
        return v.strip() or None


class ServerCfg(_M):
    """The proxy's section (`quotaroute serve`)."""

    host: str = "127.0.0.1"
    port: StrictInt = Field(4000, ge=1, le=65535)
    max_body_bytes: StrictInt = Field(4 * 1024 * 1024, gt=0)
    spend_db: str | None = None  # a path, or "off"; None = $QUOTAROUTE_HOME/spend.sqlite
    store: Literal["sqlite", "postgres"] = "sqlite"  # where the spend log and runtime keys live
    dsn_env: str = Field("QUOTAROUTE_DATABASE_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # store: postgres
    key_poll_s: float = Field(0.25, gt=0, le=60)  # how often runtime key changes are looked for
    admin_key: str | None = None  # hash of the admin key
    budget_period: Period = "month"  # default period of per-key budgets
    reason_header_max: StrictInt = Field(200, gt=0, le=65536)
    response_model: Literal["vendor", "qualified"] = "vendor"  # the body's `model`: gpt-5-nano | openai:gpt-5-nano
    keys: list[ProxyKeyCfg] = Field(default_factory=list)
    limits: ServerLimits = Field(default_factory=ServerLimits)
    responses: ServerResponses = Field(default_factory=ServerResponses)

    @field_validator("spend_db", mode="before")
    @classmethod
    def _spend_db(cls, v: Any) -> Any:
        # YAML reads a bare `off`/`no` as false; null or "none" also switch the log off.
        if v is None or v is False or (isinstance(v, str) and v.strip().lower() in ("off", "none")):
            return "off"
        if isinstance(v, str) and not v.strip():
            return None  # the default path
        if not isinstance(v, str):
            raise ValueError("must be a file path or `off`")
        return v

    @field_validator("admin_key", mode="before")
    @classmethod
    def _admin(cls, v: Any) -> Any:
        return None if v is None else _check_hash(v)

    @field_validator("keys")
    @classmethod
    def _unique(cls, v: list[ProxyKeyCfg]) -> list[ProxyKeyCfg]:
        seen: set[str] = set()
        for k in v:
            if k.id in seen:
                raise ValueError(f"duplicate key id {k.id!r}")
            seen.add(k.id)
        return v


class CacheCfg(_M):
    """`cache:` (docs/cache.md): an exact-match response cache for chat answers. Off by default."""

    enabled: bool = False
    store: Literal["memory", "sqlite", "redis"] = "memory"
    ttl_s: float = Field(3600.0, gt=0, le=365 * 86400)  # an entry expires this long after it was written
    scope: Literal["key", "shared"] = "key"  # key: an answer never crosses proxy keys; shared: it may
    max_entries: StrictInt = Field(10_000, ge=1, le=10_000_000)  # memory and sqlite: least recently used go first
    max_mb: StrictInt = Field(64, ge=1, le=1_000_000)  # memory and sqlite: cached bytes, all entries together
    max_entry_kb: StrictInt = Field(256, ge=1, le=65_536)  # a larger answer is not cached
    path: str | None = None  # sqlite file; default $QUOTAROUTE_HOME/cache.sqlite
    url: str | None = None  # redis://host:port/db; default: the ledger's url when the ledger is on Redis
    prefix: str = Field("quotaroute:cache:", max_length=128)  # redis key prefix
    tool_calls: bool = False  # also cache answers that call tools


class TracingCfg(_M):
    """`tracing:` OpenTelemetry traces of the proxy over OTLP (docs/tracing.md). Off by default;
    needs the `otel` extra (opentelemetry-sdk and the OTLP exporters) only when on."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    # http/protobuf: the traces URL (a bare host:port gets /v1/traces); grpc: host:port.
    # None: the OTEL_EXPORTER_OTLP_* variables, else the collector's default on localhost
    endpoint: str | None = None
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    service_name: str = Field("quotaroute", min_length=1, max_length=256)
    sample_ratio: float = Field(1.0, ge=0, le=1)  # of new traces; a sampled incoming traceparent is always kept
    headers_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # a variable holding "k=v,k2=v2"
    timeout_s: float = Field(10.0, gt=0, le=300)  # one export


class VirtualEmbeddingCfg(_M):
    models: list[str] = Field(min_length=1)
    dimensions: StrictInt | None = Field(None, ge=1, le=65536)  # default: the models' common size
    order: Literal["cheapest", "listed"] = "cheapest"


class EmbeddingsCfg(_M):
    """`embeddings:` (docs/embeddings.md): the size `auto` means, named groups of models of
    one size (mixing sizes is refused when the config is built), model filters and overrides."""

    dimensions: StrictInt | None = Field(None, ge=1, le=65536)
    models: list[str] | None = None  # ids or globs; default: every embedding model of a configured provider
    virtual: dict[str, VirtualEmbeddingCfg] = Field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # model fields (price, limits, new models)


# ------------------------------------------------------------------ the whole file


class QuotarouteConfig(_M):
    version: Literal[1] = 1
    providers: dict[str, ProviderCfg] = Field(default_factory=dict)
    models: ModelsCfg = Field(default_factory=ModelsCfg)
    quotas: list[dict[str, Any]] = Field(default_factory=list)  # validated by router.quota.spec (via load.py)
    budgets: list[dict[str, Any]] = Field(default_factory=list)  # idem
    policy: PolicyCfg = Field(default_factory=PolicyCfg)
    rules: list[RuleCfg] = Field(default_factory=list)
    cascades: dict[str, AnswerCascadeCfg] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)  # model or virtual name -> ordered ids
    deployments: dict[str, list[DeploymentCfg]] = Field(default_factory=dict)  # name -> weighted deployments
    ledger: LedgerCfg = Field(default_factory=LedgerCfg)
    retry: RetryCfg = Field(default_factory=RetryCfg)
    health: HealthCfg = Field(default_factory=HealthCfg)
    fx: FxCfg | None = None
    server: ServerCfg = Field(default_factory=ServerCfg)
    tracing: TracingCfg = Field(default_factory=TracingCfg)
    embeddings: EmbeddingsCfg = Field(default_factory=EmbeddingsCfg)
    cache: CacheCfg = Field(default_factory=CacheCfg)

    @field_validator("cascades")
    @classmethod
    def _cascade_names(cls, v: dict[str, AnswerCascadeCfg]) -> dict[str, AnswerCascadeCfg]:
        for name in v:
            if not _CASCADE_NAME.fullmatch(name):
                raise ValueError("a cascade name is 1-64 letters, digits, '.', '_' or '-' (clients send "
                                 "model \"cascade:<name>\")")
        return v

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, v: dict[str, ProviderCfg]) -> dict[str, ProviderCfg]:
        for name in v:
            if looks_like_secret(name):
                raise ValueError("a provider name here looks like an API key (not shown); name the provider "
                                 "(openai, groq, ...) and give its key variable in `api_key_env`")
        return v
    # filled by load.parse_config (not config keys)
    _file: str | None = PrivateAttr(default=None)
    _pools: list[Any] = PrivateAttr(default_factory=list)
    _budget_specs: list[Any] = PrivateAttr(default_factory=list)
    _data: Any = PrivateAttr(default=None)  # the marked YAML tree, for line numbers at build time

    @property
    def file(self) -> str | None:
        """The file this config was read from (None: built from a mapping or defaults)."""
        return self._file

    @property
    def pools(self) -> list[Any]:
        """Quota pools: the catalog's default free tiers merged with `quotas:` (PoolSpec)."""
        return self._pools

    @property
    def budget_specs(self) -> list[Any]:
        """The `budgets:` section, validated (BudgetSpec)."""
        return self._budget_specs

    def line_of(self, *loc: Any) -> int | None:
        return line_at(self._data, loc) if self._data is not None else None


def line_at(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Line of the deepest node of `loc` that exists in the marked YAML tree."""
    line = line_of(data)
    node = data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            line = line_of(node, part) or line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = line_of(node) or line
        else:
            break
    return line
