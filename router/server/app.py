"""The proxy: a raw ASGI app (no framework on the hot path).

    app = create_app(router, settings)      # any ASGI server; `quotaroute serve` uses uvicorn

Endpoints: POST /v1/chat/completions, POST /v1/messages (+ /count_tokens), POST /v1/responses
(GET/DELETE /v1/responses/{id}), POST /v1/embeddings, GET /v1/models,
GET /healthz, GET /metrics, GET /v1/quota, GET /v1/spend, the dashboard under
/ui (router/server/ui, admin key only), and the admin API for keys at run time
under /admin/keys (admin.py). Every /v1 response
carries the x-quotaroute-* headers (see docs/proxy.md). This module holds dispatch
and the lifespan; who may call is `keygate.py`.

One proxy request, read downward: app.py (ASGI dispatch: socket -> handler) -> next: handlers.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from router.errors import redact
from router.server import admin, gctune, handlers, info, ui
from router.server.cache import ProxyCache
from router.server.context import Handed, Load, ModelList, ProxyRouter, Receive, Scope, Send
from router.server.errors import Failure, failure_from, send_failure
from router.server.keydb import KeyTable, RuntimeKeys
from router.server.keygate import KeyGate
from router.server.limits import Limits
from router.server.metrics import Metrics
from router.server.pgstore import PgSpendLog  # psycopg (the extra `postgres`) loads only when one is opened
from router.server.responses_store import ResponseStore
from router.server.settings import ServerSettings
from router.server.spendlog import SpendLog
from router.types import ChatRequest, Message

__all__ = ["ProxyApp", "create_app"]

log = logging.getLogger("quotaroute.server")


class ProxyApp:
    """Dispatch and lifespan. Each handler is handed the typed router, the key gate and
    the app's bookkeeping (`self.handed`); nothing a handler does calls back into here."""

    def __init__(self, router: ProxyRouter, settings: ServerSettings | None = None, *,
                 spendlog: SpendLog | None = None, responses: ResponseStore | None = None,
                 cache: ProxyCache | None = None, tune_gc: bool = False, metrics: Metrics | None = None,
                 tracing: Any = None) -> None:
        self.router = router
        self.tune_gc = tune_gc  # `quotaroute serve` processes only (never a host application's)
        self.settings = settings or ServerSettings()
        self.keys = self.settings.keys
        self.metrics = metrics if metrics is not None else Metrics()  # a reloaded app keeps its predecessor's
        if spendlog is None:
            spendlog = open_spend_log(self.settings)
        self.spend = spendlog
        if responses is None:  # store: true / previous_response_id (router.server.responses_store)
            rpath = self.settings.responses_db_path()
            rc = self.settings.responses
            responses = ResponseStore(rpath, ttl_s=rc.ttl_s, max_items=rc.max_items,
                                      max_bytes=rc.max_mb * 1024 * 1024) if rpath is not None else None
        self.responses = responses
        if cache is None and self.settings.cache.enabled:  # the response cache (router.server.cache)
            cache = ProxyCache.from_config(self.settings.cache, redis_url=self.settings.cache_redis_url)
        self.cache = cache
        # who may call, how often, how much (key rpm and budgets live in the router's ledger)
        self.gate = KeyGate(self.keys, router.ledger, spendlog,
                            max_auth_failures_per_minute=Limits.of(self.settings).max_auth_failures_per_minute,
                            runtime=open_runtime_keys(self.settings))
        self.load = Load()
        if tracing is None and self.settings.tracing.enabled:  # off: opentelemetry is never imported
            from router.server.tracing import Tracing  # lazy: the `otel` extra

            tracing = Tracing.from_config(self.settings.tracing)
        if tracing is not None:
            tracing.install(router)
        self.tracing = tracing  # router.server.tracing.Tracing, or None
        self.handed = Handed(router=router, gate=self.gate, settings=self.settings, metrics=self.metrics,
                             spend=spendlog, models=ModelList(router, self.settings), load=self.load,
                             responses=self.responses, cache=cache, tracing=tracing)
        self._routes = {
            (b"POST", "/v1/chat/completions"): handlers.chat_completions,
            (b"POST", "/chat/completions"): handlers.chat_completions,
            (b"POST", "/v1/messages"): handlers.messages,
            (b"POST", "/v1/messages/count_tokens"): handlers.count_tokens,
            (b"POST", "/v1/embeddings"): handlers.embeddings,
            (b"POST", "/embeddings"): handlers.embeddings,
            (b"POST", "/v1/responses"): handlers.responses,
            (b"POST", "/responses"): handlers.responses,
            (b"GET", "/v1/models"): info.list_models,
            (b"GET", "/models"): info.list_models,
            (b"GET", "/healthz"): info.healthz,
            (b"GET", "/metrics"): info.metrics,
            (b"GET", "/v1/quota"): info.quota,
            (b"GET", "/v1/spend"): info.spend,
        }

    @property
    def in_flight(self) -> int:
        return self.load.in_flight

    @property
    def closed(self) -> bool:
        return self.load.closed

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            t0 = time.perf_counter()
            path = scope["path"]
            handler = self._routes.get((scope["method"].encode(), path))
            if handler is None and path.startswith("/v1/models/") and scope["method"] == "GET":
                handler = info.get_model
            elif handler is None and path.startswith("/v1/responses/") and scope["method"] in ("GET", "DELETE"):
                handler = info.get_response if scope["method"] == "GET" else info.delete_response
            elif handler is None and (path == "/ui" or path.startswith("/ui/")):
                handler = ui.handle
            elif handler is None and (path == "/admin/keys" or path.startswith("/admin/keys/")):
                handler = admin.admin_keys
            anthropic = path in ("/v1/messages", "/v1/messages/count_tokens")
            if handler is None:
                known = any(p == path for _, p in self._routes)
                f = Failure(405 if known else 404, f"{'Method not allowed' if known else 'Unknown path'}: "
                            f"{scope['method']} {redact(path)[:200]}", code="not_found" if not known else None)
                await send_failure(send, f, anthropic=anthropic, t0=t0)
                return
            load = self.load
            load.in_flight += 1
            try:
                tr = self.tracing
                if tr is None or not tr.traced(path):
                    await handler(self.handed, scope, receive, send, t0)
                else:
                    await tr.serve(handler, self.handed, scope, receive, send, t0)
            except Exception as e:  # noqa: BLE001 - last resort: never leak a traceback or a key
                log.error("unhandled error on %s: %s", path, redact(repr(e)))
                try:
                    await send_failure(send, failure_from(e), anthropic=anthropic, t0=t0)
                except Exception:  # response already started
                    pass
            finally:
                load.in_flight -= 1
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                except Exception as e:  # noqa: BLE001
                    await send({"type": "lifespan.shutdown.failed", "message": redact(str(e))})
                return

    async def startup(self) -> None:
        """What the lifespan start-up does: warm up, then tune the collector (serve only)."""
        await self.warm_up()
        if self.tune_gc:
            lim = self.settings.limits
            done = gctune.tune(freeze=lim.gc_freeze, thresholds=lim.gc_thresholds)
            log.info("garbage collector tuned: %s", done)

    async def warm_up(self) -> None:
        """Register the key budgets on the ledger, then plan one dummy request (no
        upstream call) so lazy imports and caches are loaded before the first client arrives."""
        try:
            await self.gate.start()
        except Exception as e:  # noqa: BLE001 - retried on the first request (which then fails cleanly)
            log.warning("key budgets not registered yet: %s", redact(str(e)))
        try:
            await self.router.aexplain(ChatRequest(model="auto", messages=[Message(role="user", content="warm-up")]))
        except Exception as e:  # noqa: BLE001 - a router with no candidates still serves errors
            log.info("warm-up plan failed: %s", redact(str(e)))
        try:
            self.handed.models.json()
        except Exception as e:  # noqa: BLE001
            log.info("model list failed: %s", redact(str(e)))

    async def aclose(self) -> None:
        """Graceful end: let in-flight requests settle, close the Router, flush the spend log."""
        if self.load.closed:
            return
        self.load.closed = True
        for _ in range(300):  # uvicorn already waits for connections; this covers other servers
            if self.load.in_flight <= 0:
                break
            await asyncio.sleep(0.1)
        await self.router.aclose()
        await self.gate.aclose()
        if self.spend is not None:
            await asyncio.to_thread(self.spend.close)
        if self.responses is not None:
            await asyncio.to_thread(self.responses.close)
        if self.cache is not None:
            await self.cache.aclose()
        if self.tracing is not None:  # the last spans out to the collector
            await self.tracing.aclose()

    async def retire(self, successor: ProxyApp | None = None) -> None:
        """Replaced by a reloaded app (router.server.reload): wait until every request
        this app accepted has finished (streams included, however long), then close it.
        What the successor shares (spend log, Responses store, response cache) stays open."""
        while self.load.in_flight > 0:
            await asyncio.sleep(0.05)
        if successor is not None:  # the successor's now: aclose() leaves them
            if self.spend is successor.spend:
                self.spend = None
            if self.responses is successor.responses:
                self.responses = None
            if self.cache is successor.cache:
                self.cache = None
        await self.aclose()


def open_spend_log(settings: ServerSettings) -> Any:
    """The spend log the settings name: PostgreSQL (`store: postgres`), a SQLite file, or None (off)."""
    if settings.store == "postgres":
        return PgSpendLog(settings.dsn())
    path = settings.spend_db_path()
    return SpendLog(path) if path is not None else None


def open_runtime_keys(settings: ServerSettings) -> Any:
    """Keys at run time (router.server.keydb) when an admin key can manage them: in
    PostgreSQL, or beside the SQLite spend log. None otherwise (config-file keys only)."""
    if settings.keys.admin is None:
        return None
    if settings.store == "postgres":
        table = KeyTable.postgres(settings.dsn())
    else:
        path = settings.spend_db_path()
        if path is None:
            return None
        table = KeyTable.sqlite(path)
    return RuntimeKeys(table, settings.keys, default_period=settings.budget_period, poll_s=settings.key_poll_s)


def create_app(router: ProxyRouter, settings: ServerSettings | None = None, **kw: Any) -> ProxyApp:
    return ProxyApp(router, settings, **kw)
