"""The GET endpoints: /v1/models, stored responses, /healthz, /metrics, /v1/quota and
/v1/spend. Each is authenticated like the POST endpoints and answers JSON (or the
Prometheus text format) with the `x-quotaroute-*` headers on the /v1 ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from router.errors import redact
from router.server.context import Handed, Receive, Scope, Send
from router.server.errors import Failure
from router.server.respond import app_log, guarded, send_json
from router.server.responses_store import owner_of
from router.server.spendlog import parse_since

__all__ = ["list_models", "get_model", "get_response", "delete_response", "healthz", "metrics", "quota", "spend"]


async def list_models(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)  # every request of a key counts against its rpm
        await send_json(send, 200, h.models.json(), t0=t0, reason="model list")
    await guarded(send, t0, go())


async def get_model(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)  # every request of a key counts against its rpm
        mid = unquote(scope["path"][len("/v1/models/"):])
        body = h.models.one(mid)
        if body is None:
            raise Failure(404, f"The model `{mid[:200]}` does not exist or you do not have access to it.",
                          code="model_not_found", param="model")
        await send_json(send, 200, body, t0=t0, reason="model")
    await guarded(send, t0, go())


async def _stored_response(h: Handed, scope: Scope, *, delete: bool) -> bytes:
    key = await h.gate.authenticate(scope)
    await h.gate.admit(key)  # every request of a key counts against its rpm
    rid = unquote(scope["path"][len("/v1/responses/"):])
    store = h.responses
    if store is None:
        raise Failure(404, "The response store is off (server.responses.db: off).", code="not_found")
    if "/" in rid or not rid or len(rid) > 256:  # /v1/responses/{id}/input_items and the like are not served
        raise Failure(404, f"Unknown path: {scope['method']} {redact(scope['path'])[:200]}", code="not_found")
    if delete:
        if await store.delete(owner_of(key), rid):
            return orjson.dumps({"id": rid, "object": "response.deleted", "deleted": True})
    else:
        got = await store.get(owner_of(key), rid)
        if got is not None:
            return orjson.dumps(got.response)
    raise Failure(404, f"Response with id '{redact(rid)[:200]}' not found.", code="not_found", param="response_id")


async def get_response(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """GET /v1/responses/{id}: a stored response of the calling key (404 for any other)."""
    async def go() -> None:
        await send_json(send, 200, await _stored_response(h, scope, delete=False))
    await guarded(send, t0, go())


async def delete_response(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """DELETE /v1/responses/{id}: drop a stored response of the calling key."""
    async def go() -> None:
        await send_json(send, 200, await _stored_response(h, scope, delete=True))
    await guarded(send, t0, go())


async def healthz(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    closed = h.load.closed
    body: dict[str, Any] = {"status": "shutting_down" if closed else "ok", "in_flight": max(0, h.load.in_flight - 1)}
    hb = h.router.health
    if hb is not None:  # upstream keys (ids only) cooling off after a 401/403
        body["bad_upstream_keys"] = [{"id": k, **v} for k, v in hb.bad_entries().items()]
    await send_json(send, 503 if closed else 200, orjson.dumps(body))


async def metrics(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    try:
        view = await h.router.quota_view(_utcnow())
        if view is not None:
            h.metrics.set_quota(view)
    except Exception as e:  # noqa: BLE001 - metrics must render even if the ledger is unhappy
        app_log(e)
    hb = h.router.health
    if hb is not None:
        h.metrics.set_health(hb, _utcnow())
    body, ctype = h.metrics.render()
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _plain(o: Any) -> Any:
    if is_dataclass(o):
        return {k: _plain(v) for k, v in asdict(o).items()}
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [_plain(v) for v in o]
    if isinstance(o, Decimal):
        return format(o, "f")
    if isinstance(o, datetime):
        return o.isoformat()
    return o


async def quota(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        await h.gate.authenticate(scope, admin=True)
        view = await h.router.quota_view(_utcnow())
        if view is None:
            raise Failure(404, "This router has no quota ledger.", code="not_found")
        await send_json(send, 200, orjson.dumps({"object": "quota", "pools": _plain(view.pools),
                                                  "budgets": _plain(list(view.budgets))}), t0=t0, reason="quota")
    await guarded(send, t0, go())


async def spend(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        by = (qs.get("by") or ["day"])[0]
        key_id = (qs.get("key") or [None])[0]
        if key is not None and not key.admin:
            key_id = key.id  # a key sees only its own spend
        try:
            since = parse_since((qs.get("since") or [None])[0])
        except ValueError as e:
            raise Failure(400, str(e), param="since") from None
        if by not in ("day", "model", "key", "provider"):
            raise Failure(400, "`by` must be day, model, key or provider.", param="by")
        spend = h.spend
        if spend is None:
            raise Failure(404, "The spend log is disabled (server.spend_db: off).", code="not_found")

        def read() -> list[dict[str, Any]]:
            spend.flush()
            return spend.summarize(by=by, since=since, key_id=key_id)

        rows = await asyncio.to_thread(read)
        await send_json(send, 200, orjson.dumps({"object": "spend", "by": by, "key": key_id, "data": _plain(rows)}),
                         t0=t0, reason="spend")
    await guarded(send, t0, go())
