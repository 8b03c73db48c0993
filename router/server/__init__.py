"""The ASGI proxy (`quotaroute serve`): OpenAI- and Anthropic-compatible endpoints,
proxy keys, spend log, Prometheus metrics. Names load lazily: importing this
package does nothing (no uvicorn, no prometheus_client, no I/O)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app", "ProxyApp", "ServerSettings", "aiohttp_client"]

_LAZY = {
    "create_app": "router.server.app",
    "ProxyApp": "router.server.app",
    "ServerSettings": "router.server.settings",
    "aiohttp_client": "router.server.aiohttp_transport",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'router.server' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)


def __dir__() -> list[str]:
    return sorted(__all__)
