"""The config file's schema: pydantic models for every section, strict (an unknown
key anywhere is an error). Reference: docs/config.md."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from router._catalog_yaml import line_of
from router.types import TASK_KINDS

__all__ = ["QuotarouteConfig", "ProviderCfg", "ModelsCfg", "PolicyCfg", "RuleCfg", "RuleMatch",
           "CascadeCfg", "LedgerCfg", "RetryCfg", "HealthCfg", "PolicyName", "line_at"]

PolicyName = Literal["free-first", "cheapest", "best", "balanced", "cascade"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ProviderCfg(_M):
    vendor: str | None = None  # adapter kind or vendor row; default: the provider's name
    api_key_env: str | list[str] | None = None  # env var NAME(S); several = several keys, balanced
    base_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # adapter keyword options (deployment, timeout, ...)
    enabled: bool = True

    @field_validator("api_key_env")
    @classmethod
    def _names(cls, v: Any) -> Any:
        for name in [v] if isinstance(v, str) else (v or []):
            if not name or not name.replace("_", "").isalnum() or name[0].isdigit():
                # never echo the value: it may be a pasted key
                raise ValueError("expected an environment variable NAME (like OPENAI_API_KEY), not a key")
        return v


class ModelsCfg(_M):
    include: list[str] | None = None  # ids, aliases or globs; default: every model of a configured provider
    exclude: list[str] = Field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-model price/context/... overrides
    profile: str | None = None  # task-fit profile file {model: {task: quality}}
    predictor: str | None = None  # learned quality predictor (benchmarks/learned.py <prefix>.npz/.json)


class CascadeCfg(_M):
    floor: float = Field(0.0, ge=0, le=1)
    max_steps: int = Field(3, ge=1)


class PolicyCfg(_M):
    default: PolicyName = "free-first"
    lambda_: float = Field(0.05, alias="lambda", ge=0)  # balanced: quality points per USD per 1k requests
    quality_floors: dict[str, float] = Field(default_factory=dict)  # task kind (or "default") -> 0..1
    max_cost_usd: Decimal | None = Field(None, ge=0)
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
        for k, q in v.items():
            if k != "default" and k not in TASK_KINDS:
                raise ValueError(f"unknown task kind {k!r}; use one of {', '.join(TASK_KINDS)} or 'default'")
            if not 0 <= q <= 1:
                raise ValueError(f"floor for {k!r} must be in [0, 1]")
        return v


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
    max_cost_usd: Decimal | None = Field(None, ge=0)
    quality_floors: dict[str, float] | None = None
    quality_margin: float | None = Field(None, ge=0, le=1)
    free_only: bool | None = None

    @field_validator("quality_floors")
    @classmethod
    def _floors(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        return None if v is None else PolicyCfg._floors(v)


class LedgerCfg(_M):
    # Unset: sqlite when `path`/`synchronous` is given, redis when `url`/a redis option is,
    # else the caller's default (SDK: memory; proxy: sqlite; see router.config_build.build_ledger).
    store: Literal["memory", "sqlite", "redis"] = "memory"
    path: str | None = None  # sqlite file; default $QUOTAROUTE_HOME/ledger.sqlite
    url: str | None = None  # redis://host:port/db
    synchronous: Literal["NORMAL", "FULL"] | None = None  # sqlite durability (default NORMAL, WAL)
    on_redis_error: Literal["fail_closed", "local_fallback"] | None = None  # redis unreachable (default fail_closed)
    expected_replicas: int | None = Field(None, ge=1)  # redis local_fallback: each replica gets limit // N

    @field_validator("synchronous", mode="before")
    @classmethod
    def _sync_upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _implied_store(self) -> "LedgerCfg":
        """`store` reads as what the keys imply (path -> sqlite, url -> redis); whether
        it was written stays visible in `model_fields_set`."""
        given = self.model_fields_set
        if "store" not in given:
            if "path" in given or "synchronous" in given:
                self.__dict__["store"] = "sqlite"
            elif "url" in given or "on_redis_error" in given or "expected_replicas" in given:
                self.__dict__["store"] = "redis"
        return self


class RetryCfg(_M):
    max_attempts: int = Field(2, ge=1, le=10)  # per deployment, transient errors only (then fall back)
    max_wait_s: float = Field(5.0, ge=0)  # a longer Retry-After falls back at once


class HealthCfg(_M):
    failure_threshold: int = Field(3, ge=1)
    cooloff_s: float = Field(30.0, gt=0)


class QuotarouteConfig(_M):
    version: Literal[1] = 1
    providers: dict[str, ProviderCfg] = Field(default_factory=dict)
    models: ModelsCfg = Field(default_factory=ModelsCfg)
    quotas: list[dict[str, Any]] = Field(default_factory=list)  # validated by router.quota.spec
    budgets: list[dict[str, Any]] = Field(default_factory=list)
    policy: PolicyCfg = Field(default_factory=PolicyCfg)
    rules: list[RuleCfg] = Field(default_factory=list)
    ledger: LedgerCfg = Field(default_factory=LedgerCfg)
    retry: RetryCfg = Field(default_factory=RetryCfg)
    health: HealthCfg = Field(default_factory=HealthCfg)
    fx: dict[str, Any] | None = None  # {rates: {CNY: 0.1404}}
    server: dict[str, Any] = Field(default_factory=dict)  # read by the proxy (router.config.build.build_server_settings)
    # filled by parse_config
    file: str | None = Field(None, exclude=True)
    pools: list[Any] = Field(default_factory=list, exclude=True)
    budget_specs: list[Any] = Field(default_factory=list, exclude=True)
    _data: Any = PrivateAttr(default=None)  # the marked YAML tree, for line numbers at build time

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
