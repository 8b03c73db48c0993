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

import importlib
from typing import Any

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
    "build_cascades",
    "build_ledger",
    "build_router_kwargs",
    "build_server_settings",
    "provider_specs",
    "default_store",
    "effective_store",
    "SDK_DEFAULT_STORE",
    "PROXY_DEFAULT_STORE",
]


# Names load on first use (PEP 562): `import router.config.paths` (which runs this file
# first) must not pull in the builders, which sit above the schema and import the server.
_WHERE = {
    "PROXY_DEFAULT_STORE": "build",
    "SDK_DEFAULT_STORE": "build",
    "build_catalog": "build",
    "build_ledger": "build",
    "build_policy": "build",
    "build_providers": "build",
    "build_router_kwargs": "build",
    "build_rules": "build",
    "build_cascades": "build",
    "build_server_settings": "build",
    "default_store": "build",
    "effective_store": "build",
    "provider_specs": "build",
    "MAX_CONFIG_BYTES": "load",
    "load_config": "load",
    "parse_config": "load",
    "read_yaml": "load",
    "find_config": "paths",
    "home": "paths",
    "QuotarouteConfig": "schema",
    "ServerCfg": "schema",
    "ServerLimits": "schema",
}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'router.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"router.config.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
