"""Choose and build a ledger store from a URL: `build_store("redis://...")`.

The interface lives in `router.quota.store`; this module sits above it and above the
three stores that implement it (memory, SQLite, Redis), so the interface never
imports its implementations.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from router.quota.memory_store import MemoryStore
from router.quota.redis_store import RedisStore
from router.quota.sqlite_store import SQLiteStore
from router.quota.store import Store

__all__ = ["build_store"]

_REDIS_OPTS = {"on_redis_error": str, "expected_replicas": int, "prefix": str, "transport": str,
               "retry_after_s": float, "socket_timeout_s": float}
_SQLITE_OPTS = {"synchronous": str, "mode": str, "busy_timeout_s": float}


def _split_options(url: str, known: dict[str, type]) -> tuple[str, dict[str, object]]:
    """Take our own options out of a URL's query string (`?on_redis_error=local_fallback`)."""
    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    opts: dict[str, object] = {}
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in known:
            try:
                opts[k] = known[k](v)
            except ValueError:
                raise ValueError(f"ledger store option {k}={v!r} is not a valid {known[k].__name__}") from None
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), opts


def build_store(url: str | None = None, **options: object) -> Store:
    """`memory://`, `sqlite:///path/ledger.sqlite` (or a bare path), `redis://host:port/db`.

    Store options may also ride on the URL's query string, e.g.
    `redis://10.0.0.5:6379/0?on_redis_error=local_fallback&expected_replicas=3` or
    `sqlite:///var/lib/quotaroute/ledger.sqlite?synchronous=FULL`; keyword options win.
    """
    if not url or url == "memory://":
        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        url, opts = _split_options(url, _REDIS_OPTS)
        return RedisStore(url, **{**opts, **options})  # type: ignore[arg-type]
    opts: dict[str, object] = {}
    if url.startswith("sqlite:///"):
        path, _, query = url[len("sqlite:///") :].partition("?")
        if query:
            _, opts = _split_options("x://h/?" + query, _SQLITE_OPTS)
        url = path
    return SQLiteStore(url, **{**opts, **options})  # type: ignore[arg-type]
