"""Connection limits for `quotaroute serve`: slow and abusive clients.

uvicorn's httptools protocol has a keep-alive timeout but no header or body read
timeout, no header size limit and no cap on open connections (its
`limit_concurrency` is checked only once a request's headers have arrived, so
idle and half-sent connections still use up file descriptors). This module adds
them in a small subclass of that protocol:

    config = server_config(app, Limits(), host="127.0.0.1", port=4000)   # a uvicorn.Config
    uvicorn.Server(config).run()

- headers must arrive within `header_timeout_s` of the connection (or of the first
  byte of a later request on a kept-alive connection): else 408 and close;
- a request body must arrive within `body_timeout_s` of its headers: else 408, and
  the app's `receive()` reports a disconnect;
- request line + headers above `max_header_bytes`: 431 and close, checked while
  they arrive (at most one socket read past the limit is ever held);
- at most `max_connections` open connections per process (default derived from
  RLIMIT_NOFILE). At the limit, the connection that has waited longest without a
  request in progress (idle keep-alive or headers still incomplete, for at least
  a second) is closed to make room; when there is none, the new connection gets
  503 with Retry-After and is closed.

Refusals answer with a JSON error, half-close, and drain what the client still
sends for up to two seconds (so the client reads the status instead of a reset);
at most 64 connections drain at once, the rest are closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httptools
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from router.errors import ConfigError, redact
from router.server.limits import DEFAULT_LIMITS, Limits, default_max_connections

__all__ = ["GuardedHttpToolsProtocol", "server_config", "bind_socket", "serve", "Limits"]

log = logging.getLogger("quotaroute.server")

LINGER_S = 2.0  # how long a refused connection is drained before it is closed
MAX_LINGERING = 64  # refused connections drained at once (beyond: closed at once)
EVICT_AFTER_S = 1.0  # a waiting connection younger than this is never closed to make room


# connection phases
_WAIT, _HEADERS, _BODY, _BUSY = 0, 1, 2, 3


class _Refused(Exception):
    """Raised from a parser callback after a refusal was sent (stops the parser)."""


class _Gate:
    """Per-server connection accounting (one per uvicorn Server, so per process)."""

    __slots__ = ("limit", "lingering", "waiting", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lingering = 0
        self.refused = 0  # connections answered 503 at the limit (for tests and logs)
        # connections with no request in progress, oldest first -> since (loop time)
        self.waiting: OrderedDict[GuardedHttpToolsProtocol, float] = OrderedDict()

    def make_room(self, now: float) -> bool:
        """Close the longest-waiting idle or half-sent connection, if one has waited long enough."""
        w = self.waiting
        while w:
            proto, since = next(iter(w.items()))
            if now - since < EVICT_AFTER_S:
                return False
            w.popitem(last=False)
            if proto.evict():
                return True
        return False


def _error(status: int, message: str, code: str, extra: bytes = b"") -> bytes:
    typ = "server_error" if status >= 500 else "invalid_request_error"
    body = orjson.dumps({"error": {"message": message, "type": typ, "param": None, "code": code}})
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\ncontent-length: ",
                     str(len(body)).encode(), b"\r\nconnection: close\r\n", extra, b"\r\n", body])


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus read timeouts, a header size limit and a connection cap."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        lim: Limits = getattr(config, "quotaroute_limits", None) or DEFAULT_LIMITS.resolved()
        gate = getattr(server_state, "quotaroute_gate", None)
        if gate is None:
            gate = server_state.quotaroute_gate = _Gate(lim.max_connections or default_max_connections())
        self._gate: _Gate = gate
        self._max_header = lim.max_header_bytes
        self._header_s = lim.header_timeout_s
        self._body_s = lim.body_timeout_s
        self._phase = _WAIT
        self._timed = -1  # the phase the armed timer belongs to
        self._timer: asyncio.TimerHandle | None = None
        self._seen = 0  # bytes received since the current request began, while its headers are incomplete
        self._total = 0  # bytes received on this connection
        self._chunk_start = 0  # _total before the chunk being parsed
        self._msg_start = 0  # _chunk_start of the chunk in which the current request began
        self._closing = False  # refused: draining until closed
        self._lingering = False
        self._early = False  # refused at connect (never registered with uvicorn)

    # ------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        gate = self._gate
        now = self.loop.time()
        if len(self.connections) >= gate.limit and not gate.make_room(now):
            self._early = True
            self.transport = transport
            gate.refused += 1
            self._refuse(_error(503, f"Too many open connections (limit {gate.limit}); retry shortly.",
                                "too_many_connections", b"retry-after: 1\r\n"))
            return
        super().connection_made(transport)
        gate.waiting[self] = now
        self._arm(_WAIT, self._header_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._gate.waiting.pop(self, None)
        if self._lingering:
            self._lingering = False
            self._gate.lingering -= 1
        if self._early:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # draining a refused connection
        self._unset_keepalive_if_required()
        n = len(data)
        self._chunk_start = self._total
        self._total += n
        if self._phase != _BODY:
            self._seen += n
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._closing:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no websockets here
        if self._closing:
            return
        ph = self._phase
        if ph == _HEADERS and self._seen > self._max_header:
            self._refuse_headers()
            return
        if ph != self._timed:
            if ph == _HEADERS:
                if self._timed != _WAIT:  # a new connection keeps its deadline from connect
                    self._arm(_HEADERS, self._header_s)
                self._timed = _HEADERS
            elif ph == _BODY:
                self._arm(_BODY, self._body_s)
            else:
                self._cancel()
                self._timed = ph

    # ------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS
        self._msg_start = self._chunk_start
        if self not in self._gate.waiting:
            self._gate.waiting[self] = self.loop.time()

    def on_headers_complete(self) -> None:
        # Everything received since the chunk this request began in bounds its header size:
        # count the headers themselves only when that bound is over the limit.
        if self._total - self._msg_start > self._max_header and \
                len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers) > self._max_header:
            self._refuse_headers()
            raise _Refused
        self._gate.waiting.pop(self, None)
        self._phase = _BODY
        self._seen = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _BUSY
        self._seen = 0

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and self._phase == _BUSY and not self._closing and not self.transport.is_closing():
            self._phase = _WAIT  # idle keep-alive: uvicorn's keep-alive timer runs now
            self._gate.waiting[self] = self.loop.time()

    # ------------------------------------------------------------ timers
    def _arm(self, phase: int, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timed = phase
        self._timer = self.loop.call_later(seconds, self._on_timeout)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        self._timer = None
        if self._closing or self.transport is None or self.transport.is_closing():
            return
        ph = self._phase
        if ph == _WAIT:  # connected and sent nothing: just close
            self._drop()
        elif ph == _HEADERS:
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm(_HEADERS, self._header_s)  # the previous request is still being answered
                return
            self._refuse(_error(408, f"Request headers not received within {self._header_s:g} s.",
                                "request_timeout"))
        elif ph == _BODY:
            started = self.cycle is not None and self.cycle.response_started
            self._refuse(b"" if started else _error(
                408, f"Request body not received within {self._body_s:g} s.", "request_timeout"))

    # ------------------------------------------------------------ refusals
    def _refuse_headers(self) -> None:
        self._refuse(_error(431, f"Request headers too large (limit {self._max_header} bytes).",
                            "headers_too_large"))

    def _refuse(self, response: bytes) -> None:
        """Send `response`, stop the request, half-close and drain for a while."""
        self._closing = True
        self._cancel()
        gate = self._gate
        gate.waiting.pop(self, None)
        self.connections.discard(self)  # counted among the draining ones from now on
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() now reports http.disconnect
            cycle.message_event.set()
        t = self.transport
        if response:
            t.write(response)
        if gate.lingering >= MAX_LINGERING:
            t.close()
            return
        gate.lingering += 1
        self._lingering = True
        try:
            t.resume_reading()
            if t.can_write_eof():
                t.write_eof()
        except (OSError, RuntimeError, AttributeError):
            t.close()
            return
        self._timer = self.loop.call_later(LINGER_S, t.close)

    def _drop(self) -> None:
        self._closing = True
        self._cancel()
        self._gate.waiting.pop(self, None)
        self.connections.discard(self)
        self.transport.close()

    def evict(self) -> bool:
        """Close this connection to make room, if it has no request in progress."""
        if self._closing or self.transport is None or self.transport.is_closing():
            return False
        busy = self.cycle is not None and not self.cycle.response_complete
        if self._phase not in (_WAIT, _HEADERS) or self.pipeline or busy:
            return False
        self._drop()
        return True


def server_config(app: Any, limits: Limits | None = None, **kw: Any) -> Any:
    """A uvicorn.Config serving `app` with these limits (http: the guarded httptools protocol)."""
    lim = (limits or DEFAULT_LIMITS).resolved()
    kw.setdefault("ws", "none")
    cfg = uvicorn.Config(app, http=GuardedHttpToolsProtocol, timeout_keep_alive=lim.keepalive_timeout_s, **kw)
    cfg.quotaroute_limits = lim  # type: ignore[attr-defined]
    return cfg


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (raises OSError: the caller words the message)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "localhost":
        host = "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: Any, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._announce()


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor; announces once every worker reports started.

    SIGHUP: uvicorn's own answer is to restart every worker; here the config file is
    checked once (`validate`, raising ConfigError: one log line, nothing changes) and
    SIGHUP is forwarded to each worker, which reloads in place (router.server.reload).
    A worker still starting gets it once it is ready."""

    def __init__(self, config: Any, sockets: list[socket.socket], announce: Callable[[], None],
                 validate: Callable[[], list[str]] | None = None) -> None:
        super().__init__(config, sockets=sockets)
        self._announce = announce
        self._validate = validate
        self._hup_pending: list[Any] = []  # workers to signal once they are ready
        self.status = 0

    def init_processes(self) -> None:
        super().init_processes()
        pending = list(self.processes)
        deadline = time.monotonic() + 120
        while pending:
            self.handle_signals()  # Ctrl-C while the workers start
            if self.should_exit.is_set():
                return
            for p in list(pending):
                if not p.process.is_alive() or time.monotonic() > deadline:
                    if p.process.is_alive():
                        p.kill()  # hung at start-up
                    p.join()
                    self.status = 2 if p.exitcode == 2 else 1  # it said why on stderr
                    self.should_exit.set()
                    return
                if p.is_ready(timeout=0.2):
                    pending.remove(p)
        self._announce()
        from router.server.reload import take_early  # lazy: import time (the parent needs one flag)

        if take_early():  # a SIGHUP came while the parent itself was starting
            self.handle_hup()

    def handle_hup(self) -> None:
        if self._validate is not None:
            try:
                notes = self._validate()
            except ConfigError as e:
                log.error("quotaroute serve: config reload refused, still serving the previous config: %s", e)
                return
            except Exception as e:  # noqa: BLE001 - keep serving whatever went wrong
                log.error("quotaroute serve: config reload failed, still serving the previous config: %s",
                          redact(repr(e))[:500])
                return
            for n in notes:
                log.warning("quotaroute serve: config reload: %s", n)
        self._hup_pending = list(self.processes)
        self._forward_hup()
        log.warning("quotaroute serve: config reloaded: SIGHUP forwarded to %d workers", len(self.processes))

    def _forward_hup(self) -> None:
        for p in list(self._hup_pending):
            if p not in self.processes or not p.process.is_alive():
                self._hup_pending.remove(p)  # replaced: its successor read the file when it started
            elif p.is_ready(timeout=0.5):
                self._hup_pending.remove(p)
                if p.pid is not None:
                    os.kill(p.pid, signal.SIGHUP)

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        if self._hup_pending and not self.should_exit.is_set():
            self._forward_hup()


def serve(config: Any, sock: socket.socket, announce: Callable[[], None],
          validate: Callable[[], list[str]] | None = None) -> int:
    """Run until stopped on an already bound socket; `announce()` once requests are being
    accepted. Returns the exit status (1 = the app or a worker failed to start).
    `validate()`: with workers, the config check run before SIGHUP is forwarded to them."""
    try:
        if config.workers > 1:
            sup = _Supervisor(config, [sock], announce, validate)
            sup.run()
            return sup.status
        server = _AnnouncingServer(config, announce)
        try:
            server.run(sockets=[sock])
        except SystemExit as e:  # uvicorn's start-up failure (the lifespan start-up failed)
            return e.code if isinstance(e.code, int) and e.code else 1
        return 0 if server.started else 1
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled: a normal stop
        return 0
