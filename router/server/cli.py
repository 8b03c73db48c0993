"""`quotaroute serve`: run the OpenAI/Anthropic-compatible proxy on uvicorn."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import sys
from typing import Any

from router.errors import ConfigError

__all__ = ["HELP", "add_arguments", "run", "build_app", "load", "load_settings", "check_config", "check_reload",
           "rebuild_app", "reloading_app"]

HELP = ("Run the local OpenAI- and Anthropic-compatible proxy (POST /v1/chat/completions, POST /v1/messages, "
        "GET /v1/models, /metrics, /healthz, /v1/quota, /v1/spend).")

log = logging.getLogger("quotaroute.server")

_ENV = "QUOTAROUTE_SERVE_ARGS"  # how worker processes receive their settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="quotaroute YAML config (default: $QUOTAROUTE_CONFIG, else "
                   "./quotaroute.yaml, else $QUOTAROUTE_HOME/config.yaml when present)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; others need proxy keys)")
    p.add_argument("--port", type=int, default=None, help="port (default 4000)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core up to 4 when the ledger is shared "
                        "(SQLite or Redis), else 1)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--graceful-timeout", type=int, default=30, help="seconds to let in-flight requests finish")
    p.add_argument("--new-key", metavar="ID", help="print a fresh proxy key and its config entry, then exit")
    p.add_argument("--router-factory", metavar="MODULE:FUNC", help=argparse.SUPPRESS)  # tests and benchmarks


def load(config: str | None) -> tuple[Any, Any]:
    """(QuotarouteConfig, ServerSettings) from the config file `config` (already found
    by `router.config.find_config`; None = no file, defaults). Raises ConfigError."""
    from router.config import build_server_settings, load_config  # lazy: import time (`quotaroute serve --help` stays fast)

    cfg = load_config(config)
    return cfg, build_server_settings(cfg)


def load_settings(config: str | None) -> Any:
    return load(config)[1]


def _make_router(config: str | None, factory: str | None, cfg: Any = None, **carry: Any) -> Any:
    """The proxy's Router: from the factory (tests, benchmarks), else from the config
    with one shared aiohttp-backed client and the proxy's default ledger store.
    `carry`: Router arguments kept from the running router by a reload (health, ledger)."""
    if factory:
        mod, _, fn = factory.partition(":")
        return getattr(importlib.import_module(mod), fn or "build")(config)
    from router.config import PROXY_DEFAULT_STORE, default_store  # lazy: import time, as above
    from router.sdk import Router
    from router.server.aiohttp_transport import aiohttp_client

    client = aiohttp_client()
    router = Router.from_config(cfg if cfg is not None else config, http_client=client, owns_client=True,
                                default_store=default_store(fallback=PROXY_DEFAULT_STORE), **carry)
    if cfg is not None:
        size_pools(client, router, cfg)
    return router


def size_pools(client: Any, router: Any, cfg: Any) -> None:
    """Apply `providers.<name>.pool` to the upstream host of each of that provider's adapters."""
    transport = getattr(client, "_transport", None)
    if not hasattr(transport, "set_pool"):
        return
    for dep, adapter in router.adapters.items():
        pc = (cfg.providers or {}).get(dep.split("#", 1)[0])
        base = getattr(adapter, "base_url", None)
        if pc is None or pc.pool is None or not isinstance(base, str) or "://" not in base:
            continue
        transport.set_pool(base.split("://", 1)[1].split("/", 1)[0], pc.pool.size, pc.pool.queue)


def build_app(config: str | None = None, factory: str | None = None, settings: Any = None, cfg: Any = None, *,
              tune_gc: bool = False) -> Any:
    """The ASGI app: `cfg`/`settings` when the caller already loaded them, else read
    from `config`."""
    from router.server.app import create_app  # lazy: import time, as above

    if cfg is None and (settings is None or not factory):
        cfg, loaded = load(config)
        settings = settings or loaded
    return create_app(_make_router(config, factory, cfg), settings, tune_gc=tune_gc)


