"""The key gate: who is calling (`authenticate`), which models the key may use
(`check_key`), how often (`admit`) and how much (budgets, kept in the quota ledger,
shared by every worker and replica that uses the same store).

* **Budgets.** A proxy key with `budget_usd` becomes a hard ledger budget (scope
  `key`, matching exactly that key id, per the key's `budget_period`), registered on
  the router's ledger when the proxy starts. The executor reserves every attempt with
  scope `{"key": id}`, so a request is admitted only when its reservation fits what
  the key has left, across workers (SQLite) and replicas (one Redis): 25 concurrent
  requests on a key with room for 3 admit at most 3. A call may still cost more than
  it reserved (a longer answer), never because other calls ran beside it. At start-up
  the budget's spend is raised to what the spend log recorded this period (a memory
  ledger, or a ledger file that never saw the key).
* **Keys at run time.** With a `RuntimeKeys` (router.server.keydb) the gate loads the
  keys created through the admin API at start, polls for changes, and puts the budget
  of every new or changed key on the ledger the same way (`key:<id>`, seeded from the
  spend log). Their rpm goes through the same `Store.take()`.
* **Tokens per minute** (`tpm`): a request is admitted while the key's rolling minute
  holds fewer than `tpm` tokens; the tokens of each answer are added when it ends.
* **Requests per minute.** `KeyGate.admit(key)` takes one request from the key's
  rolling one-minute window with one atomic `Store.take()`, BEFORE the body is parsed
  or routed: invalid and refused requests count too. Over the limit: 429 with
  Retry-After (when enough of the window has rolled off).

A ledger that cannot be reached (`fail_closed`) raises `LedgerUnavailable` here too:
the proxy answers 503 before any vendor call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec
from router.quota.store import Check
from router.quota.windows import Window
from router.errors import redact
from router.server.auth import AttemptLimiter, KeyStore, ProxyKey
from router.server.errors import Failure
from router.server.spendlog import period_start

__all__ = ["KeyGate", "key_budget_id", "key_budgets", "request_scope", "MAX_TAGS", "MAX_TAG_CHARS"]

log = logging.getLogger("quotaroute.server")

_GLOB = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def key_budget_id(key_id: str) -> str:
    """The ledger budget id of a proxy key's budget (bounded: ids are at most 120 characters)."""
    bid = f"key:{key_id}"
    return bid if len(bid) <= 120 else "key:" + hashlib.sha256(key_id.encode()).hexdigest()


def key_budgets(keys: KeyStore | list[ProxyKey]) -> list[BudgetSpec]:
    """One hard ledger budget per proxy key with a `budget_usd` (exact id match, never a glob)."""
    return [BudgetSpec(id=key_budget_id(k.id), scope="key", match=k.id.translate(_GLOB), period=k.budget_period,
                       limit_usd=k.budget_usd, hard=True)
            for k in (keys.keys if isinstance(keys, KeyStore) else keys) if k.budget_usd is not None and not k.admin]


