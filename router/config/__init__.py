"""One YAML config file, found once, validated once, built once.

    paths.py    home() and find_config(): where the file is
    schema.py   pydantic models of the whole file, `server:` included (strict)
    load.py     load_config() / parse_config(): read, check, validate; errors name file:line: key
    build.py    providers, policy, rules, ledger, Router kwargs and the proxy's settings

Layering: explicit argument > config file > environment. API keys are given by
environment-variable NAME only (`api_key_env`), never inline. Reference:
docs/config.md.
"""

from __future__ import annotations

from router.config.build import (
    PROXY_DEFAULT_STORE,
    SDK_DEFAULT_STORE,
    build_catalog,
    build_ledger,
    build_policy,
    build_providers,
    build_router_kwargs,
    build_rules,
    build_server_settings,
    default_store,
    effective_store,
    provider_specs,
)
from router.config.load import MAX_CONFIG_BYTES, load_config, parse_config, read_yaml
from router.config.paths import find_config, home
from router.config.schema import QuotarouteConfig, ServerCfg, ServerLimits

__all__ = [
    "QuotarouteConfig",
    "ServerCfg",
    "ServerLimits",
    "home",
    "find_config",
    "load_config",
    "parse_config",
    "read_yaml",
    "MAX_CONFIG_BYTES",
    "build_catalog",
    "build_providers",
    "build_policy",
    "build_rules",
    "build_ledger",
    "build_router_kwargs",
    "build_server_settings",
    "provider_specs",
    "default_store",
    "effective_store",
    "SDK_DEFAULT_STORE",
    "PROXY_DEFAULT_STORE",
]
