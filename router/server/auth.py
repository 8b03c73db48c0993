"""Proxy API keys: hashed at rest, compared in constant time, each with its own
budget, allowed models and rate limit.

A key is configured by its *hash*, never in clear text:

    server:
      admin_key: "sha256$<salt>$<hex>"          # may read /v1/quota and /v1/spend
      keys:
        - id: team-a
          hash: "sha256$<salt>$<hex>"           # or "scrypt$<n>$<r>$<p>$<salt>$<hex>"
          budget_usd: 5.00                       # per `budget_period` (day|month|total)
          models: ["auto", "auto:cheap", "openai:*"]   # allowed targets; omit = all
          rpm: 600                               # requests per minute; omit = unlimited
          user: alice                            # optional: pins the `user` scope of this key's requests
          tags: [team-a]                         # optional: pins their tags

`quotaroute serve --new-key ID` prints a fresh random key and its hash line.
Verification results are cached under a BLAKE2b digest of the presented token
(never the token itself), so scrypt costs once per key per process.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["ProxyKey", "KeyStore", "hash_key", "verify_hash", "new_key", "RateWindow"]

_SCRYPT_DEFAULT = (2**14, 8, 1)


def hash_key(key: str, *, scheme: str = "sha256", salt: str | None = None) -> str:
    """Hash a proxy key for the config file."""
    salt = salt or secrets.token_hex(16)
    if scheme == "sha256":
        return f"sha256${salt}${hashlib.sha256((salt + key).encode()).hexdigest()}"
    if scheme == "scrypt":
        n, r, p = _SCRYPT_DEFAULT
        dk = hashlib.scrypt(key.encode(), salt=salt.encode(), n=n, r=r, p=p, dklen=32)
        return f"scrypt${n}${r}${p}${salt}${dk.hex()}"
    raise ValueError(f"unknown key hash scheme {scheme!r} (sha256 or scrypt)")


def verify_hash(key: str, stored: str) -> bool:
    """Constant-time check of a presented key against a stored hash."""
    parts = stored.split("$")
    try:
        if parts[0] == "sha256" and len(parts) == 3:
            got = hashlib.sha256((parts[1] + key).encode()).hexdigest()
            return hmac.compare_digest(got, parts[2])
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            dk = hashlib.scrypt(key.encode(), salt=parts[4].encode(), n=n, r=r, p=p, dklen=len(parts[5]) // 2)
            return hmac.compare_digest(dk.hex(), parts[5])
    except (ValueError, OverflowError):
        return False
    return False


def new_key(prefix: str = "qr-") -> str:
    return prefix + secrets.token_urlsafe(24)


class RateWindow:
    """Sliding one-minute request counter (per key, in memory, per worker)."""

    __slots__ = ("rpm", "_hits")

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._hits: deque[float] = deque()

    def allow(self, now: float) -> tuple[bool, float]:
        """(allowed, retry_after_seconds)."""
        hits = self._hits
        cutoff = now - 60.0
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) >= self.rpm:
            return False, max(0.0, hits[0] + 60.0 - now)
        hits.append(now)
        return True, 0.0


@dataclass
class ProxyKey:
    id: str
    hash: str = field(repr=False)
    budget_usd: Decimal | None = None
    budget_period: str = "month"  # day | month | total
    models: tuple[str, ...] | None = None  # glob patterns; None = any
    rpm: int | None = None
    admin: bool = False
    user: str | None = None  # pins the `user` scope of this key's requests (instead of the client's field)
    tags: tuple[str, ...] | None = None  # pins their tags (instead of the x-quotaroute-tags header)
    _window: RateWindow | None = field(default=None, repr=False, compare=False)

    def allows_model(self, model: str) -> bool:
        if self.models is None:
            return True
        return any(m == model or fnmatch.fnmatchcase(model, m) for m in self.models)

    def take_rate(self, now: float | None = None) -> tuple[bool, float]:
        if not self.rpm:
            return True, 0.0
        if self._window is None:
            self._window = RateWindow(self.rpm)
        return self._window.allow(time.monotonic() if now is None else now)


class KeyStore:
    """Looks up the key a request presents. `open_access` = no key configured
    (the server then refuses to bind anywhere but loopback)."""

    def __init__(self, keys: list[ProxyKey], admin: ProxyKey | None = None) -> None:
        self.keys = list(keys)
        self.admin = admin
        ids = [k.id for k in self.keys]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate proxy key id(s): {sorted(dup)}")
        self._cache: dict[bytes, ProxyKey | None] = {}

    @property
    def open_access(self) -> bool:
        return not self.keys and self.admin is None

    def lookup(self, token: str) -> ProxyKey | None:
        """The key (or the admin key) matching `token`, else None."""
        if not token:
            return None
        digest = hashlib.blake2b(token.encode(), digest_size=32).digest()
        hit = self._cache.get(digest, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        found: ProxyKey | None = None
        # Check every key (no early exit) so timing does not reveal which one matched.
        for k in ([self.admin] if self.admin else []) + self.keys:
            if verify_hash(token, k.hash) and found is None:
                found = k
        if len(self._cache) > 4096:  # bounded: misses from scanners must not grow memory
            self._cache.clear()
        self._cache[digest] = found
        return found
