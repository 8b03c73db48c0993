"""In-process response cache: a bounded LRU with a time to live (one per worker)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MemoryCache"]


class MemoryCache:
    """At most `max_entries` values and `max_bytes` bytes; the least recently used go
    first, an expired value is dropped when read. `clock` (unix seconds) is injectable."""

    def __init__(self, *, ttl_s: float = 3600.0, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.max_entries, self.max_bytes = ttl_s, max_entries, max_bytes
        self._clock = clock
        self._d: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._d)

    async def get(self, key: str) -> bytes | None:
        got = self._d.get(key)
        if got is None:
            return None
        if got[0] <= self._clock():
            self._drop(key)
            return None
        self._d.move_to_end(key)
        return got[1]

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._d:
            self._drop(key)
        self._d[key] = (self._clock() + self.ttl_s, value)
        self.bytes += len(value)
        while len(self._d) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._d)))

    def _drop(self, key: str) -> None:
        _, v = self._d.pop(key)
        self.bytes -= len(v)

    async def aclose(self) -> None:
        self._d.clear()
        self.bytes = 0
