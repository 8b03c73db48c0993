"""Endpoint handlers: `async def h(handed, scope, receive, send, t0)`.

`handed` (router.server.context.Handed) carries the typed router, the key gate, the
settings, metrics and spend log; a handler uses them and sends its response, it
never calls back into the app. The chat path (both wire formats) is: auth -> body
(size-capped) -> parse -> key checks -> Router.achat/astream -> encode -> send ->
spend log + metrics (after the response is out, so bookkeeping never delays the client).

One proxy request, read downward: app.py -> handlers.py (auth, parse, route, answer)
-> next: openai_wire.py / anthropic_wire.py (parse and encode), then router/sdk.py (Router).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import asdict, is_dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from router.cache.entry import CachedAnswer
from router.errors import ANTHROPIC_TYPES, ClientGone, redact
from router.result import Attempt, RouteInfo
from router.server import anthropic_wire as aw
from router.server import embeddings_wire as ew
from router.server import openai_wire as ow
from router.server.auth import ProxyKey
from router.server.cache import BYPASS, HIT, MISS, ProxyCache, body_flag
from router.server.context import Handed, Receive, Scope, Send
from router.server.errors import Failure, ascii_header, failure_from, route_headers, send_failure
from router.server.keygate import request_scope
from router.server.responses_events import ResponsesEncoder
from router.server.responses_store import ResponsesCall, owner_of
from router.server.settings import ServerSettings
from router.server.spendlog import parse_since
from router.server.validate import check_depth, json_depth_limit
from router.types import ChatRequest, Usage, accumulate

__all__ = ["chat_completions", "messages", "count_tokens", "responses", "get_response", "delete_response", "embeddings", "list_models",
           "get_model", "healthz", "metrics", "quota", "spend"]

_JSON = (b"content-type", b"application/json")
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no")]


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for k, v in scope["headers"]:
        if k == b"content-length":
            try:
                if int(v) > limit:
                    raise Failure(413, f"Request body too large: {int(v)} bytes (limit {limit}).",
                                  code="request_too_large")
            except ValueError:
                raise Failure(400, "Invalid Content-Length header.") from None
            break
    msg = await receive()
    if msg["type"] == "http.disconnect":  # the client left, or the body read timed out
        raise ClientGone()
    body = msg.get("body", b"")
    while msg.get("more_body"):
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        body += msg.get("body", b"")
        if len(body) > limit:
            raise Failure(413, f"Request body too large (limit {limit} bytes).", code="request_too_large")
    if len(body) > limit:
        raise Failure(413, f"Request body too large (limit {limit} bytes).", code="request_too_large")
    return body


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def _upstream_s(route: RouteInfo, elapsed: float) -> float:
    """Time spent waiting on vendors: the attempts' latencies, else the call minus the router's own overhead."""
    s = sum(a.latency_ms for a in route.attempts) / 1000 if route.attempts else 0.0
    if s <= 0:
        s = elapsed - (route.overhead_ms or 0.0) / 1000
    return min(max(s, 0.0), elapsed)


async def chat_completions(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    await _chat(h, scope, receive, send, t0, anthropic=False)


async def messages(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    await _chat(h, scope, receive, send, t0, anthropic=True)


async def responses(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """POST /v1/responses: the chat path, with the Responses wire (router.server.responses_store.ResponsesCall)."""
    await _chat(h, scope, receive, send, t0, anthropic=False, wire=ResponsesCall(h.responses))


async def _chat(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float, *, anthropic: bool,
                wire: ResponsesCall | None = None) -> None:
    endpoint = "messages" if anthropic else wire.endpoint if wire is not None else "chat"
    key = req = route = None
    try:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)  # counts every request, valid or not, against the key's rpm
        body = await read_body(scope, receive, h.settings.max_body_bytes)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise Failure(400, f"We could not parse the JSON body of your request: {e.args[0][:120]}",
                          code="invalid_json") from None
        check_depth(data, json_depth_limit(h.settings), anthropic=anthropic)  # before anything recurses into it
        flag = body_flag(data)  # `"cache": false` opts out of the response cache; never reaches a vendor
        if anthropic:
            req, include_usage = aw.parse_messages_request(data), False
        elif wire is not None:
            req, include_usage = await wire.parse(data, key), False
        else:
            req, include_usage = ow.parse_chat_request(data)
        h.gate.check_key(key, req.model)
        sc = request_scope(key, req.user, _header(scope, b"x-quotaroute-tags"))
        if sc["user"] != req.user:  # the key pins its user: the vendor and the rules see that one
            req = req.model_copy(update={"user": sc["user"]})
        pc, ck, ch = h.cache, None, []
        if pc is not None:  # the response cache (router.server.cache): a hit costs $0 and calls no vendor
            mode = pc.mode(scope, flag)
            ck = pc.key(req, key, sc) if mode != "bypass" else None
            hit = await pc.get(ck) if ck is not None and mode == "use" else None
            if hit is not None:
                await _send_hit(h, pc, send, req, hit, key, endpoint, t0, anthropic, include_usage, wire)
                return
            ch = [MISS if ck is not None else BYPASS]
        if req.stream:
            await _stream(h, send, receive, req, sc, key, t0, anthropic, include_usage, wire, ch,
                          (pc, ck) if pc is not None and ck is not None else None)
            return
        t1 = time.perf_counter()
        rr = await h.router.achat(req, scope=sc)
        t2 = time.perf_counter()
        route, resp = rr.route, rr.response
        if anthropic:
            _note_dropped(h, req, route)
        model = route.model_id or resp.model
        shown = response_model(model, h.settings)
        out = aw.messages_response(resp, shown) if anthropic else ow.chat_response(resp, shown) if wire is None \
            else wire.response(resp, shown)
        if wire is not None:
            await wire.save()  # before the answer is out: a client may chain to it at once
        overhead_ms = ((time.perf_counter() - t0) - _upstream_s(route, t2 - t1)) * 1000
        headers = [_JSON, (b"content-length", str(len(out)).encode())]
        headers += route_headers(model, route.provider, route.cost_usd, route.reason, overhead_ms,
                                 h.settings.reason_header_max) + cascade_headers(route) + ch
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        # a cascade's spend row counts every call's tokens, as its cost does
        usage = _billed_usage(route) if route.cascade is not None else resp.usage
        _finish(h, key, endpoint, req, route, usage, 200, t0, overhead_ms, None, False)
        if pc is not None and ck is not None and pc.cacheable(req, resp):
            await pc.put(ck, model, route.provider, resp)
    except ClientGone:
        _finish(h, key, endpoint, req, route, None, 499, t0, None, "client closed", False)
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        overhead_ms = await send_failure(send, f, anthropic=anthropic, t0=t0)
        _finish(h, key, endpoint, req, getattr(e, "route", None), None, f.status, t0, overhead_ms, f.message, False,
                model=f.model, provider=f.provider, attempts=getattr(e, "attempts", None),
                log=f.status != 401 and f.code != "too_many_auth_failures")  # unauthenticated noise: /metrics only


async def _send_hit(h: Handed, pc: ProxyCache, send: Send, req: ChatRequest, hit: CachedAnswer,
                    key: ProxyKey | None, endpoint: str, t0: float, anthropic: bool, include_usage: bool,
                    wire: ResponsesCall | None) -> None:
    """A cached answer (as a stream for a stream request): no vendor call, no ledger
    reserve, $0; `x-quotaroute-cache: hit`, and a `cache:<endpoint>` spend row."""
    out = pc.render(hit, req, response_model(hit.model_id, h.settings), anthropic=anthropic, wire=wire,
                    include_usage=include_usage)
    if wire is not None:
        await wire.save()  # a stored Responses answer can be chained to like any other
    route = RouteInfo(model_id=hit.model_id, provider=hit.provider, reason="cache hit")
    overhead_ms = (time.perf_counter() - t0) * 1000
    headers = (list(_SSE) if req.stream else [_JSON]) + [(b"content-length", str(len(out)).encode())]
    headers += route_headers(hit.model_id, hit.provider, route.cost_usd, route.reason, overhead_ms,
                             h.settings.reason_header_max) + [HIT]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})
    _finish(h, key, "cache:" + endpoint, req, route, Usage(), 200, t0, overhead_ms, None, req.stream)


def response_model(model_id: str, settings: ServerSettings) -> str:
    """The body's `model`: the vendor's model id (`gpt-5-nano`, what clients' own cost
    tracking knows); the qualified `provider:model` goes in x-quotaroute-model, and in the
    body too with `server.response_model: qualified`."""
    if settings.qualified_model_ids:
        return model_id
    return model_id.split(":", 1)[1] if ":" in model_id else model_id


async def embeddings(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """`POST /v1/embeddings`: the chat path's gate, budgets, headers and spend log
    (embeddings_wire.py parses and encodes; Router.aembed routes and bills)."""
    key = req = route = None
    try:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)
        body = await read_body(scope, receive, h.settings.max_body_bytes)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise Failure(400, f"We could not parse the JSON body of your request: {e.args[0][:120]}",
                          code="invalid_json") from None
        check_depth(data, json_depth_limit(h.settings))
        req = ew.parse_embeddings_request(data)
        h.gate.check_key(key, req.model)
        sc = request_scope(key, req.user, _header(scope, b"x-quotaroute-tags"))
        if sc["user"] != req.user:  # the key pins its user: the vendor and the budgets see that one
            req = replace(req, user=sc["user"])
        t1 = time.perf_counter()
        out = await h.router.aembed(req, scope=sc)
        t2 = time.perf_counter()
        route = out.route
        model = route.model_id or out.model
        payload = ew.embeddings_response(out, req, response_model(model, h.settings))
        overhead_ms = ((time.perf_counter() - t0) - _upstream_s(route, t2 - t1)) * 1000
        headers = [_JSON, (b"content-length", str(len(payload)).encode())]
        headers += route_headers(model, route.provider, route.cost_usd, route.reason, overhead_ms,
                                 h.settings.reason_header_max)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        _finish(h, key, "embeddings", req, route, out.usage, 200, t0, overhead_ms, None, False)
    except ClientGone:
        _finish(h, key, "embeddings", req, route, None, 499, t0, None, "client closed", False)
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        overhead_ms = await send_failure(send, f, anthropic=False, t0=t0)
        _finish(h, key, "embeddings", req, getattr(e, "route", None), None, f.status, t0, overhead_ms, f.message,
                False, model=f.model, provider=f.provider, attempts=getattr(e, "attempts", None),
                log=f.status != 401 and f.code != "too_many_auth_failures")


def _note_dropped(h: Handed, req: ChatRequest, route: RouteInfo) -> None:
    """Name in the route reason what of a Messages request the chosen vendor had no equivalent for."""
    gone = aw.dropped(req, h.router.wire_of(route.provider))
    if gone:
        route.reason = f"{route.reason}; dropped for {route.provider}: {', '.join(gone)}"


async def count_tokens(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """POST /v1/messages/count_tokens: the input tokens of a Messages request on the model it
    would be routed to; exact from the vendor where it counts, else the router's estimate.
    `x-quotaroute-token-count` says which ("exact" or "estimate"). Free: nothing is billed."""
    try:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)
        body = await read_body(scope, receive, h.settings.max_body_bytes)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise Failure(400, f"We could not parse the JSON body of your request: {e.args[0][:120]}",
                          code="invalid_json") from None
        check_depth(data, json_depth_limit(h.settings), anthropic=True)
        req = aw.parse_count_request(data)
        h.gate.check_key(key, req.model)
        tc = await h.router.acount_tokens(req)
        how = f"exact count from {tc.source}" if tc.exact else "estimated by the router (the vendor does not count)"
        extra = [(b"x-quotaroute-token-count", b"exact" if tc.exact else b"estimate")]
        extra += route_headers(tc.model_id, tc.source if tc.exact else "", Decimal(0), f"count_tokens: {how}",
                               (time.perf_counter() - t0) * 1000, h.settings.reason_header_max)
        await _send_json(send, 200, orjson.dumps({"input_tokens": tc.input_tokens}), extra)
    except ClientGone:
        return
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        await send_failure(send, f, anthropic=True, t0=t0)


def app_log(e: BaseException) -> None:
    logging.getLogger("quotaroute.server").warning("request failed: %s", redact(repr(e))[:500])


async def _stream(h: Handed, send: Send, receive: Receive, req: ChatRequest, sc: dict[str, Any],
                  key: ProxyKey | None, t0: float, anthropic: bool, include_usage: bool,
                  wire: ResponsesCall | None = None, cache_headers: list[tuple[bytes, bytes]] | None = None,
                  cache_to: tuple[ProxyCache, str] | None = None) -> None:
    """Send a routed stream as SSE. A failure after the status line ends the stream with
    an explicit error event (never a clean finish); a client that goes away or stops
    reading for `limits.stream_write_timeout_s` cancels the upstream call. Either way
    the route's attempts are billed as `router.streaming` describes."""
    t1 = time.perf_counter()
    rs = await h.router.astream(req, scope=sc)  # errors before the first token surface here, with a status
    t2 = time.perf_counter()
    route = rs.route
    if anthropic:
        _note_dropped(h, req, route)
    model = route.model_id or req.model
    shown = response_model(model, h.settings)
    enc: aw.EventEncoder | ow.ChunkEncoder | ResponsesEncoder = aw.EventEncoder(shown) if anthropic else \
        ow.ChunkEncoder(shown, include_usage) if wire is None else wire.encoder(shown)
    overhead_ms = ((t2 - t0) - _upstream_s(route, t2 - t1)) * 1000
    headers = _SSE + route_headers(model, route.provider, route.estimated_cost_usd if route.cascade is None
                                   else route.cost_usd, route.reason, overhead_ms, h.settings.reason_header_max)
    headers += cascade_headers(route) + (cache_headers or [])
    events: list[Any] | None = [] if cache_to is not None else None  # kept for the response cache
    status, error = 200, None
    write_timeout = write_timeout_s(h.settings)
    loop = asyncio.get_running_loop()
    sending_since = 0.0  # loop time the pending send started; 0 = no send pending

    async def put(msg: dict[str, Any]) -> None:
        nonlocal sending_since
        sending_since = loop.time()
        await send(msg)  # flow control: blocks while the client is not reading
        sending_since = 0.0

    flushing: asyncio.Task[None] | None = None  # a write waiting for the client (flow control)

    def flush(buf: list[bytes]) -> None:
        """Send what is ready as one body message; a send that must wait for the client
        finishes in the background (the next flush, or the end, waits for it)."""
        nonlocal flushing
        body = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        c = put({"type": "http.response.body", "body": body, "more_body": True})
        try:
            y = c.send(None)
        except StopIteration:
            return
        except BaseException:
            c.close()
            raise
        flushing = loop.create_task(_resume_task(c, y))

    async def pump() -> None:
        nonlocal status, error, flushing
        buf: list[bytes] = []
        try:
            await put({"type": "http.response.start", "status": 200, "headers": headers})
            buf.append(enc.start())
            while True:
                if flushing is not None:  # the client is slow: wait for it before reading on
                    t, flushing = flushing, None
                    await t
                # Writes are batched per loop iteration: the next event is asked for at once;
                # when it is ready (several came in one read) it joins the batch; when the
                # stream must wait, what is ready goes out in one write first.
                nxt = rs.__anext__()
                try:
                    y = nxt.send(None)
                except StopIteration as done:
                    ev = done.value
                except StopAsyncIteration:
                    break
                else:
                    if buf:
                        try:
                            flush(buf)
                        except BaseException:
                            try:  # end the pending read as a caller's close (billed as delivered)
                                await _Resume(nxt, None, asyncio.CancelledError())
                            except BaseException:  # noqa: BLE001 - the write's error is the one to report
                                pass
                            raise
                    try:
                        ev = await _Resume(nxt, y)
                    except StopAsyncIteration:
                        break
                if events is not None:
                    events.append(ev)
                b = enc.event(ev)
                if b:
                    buf.append(b)
            billed = _billed_usage(rs.route)  # every attempt's usage (a finished cut stream has several)
            if billed is not None:
                enc.usage = billed
            buf.append(enc.end())
            if flushing is not None:
                t, flushing = flushing, None
                await t
            if wire is not None:
                await wire.save()  # before the last event: a client may chain to it at once
            await put({"type": "http.response.body", "body": b"".join(buf), "more_body": False})
            if cache_to is not None and events is not None:  # the whole answer is out: cache it
                r = rs.route
                resp = accumulate(events, provider=r.provider, model=r.model_id or req.model)
                if cache_to[0].cacheable(req, resp):
                    await cache_to[0].put(cache_to[1], r.model_id or req.model, r.provider, resp)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a mid-stream failure: the status line is already out
            f = failure_from(e)
            status, error = f.status, f.message
            if anthropic:
                tail = aw.EventEncoder.error(failure_type(f), f.message)
            elif isinstance(enc, ResponsesEncoder):
                tail = enc.failed(f)
            else:
                tail = b"data: " + f.openai_body() + b"\n\n"
            if flushing is not None:
                t, flushing = flushing, None
                await t
            await put({"type": "http.response.body", "body": b"".join(buf) + tail, "more_body": False})
        finally:
            if flushing is not None:
                flushing.cancel()

    async def watch() -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return

    p = asyncio.ensure_future(pump())
    w = asyncio.ensure_future(watch())
    period = min(write_timeout / 4, 1.0)
    guard: asyncio.TimerHandle | None = None

    def check() -> None:  # one timer per stream, not one per chunk
        nonlocal status, error, guard
        if sending_since and loop.time() - sending_since >= write_timeout and not p.done():
            status, error = 499, f"client stopped reading (no write progress for {write_timeout:g} s)"
            p.cancel()  # the upstream call is cancelled with it
            return
        guard = loop.call_later(period, check)

    guard = loop.call_later(period, check)
    try:
        await asyncio.wait((p, w), return_when=asyncio.FIRST_COMPLETED)
        if not p.done():  # the client went away: cancel the upstream call
            status, error = 499, "client closed"
            p.cancel()
        try:
            await p
        except asyncio.CancelledError:
            if status != 499:
                raise
    finally:
        if guard is not None:
            guard.cancel()
        w.cancel()
        try:
            await rs.aclose()
        except Exception as e:  # noqa: BLE001
            app_log(e)
    route = rs.route  # final cost now
    endpoint = "messages" if anthropic else wire.endpoint if wire is not None else "chat"
    _finish(h, key, endpoint, req, route, _billed_usage(route) or enc.usage, status, t0, overhead_ms, error, True)


