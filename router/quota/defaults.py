"""Catalog default free tiers (router/quota/data/free_tiers.yaml): the raw rows, read once.

Parsing them into `PoolSpec`s is `router.quota.spec.default_pools()`; this module
only reads the shipped data, so the schema can use it without a circle."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["default_pool_rows", "DEFAULTS_FILE"]

DEFAULTS_FILE = "router/quota/data/free_tiers.yaml"


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, Any], ...]:
    text = resources.files("router.quota").joinpath("data/free_tiers.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return tuple(data.get("quotas") or ())


def default_pool_rows() -> list[dict[str, Any]]:
    """The raw default rows (copies), keyed by `id`, for key-wise config overrides."""
    return [dict(r) for r in _rows()]

