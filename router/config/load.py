"""Reading the config file: found by `paths.find_config`, validated against
`schema.QuotarouteConfig`; every mistake is one `ConfigError` naming file, line and
key path, e.g. `quotaroute.yaml:7: server.kyes: unknown key 'kyes'; did you mean 'keys'?`

Before YAML is built into objects the text is checked: at most 1 MiB, no anchors or
aliases (`&x`/`*x`, so an alias bomb fails at once), at most 64 levels of nesting.
A value that looks like a secret is never echoed in an error.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from router._catalog_yaml import load_yaml_text
from router.catalog import ModelCard
from router.config.paths import find_config
from router.config.schema import REDIS_KEYS, SQLITE_KEYS, QuotarouteConfig, line_at, looks_like_secret
from router.errors import ConfigError, redact
from router.pricing import Price
from router.quota.spec import BudgetSpec, PoolSpec, load_quota_config

__all__ = ["load_config", "parse_config", "read_yaml", "MAX_CONFIG_BYTES", "MAX_DEPTH"]

MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 64


def load_config(path: str | None = None) -> QuotarouteConfig:
    """Find (`find_config(path)`), read and validate the config; an empty config when
    there is no file."""
    path = find_config(path)
    if path is None:
        return parse_config({}, file=None)
    data = read_yaml(path)
    return parse_config({} if data is None else data, file=path)


def read_yaml(path: str) -> Any:
    """The YAML tree of `path` (mappings remember their lines), after the size, alias
    and depth checks."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", file=path) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a few KB "
                          "(is this the right file?)", file=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("not UTF-8 text", file=path, line=raw[:e.start].count(b"\n") + 1) from None
    _check_events(text, path)
    return load_yaml_text(text, file=path)


def _check_events(text: str, file: str) -> None:
    """Refuse anchors/aliases and deep nesting from the parser's events, before any
    node is built (the C parser when available: a 1 MiB file takes milliseconds)."""
    depth = 0
    try:
        for ev in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
                raise ConfigError("YAML anchors and aliases (&name, *name) are not allowed in the config; "
                                  "write the value out", file=file, line=ev.start_mark.line + 1)
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=file,
                                      line=ev.start_mark.line + 1)
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        load_yaml_text(text, file=file)  # raises the invalid-YAML error with its line
        raise ConfigError("invalid YAML", file=file) from None


def parse_config(data: Any, *, file: str | None = None) -> QuotarouteConfig:
    """Validate a config mapping (a loaded YAML tree or a plain dict)."""
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping of sections", file=file, line=1)
    try:
        cfg = QuotarouteConfig.model_validate(dict(data))
    except ValidationError as e:
        raise _translate(e, data, file) from None
    _check_ledger(cfg, data, file)
    _check_cascades(cfg, data, file)
    _check_overrides(data, file)
    cfg._pools, cfg._budget_specs = _quotas(data, file)
    cfg._file = file
    cfg._data = data
    return cfg


# ------------------------------------------------------------------ cross-field checks


def _check_ledger(cfg: QuotarouteConfig, data: Any, file: str | None) -> None:
    """The store is written, never guessed; options must belong to it."""
    lc = cfg.ledger
    given = [k for k in (*SQLITE_KEYS, *REDIS_KEYS) if getattr(lc, k) is not None]
    if lc.store is None:
        if given:
            raise ConfigError(f"set `store: {'redis' if given[0] in REDIS_KEYS else 'sqlite'}` (or memory): the "
                              f"store is never guessed from `{given[0]}`", file=file,
                              line=line_at(data, ("ledger", given[0])), key="ledger.store")
        return
    for k in given:
        owner = "sqlite" if k in SQLITE_KEYS else "redis"
        if owner != lc.store:
            raise ConfigError(f"only applies to a {owner} ledger (store is {lc.store})", file=file,
                              line=line_at(data, ("ledger", k)), key=f"ledger.{k}")
    if lc.store == "redis" and not lc.url:
        raise ConfigError("a redis ledger needs `url` (redis://host:port/db)", file=file,
                          line=line_at(data, ("ledger", "store")), key="ledger.url")