class _Resume:
    """Awaits the rest of a coroutine (or awaitable iterator step) that was started by hand
    with `send(None)` and yielded `first` (what it waits on); with `exc`, throws that into it
    first. The stream pump uses it to ask for the next event without waiting when one is ready."""

    __slots__ = ("c", "first", "exc")

    def __init__(self, c: Any, first: Any, exc: BaseException | None = None) -> None:
        self.c, self.first, self.exc = c, first, exc

    def __await__(self) -> Any:
        c = self.c
        try:
            y = c.throw(self.exc) if self.exc is not None else self.first
            while True:
                try:
                    v = yield y
                except BaseException as e:  # cancelled while waiting: the coroutine handles it
                    y = c.throw(e)
                else:
                    y = c.send(v)
        except StopIteration as done:
            return done.value


async def _resume_task(c: Any, first: Any) -> None:
    await _Resume(c, first)


def cascade_headers(route: RouteInfo) -> list[tuple[bytes, bytes]]:
    """What an answer-agreement cascade did (none for a single-model route): its name, the
    vendor calls made, the stages run, the stage that answered, the models that agreed."""
    c = route.cascade
    if c is None:
        return []
    return [(b"x-quotaroute-cascade", ascii_header(c.name, 64)), (b"x-quotaroute-calls", str(c.calls).encode()),
            (b"x-quotaroute-stages", str(c.stages_run).encode()),
            (b"x-quotaroute-accepted-stage", str(c.accepted_stage or 0).encode()),
            (b"x-quotaroute-agreed", ascii_header(",".join(c.agreed) or "-", 512)),
            (b"x-quotaroute-agreement", b"yes" if c.agreement else b"no")]


