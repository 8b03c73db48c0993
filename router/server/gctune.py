"""Garbage-collector settings for a long-running proxy worker.

Python's default thresholds (700, 10, 10) run a full collection about once a second
under streaming load; each walks every live per-stream object (they live for the
whole answer, seconds) and frees nothing, while every open stream waits. Once the
app is built and warmed up, `tune()` moves the startup heap (modules, catalog,
config, compiled patterns) to the permanent generation (`gc.freeze()`) so no
collection walks it again, and raises the thresholds so young collections are rarer
and full ones much rarer. Reference counting still frees almost everything at once;
the collector only finds cycles. Settings: `server.limits.gc_freeze` and
`gc_thresholds` (docs/proxy.md "Limits").
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

__all__ = ["tune", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS: tuple[int, int, int] = (50_000, 20, 100)


def tune(*, freeze: bool = True, thresholds: Sequence[int] | None = DEFAULT_THRESHOLDS) -> dict[str, object]:
    """Apply the settings to this process; returns what was done (for the start-up log)."""
    done: dict[str, object] = {}
    if thresholds:
        gc.set_threshold(*thresholds)
        done["thresholds"] = tuple(thresholds)
    if freeze:
        gc.collect()
        gc.freeze()
        done["frozen_objects"] = gc.get_freeze_count()
    return done
