"""Response cache on Redis: shared by every worker and replica. Entries expire with
Redis' own TTL (`SET ... PX`); the size bound is Redis' (`maxmemory` with an LRU
eviction policy, see docs/cache.md). Speaks RESP through the ledger's client
(router.quota._resp), so it needs no extra package."""

from __future__ import annotations

from typing import Any

__all__ = ["RedisCache"]


class RedisCache:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, ttl_s: float = 3600.0,
                 prefix: str = "quotaroute:cache:", timeout_s: float = 1.0, client: Any = None) -> None:
        self.url, self.ttl_s, self.prefix, self.timeout_s = url, ttl_s, prefix, timeout_s
        self._r = client

    def _client(self) -> Any:
        if self._r is None:
            from router.quota._resp import RespClient  # lazy: nothing at import

            self._r = RespClient(self.url, timeout_s=self.timeout_s)
        return self._r

    async def get(self, key: str) -> bytes | None:
        v = await self._client().execute("GET", self.prefix + key)
        if v is None:
            return None
        return v if isinstance(v, bytes) else str(v).encode()

    async def put(self, key: str, value: bytes) -> None:
        # RESP strings travel as text: the entries are UTF-8 JSON
        await self._client().execute("SET", self.prefix + key, value.decode(), "PX", max(1, int(self.ttl_s * 1000)))

    async def ttl_ms(self, key: str) -> int:
        """Milliseconds the entry has left (-2: none, -1: no expiry)."""
        return int(await self._client().execute("PTTL", self.prefix + key))

    async def aclose(self) -> None:
        r, self._r = self._r, None
        if r is not None:
            close = getattr(r, "close", None)
            if close is not None:
                out = close()
                if hasattr(out, "__await__"):
                    await out
