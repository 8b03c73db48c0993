"""Shared set-up of the end-to-end splice tests (OpenAI and Anthropic wires)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from providers import _splice


def fault_env(monkeypatch: Any, tmp_path: Path) -> None:
    """The fault upstream's key in the environment and a home of the test's own."""
    monkeypatch.setenv("FAULT_UPSTREAM_KEY", "sk-fault-upstream-key-0123456789")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_DEFAULT_STORE", raising=False)
    monkeypatch.delenv("QUOTAROUTE_LEDGER_URL", raising=False)


def count_feeds(monkeypatch: Any) -> list[int]:
    """A one-item list counting reads a splice handed to the client."""
    n = [0]
    orig = _splice.Tap.feed

    def feed(self: Any, data: bytes) -> None:
        n[0] += 1
        orig(self, data)

    monkeypatch.setattr(_splice.Tap, "feed", feed)
    return n
