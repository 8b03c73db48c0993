"""Config reload on SIGHUP for `quotaroute serve`.

    app = Reloading(proxy_app, rebuild)     # the ASGI app uvicorn serves
    kill -HUP <pid>                          # re-read the config file

`rebuild(current)` reads the config file again with the same loader as start-up
(`router.config.load_config`), builds a new Router and `ProxyApp` (in a thread, so
the event loop keeps serving) and raises `ConfigError` when the file is wrong. Then:

- a bad file: one log line says why; the running app keeps serving, unchanged;
- a good one: the new app warms up, then takes every new request at once (one
  attribute swap); requests already running finish on the old app, which is closed
  (its Router, its key gate) once the last of them has ended. The spend log, the
  Responses store, the Prometheus registry and (with the same `cache:` section) the
  response cache carry over to the new app.

Reloads run one at a time; signals that arrive during one coalesce into one more.
With `--workers N` the supervisor validates the file once and forwards SIGHUP to
every worker (router.server.transport). What a reload cannot change (the listening
address, connection limits, where the spend log and the Responses store live) is
kept from start-up and named in a warning (`restart_only`).

Signals are only taken in the main thread of a process that runs `quotaroute serve`
(`lifespan` start-up); a host application embedding `ProxyApp` is never touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import Any

from router.errors import ConfigError, redact
from router.server.app import ProxyApp
from router.server.context import Receive, Scope, Send

__all__ = ["Reloading", "RESTART_ONLY", "restart_only", "catch_early", "take_early", "SIGHUP"]

log = logging.getLogger("quotaroute.server")

SIGHUP: int | None = getattr(signal, "SIGHUP", None)  # None on Windows: no reload by signal

# ServerSettings fields a reload keeps from start-up (the socket and the protocol's
# limits are bound once; the spend log and the Responses store are shared by both apps).
# Names a settings class does not have are skipped.
RESTART_ONLY = ("host", "port", "limits", "spend_db", "responses", "store", "dsn_env")

_early = False  # a SIGHUP arrived before the app could take it


def _remember(signum: int, frame: Any) -> None:
    global _early
    _early = True


def catch_early() -> None:
    """From process start until the app takes over: remember a SIGHUP instead of dying
    of it (its default action ends the process). Main thread only; no-op without SIGHUP."""
    if SIGHUP is not None:
        signal.signal(SIGHUP, _remember)


def take_early() -> bool:
    """Was a SIGHUP remembered by `catch_early` (and forget it)?"""
    global _early
    was, _early = _early, False
    return was


def restart_only(running: Any, new: Any) -> tuple[Any, list[str]]:
    """`new` settings with the start-up-only fields of `running`, and the names of
    those the new file changed (they take effect on the next restart)."""
    names = {f.name for f in dataclasses.fields(new)}
    keep = {n: getattr(running, n) for n in RESTART_ONLY if n in names}
    changed = [f"server.{n}" for n, v in keep.items() if getattr(new, n) != v]
    return dataclasses.replace(new, **keep), changed


class Reloading:
    """The ASGI app `quotaroute serve` runs: the current `ProxyApp`, swapped on SIGHUP.

    `rebuild(current) -> ProxyApp` runs in a worker thread and raises `ConfigError`
    for a file that must not be served. `announce`: log a successful reload at
    warning level (the default log level shows it); workers pass False, their
    supervisor says it once."""

    def __init__(self, app: ProxyApp, rebuild: Callable[[ProxyApp], ProxyApp], *, announce: bool = True) -> None:
        self.app = app
        self._rebuild = rebuild
        self._announce = announce
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[Any] | None = None  # the reload running now
        self._again = False  # another SIGHUP came during it
        self._retiring: set[asyncio.Task[Any]] = set()
        self._signal = False
        self.reloads = 0  # successful reloads (tests, logs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.app(scope, receive, send)

    # ------------------------------------------------------------------ reload
    async def reload(self) -> bool:
        """Re-read the config and swap the app; False (and one log line) when the new
        file is refused or fails to start. One reload at a time."""
        async with self._lock:
            old = self.app
            try:
                new = await asyncio.to_thread(self._rebuild, old)
            except ConfigError as e:
                log.error("quotaroute serve: config reload refused, still serving the previous config: %s", e)
                return False
            except Exception as e:  # noqa: BLE001 - a bug or a provider that cannot be built: keep serving
                log.error("quotaroute serve: config reload failed, still serving the previous config: %s",
                          redact(repr(e))[:500])
                return False
            try:
                await new.startup()
            except Exception as e:  # noqa: BLE001
                log.error("quotaroute serve: the reloaded config did not start, still serving the previous "
                          "config: %s", redact(repr(e))[:500])
                await new.retire(old)
                return False
            self.app = new  # new requests from here on; the old app keeps those it has
            self.reloads += 1
            t = asyncio.get_running_loop().create_task(old.retire(new))
            self._retiring.add(t)
            t.add_done_callback(self._retired)
            msg = f"quotaroute serve: config reloaded ({len(new.router.model_ids)} models)"
            if self._announce:
                log.warning(msg)
            else:
                log.info(msg)
            return True

    def _retired(self, t: asyncio.Task[Any]) -> None:
        self._retiring.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("closing the previous config's router failed: %s", redact(repr(t.exception()))[:300])

    def request_reload(self) -> None:
        """From the signal handler (on the loop): start a reload, or queue one more."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.reload()
            if not self._again:
                return
            self._again = False

    # ------------------------------------------------------------------ lifespan
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.app.startup()
                except Exception as e:  # noqa: BLE001
                    await send({"type": "lifespan.startup.failed", "message": redact(str(e))})
                    return
                self._take_signal()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                except Exception as e:  # noqa: BLE001
                    await send({"type": "lifespan.shutdown.failed", "message": redact(str(e))})
                return

    def _take_signal(self) -> None:
        if SIGHUP is None:
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(SIGHUP, self.request_reload)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: no reload by signal
            log.info("SIGHUP reload not available here (not the main thread)")
            return
        self._signal = True
        if take_early():
            self.request_reload()

    async def aclose(self) -> None:
        """Shutdown: stop taking SIGHUP, let a running reload finish, close every app."""
        if self._signal:
            self._signal = False
            loop = asyncio.get_running_loop()
            loop.remove_signal_handler(SIGHUP)  # type: ignore[arg-type]
            catch_early()  # a late SIGHUP must not kill a process that is shutting down
        if self._task is not None and not self._task.done():
            self._again = False
            await asyncio.gather(self._task, return_exceptions=True)
        await self.app.aclose()
        if self._retiring:  # their requests were given the same graceful timeout by the server
            await asyncio.wait(self._retiring, timeout=30)
