"""The response cache: exact-match answers keyed on the normalized request.

    key = request_key(req, owner="team-a")          # sha256 of a canonical JSON encoding
    store = MemoryCache(ttl_s=3600) | SqliteCache(path, ...) | RedisCache(url, ...)
    await store.put(key, entry_bytes); await store.get(key)

Stores hold opaque bytes (`router.cache.entry` encodes a `ChatResponse` with the model
that answered); the proxy's use of them (opt-out, scoping, replay as a stream) is in
router/server/cache.py. docs/cache.md describes the whole feature.
"""

from router.cache.entry import CachedAnswer, decode, encode, replay_events
from router.cache.key import request_key
from router.cache.memory import MemoryCache
from router.cache.redis import RedisCache
from router.cache.sqlite import SqliteCache
from router.cache.store import CacheStore

__all__ = ["CacheStore", "CachedAnswer", "MemoryCache", "RedisCache", "SqliteCache", "decode", "encode",
           "replay_events", "request_key"]
