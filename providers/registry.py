"""Build a provider by vendor or adapter kind. Adapters are imported lazily, by path,
on first use (nothing heavy happens at import).

    build_provider("deepseek", api_key="sk-...")                  # an OpenAI-compatible row
    build_provider("azure", api_key=k, base_url="https://r.openai.azure.com",
                   deployment="gpt4o-prod", api_version="2024-10-21")
    build_provider("anthropic", api_key=k)                        # providers.anthropic:AnthropicProvider
    build_provider("gemini", ...) / build_provider("bedrock", ...)

Key resolution: explicit `api_key` > the row's env var (e.g. DEEPSEEK_API_KEY). A
vendor that needs a key and has none raises `ConfigError(key=<env var>)`.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from providers.vendors import VENDORS, VendorRow, get_vendor
from router.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from providers.base import Provider

__all__ = ["build_provider", "list_vendors", "NATIVE", "VENDORS"]

# Native (non-OpenAI wire format) adapters: kind -> (import path, key env var)
NATIVE: dict[str, tuple[str, str | None]] = {
    "anthropic": ("providers.anthropic:AnthropicProvider", "ANTHROPIC_API_KEY"),
    "gemini": ("providers.gemini:GeminiProvider", "GEMINI_API_KEY"),
    "google": ("providers.gemini:GeminiProvider", "GEMINI_API_KEY"),
    "bedrock": ("providers.bedrock:BedrockProvider", None),  # AWS credentials, resolved by the adapter
}


def _load(path: str) -> Any:
    mod, _, attr = path.partition(":")
    return getattr(importlib.import_module(mod), attr)


def list_vendors() -> list[VendorRow]:
    """Every OpenAI-compatible row, sorted by name."""
    return [VENDORS[k] for k in sorted(VENDORS)]


def build_provider(kind_or_vendor: str, *, api_key: str | None = None, base_url: str | None = None,
                   client: httpx.AsyncClient | None = None, name: str | None = None, retry: Any = None,
                   **options: Any) -> Provider:
    key = kind_or_vendor.strip().lower()
    kw: dict[str, Any] = {k: v for k, v in (("base_url", base_url), ("client", client), ("name", name),
                                              ("retry", retry)) if v is not None}
    if key in NATIVE:
        path, env = NATIVE[key]
        if api_key is None and env:
            api_key = os.environ.get(env) or None
        if api_key is not None:
            kw["api_key"] = api_key
        return _load(path)(**kw, **options)  # type: ignore[no-any-return]
    try:
        row = get_vendor(key)
    except KeyError as e:
        raise ConfigError(str(e.args[0]), key="provider") from None
    if api_key is None:
        api_key = os.environ.get(row.env_var) or None
    if api_key is None and row.key_required:
        raise ConfigError(f"no API key for {row.title}: pass api_key or set {row.env_var}", key=row.env_var)
    from providers.openai import OpenAIProvider  # lazy: import time (httpx) until an OpenAI-compatible adapter is built

    return OpenAIProvider(api_key=api_key, vendor=row, **kw, **options)