def _check_cascades(cfg: QuotarouteConfig, data: Any, file: str | None) -> None:
    """`cascades:`: every extractor spec is known; rules and `policy.default` name defined cascades."""
    for name, c in cfg.cascades.items():
        from router.cascade import check_spec  # lazy: import time (the routing core loads only when cascades are used)

        try:
            check_spec(c.extract, c.tolerance)
        except ValueError as e:
            raise ConfigError(redact(str(e)), file=file, line=line_at(data, ("cascades", name, "extract")),
                              key=f"cascades.{name}.extract") from None
    refs = [(("policy", "default"), cfg.policy.default[8:]) if cfg.policy.default.startswith("cascade:") else None]
    refs += [(("rules", i, "cascade"), r.cascade) for i, r in enumerate(cfg.rules) if r.cascade is not None]
    for ref in refs:
        if ref is not None and ref[1] not in cfg.cascades:
            defined = ", ".join(cfg.cascades) or "none"
            shown = "(not shown)" if looks_like_secret(ref[1]) else repr(ref[1][:80])
            raise ConfigError(f"unknown cascade {shown}; define it under `cascades:` (defined: {defined})",
                              file=file, line=line_at(data, ref[0]), key=_dotted(ref[0]))


def _check_overrides(data: Mapping[str, Any], file: str | None) -> None:
    """`models.overrides`: card field names and prices, checked at load time."""
    models = data.get("models")
    overrides = models.get("overrides") if isinstance(models, Mapping) else None
    if not overrides:
        return
    names = [n for n in ModelCard.model_fields if n not in ("id", "provider")] + ["model", "genai_ref"]
    for mid, fields in overrides.items():
        loc = ("models", "overrides", mid)
        for k, v in fields.items():
            if k not in names:
                raise _unknown(str(k), loc, data, file, names)
            if k == "price" and v is not None:
                try:
                    Price.model_validate(v)
                except ValidationError as e:
                    raise _translate(e, data, file, root=Price, prefix=(*loc, "price")) from None


def _quotas(data: Mapping[str, Any], file: str | None) -> tuple[list[Any], list[Any]]:
    """`quotas:`/`budgets:` through router.quota.spec (which merges the catalog's
    default free tiers), with unknown keys and error lines resolved here."""
    for section, model in (("quotas", PoolSpec), ("budgets", BudgetSpec)):
        items = data.get(section)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, Mapping):
                _check_keys(item, model, (section, i), data, file)
    qdata = {"quotas": [_with_line(q) for q in (data.get("quotas") or [])],
             "budgets": [_with_line(b) for b in (data.get("budgets") or [])]}
    try:
        return load_quota_config(qdata, file=file or "<config>")
    except ConfigError as e:
        msg = _message_of(e)
        loc = _parse_key(e.key) if e.key else ()
        line = line_at(data, loc) if loc else e.line
        raise ConfigError(redact(_tidy(msg)), file=file, line=line or e.line, key=_dotted(loc) or e.key) from None


def _check_keys(node: Mapping[str, Any], model: type[BaseModel], loc: tuple[Any, ...], data: Any,
                file: str | None) -> None:
    """Unknown keys in a mapping validated elsewhere, with a suggestion."""
    names = _names(model)
    for k, v in node.items():
        if k not in names:
            raise _unknown(str(k), loc, data, file, names)
        f = model.model_fields.get(k)
        sub = _inner(f.annotation) if f is not None else None
        if sub is None:
            continue
        for j, x in enumerate(v) if isinstance(v, list) else [(None, v)]:
            if isinstance(x, Mapping):
                _check_keys(x, sub, (*loc, k) if j is None else (*loc, k, j), data, file)


