"""Catalog default free tiers (router/quota/data/free_tiers.yaml), loaded lazily."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["default_pool_rows", "default_pools", "DEFAULTS_FILE"]

DEFAULTS_FILE = "router/quota/data/free_tiers.yaml"


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, Any], ...]:
    import yaml

    text = resources.files("router.quota").joinpath("data/free_tiers.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return tuple(data.get("quotas") or ())


def default_pool_rows() -> list[dict[str, Any]]:
    """The raw default rows (copies), keyed by `id`, for key-wise config overrides."""
    return [dict(r) for r in _rows()]


def default_pools(*, include_disabled: bool = False) -> list[Any]:
    from router.quota.spec import PoolSpec, load_quota_config

    pools, _ = load_quota_config({"quotas": default_pool_rows()}, file=DEFAULTS_FILE, include_defaults=False,
                                 keep_disabled=True)
    return [p for p in pools if include_disabled or p.enabled]
