"""One YAML config file, validated once at start; errors name file, line and key.

Layering: explicit argument > config file > environment. The file is the explicit
path, else ``$QUOTAROUTE_CONFIG``, else ``$QUOTAROUTE_HOME/config.yaml`` (home
defaults to ``~/.quotaroute``) when it exists. API keys are given BY
ENVIRONMENT-VARIABLE NAME only (``api_key_env``), never inline. See docs/router.md
for a complete commented example.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from router.errors import ConfigError
from router.types import TASK_KINDS

__all__ = ["QuotarouteConfig", "load_config", "parse_config", "build_router_kwargs", "build_providers",
           "build_policy", "build_rules", "build_ledger", "default_store", "quotaroute_home", "default_config_path"]

PolicyName = Literal["free-first", "cheapest", "best", "balanced", "cascade"]


def quotaroute_home() -> Path:
    return Path(os.environ.get("QUOTAROUTE_HOME") or Path.home() / ".quotaroute")


def default_config_path() -> str | None:
    env = os.environ.get("QUOTAROUTE_CONFIG")
    if env:
        return env
    p = quotaroute_home() / "config.yaml"
    return str(p) if p.exists() else None


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
    cooloff_s: float = Field(5.0, gt=0)  # doubling on a failed probe, capped at 10 s (router.health)


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
    server: dict[str, Any] = Field(default_factory=dict)  # read by the proxy (router/server/settings.py)
    # filled by parse_config
    file: str | None = Field(None, exclude=True)
    pools: list[Any] = Field(default_factory=list, exclude=True)
    budget_specs: list[Any] = Field(default_factory=list, exclude=True)
    _data: Any = PrivateAttr(default=None)  # the marked YAML tree, for line numbers at build time

    def line_of(self, *loc: Any) -> int | None:
        return _line_at(self._data, loc) if self._data is not None else None


# ------------------------------------------------------------------ loading


def load_config(path: str | None = None) -> QuotarouteConfig:
    """Load and validate the config (explicit path > $QUOTAROUTE_CONFIG > home); an
    empty config when there is none."""
    path = path or default_config_path()
    if path is None:
        return parse_config({}, file=None)
    from router._catalog_yaml import load_yaml_file

    data = load_yaml_file(path)
    return parse_config({} if data is None else data, file=path)


def parse_config(data: Any, *, file: str | None = None) -> QuotarouteConfig:
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping of sections", file=file, line=1)
    reserved = [k for k in ("file", "pools", "budget_specs") if k in data]
    if reserved:
        raise _unknown(reserved[0], (), data, file)
    try:
        cfg = QuotarouteConfig.model_validate(dict(data))
    except ValidationError as e:
        raise _translate(e, data, file) from None
    from router.quota.spec import load_quota_config

    qdata = {"quotas": [_with_line(q) for q in (data.get("quotas") or [])],
             "budgets": [_with_line(b) for b in (data.get("budgets") or [])]}
    cfg.pools, cfg.budget_specs = load_quota_config(qdata, file=file or "<config>")
    cfg.file = file
    cfg._data = data
    return cfg


def _with_line(item: Any) -> Any:
    line = getattr(item, "line", None)
    return {**item, "__line__": line} if isinstance(item, Mapping) and line else item


def _line_at(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Line of the deepest node of `loc` that exists in the marked YAML tree."""
    from router._catalog_yaml import line_of

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


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of `loc` (to suggest known keys)."""
    tp: Any = QuotarouteConfig
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(part) or next((x for x in tp.model_fields.values() if x.alias == part), None)
            if f is None:
                return None
            tp = f.annotation
        else:
            tp = _inner(tp)
            if tp is None:
                return None
    tp = _inner(tp) if not (isinstance(tp, type) and issubclass(tp, BaseModel)) else tp
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _inner(tp: Any) -> Any:
    for a in typing.get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
        inner = _inner(a)
        if inner is not None:
            return inner
    return None


def _unknown(key: str, parent: tuple[Any, ...], data: Any, file: str | None) -> ConfigError:
    model = _model_at(parent)
    names = [f.alias or n for n, f in model.model_fields.items() if not f.exclude] if model else []
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(names)}" if names else "")
    dotted = ".".join(str(p) for p in (*parent, key))
    return ConfigError(f"unknown key{hint}", file=file, line=_line_at(data, (*parent, key)), key=dotted)


def _translate(e: ValidationError, data: Any, file: str | None) -> ConfigError:
    err = e.errors()[0]
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "extra_forbidden" and loc:
        return _unknown(str(loc[-1]), loc[:-1], data, file)
    msg = err.get("msg", "invalid value")
    if err.get("type") == "literal_error":
        msg = f"{msg}, got {err.get('input')!r}"
    return ConfigError(msg, file=file, line=_line_at(data, loc), key=".".join(str(p) for p in loc) or None)


# The builders (providers, policy, rules, ledger, Router kwargs) live in
# router/config_build.py; re-exported here so callers import from one place.
from router.config_build import (  # noqa: E402
    _env_providers,
    build_ledger,
    default_store,
    build_policy,
    build_providers,
    build_router_kwargs,
    build_rules,
)
