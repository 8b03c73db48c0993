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

import time
from dataclasses import replace
from decimal import Decimal

import orjson

from router.cache.entry import CachedAnswer
from router.errors import ClientGone
from router.result import RouteInfo
from router.server import anthropic_wire as aw
from router.server import embeddings_wire as ew
from router.server import openai_wire as ow
from router.server.auth import ProxyKey
from router.server.cache import BYPASS, HIT, MISS, ProxyCache, body_flag
from router.server.context import Handed, Receive, Scope, Send
from router.server.errors import Failure, failure_from, route_headers, send_failure
from router.server.keygate import request_scope
from router.server.respond import (
    JSON_HEADER, SSE_HEADERS, app_log, billed_usage, cascade_headers, finish, header_of, note_dropped,
    response_model, send_json, upstream_s,
)
from router.server.responses_store import ResponsesCall
from router.server.stream_out import send_stream
from router.server.validate import check_depth, json_depth_limit
from router.types import ChatRequest, Usage

__all__ = ["read_body", "chat_completions", "messages", "responses", "embeddings", "count_tokens"]


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
        sc = request_scope(key, req.user, header_of(scope, b"x-quotaroute-tags"))
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
            await send_stream(h, send, receive, req, sc, key, t0, anthropic, include_usage, wire, ch,
                          (pc, ck) if pc is not None and ck is not None else None)
            return
        t1 = time.perf_counter()
        rr = await h.router.achat(req, scope=sc)
        t2 = time.perf_counter()
        route, resp = rr.route, rr.response
        if anthropic:
            note_dropped(h, req, route)
        model = route.model_id or resp.model
        shown = response_model(model, h.settings)
        out = aw.messages_response(resp, shown) if anthropic else ow.chat_response(resp, shown) if wire is None \
            else wire.response(resp, shown)
        if wire is not None:
            await wire.save()  # before the answer is out: a client may chain to it at once
        overhead_ms = ((time.perf_counter() - t0) - upstream_s(route, t2 - t1)) * 1000
        headers = [JSON_HEADER, (b"content-length", str(len(out)).encode())]
        headers += route_headers(model, route.provider, route.cost_usd, route.reason, overhead_ms,
                                 h.settings.reason_header_max) + cascade_headers(route) + ch
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        # a cascade's spend row counts every call's tokens, as its cost does
        usage = billed_usage(route) if route.cascade is not None else resp.usage
        finish(h, key, endpoint, req, route, usage, 200, t0, overhead_ms, None, False)
        if pc is not None and ck is not None and pc.cacheable(req, resp):
            await pc.put(ck, model, route.provider, resp)
    except ClientGone:
        finish(h, key, endpoint, req, route, None, 499, t0, None, "client closed", False)
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        overhead_ms = await send_failure(send, f, anthropic=anthropic, t0=t0)
        finish(h, key, endpoint, req, getattr(e, "route", None), None, f.status, t0, overhead_ms, f.message, False,
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
    headers = (list(SSE_HEADERS) if req.stream else [JSON_HEADER]) + [(b"content-length", str(len(out)).encode())]
    headers += route_headers(hit.model_id, hit.provider, route.cost_usd, route.reason, overhead_ms,
                             h.settings.reason_header_max) + [HIT]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})
    finish(h, key, "cache:" + endpoint, req, route, Usage(), 200, t0, overhead_ms, None, req.stream)


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
        sc = request_scope(key, req.user, header_of(scope, b"x-quotaroute-tags"))
        if sc["user"] != req.user:  # the key pins its user: the vendor and the budgets see that one
            req = replace(req, user=sc["user"])
        t1 = time.perf_counter()
        out = await h.router.aembed(req, scope=sc)
        t2 = time.perf_counter()
        route = out.route
        model = route.model_id or out.model
        payload = ew.embeddings_response(out, req, response_model(model, h.settings))
        overhead_ms = ((time.perf_counter() - t0) - upstream_s(route, t2 - t1)) * 1000
        headers = [JSON_HEADER, (b"content-length", str(len(payload)).encode())]
        headers += route_headers(model, route.provider, route.cost_usd, route.reason, overhead_ms,
                                 h.settings.reason_header_max)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        finish(h, key, "embeddings", req, route, out.usage, 200, t0, overhead_ms, None, False)
    except ClientGone:
        finish(h, key, "embeddings", req, route, None, 499, t0, None, "client closed", False)
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        overhead_ms = await send_failure(send, f, anthropic=False, t0=t0)
        finish(h, key, "embeddings", req, getattr(e, "route", None), None, f.status, t0, overhead_ms, f.message,
                False, model=f.model, provider=f.provider, attempts=getattr(e, "attempts", None),
                log=f.status != 401 and f.code != "too_many_auth_failures")


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
        await send_json(send, 200, orjson.dumps({"input_tokens": tc.input_tokens}), extra)
    except ClientGone:
        return
    except Exception as e:  # noqa: BLE001 - mapped in one place
        f = failure_from(e)
        if f.status >= 500 and not isinstance(e, Failure):
            app_log(e)
        await send_failure(send, f, anthropic=True, t0=t0)
