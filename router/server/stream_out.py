"""Sending a routed stream as SSE (`send_stream`): one pump that batches what is ready
per loop iteration into one send, a watcher for the client going away, and a write
timeout for a client that stops reading. A failure after the status line ends the
stream with an explicit error event; either way the attempts are billed as
`router.streaming` describes.

One proxy request, read downward: handlers.py -> stream_out.py (stream requests) -> router/sdk.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from router.server import anthropic_wire as aw
from router.server import openai_wire as ow
from router.server.auth import ProxyKey
from router.server.cache import ProxyCache
from router.server.context import Handed, Receive, Send
from router.server.errors import failure_from, route_headers
from router.server.respond import (
    SSE_HEADERS, app_log, billed_usage, cascade_headers, failure_type, finish, note_dropped, response_model,
    upstream_s, write_timeout_s,
)
from router.server.responses_events import ResponsesEncoder
from router.server.responses_store import ResponsesCall
from router.server.stream_sink import ClientSink
from router.splice import SPLICE, SplicedText
from router.types import ChatRequest, accumulate

__all__ = ["send_stream"]


async def send_stream(h: Handed, send: Send, receive: Receive, req: ChatRequest, sc: dict[str, Any],
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
        note_dropped(h, req, route)
    model = route.model_id or req.model
    shown = response_model(model, h.settings)
    enc: aw.EventEncoder | ow.ChunkEncoder | ResponsesEncoder = aw.EventEncoder(shown) if anthropic else \
        ow.ChunkEncoder(shown, include_usage) if wire is None else wire.encoder(shown)
    overhead_ms = ((t2 - t0) - upstream_s(route, t2 - t1)) * 1000
    headers = SSE_HEADERS + route_headers(model, route.provider, route.estimated_cost_usd if route.cascade is None
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
    # the splice sink: text chunks straight from the vendor's socket to the client's (router.splice)
    splice = events is None and route.cascade is None and getattr(h.settings.limits, "stream_splice", True)
    sink: ClientSink | None = None

    def flush(buf: list[bytes]) -> None:
        """Send what is ready as one body message; a send that must wait for the client
        finishes in the background (the next flush, or the end, waits for it)."""
        nonlocal flushing
        body = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        if sink is not None:  # one ordered queue for every body write (see stream_sink)
            sink.write(body)
            return
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
        nonlocal status, error, flushing, sink
        buf: list[bytes] = []
        try:
            await put({"type": "http.response.start", "status": 200, "headers": headers})
            if splice:
                sink = ClientSink.for_send(send, enc)
                SPLICE.set(sink)  # this task's context only: the adapters it reads from see it
            buf.append(enc.start())
            while True:
                if flushing is not None:  # the client is slow: wait for it before reading on
                    t, flushing = flushing, None
                    await t
                if sink is not None and sink.drainer is not None:
                    await sink.wait()
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
                if ev.__class__ is SplicedText:  # already written by the splice
                    continue
                if events is not None:
                    events.append(ev)
                b = enc.event(ev)
                if b:
                    buf.append(b)
            billed = billed_usage(rs.route)  # every attempt's usage (a finished cut stream has several)
            if billed is not None:
                enc.usage = billed
            buf.append(enc.end())
            if flushing is not None:
                t, flushing = flushing, None
                await t
            if sink is not None:
                await sink.wait()
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
            if sink is not None:
                await sink.wait()
            await put({"type": "http.response.body", "body": b"".join(buf) + tail, "more_body": False})
        finally:
            if flushing is not None:
                flushing.cancel()
            if sink is not None:
                sink.close()

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
        since = sending_since or (sink.since if sink is not None else 0.0)
        if since and loop.time() - since >= write_timeout and not p.done():
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
    finish(h, key, endpoint, req, route, billed_usage(route) or enc.usage, status, t0, overhead_ms, error, True)


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
