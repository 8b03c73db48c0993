"""Config models for quota pools and spend budgets (pydantic v2).

A *pool* is capacity that applies to a set of models: a vendor free tier (windows
of requests/tokens), a one-time grant (N tokens or an amount of money), a credit
balance, or a plain rate limit. A *budget* is a spend cap in USD on a scope.

    quotas:
      - id: openrouter-free
        models: ["openrouter:*:free"]      # globs over "provider:model"
        free: true
        on_exhaust: block
        limits:
          - {per: minute, requests: 20}
          - {per: day, requests: 50, reset: calendar, tz: UTC}
    budgets:
      - {id: monthly, scope: global, period: month, limit_usd: "50.00"}

`load_quota_config(data, file=...)` validates the `quotas:`/`budgets:` sections and
raises `ConfigError(file=, line=, key=)` naming the offending entry.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.errors import ConfigError
from router.quota.defaults import DEFAULTS_FILE, default_pool_rows

__all__ = [
    "PERIOD_SECONDS",
    "WindowSpec",
    "GrantSpec",
    "PoolSpec",
    "BudgetSpec",
    "load_quota_config",
    "default_pools",
    "merge_pools",
]

Period = Literal["minute", "hour", "day", "month"]
PERIOD_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "month": 30 * 86400}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_tz(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'UTC' or 'America/Los_Angeles')") from e
    return v


class WindowSpec(_Spec):
    """One limit: at most `requests` requests and/or `tokens` tokens per `per`.

    `reset: calendar` windows restart at the start of each minute/hour/day/month in
    `tz` (Gemini: America/Los_Angeles midnight; OpenRouter: UTC; Chinese vendors:
    Asia/Shanghai). `reset: rolling` windows count the last `per` (minute = last 60 s).
    """

    per: Period
    requests: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    count: Literal["total", "input", "output"] = "total"  # which tokens `tokens` counts
    reset: Literal["rolling", "calendar"] | None = None  # default: rolling for minute/hour, calendar otherwise
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _v_tz(cls, v: str) -> str:
        return _check_tz(v)

    @model_validator(mode="after")
    def _needs_a_limit(self) -> "WindowSpec":
        if self.requests is None and self.tokens is None:
            raise ValueError("a window needs `requests` and/or `tokens`")
        if self.reset == "rolling" and self.per == "month":
            raise ValueError("a monthly window must be `reset: calendar`")
        return self

    @property
    def mode(self) -> str:
        if self.reset is not None:
            return self.reset
        return "rolling" if self.per in ("minute", "hour") else "calendar"


class GrantSpec(_Spec):
    """A one-time grant: `tokens` free tokens or `usd` of free money, optional expiry."""

    tokens: int | None = Field(default=None, ge=0)
    usd: Decimal | None = Field(default=None, ge=0)
    expires: datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "GrantSpec":
        if (self.tokens is None) == (self.usd is None):
            raise ValueError("a grant needs exactly one of `tokens` or `usd`")
        if self.expires is not None and self.expires.tzinfo is None:
            object.__setattr__(self, "expires", self.expires.replace(tzinfo=timezone.utc))
        return self


class PoolSpec(_Spec):
    """Capacity that applies to models. Which models: `models` globs over
    "provider:model" (e.g. "openrouter:*:free", "gemini:gemini-2.5-flash"), or every
    model of `provider`. `key` names the upstream API key/account the pool belongs to
    (a pool with a key only applies when the reservation's scope has no
    `upstream_key` or the same one)."""

    id: str = Field(min_length=1, max_length=120)
    provider: str | None = None
    models: tuple[str, ...] = ()
    key: str | None = None
    free: bool = False
    on_exhaust: Literal["block", "paid"] = "block"
    limits: tuple[WindowSpec, ...] = ()
    grant: GrantSpec | None = None
    credit_usd: Decimal | None = Field(default=None, ge=0)  # prepaid balance (paid, blocks when empty)
    per_model: bool = False  # True: every matching model gets its own copy ("<id>@<model>")
    source: str | None = None
    as_of: str | None = None
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:@/*\-]+", v):
            raise ValueError(f"pool id {v!r} may only use letters, digits and _ . : @ / * -")
        return v

    @model_validator(mode="after")
    def _applies_somewhere(self) -> "PoolSpec":
        if not self.models and not self.provider:
            raise ValueError("a pool needs `models` (globs) or `provider`")
        if not self.limits and self.grant is None and self.credit_usd is None and not self.free:
            raise ValueError("a pool needs `limits`, a `grant` or `credit_usd` (or `free: true` for unmetered free models)")
        if self.grant is not None and self.credit_usd is not None:
            raise ValueError("a pool is either a grant or a credit balance, not both")
        return self

    @property
    def kind(self) -> Literal["free", "grant", "credit", "rate"]:
        if self.grant is not None:
            return "grant"
        if self.credit_usd is not None:
            return "credit"
        return "free" if self.free else "rate"

    def applies_to(self, model_id: str) -> bool:
        if self.models:
            return any(fnmatch.fnmatchcase(model_id, pat) for pat in self.models)
        return model_id.split(":", 1)[0] == self.provider


class BudgetSpec(_Spec):
    """A spend cap in USD. `scope`/`match`: key id, user, tag (team), model id,
    provider name, or global ("*"). `hard` caps make reserve() raise BudgetExceeded
    before any upstream call; soft caps only log and flag the reservation."""

    id: str = Field(min_length=1, max_length=120)
    scope: Literal["key", "user", "tag", "team", "model", "provider", "global"] = "global"
    match: str = "*"
    period: Literal["day", "month", "total"] = "month"
    limit_usd: Decimal = Field(ge=0)
    hard: bool = True
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _v_tz(cls, v: str) -> str:
        return _check_tz(v)

    @property
    def view_scope(self) -> str:
        return "tag" if self.scope == "team" else self.scope

    def applies(self, model_id: str, provider: str, scope: dict[str, Any]) -> bool:
        s = self.scope
        if s == "global":
            return True
        if s == "model":
            return fnmatch.fnmatchcase(model_id, self.match)
        if s == "provider":
            return fnmatch.fnmatchcase(provider, self.match)
        if s in ("tag", "team"):
            tags = list(scope.get("tags") or ())
            if scope.get("team"):
                tags.append(scope["team"])
            return any(fnmatch.fnmatchcase(str(t), self.match) for t in tags)
        val = scope.get(s)
        return val is not None and fnmatch.fnmatchcase(str(val), self.match)


def merge_pools(defaults: list[PoolSpec], overrides: list[PoolSpec], *, keep_disabled: bool = False) -> list[PoolSpec]:
    """Config pools replace catalog default pools with the same id; others are added.
    A config pool `{id: X, enabled: false, ...}` switches default X off."""
    by_id = {p.id: p for p in defaults}
    for p in overrides:
        by_id[p.id] = p
    return [p for p in by_id.values() if p.enabled or keep_disabled]


def _line_of(data: Any, section: str, index: int | None) -> int | None:
    """Best-effort line number: loaders may attach `__line__` to mappings."""
    try:
        item = data[section] if index is None else data[section][index]
        line = item.get("__line__") if isinstance(item, dict) else None
        return int(line) if line is not None else None
    except Exception:
        return None


def _strip_lines(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_lines(x) for k, x in v.items() if k != "__line__"}
    if isinstance(v, list):
        return [_strip_lines(x) for x in v]
    return v


def _parse_list(data: dict[str, Any], section: str, model: type[BaseModel], file: str) -> list[Any]:
    raw = data.get(section)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"`{section}` must be a list", file=file, line=_line_of(data, section, None), key=section)
    out = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError("each entry must be a mapping", file=file, line=_line_of(data, section, i), key=f"{section}[{i}]")
        try:
            spec = model.model_validate(_strip_lines(item))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            key = f"{section}[{i}]" + (f".{loc}" if loc else "")
            raise ConfigError(err["msg"], file=file, line=_line_of(data, section, i), key=key) from None
        sid = getattr(spec, "id")
        if sid in seen:
            raise ConfigError(f"duplicate id {sid!r}", file=file, line=_line_of(data, section, i), key=f"{section}[{i}].id")
        seen.add(sid)
        out.append(spec)
    return out


def load_quota_config(
    data: dict[str, Any], *, file: str, include_defaults: bool = True, keep_disabled: bool = False
) -> tuple[list[PoolSpec], list[BudgetSpec]]:
    """Validate the `quotas:` and `budgets:` sections of a config mapping.

    With `include_defaults` (the default) the catalog free tiers
    (router/quota/data/free_tiers.yaml) come first; a config entry whose `id`
    names a default is merged key by key over it (so `{id: deepseek-new-user-grant,
    enabled: true, grant: {tokens: 5000000, expires: 2026-12-31}}` is enough).
    Disabled pools are dropped unless `keep_disabled`.
    """
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping", file=file)
    raw = data.get("quotas")
    defaults: list[PoolSpec] = []
    if include_defaults:
        by_id = {r["id"]: r for r in default_pool_rows()}
        if isinstance(raw, list):
            merged = []
            for item in raw:
                if isinstance(item, dict) and item.get("id") in by_id:
                    item = {**by_id[item["id"]], **item}
                merged.append(item)
            data = {**data, "quotas": merged}
        defaults = default_pools(include_disabled=True)
    pools = merge_pools(defaults, _parse_list(data, "quotas", PoolSpec, file), keep_disabled=keep_disabled)
    return pools, _parse_list(data, "budgets", BudgetSpec, file)


def default_pools(*, include_disabled: bool = False) -> list[PoolSpec]:
    """The catalog's default free tiers as validated pools (disabled ones only on request)."""
    pools, _ = load_quota_config({"quotas": default_pool_rows()}, file=DEFAULTS_FILE, include_defaults=False,
                                 keep_disabled=True)
    return [p for p in pools if include_disabled or p.enabled]
