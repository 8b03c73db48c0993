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
(never the token itself): a verified key for the life of the process (at most
one entry per configured key), a miss for a minute in a bounded LRU. When any
configured hash is scrypt, `alookup()` runs the check in a small thread pool so
the event loop keeps serving, and concurrent checks of one token share one run.
`AttemptLimiter` bounds the unverified tokens one client address may try.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["ProxyKey", "KeyStore", "hash_key", "verify_hash", "new_key", "key_hint", "AttemptLimiter"]

_SCRYPT_DEFAULT = (2**14, 8, 1)
_MISS_TTL_S = 60.0  # a token that failed is not re-hashed for this long
_MISS_CACHE = 4096  # failed tokens remembered (LRU)
_POOL: ThreadPoolExecutor | None = None  # key checks, shared by the process (scrypt releases the GIL)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="quotaroute-keycheck")
    return _POOL


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


def key_hint(token: str) -> str:
    """8 hex characters of the token's SHA-256: stored beside a runtime key's scrypt hash
    so a presented token is checked against one row, not every key (32 of 192+ bits)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


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
    tpm: int | None = None  # tokens per minute (input + output, counted after each answer)
    expires_at: float | None = None  # unix time after which the key is refused (None = never)
    runtime: bool = False  # created through the admin API (router.server.keydb), not the config file
    hint: str = field(default="", repr=False)  # runtime keys: public digest prefix that narrows the hash check

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    def allows_model(self, model: str) -> bool:
        if self.models is None:
            return True
        return any(m == model or fnmatch.fnmatchcase(model, m) for m in self.models)



class AttemptLimiter:
    """Unverified key attempts per client address in a sliding minute (IPv6: per /64).

    `take(addr)` before checking a token that is not known good (0.0 = go ahead, else
    seconds to wait); `refund(addr)` when it turned out valid. Remembers at most
    `max_addresses` addresses (least recently seen dropped first)."""

    def __init__(self, per_minute: int | None = 20, *, max_addresses: int = 10000) -> None:
        self.per_minute = per_minute or 0
        self.max_addresses = max_addresses
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _bucket(addr: str) -> str:
        if ":" not in addr:
            return addr
        try:
            return str(ipaddress.ip_network(addr + "/64", strict=False))
        except ValueError:
            return addr

    def take(self, addr: str | None, now: float | None = None) -> float:
        if not self.per_minute:
            return 0.0
        now = time.monotonic() if now is None else now
        b = self._bucket(addr or "-")
        hits = self._hits.get(b)
        if hits is None:
            hits = self._hits[b] = deque()
            if len(self._hits) > self.max_addresses:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(b)
        while hits and hits[0] <= now - 60.0:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return max(1.0, hits[0] + 60.0 - now)
        hits.append(now)
        return 0.0

    def refund(self, addr: str | None) -> None:
        hits = self._hits.get(self._bucket(addr or "-"))
        if hits:
            hits.pop()


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
        self._all = ([admin] if admin else []) + self.keys
        self.runtime: dict[str, ProxyKey] = {}  # id -> key created at run time (router.server.keydb)
        self._by_hint: dict[str, list[ProxyKey]] = {}
        self.slow = any(k.hash.startswith("scrypt$") for k in self._all)
        self._cache: dict[bytes, ProxyKey] = {}  # verified: at most one entry per configured key
        self._misses: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry (monotonic)
        self._pending: dict[bytes, asyncio.Future[ProxyKey | None]] = {}
        self.generation = 0  # bumped by set_runtime: a check started before it is not cached

    @property
    def open_access(self) -> bool:
        return not self.keys and self.admin is None and not self.runtime

    def get(self, key_id: str) -> ProxyKey | None:
        """A configured or runtime key by id."""
        return self.runtime.get(key_id) or next((k for k in self.keys if k.id == key_id), None)

    def set_runtime(self, keys: list[ProxyKey]) -> None:
        """Replace the keys created at run time (a config-file id always wins). Verified
        tokens stay cached only while their key is unchanged; recent misses are forgotten,
        so a key created a moment ago is found on its first use."""
        config_ids = {k.id for k in self._all}
        new = {k.id: k for k in keys if k.id not in config_ids}
        by_hint: dict[str, list[ProxyKey]] = {}
        for k in new.values():
            by_hint.setdefault(k.hint, []).append(k)
        self.runtime, self._by_hint = new, by_hint
        if new and any(k.hash.startswith("scrypt$") for k in new.values()):
            self.slow = True
        cache: dict[bytes, ProxyKey] = {}
        for d, k in self._cache.items():
            if not k.runtime:
                cache[d] = k
            else:
                cur = new.get(k.id)
                if cur is not None and cur.hash == k.hash:
                    cache[d] = cur
        self._cache = cache
        self._misses.clear()
        self.generation += 1

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.blake2b(token.encode(), digest_size=32).digest()

    def cached(self, token: str) -> ProxyKey | None | bool:
        """The verified key for `token`, None for a recent miss, False when unknown (needs a check)."""
        d = self.digest(token)
        hit = self._cache.get(d)
        if hit is not None:
            return hit
        exp = self._misses.get(d)
        if exp is not None:
            if exp > time.monotonic():
                return None
            del self._misses[d]
        return False

    def pending(self, token: str) -> bool:
        """A check of this token is running (`alookup`): a caller joining it tries nothing new."""
        return bool(self._pending) and self.digest(token) in self._pending

    def _verify(self, token: str) -> ProxyKey | None:
        found: ProxyKey | None = None
        # Check every key (no early exit) so timing does not reveal which one matched.
        for k in self._all:
            if verify_hash(token, k.hash) and found is None:
                found = k
        if found is None and self._by_hint:
            for k in self._by_hint.get(key_hint(token), ()):
                if verify_hash(token, k.hash) and found is None:
                    found = k
        return found

    def _remember(self, d: bytes, found: ProxyKey | None) -> None:
        if found is not None:
            self._cache[d] = found
            return
        self._misses[d] = time.monotonic() + _MISS_TTL_S
        self._misses.move_to_end(d)
        if len(self._misses) > _MISS_CACHE:
            self._misses.popitem(last=False)

    def lookup(self, token: str) -> ProxyKey | None:
        """The key (or the admin key) matching `token`, else None. Verifies on the calling
        thread: in the server use `alookup`."""
        if not token:
            return None
        hit = self.cached(token)
        if hit is not False:
            return hit  # type: ignore[return-value]
        found = self._verify(token)
        self._remember(self.digest(token), found)
        return found

    async def alookup(self, token: str) -> ProxyKey | None:
        """`lookup` without blocking the event loop: scrypt checks run in a thread, and
        concurrent checks of one token share one run."""
        if not token:
            return None
        hit = self.cached(token)
        if hit is not False:
            return hit  # type: ignore[return-value]
        if not self.slow:
            return self.lookup(token)
        d = self.digest(token)
        fut = self._pending.get(d)
        if fut is None:
            fut = self._pending[d] = asyncio.get_running_loop().run_in_executor(_pool(), self._verify, token)
            gen = self.generation
            fut.add_done_callback(lambda f: self._settle(d, f, gen))
        return await asyncio.shield(fut)  # one caller going away does not cancel the others' check

    def _settle(self, d: bytes, f: asyncio.Future[ProxyKey | None], gen: int = 0) -> None:
        self._pending.pop(d, None)
        if not f.cancelled() and f.exception() is None and gen == self.generation:
            self._remember(d, f.result())
