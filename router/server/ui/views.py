"""The /ui endpoints (ASGI, like router/server/handlers.py):

    GET  /ui                 the dashboard (a session), else 303 to /ui/login
    GET  /ui/login           the sign-in form
    POST /ui/login           admin key in the form body -> session cookie, 303 to /ui
    POST /ui/logout          ends the session, 303 to /ui/login
    GET  /ui/static/<file>   the files of router/server/ui/static (an allow-list)

Without `server.admin_key` the dashboard is off (404 on every path but the static
files). Every HTML answer carries a strict Content-Security-Policy (only this
origin's scripts and styles, no inline code, no framing, forms post only here) and
`Cache-Control: no-store`. Sessions and CSRF: session.py.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from router.errors import redact
from router.server.context import Handed, Receive, Scope, Send
from router.server.errors import Failure
from router.server.ui.page import dashboard, login, message
from router.server.ui.data import WINDOWS, snapshot
from router.server.ui.session import Sessions, cookie_token, same_origin, secure_cookie

__all__ = ["handle", "CSP", "static_files"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; "
       "font-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_SECURITY = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml",
          ".md": b"text/plain; charset=utf-8", ".LICENSE": b"text/plain; charset=utf-8"}
_MAX_FORM = 4096
_STATIC: dict[str, tuple[bytes, bytes]] | None = None
log = logging.getLogger("quotaroute.server")


def static_files() -> dict[str, tuple[bytes, bytes]]:
    """name -> (content type, bytes) of the static folder, read once."""
    global _STATIC
    if _STATIC is None:
        found: dict[str, tuple[bytes, bytes]] = {}
        for f in resources.files("router.server.ui").joinpath("static").iterdir():
            name = f.name
            ctype = next((t for ext, t in _TYPES.items() if name.endswith(ext)), None)
            if ctype is not None and f.is_file():
                found[name] = (ctype, f.read_bytes())
        _STATIC = found
    return _STATIC


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = headers + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _html(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, text.encode(), [(b"content-type", b"text/html; charset=utf-8"),
                                              (b"cache-control", b"no-store"), *_SECURITY, *(extra or [])])


async def _redirect(send: Send, where: str, cookie: bytes | None = None) -> None:
    extra = [(b"location", where.encode())] + ([(b"set-cookie", cookie)] if cookie else [])
    await _send(send, 303, b"", [(b"cache-control", b"no-store"), *_SECURITY, *extra])


async def _read_form(scope: Scope, receive: Receive) -> dict[str, list[str]]:
    ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"").split(b";")[0].strip().lower()
    if ctype != b"application/x-www-form-urlencoded":
        raise Failure(415, "Send the sign-in form (application/x-www-form-urlencoded).")
    body = b""
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise Failure(400, "The request body did not arrive.")
        body += msg.get("body", b"")
        if len(body) > _MAX_FORM:
            raise Failure(413, "The sign-in form is too large.")
        if not msg.get("more_body"):
            break
    return parse_qs(body.decode("latin-1"), max_num_fields=4)


async def _login(h: Handed, sessions: Sessions, scope: Scope, receive: Receive, send: Send) -> None:
    remote_http = secure_cookie(scope) and scope.get("scheme") != "https"
    if not same_origin(scope):
        await _html(send, 403, login("This form may only be posted from this site.", plain_http_remote=remote_http))
        return
    try:
        form = await _read_form(scope, receive)
    except Failure as f:
        await _html(send, f.status, login(f.message, plain_http_remote=remote_http))
        return
    except ValueError:
        await _html(send, 400, login("Unreadable form.", plain_http_remote=remote_http))
        return
    key = (form.get("key") or [""])[0].strip()
    probe = {"headers": [(b"authorization", b"Bearer " + key.encode("latin-1", "replace"))],
             "client": scope.get("client")}
    try:
        if not key or len(key) > 512 or not key.isprintable():
            raise Failure(401, "Incorrect API key provided.")
        await h.gate.authenticate(probe, admin=True)  # same hashing and per-address limit as the API
    except Failure as f:
        text = {401: "Incorrect admin key.", 403: "That key is not the admin key."}.get(f.status, f.message)
        extra = [(b"retry-after", str(int(f.retry_after)).encode())] if f.retry_after else []
        await _html(send, f.status, login(text, plain_http_remote=remote_http), extra)
        return
    token = await sessions.create()
    await _redirect(send, "/ui", sessions.cookie(token, scope))


async def handle(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    path, method = scope["path"], scope["method"]
    if path.startswith("/ui/static/"):
        got = static_files().get(path[len("/ui/static/"):]) if method == "GET" else None
        if got is None:
            await _html(send, 404, message("Not found", "No such file."))
            return
        await _send(send, 200, got[1], [(b"content-type", got[0]), (b"cache-control", b"public, max-age=3600"),
                                        *_SECURITY])
        return
    admin = h.gate.keys.admin
    if admin is None:
        await _html(send, 404, message("Dashboard off", "The dashboard needs an admin key: set "
                                                              "server.admin_key in the config."))
        return
    try:
        await _pages(h, Sessions(h.gate.store, admin.hash), scope, receive, send)
    except Exception as e:  # noqa: BLE001 - e.g. the ledger store (sessions) cannot be reached
        log.warning("dashboard request failed: %s", redact(repr(e))[:300])
        await _html(send, 503, message("Unavailable", "The dashboard cannot reach the ledger store that keeps its "
                                                      "sessions; try again shortly."))


async def _pages(h: Handed, sessions: Sessions, scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    routes = {"/ui": ("GET",), "/ui/": ("GET",), "/ui/login": ("GET", "POST"), "/ui/logout": ("POST",)}
    if path not in routes:
        await _html(send, 404, message("Not found", "No such page."))
        return
    if method not in routes[path]:
        await _html(send, 405, message("Method not allowed", f"Use {' or '.join(routes[path])}."),
                    [(b"allow", ", ".join(routes[path]).encode())])
        return
    token = cookie_token(scope)
    if path == "/ui/login":
        if method == "POST":
            await _login(h, sessions, scope, receive, send)
        elif await sessions.valid(token):
            await _redirect(send, "/ui")
        else:
            await _html(send, 200, login(plain_http_remote=secure_cookie(scope) and scope.get("scheme") != "https"))
        return
    if path == "/ui/logout":
        if not same_origin(scope):
            await _html(send, 403, message("Refused", "This form may only be posted from this site."))
            return
        await sessions.end(token)
        await _redirect(send, "/ui/login", Sessions.clear_cookie(scope))
        return
    if not await sessions.valid(token):
        await _redirect(send, "/ui/login", Sessions.clear_cookie(scope) if token else None)
        return
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    window = (qs.get("window") or ["24h"])[0]
    if window not in WINDOWS:
        await _html(send, 400, message("Bad request", f"window must be one of {', '.join(WINDOWS)}."))
        return
    await _html(send, 200, dashboard(await snapshot(h, window)))
