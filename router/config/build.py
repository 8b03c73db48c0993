"""Build runtime parts from a validated `QuotarouteConfig` (router/config/schema.py):
providers (keys read from the environment by variable name), policy, rules, ledger,
the keyword arguments for `Router(...)`, and the proxy's `ServerSettings`.

The heavy runtime modules (adapters, ledger stores, catalog, the proxy's settings)
are imported inside the builders: loading a config must stay cheap, and the SDK never
needs the proxy's modules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers import registry
from providers.registry import NATIVE, VENDORS
from providers.retry import RetryPolicy
from router.catalog import load_catalog
from router.chains import Chains, RouteError
from router.config.paths import home
from router.config.schema import ProviderCfg, QuotarouteConfig
from router.errors import ConfigError, UnknownModel, register_secret
from router.health import HealthBook
from router.policies import DEFAULT_FLOORS, POLICIES, VIRTUAL_MODELS, Policy, Rule, compile_globs
from router.predictor import LearnedPredictor
from router.quota.ledger import Ledger
from router.quota.stores import build_store
from router.server.auth import KeyStore, ProxyKey
from router.server.settings import ServerSettings

__all__ = ["build_providers", "build_policy", "build_rules", "build_cascades", "build_ledger", "build_router_kwargs",
           "build_server_settings", "build_catalog", "build_routes", "default_store", "effective_store", "provider_specs",
           "DEFAULT_STORES", "SDK_DEFAULT_STORE", "PROXY_DEFAULT_STORE"]


def provider_specs(cfg: QuotarouteConfig) -> dict[str, ProviderCfg]:
    """The `providers:` section, or (none) every vendor whose key variable is set."""
    return dict(cfg.providers) if cfg.providers else _env_providers()


def _env_providers() -> dict[str, ProviderCfg]:
    """No providers section: every vendor whose key variable is set (environment layer)."""
    out: dict[str, ProviderCfg] = {}
    for name, row in VENDORS.items():
        if row.key_required and os.environ.get(row.env_var):
            out[name] = ProviderCfg(api_key_env=row.env_var)
    for name, (_path, env) in NATIVE.items():
        if env and os.environ.get(env) and name != "google":
            out[name] = ProviderCfg(api_key_env=env)
    return out


def _key_names(name: str, p: ProviderCfg) -> list[str | None]:
    if p.api_key_env is None:
        return [None]  # the adapter's default env var (or a keyless local server)
    return [p.api_key_env] if isinstance(p.api_key_env, str) else list(p.api_key_env)


def build_providers(cfg: QuotarouteConfig, *, client: Any = None) -> dict[str, dict[str, Any]]:
    """{provider name: {key id (env var name): Provider}}; keys read from the environment."""
    retry = RetryPolicy(max_attempts=cfg.retry.max_attempts, max_wait_s=cfg.retry.max_wait_s)
    specs = provider_specs(cfg)
    missing = [(name, env) for name, p in specs.items() if p.enabled for env in _key_names(name, p)
               if env is not None and not os.environ.get(env)]
    if missing:  # every unset variable at once, not one per run
        name, env = missing[0]
        more = "".join(f", {e} (providers.{n})" for n, e in missing[1:])
        raise ConfigError(f"environment variable {env} is not set" + (f"; also unset: {more[2:]}" if more else ""),
                          file=cfg.file, line=cfg.line_of("providers", name, "api_key_env"),
                          key=f"providers.{name}.api_key_env")
    out: dict[str, dict[str, Any]] = {}
    for name, p in specs.items():
        if not p.enabled:
            continue
        group: dict[str, Any] = {}
        for env in _key_names(name, p):
            key = None
            if env is not None:
                key = os.environ[env]
                register_secret(key)
            kw: dict[str, Any] = dict(p.options)
            if client is not None:
                kw["client"] = client
            if p.timeouts is not None:  # only when set: adapters that predate `timeouts=` keep working
                kw["timeouts"] = p.timeouts.model_dump(exclude_none=True)
            try:
                prov = registry.build_provider(p.vendor or name, api_key=key, base_url=p.base_url, name=name, retry=retry, **kw)
            except ConfigError as e:
                raise ConfigError(str(e).split(": ", 1)[-1], file=cfg.file, line=cfg.line_of("providers", name),
                                  key=f"providers.{name}") from None
            except TypeError as e:  # an option the adapter does not take (the message names it, not its value)
                raise ConfigError(f"the {p.vendor or name} adapter does not accept this: {e}", file=cfg.file,
                                  line=cfg.line_of("providers", name, "options"),
                                  key=f"providers.{name}.options") from None
            group[env or name] = prov
        out[name] = group
    return out


def build_policy(cfg: QuotarouteConfig, policy: Any = None) -> Any:
    pc = cfg.policy
    floors = {**DEFAULT_FLOORS, **{k: v for k, v in pc.quality_floors.items() if k != "default"}}
    name = policy if isinstance(policy, str) else (
        pc.default if "default" in pc.model_fields_set or not os.environ.get("QUOTAROUTE_POLICY")
        else os.environ["QUOTAROUTE_POLICY"])
    cascade = None
    if name.startswith("cascade:"):  # `auto` runs this cascade; rules without one keep the schema default
        cascade, name = name[8:], "free-first"
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)} or cascade:<name>",
                          file=cfg.file, key="policy.default")
    return Policy(name=name, cascade=cascade, cost_weight=pc.lambda_, quality_floors=floors,
                  default_floor=pc.quality_floors.get("default", 0.5), max_cost_usd=pc.max_cost_usd,
                  allow=tuple(pc.allow), deny=tuple(pc.deny),
                  regions=frozenset(pc.regions) if pc.regions else None, max_attempts=pc.max_attempts,
                  cascade_floor=pc.cascade.floor, cascade_max_steps=pc.cascade.max_steps,
                  chinese_bonus=pc.chinese_bonus, quality_margin=pc.quality_margin)


def build_rules(cfg: QuotarouteConfig) -> tuple[Any, ...]:
    rules = []
    for i, r in enumerate(cfg.rules):
        settings: dict[str, Any] = {}
        if r.lambda_ is not None:
            settings["cost_weight"] = r.lambda_
        if r.max_cost_usd is not None:
            settings["max_cost_usd"] = r.max_cost_usd
        if r.quality_floors is not None:
            floors = dict(r.quality_floors)
            if "default" in floors:
                settings["default_floor"] = floors.pop("default")
            settings["quality_floors"] = {**build_policy(cfg).quality_floors, **floors}
        if r.free_only is not None:
            settings["free_only"] = r.free_only
        if r.quality_margin is not None:
            settings["quality_margin"] = r.quality_margin
        task = r.match.task
        rules.append(Rule(name=r.name or f"rule #{i + 1}", task=frozenset([task] if isinstance(task, str) else task)
                          if task else None, metadata=r.match.metadata, user=r.match.user, tag=r.match.tag,
                          models=tuple(r.models), policy=r.policy, settings=settings, cascade=r.cascade))
    return tuple(rules)


def build_cascades(cfg: QuotarouteConfig) -> tuple[Any, ...]:
    """The `cascades:` section as `router.cascade.Cascade`s (validated by load_config;
    bound to the served models, and checked to have candidates, by `Router`)."""
    from router.cascade import Cascade, Stage  # lazy: import time (config loading stays cheap)

    out = []
    for name, c in cfg.cascades.items():
        stages = tuple(Stage(mode=s.mode, k=s.k, m=s.m or 0, models=tuple(s.models), policy=s.policy)
                       for s in c.stages)
        out.append(Cascade(name=name, extract=c.extract, stages=stages, tolerance=c.tolerance, stream=c.stream,
                           fallback_policy=c.fallback_policy))
    return tuple(out)


DEFAULT_STORES = ("memory", "sqlite")
SDK_DEFAULT_STORE = "memory"  # Router.from_config(path): counters live as long as the process
PROXY_DEFAULT_STORE = "sqlite"  # quotaroute serve: counters survive restarts, shared by --workers


def default_store(explicit: str | None = None, *, fallback: str = SDK_DEFAULT_STORE, file: str | None = None) -> str:
    """The ledger store used when the config names none: `explicit` (a caller's choice,
    e.g. `Router.from_config(path, default_store="sqlite")`), else
    `$QUOTAROUTE_DEFAULT_STORE`, else `fallback` (the caller's documented default:
    `SDK_DEFAULT_STORE` or `PROXY_DEFAULT_STORE`)."""
    v = explicit or os.environ.get("QUOTAROUTE_DEFAULT_STORE") or fallback
    if v not in DEFAULT_STORES:
        where = "default_store" if explicit else "QUOTAROUTE_DEFAULT_STORE"
        raise ConfigError(f"{where} must be one of {', '.join(DEFAULT_STORES)}, got {v!r}", file=file, key=where)
    return v


def effective_store(cfg: QuotarouteConfig, *, default_store: str | None = None) -> str:
    """The store kind `build_ledger(cfg, default_store=...)` would use: "memory",
    "sqlite" or "redis" (for `$QUOTAROUTE_LEDGER_URL`, by its scheme). For callers that
    only need to know (e.g. the proxy's multi-worker warning), without opening it."""
    if cfg.ledger.store is not None:
        return cfg.ledger.store
    env = os.environ.get("QUOTAROUTE_LEDGER_URL")
    if env:
        return "memory" if env.startswith("memory:") else "redis" if env.startswith(
            ("redis://", "rediss://", "unix://")) else "sqlite"
    return _default_store_fn(default_store, file=cfg.file)


def build_ledger(cfg: QuotarouteConfig, *, default_store: str | None = None) -> Any:
    """The Ledger the config describes. The store is the config's `ledger.store` (always
    written: load_config refuses other ledger keys without it) > `$QUOTAROUTE_LEDGER_URL`
    > `default_store` (the caller's choice) > `$QUOTAROUTE_DEFAULT_STORE` > memory. It is
    never chosen by which keyword a caller passed. SQLite defaults to
    `$QUOTAROUTE_HOME/ledger.sqlite`."""
    lc = cfg.ledger
    store = lc.store
    if store is None and os.environ.get("QUOTAROUTE_LEDGER_URL"):
        return Ledger(build_store(os.environ["QUOTAROUTE_LEDGER_URL"]), cfg.pools, cfg.budget_specs)
    if store is None:
        store = _default_store_fn(default_store, file=cfg.file)
    url = None
    options: dict[str, Any] = {}
    if store == "sqlite":
        url = os.path.expanduser(lc.path) if lc.path else str(home() / "ledger.sqlite")
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        if lc.synchronous is not None:
            options["synchronous"] = lc.synchronous
    elif store == "redis":
        if not lc.url:
            raise ConfigError("a redis ledger needs `url` (redis://host:port/db)", file=cfg.file,
                              line=cfg.line_of("ledger"), key="ledger.url")
        url = lc.url
        for k in ("on_redis_error", "expected_replicas"):
            if getattr(lc, k) is not None:
                options[k] = getattr(lc, k)
    try:
        st = build_store(url, **options)
    except ValueError as e:
        raise ConfigError(str(e), file=cfg.file, line=cfg.line_of("ledger"), key="ledger") from None
    return Ledger(st, cfg.pools, cfg.budget_specs)


_default_store_fn = default_store


def build_router_kwargs(cfg: QuotarouteConfig, *, client: Any = None, default_store: str | None = None,
                        with_ledger: bool = True) -> dict[str, Any]:
    """Keyword arguments for `Router(...)` from a validated config. `default_store` is
    the ledger store when the config names none (see `build_ledger`); `with_ledger=False`
    leaves the ledger out (the caller brings its own)."""
    catalog = build_catalog(cfg)
    providers = build_providers(cfg, client=client)
    models = None
    if cfg.models.include is not None or cfg.models.exclude:
        cards = [c for c in catalog.all() if c.provider in providers]
        inc = cfg.models.include
        if inc is not None:
            g = compile_globs(tuple(inc))
            ids = set()
            for m in inc:
                if any(ch in m for ch in "*?["):
                    continue
                try:
                    ids.add(catalog.get(m).id)
                except UnknownModel as e:
                    raise ConfigError(str(e), file=cfg.file, line=cfg.line_of("models", "include"),
                                      key="models.include") from None
            cards = [c for c in cards if c.id in ids or (g is not None and g.match(c.id))]
        ex = compile_globs(tuple(cfg.models.exclude))
        models = [c.id for c in cards if ex is None or not ex.match(c.id)]
    predictor = None
    if cfg.models.predictor:
        try:
            predictor = LearnedPredictor.load(os.path.expanduser(cfg.models.predictor))
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"cannot load the learned predictor: {e}", file=cfg.file,
                              line=cfg.line_of("models", "predictor"), key="models.predictor") from None
    kw: dict[str, Any] = {"ledger": build_ledger(cfg, default_store=default_store)} if with_ledger else {}
    kw.update(build_routes(cfg, catalog, providers))
    return {"catalog": catalog, "providers": providers, **kw, "policy": build_policy(cfg),
            "predictor": predictor,
            "rules": build_rules(cfg), "cascades": build_cascades(cfg), "models": models, "config": cfg,
            "health": HealthBook(failure_threshold=cfg.health.failure_threshold, cooloff_s=cfg.health.cooloff_s),
            "embeddings": build_embedder(cfg, fx=catalog.fx)}


