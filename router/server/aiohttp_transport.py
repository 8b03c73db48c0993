"""An `httpx.AsyncBaseTransport` backed by aiohttp's connection pool.

Adapters keep their `httpx.AsyncClient` interface (and respx keeps working in
their tests); the proxy injects `aiohttp_client()` so upstream calls scale under
concurrency (httpcore's pool is the bottleneck of a plain httpx pass-through).

Decompression is left to httpx (aiohttp's auto-decompress is off), timeouts come
from httpx's per-request `timeout` extension (connect -> aiohttp `sock_connect`,
pool -> `connect`, read -> `sock_read`, the longest gap between two reads, headers
and body alike; no total), and aiohttp errors map to httpx's exception types
(a connect timeout -> `httpx.ConnectTimeout`, a read gap -> `httpx.ReadTimeout`)
so the adapters' error mapping is unchanged.

Upstream capacity is ours, not aiohttp's: each upstream host has a `HostGate` (a
pool size and a bounded queue of waiters, served first-come-first-served). A request
that finds the queue full fails at once with `PoolFull` (an `httpx.PoolTimeout`, so
adapters map it to `UpstreamBusy`: 503 with Retry-After, no health penalty); one that
waits longer than its pool timeout gets a plain `httpx.PoolTimeout`. Defaults are sized
from the file-descriptor limit (`default_pool()`); `providers.<name>.pool` overrides. The adapters pass their per-attempt
limits on every request (`providers._http`); the client default only covers other
callers. Closing a response before its body is read closes the upstream
connection: a client that hangs up mid-stream stops the vendor's generation.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

__all__ = ["AiohttpTransport", "FastAsyncClient", "aiohttp_client", "HostGate", "PoolFull", "default_pool"]


def default_pool(nofile: int | None = None) -> tuple[int, int]:
    """(size, queue) per upstream host from the soft file-descriptor limit: every stream
    holds a client socket and an upstream one, so half the descriptors (less a reserve)
    go upstream; the queue holds as many waiters again."""
    if nofile is None:
        import resource  # lazy: only when sizing

        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile in (resource.RLIM_INFINITY, -1) or nofile <= 0:
            nofile = 65536
    size = max(16, (min(nofile, 1 << 20) - 64) // 2)
    return size, size


class PoolFull(httpx.PoolTimeout):
    """Every upstream connection for this host is busy and the wait queue is full."""

    def __init__(self, message: str, *, retry_after: float, request: Any = None) -> None:
        super().__init__(message, request=request)
        self.retry_after = retry_after


class HostGate:
    """At most `size` requests in flight to one host; up to `queue` more wait in FIFO order."""

    __slots__ = ("size", "queue", "busy", "waiters", "served", "refused")

    def __init__(self, size: int, queue: int) -> None:
        self.size, self.queue = max(1, size), max(0, queue)
        self.busy = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.served = self.refused = 0

    async def acquire(self, timeout: float | None, host: str) -> None:
        if self.busy < self.size and not self.waiters:
            self.busy += 1
            return
        if len(self.waiters) >= self.queue:
            self.refused += 1
            raise PoolFull(f"upstream {host}: all {self.size} connections busy and {self.queue} requests already "
                           "waiting", retry_after=1.0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            if timeout is None:
                await fut
            else:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
        except BaseException as e:
            if fut.done() and not fut.cancelled():  # granted while we gave up: pass it on
                self.release()
            else:
                fut.cancel()
                try:
                    self.waiters.remove(fut)
                except ValueError:
                    pass
            if isinstance(e, asyncio.TimeoutError):
                raise httpx.PoolTimeout(f"upstream {host}: no connection free within {timeout:g} s") from None
            raise

    def release(self) -> None:
        while self.waiters:  # hand the slot to the oldest live waiter
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                self.served += 1
                return
        self.busy -= 1


class _Body(httpx.AsyncByteStream):
    def __init__(self, resp: Any, request: httpx.Request, done: Callable[[], None]) -> None:
        self._resp, self._request, self._done = resp, request, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp  # lazy: import time (aiohttp)

        read = self._resp.content.readany  # what iter_any() awaits, without its iterator layer
        try:
            while True:
                chunk = await read()
                if not chunk:
                    return
                yield chunk
        except asyncio.TimeoutError as e:
            raise httpx.ReadTimeout(str(e) or "read timed out", request=self._request) from e
        except aiohttp.ClientPayloadError as e:
            raise httpx.RemoteProtocolError(str(e), request=self._request) from e
        except aiohttp.ClientError as e:
            raise httpx.ReadError(str(e), request=self._request) from e

    def splice_reader(self) -> Any:
        """The aiohttp reader of the body, for `providers._splice` (which reads it by callback)."""
        return self._resp.content

    async def aclose(self) -> None:
        # release() returns a fully read connection to the pool and closes a partly read one.
        self._resp.release()
        done, self._done = self._done, _noop
        done()


class _Response(httpx.Response):
    """A whole response whose `request` is built on first access (the lean POST path
    never needs it unless a caller asks)."""

    _factory: Callable[[], httpx.Request] | None = None

    @property  # type: ignore[override]
    def request(self) -> httpx.Request:
        if self._request is None and self._factory is not None:
            self._request = self._factory()
        return httpx.Response.request.fget(self)  # type: ignore[attr-defined]

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


_AUTO = ("host", "content-length", "transfer-encoding")


def _noop() -> None:
    return None


def _whole(status: int, raw: list[tuple[bytes, bytes]], content: bytes, ext: dict[str, Any]) -> _Response:
    """What `httpx.Response(status, headers=raw, content=content)` gives (content-length
    added when absent, body read, stream closed), without its decoder pass when the body
    has no content-encoding (an encoded body takes httpx's path, which decodes it)."""
    names = [k.lower() for k, _ in raw]
    if b"content-encoding" in names:
        return _Response(status, headers=raw, content=content, extensions=ext)
    if b"content-length" not in names:
        raw.append((b"Content-Length", str(len(content)).encode()))
    out = _Response(status, headers=raw, stream=httpx.ByteStream(content), extensions=ext)
    out._content = content
    out.is_stream_consumed = out.is_closed = True
    return out


def _plain(headers: Any) -> bool:
    """A dict of ASCII str names/values (what the adapters pass): merged by hand like httpx would."""
    return isinstance(headers, dict) and all(
        isinstance(k, str) and isinstance(v, str) and k.isascii() and v.isascii() for k, v in headers.items())


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, pool: tuple[int, int] | None = None, keepalive_timeout: float = 30.0,
                 ttl_dns_cache: int = 300) -> None:
        # aiohttp's own limit is off: `HostGate` bounds each host, in arrival order.
        self._opts = {"limit": 0, "limit_per_host": 0, "keepalive_timeout": keepalive_timeout,
                      "ttl_dns_cache": ttl_dns_cache}
        self._session: Any = None
        self._timeouts: dict[tuple[Any, ...], Any] = {}
        self.pool = pool or default_pool()
        self._pools: dict[str, tuple[int, int]] = {}
        self.gates: dict[str, HostGate] = {}

    def set_pool(self, host: str, size: int | None = None, queue: int | None = None) -> None:
        """Pool size and wait queue for one upstream host (`host:port` as in the URL)."""
        s, q = self.pool
        self._pools[host] = (size or s, q if queue is None else queue)
        self.gates.pop(host, None)

    def _gate(self, url: str) -> tuple[HostGate, str]:
        host = url.split("://", 1)[-1].split("/", 1)[0]
        g = self.gates.get(host)
        if g is None:
            g = self.gates[host] = HostGate(*self._pools.get(host, self.pool))
        return g, host

    def _get_session(self) -> Any:
        # Created lazily, inside the running event loop that will use it.
        if self._session is None or self._session.closed:
            import aiohttp  # lazy: import time (aiohttp)

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(**self._opts), auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.handle(request, stream=True)

    def _timeout(self, t: Any) -> Any:
        tk = (t.get("pool"), t.get("connect"), t.get("read"))
        timeout = self._timeouts.get(tk)
        if timeout is None:
            import aiohttp  # lazy: import time (aiohttp)

            if len(self._timeouts) >= 256:  # bounded: per-request values vary
                self._timeouts.clear()

            timeout = self._timeouts[tk] = aiohttp.ClientTimeout(total=None, connect=tk[0], sock_connect=tk[1],
                                                                 sock_read=tk[2])
        return timeout

    async def handle(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        body = request.content if hasattr(request, "_content") else await request.aread()
        return await self.fetch(request.method, str(request.url), request.headers.multi_items(), body,
                                (request.extensions.get("timeout") or {}), lambda: request, stream=stream)

    async def fetch(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, timeouts: Any,
                    request: Callable[[], httpx.Request], *, stream: bool) -> httpx.Response:
        """One request; `request()` gives the httpx.Request for errors and `Response.request`
        (built only when asked for on the lean `FastAsyncClient.post` path)."""
        import aiohttp  # lazy: import time (aiohttp)

        session = self._get_session()
        timeout = self._timeout(timeouts)
        gate, host = self._gate(url)
        try:
            await gate.acquire(timeouts.get("pool"), host)
        except httpx.PoolTimeout as e:
            e.request = request()
            raise
        resp = None
        try:
            resp = await session.request(
                method, url, headers=headers, data=body or None,
                allow_redirects=False, timeout=timeout, compress=None,
            )
        except asyncio.TimeoutError as e:
            if isinstance(e, getattr(aiohttp, "SocketTimeoutError", ())):  # connected, then no headers in sock_read
                raise httpx.ReadTimeout(str(e) or "read timed out", request=request()) from e
            raise httpx.ConnectTimeout(str(e) or "timed out", request=request()) from e
        except aiohttp.ClientConnectorError as e:
            raise httpx.ConnectError(str(e), request=request()) from e
        except aiohttp.ServerDisconnectedError as e:
            raise httpx.RemoteProtocolError(str(e), request=request()) from e
        except aiohttp.ClientError as e:
            raise httpx.NetworkError(str(e), request=request()) from e
        finally:
            if resp is None:  # no response: the slot is free again
                gate.release()
        if not stream:  # read it here: one Response build, no chunked re-iteration
            try:
                content = await resp.read()
            except asyncio.TimeoutError as e:
                raise httpx.ReadTimeout(str(e) or "read timed out", request=request()) from e
            except aiohttp.ClientError as e:
                raise httpx.ReadError(str(e), request=request()) from e
            finally:
                resp.release()
                gate.release()
            out = _whole(resp.status, list(resp.raw_headers), content,
                         {"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode()})
            out._factory = request
            return out
        request = request()
        return httpx.Response(
            status_code=resp.status,
            headers=list(resp.raw_headers),
            stream=_Body(resp, request, gate.release),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode()},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class FastAsyncClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` with a lean `send()`: no auth flow, no redirects, no
    cookie jar (adapters set their own auth headers and never follow redirects),
    no per-request logging. Everything else (build_request, post, stream,
    Response) is stock httpx, so adapters and their tests are unchanged."""

    _url_cache: dict[str, httpx.URL]

    def _merge_url(self, url: Any) -> httpx.URL:
        if isinstance(url, str):
            cache = self.__dict__.setdefault("_url_cache", {})
            u = cache.get(url)
            if u is None:
                u = super()._merge_url(url)
                if len(cache) < 1024:
                    cache[url] = u
            return u
        return super()._merge_url(url)

    async def post(self, url: Any, *, content: Any = None, headers: Mapping[str, str] | None = None,
                   timeout: Any = httpx.USE_CLIENT_DEFAULT, **kw: Any) -> httpx.Response:
        """POST of a bytes body over the aiohttp transport without building an
        httpx.Request first: the same URL merge, headers (host, client defaults,
        yours, content-length, in httpx's order) and timeouts as `build_request`;
        anything else (params, cookies, files, ...) takes httpx's own path."""
        transport = self._transport
        if (kw or not isinstance(transport, AiohttpTransport) or not isinstance(content, bytes) or self._cookies
                or (headers and not _plain(headers))):
            return await super().post(url, content=content, headers=headers, timeout=timeout, **kw)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        u = self._merge_url(url)
        items = self.headers.multi_items()
        if headers:  # httpx's Headers.update: drop the client's entries for these names, append these
            drop = {k.lower() for k in headers}
            items = [kv for kv in items if kv[0] not in drop]
            items.extend((k.lower(), v) for k, v in headers.items())
        if any(k in _AUTO for k, _ in items):
            return await super().post(url, content=content, headers=headers, timeout=timeout, **kw)
        items.insert(0, ("host", u.netloc.decode("ascii")))
        items.append(("content-length", str(len(content))))
        tmo = (self.timeout if isinstance(timeout, httpx._client.UseClientDefault) else httpx.Timeout(timeout)).as_dict()

        def request() -> httpx.Request:
            return httpx.Request("POST", u, headers=items, content=content, extensions={"timeout": tmo})

        return await transport.fetch("POST", str(u), items, content, tmo, request, stream=False)

    async def send(self, request: httpx.Request, *, stream: bool = False, **_: Any) -> httpx.Response:
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        transport = self._transport
        if isinstance(transport, AiohttpTransport):
            return await transport.handle(request, stream=stream)
        response = await transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def aiohttp_client(*, timeout: float | httpx.Timeout = httpx.Timeout(15.0, connect=5.0), **kw: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests go through aiohttp's pool (lean send path).
    `timeout` is only the default for requests that bring none: the adapters send their
    per-attempt limits with every request (connect, first byte, idle; see
    docs/providers.md "Timeouts"), so a provider's `timeouts` hold in the proxy as in the SDK."""
    return FastAsyncClient(transport=AiohttpTransport(**kw), timeout=timeout)