def write_timeout_s(settings: ServerSettings) -> float:
    """`limits.stream_write_timeout_s` of the server settings (default 30 s)."""
    v = settings.limits.stream_write_timeout_s
    return float(v) if v else 30.0


def _billed_usage(route: RouteInfo) -> Usage | None:
    """The sum of the usage billed on the route's attempts; None when none was."""
    billed = [a.usage for a in route.attempts if a.usage is not None]
    return sum(billed, Usage()) if billed else None


def failure_type(f: Failure) -> str:
    return ANTHROPIC_TYPES.get(f.status, "api_error")


_REASONS: dict[str, str] = {}


def _safe_text(reason: str | None) -> str | None:
    """Redacted, bounded route reason for the log (memoized: reasons repeat)."""
    if not reason:
        return None
    if len(reason) > 1024:  # only short reasons are memoized (a reason may quote a client's string)
        return redact(reason)[:500]
    v = _REASONS.get(reason)
    if v is None:
        if len(_REASONS) > 4096:
            _REASONS.clear()
        v = _REASONS[reason] = redact(reason)[:500]
    return v


def _finish(h: Handed, key: ProxyKey | None, endpoint: str, req: Any, route: RouteInfo | None,
            usage: Usage | None, status: int, t0: float, overhead_ms: float | None, error: str | None, stream: bool,
            *, model: str = "", provider: str = "", attempts: list[Attempt] | None = None, log: bool = True) -> None:
    now = time.time()
    latency_s = time.perf_counter() - t0
    cost = Decimal(0)
    reason, chain = "", ""
    if route is not None:
        model, provider, cost, reason = route.model_id or model, route.provider or provider, route.cost_usd, route.reason
        attempts = route.attempts
        if usage is None or not usage.total_tokens:
            usage = sum((a.usage for a in attempts if a.usage is not None), Usage())
    if attempts:
        chain = ",".join(a.model_id for a in attempts)
    usage = usage or Usage()
    if key is not None and key.tpm:
        h.gate.count_tokens(key, usage.input_tokens + usage.output_tokens)
    if h.tracing is not None:  # the request span's outcome (router.server.tracing)
        h.tracing.finish(route, usage, status, error, req, stream, cost, model, provider)
    h.metrics.observe(endpoint=endpoint, model=model, provider=provider, status=status, latency_s=latency_s,
                        overhead_s=overhead_ms / 1000 if overhead_ms is not None else None,
                        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        cost_usd=float(cost), attempts=attempts or ())
    if h.spend is not None and log:
        h.spend.record((
            now, time.strftime("%Y-%m-%d", time.gmtime(now)), key.id if key is not None else None, endpoint,
            req.model if req is not None else None, model or None, provider or None, usage.input_tokens,
            usage.output_tokens, usage.cache_read_tokens, usage.reasoning_tokens, format(cost, "f"),
            round(latency_s * 1000, 3), round(overhead_ms, 3) if overhead_ms is not None else None,
            _safe_text(reason), chain or None, status, redact(error)[:500] if error else None,
            1 if stream else 0,
        ))


