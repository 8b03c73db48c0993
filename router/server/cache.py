"""The response cache as the proxy uses it (the stores and the key are in router/cache/).

    pc = ProxyCache.from_config(cfg.cache, redis_url=...)     # built once by the app
    mode = pc.mode(scope, flag)          # "use" | "refresh" (no-cache: skip the read, write) | "bypass"
    k = pc.key(req, key, sc)             # sha256 of the normalized request + owner + pinned tags
    hit = await pc.get(k)                # CachedAnswer | None (a failing store is a miss, logged)
    body = pc.render(hit, req, shown, ...)   # the answer in the request's wire and mode (stream or not)
    if pc.cacheable(req, resp): await pc.put(k, model_id, provider, resp)

Opt-out per request: `Cache-Control: no-store` (neither read nor write) or `no-cache`
(skip the read, store the fresh answer), or the body field `"cache": false` (the
openai SDK's `extra_body={"cache": False}`), which is taken out of the body before it
is parsed, so it never reaches a vendor. Only a finished answer (`stop`) is cached;
never an error, a truncated answer (`length`, `content_filter`) or, unless
`cache.tool_calls`, one that calls tools.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cache.entry import CachedAnswer, decode, encode, replay_events
from router.cache.key import request_key
from router.cache.memory import MemoryCache
from router.cache.redis import RedisCache
from router.cache.sqlite import SqliteCache
from router.cache.store import CacheStore
from router.config.paths import home
from router.errors import redact
from router.server import anthropic_wire as aw
from router.server import openai_wire as ow
from router.server.errors import Failure
from router.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from router.config.schema import CacheCfg
    from router.server.auth import ProxyKey
    from router.server.responses_store import ResponsesCall

__all__ = ["ProxyCache", "body_flag", "HIT", "MISS", "BYPASS"]

log = logging.getLogger("quotaroute.server")

HIT, MISS, BYPASS = (b"x-quotaroute-cache", b"hit"), (b"x-quotaroute-cache", b"miss"), (b"x-quotaroute-cache", b"bypass")


def body_flag(data: Any) -> bool | None:
    """Take the `cache` field out of a request body: True/False, or None when absent."""
    if not isinstance(data, dict) or "cache" not in data:
        return None
    v = data.pop("cache")
    if not isinstance(v, bool):
        raise Failure(400, "`cache` must be true or false.", param="cache")
    return v


def _cache_control(scope: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for k, v in scope["headers"]:
        if k == b"cache-control":
            out.update(t.strip().lower() for t in v.decode("latin-1").split(","))
    return out


class ProxyCache:
    """A store plus the proxy's rules: owner scoping, what may be cached, how a hit is sent."""

    def __init__(self, store: CacheStore, *, scope: str = "key", tool_calls: bool = False,
                 max_entry_bytes: int = 256 * 1024, clock: Callable[[], float] = time.time) -> None:
        self.store, self.scope, self.tool_calls = store, scope, tool_calls
        self.max_entry_bytes, self._clock = max_entry_bytes, clock
        self.errors = 0

    @classmethod
    def from_config(cls, cfg: CacheCfg, *, redis_url: str | None = None,
                    clock: Callable[[], float] = time.time) -> ProxyCache:
        """The cache `cache:` describes (the caller checked `enabled`). Redis: `cache.url`,
        else `redis_url` (the ledger's)."""
        store: CacheStore
        if cfg.store == "redis":
            url = cfg.url or redis_url
            if not url:
                raise ValueError("a redis cache needs `cache.url` (or a ledger on Redis to share its url)")
            store = RedisCache(url, ttl_s=cfg.ttl_s, prefix=cfg.prefix)
        elif cfg.store == "sqlite":
            path = Path(os.path.expanduser(cfg.path)) if cfg.path else home() / "cache.sqlite"
            store = SqliteCache(path, ttl_s=cfg.ttl_s, max_entries=cfg.max_entries, max_bytes=cfg.max_mb << 20,
                                clock=clock)
        else:
            store = MemoryCache(ttl_s=cfg.ttl_s, max_entries=cfg.max_entries, max_bytes=cfg.max_mb << 20, clock=clock)
        return cls(store, scope=cfg.scope, tool_calls=cfg.tool_calls, max_entry_bytes=cfg.max_entry_kb << 10,
                   clock=clock)

    # ------------------------------------------------------------ per request
    @staticmethod
    def mode(scope: Mapping[str, Any], flag: bool | None) -> str:
        """"bypass" (no-store, or `"cache": false`), "refresh" (no-cache) or "use"."""
        cc = _cache_control(scope) if flag is not False else set()
        if flag is False or "no-store" in cc:
            return "bypass"
        return "refresh" if "no-cache" in cc else "use"

    def key(self, req: ChatRequest, key: ProxyKey | None, sc: Mapping[str, Any]) -> str:
        owner = "*" if self.scope == "shared" else (key.id if key is not None else "-")
        return request_key(req, owner, sc.get("tags") or ())

    async def get(self, k: str) -> CachedAnswer | None:
        try:
            raw = await self.store.get(k)
        except Exception as e:  # noqa: BLE001 - the cache never fails a request
            self._failed("read", e)
            return None
        return decode(raw) if raw is not None else None

    def cacheable(self, req: ChatRequest, resp: ChatResponse) -> bool:
        """A finished answer (tool calls only with `cache.tool_calls`); never with logprobs asked."""
        if req.logprobs:
            return False
        if resp.tool_calls:
            return self.tool_calls and resp.finish_reason in ("tool_calls", "stop")
        return resp.finish_reason == "stop"

    async def put(self, k: str, model_id: str, provider: str, resp: ChatResponse) -> bool:
        raw = encode(model_id, provider, resp, self._clock())
        if len(raw) > self.max_entry_bytes:
            return False
        try:
            await self.store.put(k, raw)
        except Exception as e:  # noqa: BLE001
            self._failed("write", e)
            return False
        return True

    def _failed(self, what: str, e: BaseException) -> None:
        self.errors += 1
        log.warning("response cache %s failed: %s", what, redact(repr(e))[:300])

    @staticmethod
    def render(hit: CachedAnswer, req: ChatRequest, shown: str, *, anthropic: bool, wire: ResponsesCall | None,
               include_usage: bool) -> bytes:
        """The cached answer in the request's wire format; as SSE for a stream request."""
        resp = hit.response
        if not req.stream:
            return aw.messages_response(resp, shown) if anthropic else ow.chat_response(resp, shown) \
                if wire is None else wire.response(resp, shown)
        enc: Any = aw.EventEncoder(shown) if anthropic else ow.ChunkEncoder(shown, include_usage) \
            if wire is None else wire.encoder(shown)
        parts = [enc.start()]
        parts += [enc.event(ev) for ev in replay_events(resp)]
        enc.usage = resp.usage
        parts.append(enc.end())
        return b"".join(parts)

    async def aclose(self) -> None:
        await self.store.aclose()
