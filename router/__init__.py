"""quotaroute: route each LLM request to the model that fits, at the lowest cost.

Public names load lazily (PEP 562) so `import router` stays cheap and does nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Router",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Usage",
    "RoutedResponse",
    "RouteInfo",
    "errors",
]

_LAZY = {
    "Router": "router.sdk",
    "ChatRequest": "router.types",
    "ChatResponse": "router.types",
    "Message": "router.types",
    "Usage": "router.types",
    "RoutedResponse": "router.result",
    "RouteInfo": "router.result",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("router.errors")
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'router' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