def _message_of(e: ConfigError) -> str:
    """The message of a ConfigError without its `file:line: key: ` prefix."""
    where = f"{e.file}{f':{e.line}' if e.line is not None else ''}: " if e.file else ""
    where += f"{e.key}: " if e.key else ""
    text = str(e)
    return text[len(where):] if text.startswith(where) else text


def _with_line(item: Any) -> Any:
    line = getattr(item, "line", None)
    return {**item, "__line__": line} if isinstance(item, Mapping) and line else item


def _parse_key(key: str) -> tuple[Any, ...]:
    """'quotas[1].limits.0.per' -> ('quotas', 1, 'limits', 0, 'per')."""
    out: list[Any] = []
    for name, idx in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        out.append(int(idx) if idx else int(name) if name.isdigit() else name)
    return tuple(out)


# ------------------------------------------------------------------ error translation


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def _names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _field(model: type[BaseModel], name: Any) -> Any:
    return model.model_fields.get(name) or next((f for f in model.model_fields.values() if f.alias == name), None)


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] = QuotarouteConfig) -> type[BaseModel] | None:
    """The pydantic model that owns the keys under `loc` (to suggest known keys)."""
    tp: Any = root
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = _field(tp, part)
            if f is None:
                return None
            tp = f.annotation
        else:
            tp = _inner(tp)
            if tp is None:
                return None
    tp = tp if isinstance(tp, type) and issubclass(tp, BaseModel) else _inner(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _inner(tp: Any) -> Any:
    for a in typing.get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
        inner = _inner(a)
        if inner is not None:
            return inner
    return None


def _unknown(key: str, parent: tuple[Any, ...], data: Any, file: str | None,
             names: list[str] | None = None) -> ConfigError:
    """`parent.key: unknown key 'key'; did you mean ...?` (`names`: the known keys
    there; default: those of the schema model at `parent`)."""
    if names is None:
        model = _model_at(parent)
        names = _names(model) if model else []
    if looks_like_secret(key):
        return ConfigError("unknown key (not shown: it looks like a secret)", file=file,
                           line=line_at(data, (*parent, key)), key=_dotted(parent) or None)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(names)}" if names else "")
    return ConfigError(f"unknown key {key!r}{hint}", file=file, line=line_at(data, (*parent, key)),
                       key=_dotted((*parent, key)))


def _clean_loc(loc: tuple[Any, ...], data: Any, root: type[BaseModel], prefix: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic's error location as a path in the file: labels pydantic adds (union
    members, validator names, '[key]') are dropped; a missing field keeps its name."""
    out: list[Any] = []
    node: Any = _at(data, prefix)
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            model = _model_at(tuple(out), root)
            if model is not None and isinstance(part, str) and _field(model, part) is not None:
                out.append(part)
            break
        out.append(part)
    return tuple(out)


def _at(data: Any, loc: tuple[Any, ...]) -> Any:
    for p in loc:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _tidy(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _translate(e: ValidationError, data: Any, file: str | None, *, root: type[BaseModel] = QuotarouteConfig,
               prefix: tuple[Any, ...] = ()) -> ConfigError:
    """The first validation error as one `file:line: key.path: message`. The input value
    is echoed only for a bad choice (`literal_error`) and only when it cannot be a secret."""
    err = e.errors(include_url=False)[0]
    raw = tuple(err.get("loc", ()))
    if err.get("type") == "extra_forbidden" and raw:
        parent = _clean_loc(raw[:-1], data, root, prefix)
        model = _model_at(parent, root)
        return _unknown(str(raw[-1]), (*prefix, *parent), data, file, _names(model) if model else [])
    loc = (*prefix, *_clean_loc(raw, data, root, prefix))
    msg = _tidy(err.get("msg", "invalid value"))
    value = err.get("input")
    if err.get("type") == "literal_error" and isinstance(value, (str, int, float)) and not (
            isinstance(value, str) and (looks_like_secret(value) or len(value) > 80)):
        msg = f"{msg}, got {value!r}"
    return ConfigError(redact(msg), file=file, line=line_at(data, loc), key=_dotted(loc) or None)
