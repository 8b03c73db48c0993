"""What a response-cache store is: bytes in, bytes out, with a time to live."""

from __future__ import annotations

from typing import Protocol

__all__ = ["CacheStore"]


class CacheStore(Protocol):
    """An exact-match store of opaque values. `get` answers None for a missing or
    expired key; `put` replaces; both may raise (the proxy treats a failing store as a
    miss and never fails a request because of it)."""

    ttl_s: float

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def aclose(self) -> None: ...