def check_config(cfg: Any, factory: str | None) -> None:
    """Build what each worker will build (providers, catalog, models, predictor), once,
    so a mistake is reported before the server starts; nothing is kept or opened."""
    if factory:
        return
    import httpx  # lazy: import time, as above

    from router.config import build_router_kwargs

    build_router_kwargs(cfg, client=httpx.AsyncClient(), with_ledger=False)


def check_reload(config: str | None, factory: str | None, host: str, running: Any) -> tuple[Any, Any, list[str]]:
    """Read the config file again for a reload: (cfg, settings, notes). Raises
    ConfigError for a file that must not be served: invalid, or no proxy keys left
    while listening beyond loopback. `settings` keeps `running`'s start-up-only
    fields; `notes` names those the file changed (they need a restart)."""
    from router.server.reload import restart_only  # lazy: import time, as above
    from router.server.settings import is_loopback

    cfg, settings = load(config)
    settings, changed = restart_only(running, settings)
    if settings.keys.open_access and not is_loopback(host):
        raise ConfigError(f"the new config has no proxy keys, and the proxy listens on {host}: anyone who can "
                          "reach it could spend your vendor quota", file=config)
    notes = [f"{', '.join(changed)} changed: takes effect on the next restart"] if changed else []
    return cfg, settings, notes


def rebuild_app(config: str | None, factory: str | None, host: str, current: Any, *, quiet: bool = False) -> Any:
    """A new ProxyApp from the config file for a reload (raises ConfigError). It shares
    the running app's spend log, Responses store, metrics and (same `cache:` section)
    response cache; its Router keeps the
    running circuit breakers (same `health:` section) and an in-memory ledger's counts.
    `quiet`: what needs a restart is logged at info level (a worker: its supervisor warns)."""
    from router.server.app import create_app  # lazy: import time, as above

    cfg, settings, notes = check_reload(config, factory, host, current.settings)
    for n in notes:
        log.log(logging.INFO if quiet else logging.WARNING, "quotaroute serve: config reload: %s", n)
    carry: dict[str, Any] = {}
    prev = current.router
    prev_cfg = getattr(prev, "config", None)  # a router.sdk.Router (a factory's router has none)
    if not factory and prev_cfg is not None:
        if prev_cfg.health == cfg.health:
            carry["health"] = prev.health
        if _memory_ledger(cfg) and _memory_ledger(prev_cfg):  # the counts live in this process only
            from router.quota.ledger import Ledger  # lazy: import time, as above

            carry["ledger"] = Ledger(prev.ledger.store, cfg.pools, cfg.budget_specs)
    router = _make_router(config, factory, cfg, **carry)
    cur = current.settings
    same_cache = (settings.cache, settings.cache_redis_url) == (cur.cache, cur.cache_redis_url)
    return create_app(router, settings, spendlog=current.spend, responses=current.responses,
                      cache=current.cache if same_cache else None, metrics=current.metrics)


def reloading_app(app: Any, config: str | None, factory: str | None, host: str, *, announce: bool = True) -> Any:
    """`app` served by `quotaroute serve`: reloads `config` on SIGHUP (router.server.reload)."""
    from router.server.reload import Reloading  # lazy: import time, as above

    return Reloading(app, lambda current: rebuild_app(config, factory, host, current, quiet=not announce),
                     announce=announce)


def _memory_ledger(cfg: Any) -> bool:
    """Would the proxy's Router use an in-memory ledger (per-process state)?"""
    from router.config import PROXY_DEFAULT_STORE, default_store, effective_store  # lazy: import time, as above

    return effective_store(cfg, default_store=default_store(fallback=PROXY_DEFAULT_STORE)) == "memory"


