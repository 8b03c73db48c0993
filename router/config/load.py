"""Reading the config file: found by `paths.find_config`, validated against
`schema.QuotarouteConfig`; every error is a `ConfigError` naming file, line and key."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from router.config.paths import find_config
from router.config.schema import QuotarouteConfig, line_at
from router.errors import ConfigError

__all__ = ["load_config", "parse_config"]

def load_config(path: str | None = None) -> QuotarouteConfig:
    """Load and validate the config (explicit path > $QUOTAROUTE_CONFIG > home); an
    empty config when there is none."""
    path = find_config(path)
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
    return ConfigError(f"unknown key{hint}", file=file, line=line_at(data, (*parent, key)), key=dotted)


def _translate(e: ValidationError, data: Any, file: str | None) -> ConfigError:
    err = e.errors()[0]
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "extra_forbidden" and loc:
        return _unknown(str(loc[-1]), loc[:-1], data, file)
    msg = err.get("msg", "invalid value")
    if err.get("type") == "literal_error":
        msg = f"{msg}, got {err.get('input')!r}"
    return ConfigError(msg, file=file, line=line_at(data, loc), key=".".join(str(p) for p in loc) or None)
