"""One YAML config file, found once, validated once, built once.

    paths.py    home() and find_config(): where the file is
    schema.py   the pydantic models of the whole file (strict)
    load.py     load_config() / parse_config(): read, validate, name file:line: key on errors
    build.py    providers, policy, rules, ledger, Router kwargs and proxy settings from it

Layering: explicit argument > config file > environment. API keys are given by
environment-variable NAME only (`api_key_env`), never inline. Reference:
docs/config.md.
"""

from __future__ import annotations

from router.config.build import (
    build_ledger,
    build_policy,
    build_providers,
    build_router_kwargs,
    build_rules,
    default_store,
    effective_store,
)
from router.config.load import load_config, parse_config
from router.config.paths import find_config, home
from router.config.schema import QuotarouteConfig

__all__ = [
    "QuotarouteConfig",
    "home",
    "find_config",
    "load_config",
    "parse_config",
    "build_providers",
    "build_policy",
    "build_rules",
    "build_ledger",
    "build_router_kwargs",
    "default_store",
    "effective_store",
]