class KeyGate:
    """Authenticates proxy keys, admits their requests (rpm) and puts their budgets on
    the ledger.

    `ledger`: the router's ledger (None: a router without one; rpm is then counted in
    process memory and key budgets cannot be enforced, which is logged at start).
    `max_auth_failures_per_minute`: unknown keys one client address may try per minute."""

    def __init__(self, keys: KeyStore, ledger: Any = None, spend: Any = None, *,
                 max_auth_failures_per_minute: int | None = 20, runtime: Any = None) -> None:
        self.keys = keys
        self.runtime = runtime  # router.server.keydb.RuntimeKeys, or None (config-file keys only)
        if runtime is not None:
            runtime.on_change = self._runtime_changed
        self.auth_attempts = AttemptLimiter(max_auth_failures_per_minute)
        self.ledger = ledger
        self.spend = spend
        store = getattr(ledger, "store", None)
        if store is None:
            store = MemoryStore()
        self.store = store
        self._window = Window("minute", "rolling")
        self._started: asyncio.Future[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ who, which models
    async def authenticate(self, scope: dict[str, Any], *, admin: bool = False) -> ProxyKey | None:
        """The caller's key (None = open access). Raises Failure 401/403, or 429 when the
        client address has tried too many unknown keys this minute (checked before any hashing)."""
        token = ""
        for k, v in scope["headers"]:
            if k == b"authorization":
                s = v.decode("latin-1")
                token = s[7:].strip() if s[:7].lower() == "bearer " else s.strip()
                break
            if k == b"x-api-key":
                token = v.decode("latin-1").strip()
        if self.runtime is not None and (self._started is None or not self._started.done()):
            await self.start()
        if self.keys.open_access:
            # No keys configured: the server is loopback-only, admin reads are allowed.
            return None
        if not token:
            raise Failure(401, "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`).",
                          type="authentication_error", code="missing_api_key")
        key = self.keys.cached(token)
        if key is None or key is False:
            addr = (scope.get("client") or ("-",))[0]
            # Concurrent first uses of one token share one check (and one attempt).
            took = key is None or not self.keys.pending(token)
            wait = self.auth_attempts.take(addr) if took else 0.0
            if wait:
                raise Failure(429, f"Too many failed API key attempts from this address; retry in {wait:.0f} s.",
                              type="rate_limit_error", code="too_many_auth_failures", retry_after=wait)
            key = await self.keys.alookup(token) if key is False else None
            if key is not None and took:
                self.auth_attempts.refund(addr)
        if key is None:
            raise Failure(401, "Incorrect API key provided.", type="authentication_error", code="invalid_api_key")
        if key.expires_at is not None and key.expired():
            raise Failure(401, "This API key has expired.", type="authentication_error", code="expired_api_key")
        if admin and not key.admin:
            raise Failure(403, "This endpoint needs the admin key.", type="permission_error", code="admin_only")
        return key

    @staticmethod
    def check_key(key: ProxyKey | None, model: str) -> None:
        """Allowed models for a chat request (rate limits: `admit`; budgets: the ledger)."""
        if key is None or key.admin:
            return
        if not key.allows_model(model):
            raise Failure(403, f"This key is not allowed to use model `{redact(model)[:100]}`.",
                          type="permission_error", code="model_not_allowed", param="model")

    # ------------------------------------------------------------------ budgets, rate
    async def start(self) -> None:
        """Register the key budgets on the ledger and seed them from the spend log (once)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await self._start()
            except BaseException as e:
                self._started.set_exception(e)
                self._started.exception()  # retrieved: a later caller re-raises it
                self._started = None
                raise
            self._started.set_result(None)
        elif not self._started.done():
            await asyncio.shield(self._started)

    async def _start(self) -> None:
        await self._add_budgets(self.keys.keys)
        if self.runtime is not None:
            await self.runtime.refresh()
            self.runtime.start()

    async def _runtime_changed(self, keys: list[ProxyKey]) -> None:
        await self._add_budgets(keys)

    async def _add_budgets(self, keys: list[ProxyKey]) -> None:
        specs = key_budgets(keys)
        if not specs:
            return
        if self.ledger is None or not hasattr(self.ledger, "add_budgets"):
            log.warning("proxy key budgets need a router with a quota ledger; not enforced for: %s",
                        ", ".join(s.id for s in specs))
            return
        self.ledger.add_budgets(specs)
        if self.spend is None:
            return
        now = datetime.now(timezone.utc)
        for k in keys:
            if k.budget_usd is None or k.admin:
                continue
            start = period_start(k.budget_period)
            spent = await asyncio.to_thread(self._logged, k.id, start)
            if spent > 0:
                await self.ledger.raise_budget(key_budget_id(k.id), spent, now)

    def _logged(self, key_id: str, start: float) -> Decimal:
        self.spend.flush()
        return self.spend.spent_since(key_id, start)

    async def admit(self, key: ProxyKey | None, now: float | None = None) -> None:
        """Count one request against the key's rate limit; 429 + Retry-After when over it.
        Called once per request, before the body is read or routed."""
        if self._started is None or not self._started.done():
            await self.start()
        if key is None or key.admin or not (key.rpm or key.tpm):
            return
        ts = time.time() if now is None else now
        slot = self._window.slot(ts)
        if key.tpm:
            tpre = f"tpm|{key.id}|"
            tspan = tuple(tpre + s for s in slot.span)
            got = await self.store.take([Check(tspan, tpre + slot.charge, 0, key.tpm - 1, slot.expire_at)], ts)
            if not got.ok:
                raise Failure(429, f"Rate limit reached for key {key.id}: {key.tpm} tokens per minute.",
                              type="tokens", code="rate_limit_exceeded",
                              retry_after=await self._retry_after(tspan, key.tpm, ts))
        if not key.rpm:
            return
        pre = f"rpm|{key.id}|"
        span = tuple(pre + s for s in slot.span)
        got = await self.store.take([Check(span, pre + slot.charge, 1, key.rpm, slot.expire_at)], ts)
        if got.ok:
            return
        raise Failure(429, f"Rate limit reached for key {key.id}: {key.rpm} requests per minute.",
                      type="requests", code="rate_limit_exceeded", retry_after=await self._retry_after(span, key.rpm, ts))

    def count_tokens(self, key: ProxyKey | None, tokens: int, now: float | None = None) -> None:
        """Add an answer's tokens to the key's tokens-per-minute window (in the background)."""
        if key is None or not key.tpm or tokens <= 0:
            return
        ts = time.time() if now is None else now
        slot = self._window.slot(ts)
        tpre = f"tpm|{key.id}|"
        check = Check((tpre + slot.charge,), tpre + slot.charge, int(tokens), None, slot.expire_at)
        task = asyncio.get_running_loop().create_task(self.store.take([check], ts))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def aclose(self) -> None:
        if self.runtime is not None:
            await self.runtime.aclose()

    async def _retry_after(self, span: tuple[str, ...], rpm: int, ts: float) -> float:
        """Seconds until enough of the window has rolled off for one more request."""
        try:
            vals = await self.store.read(span, ts)
        except Exception:  # noqa: BLE001 - the 429 stands; the hint is best effort
            return 1.0
        need = sum(vals) + 1 - rpm
        for k, v in zip(span, vals):
            need -= v
            if need <= 0:
                return max(1.0, self._window.bucket_drop_time(k.rsplit("|", 1)[1]) - ts)
        return 60.0


MAX_TAGS = 16
MAX_TAG_CHARS = 64


def client_tags(raw: str) -> list[str]:
    """The `x-quotaroute-tags` header (comma-separated): at most 16 tags of at most 64
    characters each, else 400 naming the header."""
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in tags):
        raise Failure(400, f"Invalid header 'x-quotaroute-tags': at most {MAX_TAGS} tags of at most "
                           f"{MAX_TAG_CHARS} characters each.", param="x-quotaroute-tags", code="invalid_value")
    return tags


def request_scope(key: ProxyKey | None, user: str | None, raw_tags: str | None) -> dict[str, Any]:
    """The budget/rule scope of one request. `user` (the request's `user` field) and the
    tags header come from the client and can be changed at will; a key that pins
    `user`/`tags` in the config overrides both, so budgets scoped to them cannot be
    dodged by that key's callers. The key id itself is always trusted (authenticated)."""
    tags = client_tags(raw_tags) if raw_tags else []
    if key is None:
        return {"key": None, "user": user, "tags": tags}
    return {"key": key.id, "user": key.user if key.user is not None else user,
            "tags": list(key.tags) if key.tags is not None else tags}
