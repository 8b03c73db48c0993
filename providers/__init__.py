"""Adapters that wrap LLM vendor APIs behind one normalized interface.

Nothing is imported eagerly beyond the protocol: adapters load on first use.
"""

from providers.base import Provider

__all__ = ["Provider"]
