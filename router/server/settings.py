"""The proxy's runtime settings, built once at start-up from the validated `server:`
section (`router.config.build_server_settings`; the schema and every key's meaning
are in router/config/schema.py and docs/config.md).

    server:
      host: 127.0.0.1
      port: 4000
      max_body_bytes: 4194304        # 413 above this
      spend_db: ~/.quotaroute/spend.sqlite   # default $QUOTAROUTE_HOME/spend.sqlite; "off" disables
      store: sqlite                  # or postgres: spend log + runtime keys shared by replicas
      dsn_env: QUOTAROUTE_DATABASE_URL   # store: postgres reads its DSN from this variable
      admin_key: "sha256$..$.."
      keys: [...]                    # see router/server/auth.py
      budget_period: month           # default period for per-key budgets
      reason_header_max: 200         # x-quotaroute-route-reason truncation
      response_model: vendor         # the body's `model`: vendor (gpt-5-nano) or qualified (openai:gpt-5-nano)
      limits: {...}                  # header/body timeouts, connection limit, ...
      responses: {db, ttl_s, max_items, max_mb}   # the Responses store (default $QUOTAROUTE_HOME/responses.sqlite)

    and, from the top-level `cache:` section, the response cache (docs/cache.md).

The top-level `tracing:` section rides along as `tracing` (router/server/tracing.py).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from router.config.paths import home
from router.config.schema import CacheCfg, ServerLimits, ServerResponses, TracingCfg
from router.server.auth import KeyStore

__all__ = ["ServerSettings", "LOOPBACK", "is_loopback"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (never 0.0.0.0 / ::, which listen everywhere)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = 4 * 1024 * 1024
    spend_db: str | None = ""  # "" = default path, None = disabled
    keys: KeyStore = field(default_factory=lambda: KeyStore([]))
    reason_header_max: int = 200
    # listed on /v1/models before the served models (every `router.policies.VIRTUAL_MODELS` name,
    # then the config's deployments names)
    virtual_models: tuple[str, ...] = ("auto", "auto:cheap", "auto:best", "auto:free", "auto:balanced",
                                       "auto:cheapest", "auto:cascade")
    qualified_model_ids: bool = False  # the response body's `model` is provider:model (server.response_model)
    budget_period: str = "month"  # default period of per-key budgets (day | month | total)
    limits: ServerLimits = field(default_factory=ServerLimits)
    responses: ServerResponses = field(default_factory=ServerResponses)  # the Responses store
    cache: CacheCfg = field(default_factory=CacheCfg)  # the response cache (`cache:`, docs/cache.md)
    cache_redis_url: str | None = None  # the ledger's Redis url (a redis cache without its own `url` uses it)
    store: str = "sqlite"  # sqlite | postgres (spend log and runtime keys)
    dsn_env: str = "QUOTAROUTE_DATABASE_URL"
    key_poll_s: float = 0.25
    tracing: TracingCfg = field(default_factory=TracingCfg)  # OpenTelemetry traces (off: nothing is imported)

    def dsn(self) -> str:
        """The PostgreSQL DSN (store: postgres), read from the variable named by `dsn_env`."""
        dsn = os.environ.get(self.dsn_env, "").strip()
        if not dsn:
            raise ValueError(f"server.store is postgres but the environment variable {self.dsn_env} "
                             "(server.dsn_env) is not set")
        return dsn

    def spend_db_path(self) -> Path | None:
        if self.spend_db is None:
            return None
        if self.spend_db == "":
            return home() / "spend.sqlite"
        return Path(os.path.expanduser(self.spend_db))

    def responses_db_path(self) -> Path | None:
        """The Responses store's file (None: the store is off)."""
        db = self.responses.db
        if db == "off":
            return None
        return Path(os.path.expanduser(db)) if db else home() / "responses.sqlite"