# ---------------------------------------------------------------- other endpoints

async def _send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None, *,
                     t0: float | None = None, reason: str = "") -> None:
    """A JSON response; with `t0`, a /v1 response: the x-quotaroute-* headers too (no
    model answered: `-`, cost 0, `reason` says what was served)."""
    headers = [_JSON, (b"content-length", str(len(body)).encode())] + (extra or [])
    if t0 is not None:
        headers += route_headers("-", "-", None, reason, (time.perf_counter() - t0) * 1000)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _guarded(send: Send, t0: float, coro: Awaitable[None]) -> None:
    try:
        await coro
    except Exception as e:  # noqa: BLE001
        await send_failure(send, failure_from(e), anthropic=False, t0=t0)


async def list_models(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)  # every request of a key counts against its rpm
        await _send_json(send, 200, h.models.json(), t0=t0, reason="model list")
    await _guarded(send, t0, go())


async def get_model(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    async def go() -> None:
        key = await h.gate.authenticate(scope)
        await h.gate.admit(key)  # every request of a key counts against its rpm
        mid = unquote(scope["path"][len("/v1/models/"):])
        body = h.models.one(mid)
        if body is None:
            raise Failure(404, f"The model `{mid[:200]}` does not exist or you do not have access to it.",
                          code="model_not_found", param="model")
        await _send_json(send, 200, body, t0=t0, reason="model")
    await _guarded(send, t0, go())


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
        await _send_json(send, 200, await _stored_response(h, scope, delete=False))
    await _guarded(send, t0, go())


async def delete_response(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    """DELETE /v1/responses/{id}: drop a stored response of the calling key."""
    async def go() -> None:
        await _send_json(send, 200, await _stored_response(h, scope, delete=True))
    await _guarded(send, t0, go())


async def healthz(h: Handed, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
    closed = h.load.closed
    body: dict[str, Any] = {"status": "shutting_down" if closed else "ok", "in_flight": max(0, h.load.in_flight - 1)}
    hb = h.router.health
    if hb is not None:  # upstream keys (ids only) cooling off after a 401/403
        body["bad_upstream_keys"] = [{"id": k, **v} for k, v in hb.bad_entries().items()]
    await _send_json(send, 503 if closed else 200, orjson.dumps(body))


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
        await _send_json(send, 200, orjson.dumps({"object": "quota", "pools": _plain(view.pools),
                                                  "budgets": _plain(list(view.budgets))}), t0=t0, reason="quota")
    await _guarded(send, t0, go())


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
        await _send_json(send, 200, orjson.dumps({"object": "spend", "by": by, "key": key_id, "data": _plain(rows)}),
                         t0=t0, reason="spend")
    await _guarded(send, t0, go())