def build_embedder(cfg: QuotarouteConfig, *, fx: Any = None) -> Any:
    """The embeddings side of the router (`embeddings:`), or None when the section is empty
    (the router then loads the bundled embedding catalog on first use)."""
    ec = cfg.embeddings
    if ec == type(ec)():
        return None
    from router.embed_run import Embedder  # lazy: import time (only configs with `embeddings:` load it)
    from router.embeddings import EmbeddingSettings, load_embedding_catalog

    try:
        catalog = load_embedding_catalog(overrides=ec.overrides, fx=fx)
    except ConfigError as e:
        msg = str(e).split(": ", 1)[-1] if e.file else str(e)  # without the data file's "path[:line]: "
        msg = msg.removeprefix(f"{e.key}: ") if e.key else msg
        raise ConfigError(msg, file=cfg.file, line=cfg.line_of("embeddings", "overrides"), key=e.key) from None
    raw = ec.model_dump(exclude={"overrides"})
    return Embedder(catalog, EmbeddingSettings.build(raw, catalog, file=cfg.file, line=cfg.line_of))


def build_routes(cfg: QuotarouteConfig, catalog: Any, providers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`fallbacks=`/`deployments=` for `Router(...)` (router.chains), checked here so an
    unknown model, a cycle or a key the provider does not have names its line."""
    if not cfg.fallbacks and not cfg.deployments:
        return {}
    deps = {name: [d.model_dump(exclude_none=True) for d in ds] for name, ds in cfg.deployments.items()}
    try:
        chains = Chains(catalog, cfg.fallbacks, deps)
    except RouteError as e:
        raise ConfigError(str(e), file=cfg.file, line=cfg.line_of(*e.path), key=e.key) from None
    for name, ds in chains.groups.items():
        for i, d in enumerate(ds):
            prov = d.model.split(":", 1)[0]
            if d.key is not None and providers is not None and d.key not in (providers.get(prov) or ()):
                raw = next((k for k in cfg.deployments if chains.resolve(k) == name), name)
                raise ConfigError(f"provider {prov} has no key {d.key!r} (its keys: "
                                  f"{', '.join(providers.get(prov) or ()) or 'none configured'})", file=cfg.file,
                                  line=cfg.line_of("deployments", raw, i, "key"), key=f"deployments.{raw}[{i}].key")
    return {"fallbacks": cfg.fallbacks, "deployments": deps}


def build_catalog(cfg: QuotarouteConfig) -> Any:
    """The model catalog with the config's task profile, exchange rates and per-model
    overrides (`models.overrides`, errors naming their lines)."""
    fx = cfg.fx.model_dump(exclude_none=True) if cfg.fx is not None else None
    catalog = load_catalog(profile_path=cfg.models.profile, fx=fx)
    if cfg.models.overrides:
        raw = (cfg._data or {}).get("models", {}).get("overrides") if isinstance(cfg._data, Mapping) else None
        catalog = catalog.with_overrides(raw if isinstance(raw, Mapping) else cfg.models.overrides,
                                         file=cfg.file)
    return catalog


def build_server_settings(cfg: QuotarouteConfig) -> Any:
    """The proxy's runtime `ServerSettings` from the validated `server:` section."""
    sc = cfg.server
    keys = [ProxyKey(id=k.id, hash=k.hash, budget_usd=k.budget_usd, budget_period=k.budget_period or sc.budget_period,
                     models=tuple(k.models) if k.models is not None else None, rpm=k.rpm, tpm=k.tpm, user=k.user,
                     tags=tuple(k.tags) if k.tags is not None else None) for k in sc.keys]
    admin = ProxyKey(id="admin", hash=sc.admin_key, admin=True) if sc.admin_key else None
    names = tuple(VIRTUAL_MODELS) + tuple(n for n in cfg.deployments if n not in VIRTUAL_MODELS) \
        + tuple(f"cascade:{n}" for n in cfg.cascades)
    return ServerSettings(host=sc.host, port=sc.port, max_body_bytes=sc.max_body_bytes,
                          spend_db=None if sc.spend_db == "off" else (sc.spend_db or ""),
                          keys=KeyStore(keys, admin), reason_header_max=sc.reason_header_max,
                          budget_period=sc.budget_period, limits=sc.limits, responses=sc.responses,
                          virtual_models=names, qualified_model_ids=sc.response_model == "qualified",
                          cache=cfg.cache, cache_redis_url=_cache_redis_url(cfg), store=sc.store,
                          dsn_env=sc.dsn_env, key_poll_s=sc.key_poll_s, tracing=cfg.tracing)


def _cache_redis_url(cfg: QuotarouteConfig) -> str | None:
    """A redis response cache's url: `cache.url`, else the ledger's (when the ledger is on Redis)."""
    c = cfg.cache
    if not c.enabled or c.store != "redis":
        return None
    url = c.url or (cfg.ledger.url if cfg.ledger.store == "redis" else None)
    if not url:
        raise ConfigError("a redis response cache needs `url` (redis://host:port/db), or a ledger on Redis",
                          file=cfg.file, line=cfg.line_of("cache"), key="cache.url")
    return url
