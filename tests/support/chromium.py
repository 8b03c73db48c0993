"""A headless Chromium driven over the DevTools protocol, for the dashboard tests.

    with Chromium() as b:                 # starts /usr/bin/chromium (or $CHROMIUM)
        page = await b.page()             # a tab, over a websocket (aiohttp)
        await page.goto(url)
        html = await page.eval("document.documentElement.outerHTML")
        png = await page.screenshot()

The browser is Debian's `chromium` package: `find_chromium()` returns None when it is
not installed (the tests then skip and say so). The page records console messages,
uncaught exceptions and the browser's log (Content-Security-Policy violations land
there) in `page.problems`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Chromium", "Page", "find_chromium", "FLAGS"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return exe if exe and os.access(exe, os.X_OK) else None


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._loaded = asyncio.Event()
        self.problems: list[str] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            m = json.loads(msg.data)
            if "id" in m:
                fut = self._waiting.pop(m["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(m)
                continue
            method, p = m.get("method"), m.get("params", {})
            if method == "Page.loadEventFired":
                self._loaded.set()
            elif method == "Runtime.exceptionThrown":
                self.problems.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                self.problems.append("console: " + json.dumps(p.get("args", []))[:500])
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                self.problems.append("log: " + p["entry"].get("text", "")[:500])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._id] = fut
        await self.ws.send_str(json.dumps({"id": self._id, "method": method, "params": params}))
        m = await asyncio.wait_for(fut, 30)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m.get("result", {})

    async def start(self) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def goto(self, url: str) -> None:
        self._loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def eval(self, expr: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr[:80]!r}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    async def submit(self, expr: str) -> None:
        """Run `expr` (which submits a form) and wait for the next page to load."""
        self._loaded.clear()
        await self.eval(expr)
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def wait_for(self, expr: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = await self.eval(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {expr!r}")
            await asyncio.sleep(0.1)

    async def screenshot(self, width: int = 1400) -> bytes:
        h = await self.eval("Math.ceil(document.documentElement.scrollHeight)")
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=int(h), deviceScaleFactor=1,
                        mobile=False)
        r = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(r["data"])

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


class Chromium:
    """One headless browser process with a throw-away profile (closed on exit)."""

    def __init__(self, exe: str | None = None, *, width: int = 1400, height: int = 1000) -> None:
        self.exe = exe or find_chromium()
        if self.exe is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self.size = (width, height)
        self._tmp = tempfile.TemporaryDirectory(prefix="qr-chromium-", ignore_cleanup_errors=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    def __enter__(self) -> "Chromium":
        profile = Path(self._tmp.name)
        self.proc = subprocess.Popen(
            [self.exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        self.port = int(marker.read_text().splitlines()[0])
        return self

    async def page(self) -> Page:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        p = Page(ws)
        await p.start()
        return p

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            # the browser and its helper processes: the process group this object started
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for _ in range(50):  # helpers may still be writing to the profile for a moment
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            if not os.path.exists(self._tmp.name):
                break
            time.sleep(0.1)
        self._tmp.cleanup()
