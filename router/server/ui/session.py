"""Dashboard sessions: who may look at /ui.

A browser cannot send `Authorization: Bearer` when it navigates, so the dashboard
logs in once with a form: `POST /ui/login` with the admin key in the body (never in
a URL) is checked by the key gate exactly like an API call (same hashing, same
per-address limit on wrong keys), and answers a session cookie:

* the cookie holds a random 256-bit token (`secrets.token_urlsafe(32)`), nothing else;
* the server keeps the session as a counter in the key gate's store (the router's
  quota ledger store: memory, SQLite or Redis), under a keyed BLAKE2b digest of the
  token, whose value is the session's end time in ms. Every worker and replica that
  shares the ledger sees the same sessions; the store never holds a usable token;
* the digest is keyed with the configured admin key hash, so changing
  `server.admin_key` ends every session;
* sessions last `SESSION_TTL_S` (8 hours), then the login form is shown again;
  `POST /ui/logout` ends one at once;
* the cookie is `HttpOnly; SameSite=Strict; Path=/ui`, and `Secure` unless the page
  is reached on a loopback host over plain HTTP (a browser keeps no Secure cookie there).

CSRF: the only state-changing requests are the two POSTs; both refuse a request whose
`Origin` (or `Sec-Fetch-Site`) says it came from another site, and the cookie is
SameSite=Strict, so another site can neither post with it nor read the pages.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from router.quota.store import Check
from router.server.settings import is_loopback

__all__ = ["Sessions", "COOKIE", "SESSION_TTL_S", "same_origin", "cookie_token", "host_of"]

COOKIE = "quotaroute_ui"
SESSION_TTL_S = 8 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def host_of(scope: dict[str, Any]) -> str:
    """The Host header's host name (no port, no IPv6 brackets), lower-case."""
    host = (_header(scope, b"host") or "").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def secure_cookie(scope: dict[str, Any]) -> bool:
    """Secure unless a loopback host is reached over plain HTTP."""
    return scope.get("scheme") == "https" or not is_loopback(host_of(scope))


def same_origin(scope: dict[str, Any]) -> bool:
    """False when the browser says the request came from another site (`Sec-Fetch-Site`)
    or names another origin (`Origin`; compared by host and port with `Host`). A request
    without either header (not a browser) passes: the key or the session still decides."""
    site = _header(scope, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    return bool(netloc) and netloc == (_header(scope, b"host") or "").strip().lower()


def cookie_token(scope: dict[str, Any]) -> str | None:
    """The session token the browser sent (None when absent or malformed)."""
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and _TOKEN.fullmatch(value):
            return value
    return None


class Sessions:
    """Sessions kept in a ledger `Store` (see the module doc). `admin_hash` is the
    configured admin key hash (the digest key); `clock` returns unix seconds."""

    def __init__(self, store: Any, admin_hash: str, *, ttl_s: int = SESSION_TTL_S, clock: Any = time.time) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._key = hashlib.sha256(("quotaroute-ui|" + admin_hash).encode()).digest()

    def _id(self, token: str) -> str:
        return "ui|" + hashlib.blake2b(token.encode(), key=self._key, digest_size=20).hexdigest()

    async def create(self) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        end = now + self.ttl_s
        await self.store.raise_to(self._id(token), int(end * 1000), end, now)
        return token

    async def valid(self, token: str | None) -> bool:
        if token is None:
            return False
        now = self.clock()
        (end_ms,) = await self.store.read([self._id(token)], now)
        return end_ms > now * 1000

    async def end(self, token: str | None) -> None:
        if token is None:
            return
        sid, now = self._id(token), self.clock()
        (end_ms,) = await self.store.read([sid], now)
        if end_ms > 0:  # counters only grow or expire: take the value back to zero
            await self.store.take([Check((sid,), sid, -end_ms, None, now + self.ttl_s)], now)

    def cookie(self, token: str, scope: dict[str, Any]) -> bytes:
        return _cookie(token, self.ttl_s, scope)

    @staticmethod
    def clear_cookie(scope: dict[str, Any]) -> bytes:
        return _cookie("", 0, scope)


def _cookie(value: str, max_age: int, scope: dict[str, Any]) -> bytes:
    c = f"{COOKIE}={value}; Max-Age={max_age}; Path=/ui; HttpOnly; SameSite=Strict"
    if secure_cookie(scope):
        c += "; Secure"
    return c.encode("ascii")