def _worker_app() -> Any:
    """uvicorn factory for --workers > 1 (each worker builds its own Router)."""
    a = json.loads(os.environ[_ENV])
    try:
        app = build_app(a["config"], a["factory"], tune_gc=True)
    except ConfigError as e:
        print(f"quotaroute serve: config error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None  # the parent stops (the same error would end every restart)
    return reloading_app(app, a["config"], a["factory"], a["host"], announce=False)  # the supervisor announces


def default_workers(cfg: Any, factory: str | None, cpus: int | None = None) -> tuple[int, str]:
    """(workers, why) when `--workers` is not given: one per core (at most 4) when the
    ledger is shared between processes, else 1 (an in-memory ledger cannot be shared)."""
    if factory:
        return 1, "a router factory is in use"
    if _memory_ledger(cfg):
        return 1, "the ledger is in memory (per process); use SQLite or Redis to run several workers"
    n = max(1, min(4, cpus or os.cpu_count() or 1))
    return n, f"{n} worker{'s' if n > 1 else ''}: one per core (at most 4), sharing the ledger"


def run(args: argparse.Namespace) -> int:
    from router.server.settings import is_loopback  # lazy: import time, as above

    if args.new_key:
        from router.server.auth import hash_key, new_key  # lazy: import time, as above

        k = new_key()
        print(f"key (give it to the client, it is not stored): {k}")
        print("config entry (server.keys):")
        print(f"  - id: {args.new_key}\n    hash: \"{hash_key(k)}\"")
        return 0
    from router.config import find_config  # lazy: import time, as above
    from router.server import transport

    from router.server.reload import catch_early  # lazy: import time, as above

    catch_early()  # a SIGHUP while starting is remembered (reloaded once up), not fatal
    config = find_config(args.config)
    try:  # every config mistake is reported here, as one line, before anything else is printed
        cfg, settings = load(config)
        limits = transport.Limits.of(settings)
    except ConfigError as e:
        print(f"quotaroute serve: config error: {e}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = args.port or settings.port
    if settings.keys.open_access and not is_loopback(host):
        print(f"quotaroute serve: refusing to listen on {host}: no proxy keys are configured, so anyone who can "
              "reach this address could spend your vendor quota. Add server.keys / server.admin_key to the config "
              "(`quotaroute serve --new-key ID` prints one) or bind to 127.0.0.1.", file=sys.stderr)
        return 2
    why = ""
    if args.workers is None:
        args.workers, why = default_workers(cfg, args.router_factory)
        why = f"; {why} (--workers to choose)" if not args.router_factory else ""
    app: Any = None
    try:  # build (or, for workers, trial-build) before binding: a config mistake never half-starts a server
        if args.workers > 1:
            check_config(cfg, args.router_factory)
        else:
            app = reloading_app(build_app(config, args.router_factory, settings, cfg, tune_gc=True), config,
                                args.router_factory, host)
    except ConfigError as e:
        print(f"quotaroute serve: config error: {e}", file=sys.stderr)
        return 2
    try:
        sock = transport.bind_socket(host, port)
    except OSError as e:
        why = (os.strerror(e.errno) if e.errno else str(e)).lower()
        hint = " (another process holds it; pick another with --port)" if e.errno == errno.EADDRINUSE else ""
        print(f"quotaroute serve: cannot listen on {host}:{port}: {why}{hint}", file=sys.stderr)
        return 1
    try:
        if args.workers > 1:
            if _memory_ledger(cfg):
                print("quotaroute serve: warning: with --workers > 1 and the in-memory ledger, each worker counts "
                      "free quota, budgets and key rate limits on its own; set `ledger: {store: sqlite}` (or redis) "
                      "to share them.", file=sys.stderr)
            os.environ[_ENV] = json.dumps({"config": config, "factory": args.router_factory, "host": host})
            app = "router.server.cli:_worker_app"
        port = sock.getsockname()[1]
        note = " (no proxy keys configured: loopback only, no auth)" if settings.keys.open_access else ""
        ucfg = transport.server_config(
            app, limits, host=host, port=port, log_level=args.log_level, access_log=False,
            server_header=False, proxy_headers=False, lifespan="on", timeout_graceful_shutdown=args.graceful_timeout,
            loop="auto", factory=args.workers > 1, workers=args.workers)

        def announce() -> None:  # once the socket is bound and the app (every worker) has started
            print(f"quotaroute proxy listening on http://{host}:{port}{note}{why}", file=sys.stderr, flush=True)

        def validate() -> list[str]:  # the supervisor's check before it forwards SIGHUP to the workers
            cfg2, _, notes = check_reload(config, args.router_factory, host, settings)
            check_config(cfg2, args.router_factory)
            return notes

        return transport.serve(ucfg, sock, announce, validate)
    finally:
        sock.close()
