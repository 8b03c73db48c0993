"""The admin API for proxy keys at run time (admin key only).

    POST   /admin/keys                {"id": "ci-bot", "budget_usd": 5, "models": ["auto"], "rpm": 60}
                                      -> 201 {..., "key": "qr-..."}   the secret, shown this once
    GET    /admin/keys                -> {"object": "list", "data": [...]}  (runtime and config-file keys)
    GET    /admin/keys/{id}
    PATCH  /admin/keys/{id}           any of the fields below; null clears one
    DELETE /admin/keys/{id}           revoke: the key stops working on every replica
    POST   /admin/keys/{id}/rotate    -> {..., "key": "qr-..."}  a new secret; the old one stops working

Fields: `budget_usd` (a number or decimal string, >= 0; a hard ledger budget `key:<id>`
per `budget_period` day|month|total), `models` (allowed names or globs), `rpm`, `tpm`,
`user` and `tags` (pinned: the key's callers cannot choose another user or tag),
`expires_at` (ISO 8601 or unix seconds). Every field is checked; a mistake is a 400
naming its path. The secret is hashed with scrypt before it is stored (router.server.auth).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

import orjson

from router.server.auth import ProxyKey, hash_key, key_hint, new_key
from router.server.context import Handed, Receive, Scope, Send
from router.server.errors import Failure
from router.server.handlers import read_body  # the same size-capped body reader as the chat path
from router.server.keydb import FIELDS, KeyExists, public_row
from router.server.validate import Checker

__all__ = ["admin_keys", "validate_fields", "MAX_BODY"]

MAX_BODY = 64 * 1024
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_BUDGET = Decimal(10) ** 9
_MAX_RATE = 10**9
_C = Checker(anthropic=False)


def _bad(path: str, msg: str) -> Failure:
    return Failure(400, f"Invalid value for '{path}': {msg}", param=path, code="invalid_value")


def _money(v: Any, path: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise Failure(400, f"Invalid type for '{path}': expected a number or a decimal string.", param=path,
                      code="invalid_type")
    try:
        d = Decimal(str(v).strip()) if not isinstance(v, float) else Decimal(repr(v))
    except InvalidOperation:
        raise _bad(path, "not a decimal number.") from None
    if not d.is_finite() or d < 0 or d > _MAX_BUDGET:
        raise _bad(path, f"expected a value from 0 to {_MAX_BUDGET}.")
    if d.as_tuple().exponent < -9:  # type: ignore[operator]
        raise _bad(path, "at most 9 decimal places (nano-dollars).")
    return d


def _when(v: Any, path: str) -> float:
    if isinstance(v, bool):
        raise _bad(path, "expected an ISO 8601 datetime or unix seconds.")
    if isinstance(v, (int, float)):
        ts = float(_C.number(v, path, 0, 10**11))
    elif isinstance(v, str) and len(v) <= 64:
        try:
            d = datetime.fromisoformat(v.strip())
        except ValueError:
            raise _bad(path, "expected an ISO 8601 datetime or unix seconds.") from None
        ts = (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise _bad(path, "expected an ISO 8601 datetime or unix seconds.")
    return ts


def _strings(v: Any, path: str, max_items: int, max_chars: int) -> tuple[str, ...]:
    out = []
    for i, x in enumerate(_C.arr(v, path, max_items)):
        p = _C.path(path, i)
        s = _C.string(x, p, max_chars)
        if not s.strip():
            raise _bad(p, "must not be empty.")
        out.append(s)
    return tuple(out)


def validate_fields(body: Any, *, create: bool) -> dict[str, Any]:
    """The checked fields of a POST (create) or PATCH body; 400 with the path otherwise."""
    d = _C.obj(body, "body")
    _C.only(d, "", (("id",) if create else ()) + FIELDS)
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "id":
            if not isinstance(v, str) or not _ID.fullmatch(v):
                raise _bad("id", "1-64 letters, digits, '.', '_' or '-'.")
            if v == "admin":
                raise _bad("id", "'admin' is reserved.")
            continue
        if v is None:
            out[k] = None
        elif k == "budget_usd":
            out[k] = _money(v, k)
        elif k == "budget_period":
            out[k] = _C.enum(v, k, ("day", "month", "total"))
        elif k == "models":
            out[k] = _strings(v, k, 256, 256)
        elif k in ("rpm", "tpm"):
            out[k] = _C.integer(v, k, 1, _MAX_RATE)
        elif k == "user":
            out[k] = _C.string(v, k, 256)
        elif k == "tags":
            out[k] = _strings(v, k, 16, 64)
        elif k == "expires_at":
            out[k] = _when(v, k)
    if create and "id" not in d:
        raise Failure(400, "Missing required parameter: 'id'.", param="id", code="missing_required_parameter")
    return out


def _config_row(k: ProxyKey) -> dict[str, Any]:
    return {"object": "key", "id": k.id, "source": "config", "budget_usd": None if k.budget_usd is None else
            format(k.budget_usd, "f"), "budget_period": k.budget_period, "models": None if k.models is None else
            list(k.models), "rpm": k.rpm, "tpm": k.tpm, "user": k.user, "tags": None if k.tags is None else
            list(k.tags), "expires_at": k.expires_at}


async def _json(scope: Scope, receive: Receive) -> Any:
    raw = await read_body(scope, receive, MAX_BODY)
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise Failure(400, "The request body is not valid JSON.", code="invalid_json") from None


async def _send(send: Send, status: int, obj: Any) -> None:
    body = orjson.dumps(obj)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def _secret() -> tuple[str, str, str]:
    token = new_key()
    return token, hash_key(token, scheme="scrypt"), key_hint(token)


async def admin_keys(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """/admin/keys and /admin/keys/{id}[/rotate] (errors go through the app's last-resort mapping)."""
    gate = h.gate
    key = await gate.authenticate(scope, admin=True)
    if key is None or not key.admin:
        raise Failure(403, "The admin API needs server.admin_key in the config.", type="permission_error",
                      code="admin_only")
    runtime = gate.runtime
    if runtime is None:
        raise Failure(404, "Keys at run time need a key store: server.store postgres, or a spend log "
                           "(server.spend_db) on SQLite.", code="not_found")
    method, path = scope["method"], scope["path"]
    rest = path[len("/admin/keys"):].strip("/")
    parts = [unquote(p) for p in rest.split("/")] if rest else []
    table = runtime.table
    if not parts:
        if method == "GET":
            rows = await asyncio.to_thread(table.rows)
            data = [{**public_row(r), "source": "runtime"} for r in rows]
            data += [_config_row(k) for k in gate.keys.keys]
            await _send(send, 200, {"object": "list", "data": sorted(data, key=lambda r: r["id"])})
            return
        if method != "POST":
            raise Failure(405, f"Method not allowed: {method} /admin/keys")
        body = await _json(scope, receive)
        fields = validate_fields(body, create=True)
        kid = body["id"]
        if any(k.id == kid for k in gate.keys.keys):
            raise Failure(409, f"A key with id '{kid}' is in the config file.", param="id", code="key_exists")
        token, hashed, hint = _secret()
        try:
            row = await asyncio.to_thread(table.create, kid, hashed, hint, fields)
        except KeyExists:
            raise Failure(409, f"A key with id '{kid}' already exists.", param="id", code="key_exists") from None
        await runtime.refresh()
        await _send(send, 201, {**public_row(row), "source": "runtime", "key": token})
        return
    kid = parts[0]
    if not _ID.fullmatch(kid) or len(parts) > 2 or (len(parts) == 2 and parts[1] != "rotate"):
        raise Failure(404, "Unknown path.", code="not_found")
    if any(k.id == kid for k in gate.keys.keys):
        if method == "GET" and len(parts) == 1:
            await _send(send, 200, _config_row(next(k for k in gate.keys.keys if k.id == kid)))
            return
        raise Failure(409, f"Key '{kid}' is in the config file: change it there.", code="config_key")
    if len(parts) == 2:
        if method != "POST":
            raise Failure(405, f"Method not allowed: {method} /admin/keys/{{id}}/rotate")
        token, hashed, hint = _secret()
        row = await asyncio.to_thread(table.update, kid, {"hash": hashed, "hint": hint})
        if row is None:
            raise Failure(404, f"No key '{kid}'.", code="not_found")
        await runtime.refresh()
        await _send(send, 200, {**public_row(row), "source": "runtime", "key": token})
        return
    if method == "GET":
        row = await asyncio.to_thread(table.get, kid)
    elif method == "PATCH":
        fields = validate_fields(await _json(scope, receive), create=False)
        row = await asyncio.to_thread(table.update, kid, fields)
    elif method == "DELETE":
        row = {"id": kid, "deleted": True} if await asyncio.to_thread(table.delete, kid) else None
    else:
        raise Failure(405, f"Method not allowed: {method} /admin/keys/{{id}}")
    if row is None:
        raise Failure(404, f"No key '{kid}'.", code="not_found")
    if method != "GET":
        await runtime.refresh()
    await _send(send, 200, row if method == "DELETE" else {**public_row(row), "source": "runtime"})
