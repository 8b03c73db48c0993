"""The proxy: a raw ASGI app (no framework on the hot path).

    app = create_app(router, settings)      # any ASGI server; `quotaroute serve` uses uvicorn

Endpoints: POST /v1/chat/completions, POST /v1/messages, GET /v1/models,
GET /healthz, GET /metrics, GET /v1/quota, GET /v1/spend. Every /v1 response
carries the x-quotaroute-* headers (see docs/proxy.md). Request handling is in
`handlers.py`; this module holds dispatch, auth, budgets and the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from router.errors import redact
from router.server.auth import AttemptLimiter, ProxyKey
from router.server.errors import Failure, failure_from, send_failure
from router.server.limits import Limits
from router.server.metrics import Metrics
from router.server.settings import ServerSettings
from router.server.spendlog import SpendLog

__all__ = ["ProxyApp", "create_app"]

log = logging.getLogger("quotaroute.server")


class ProxyApp:
    def __init__(self, router: Any, settings: ServerSettings | None = None, *, spendlog: SpendLog | None = None) -> None:
        from router.server import handlers

        self.router = router
        self.settings = settings or ServerSettings()
        self.keys = self.settings.keys
        self.auth_attempts = AttemptLimiter(Limits.of(self.settings).max_auth_failures_per_minute)
        self.metrics = Metrics()
        if spendlog is None:
            path = self.settings.spend_db_path()
            spendlog = SpendLog(path) if path is not None else None
        self.spend = spendlog
        from router.server.keygate import KeyGate

        self.gate = KeyGate(self.keys, getattr(router, "ledger", None), spendlog)  # key rpm + budgets, in the ledger
        self._models_json: bytes | None = None
        self._models: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        self.closed = False
        self._routes = {
            (b"POST", "/v1/chat/completions"): handlers.chat_completions,
            (b"POST", "/chat/completions"): handlers.chat_completions,
            (b"POST", "/v1/messages"): handlers.messages,
            (b"GET", "/v1/models"): handlers.list_models,
            (b"GET", "/models"): handlers.list_models,
            (b"GET", "/healthz"): handlers.healthz,
            (b"GET", "/metrics"): handlers.metrics,
            (b"GET", "/v1/quota"): handlers.quota,
            (b"GET", "/v1/spend"): handlers.spend,
        }

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            t0 = time.perf_counter()
            path = scope["path"]
            handler = self._routes.get((scope["method"].encode(), path))
            if handler is None and path.startswith("/v1/models/") and scope["method"] == "GET":
                from router.server.handlers import get_model

                handler = get_model
            anthropic = path == "/v1/messages"
            if handler is None:
                known = any(p == path for _, p in self._routes)
                f = Failure(405 if known else 404, f"{'Method not allowed' if known else 'Unknown path'}: "
                            f"{scope['method']} {redact(path)[:200]}", code="not_found" if not known else None)
                await send_failure(send, f, anthropic=anthropic, t0=t0)
                return
            self.in_flight += 1
            try:
                await handler(self, scope, receive, send, t0)
            except Exception as e:  # noqa: BLE001 - last resort: never leak a traceback or a key
                log.error("unhandled error on %s: %s", path, redact(repr(e)))
                try:
                    await send_failure(send, failure_from(e), anthropic=anthropic, t0=t0)
                except Exception:  # response already started
                    pass
            finally:
                self.in_flight -= 1
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.warm_up()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                except Exception as e:  # noqa: BLE001
                    await send({"type": "lifespan.shutdown.failed", "message": redact(str(e))})
                return

    async def warm_up(self) -> None:
        """Register the key budgets on the ledger, then plan one dummy request (no
        upstream call) so lazy imports and caches are loaded before the first client arrives."""
        try:
            await self.gate.start()
        except Exception as e:  # noqa: BLE001 - retried on the first request (which then fails cleanly)
            log.warning("key budgets not registered yet: %s", redact(str(e)))
        explain = getattr(self.router, "aexplain", None)
        if explain is not None:
            from router.types import ChatRequest, Message

            try:
                await explain(ChatRequest(model="auto", messages=[Message(role="user", content="warm-up")]))
            except Exception as e:  # noqa: BLE001 - a router with no candidates still serves errors
                log.info("warm-up plan failed: %s", redact(str(e)))
        try:
            self.models_json()
        except Exception as e:  # noqa: BLE001
            log.info("model list failed: %s", redact(str(e)))

    async def aclose(self) -> None:
        """Graceful end: let in-flight requests settle, close the Router, flush the spend log."""
        if self.closed:
            return
        self.closed = True
        for _ in range(300):  # uvicorn already waits for connections; this covers other servers
            if self.in_flight <= 0:
                break
            await asyncio.sleep(0.1)
        close = getattr(self.router, "aclose", None)
        if close is not None:
            await close()
        if self.spend is not None:
            await asyncio.to_thread(self.spend.close)

    # ------------------------------------------------------------------ auth
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
        if self.keys.open_access:
            if admin:
                # No keys configured: the server is loopback-only, admin reads are allowed.
                return None
            return None
        if not token:
            raise Failure(401, "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`).",
                          type="authentication_error", code="missing_api_key")
        key = self.keys.cached(token)
        if key is None or key is False:
            addr = (scope.get("client") or ("-",))[0]
            wait = self.auth_attempts.take(addr)
            if wait:
                raise Failure(429, f"Too many failed API key attempts from this address; retry in {wait:.0f} s.",
                              type="rate_limit_error", code="too_many_auth_failures", retry_after=wait)
            key = await self.keys.alookup(token) if key is False else None
            if key is not None:
                self.auth_attempts.refund(addr)
        if key is None:
            raise Failure(401, "Incorrect API key provided.", type="authentication_error", code="invalid_api_key")
        if admin and not key.admin:
            raise Failure(403, "This endpoint needs the admin key.", type="permission_error", code="admin_only")
        return key

    def check_key(self, key: ProxyKey | None, model: str) -> None:
        """Allowed models for a chat request (rate limits: `self.gate.admit`; budgets: the ledger)."""
        if key is None or key.admin:
            return
        if not key.allows_model(model):
            raise Failure(403, f"This key is not allowed to use model `{redact(model)[:100]}`.",
                          type="permission_error", code="model_not_allowed", param="model")

    # ------------------------------------------------------------------ models
    def models_json(self) -> bytes:
        if self._models_json is None:
            self._models = {m["id"]: m for m in list_models(self.router, self.settings)}
            self._models_json = orjson.dumps({"object": "list", "data": list(self._models.values())})
        return self._models_json

    def model_json(self, model_id: str) -> bytes | None:
        self.models_json()
        m = self._models.get(model_id)
        return orjson.dumps(m) if m is not None else None


def list_models(router: Any, settings: ServerSettings) -> list[dict[str, Any]]:
    policy = getattr(router, "policy_name", None) or getattr(getattr(router, "policy", None), "name", None)
    out: list[dict[str, Any]] = []
    for v in settings.virtual_models:
        desc = {"auto": f"the configured policy ({policy or 'default'})", "auto:cheap": "cheapest model that fits",
                "auto:best": "best quality for the task", "auto:free": "free quota only"}.get(v, "virtual model")
        out.append({"id": v, "object": "model", "created": 0, "owned_by": "quotaroute", "description": desc})
    catalog = getattr(router, "catalog", None)
    cards: list[Any] = []
    try:
        if catalog is not None:
            cards = list(catalog.all())
        else:
            from router.catalog import load_catalog  # type: ignore[import-not-found]

            cards = list(load_catalog().all())
    except Exception as e:  # noqa: BLE001 - a missing catalog still lists the virtual models
        log.warning("model catalog unavailable: %s", redact(str(e)))
    for c in cards:
        out.append({"id": c.id, "object": "model", "created": 0, "owned_by": c.provider})
    return out


def create_app(router: Any, settings: ServerSettings | None = None, **kw: Any) -> ProxyApp:
    return ProxyApp(router, settings, **kw)
