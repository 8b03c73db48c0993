"""Shared HTTP helpers for every adapter: send JSON, open a stream, map transport
errors, parse (possibly garbage) bodies safely, build typed errors.

Public API (all errors are `router.errors.ProviderError` subclasses)
--------------------------------------------------------------------
``Call(provider, model)``
    Frozen context naming who failed; passed to every helper.

``limits=`` takes a ``router.limits.AttemptLimits`` (from ``attempt_limits(Timeouts, ...)``)
    Per-attempt connect, first-byte and idle limits; see docs/providers.md "Timeouts".

``await send_json(client, url, body, *, call, headers=None, params=None, timeout=None, limits=None)``
    POST JSON (``body`` already-encoded bytes are sent as is) -> ``httpx.Response``. httpx
    timeouts -> ``Timeout``; other ``httpx.TransportError`` -> ``Unavailable``. With ``limits``
    (an ``AttemptLimits``, non-stream) the whole answer must arrive within
    ``limits.first_byte_s`` and the connect within ``limits.connect_s``, whatever the client's
    own default timeout is. Does NOT check the status: the adapter maps non-2xx itself.

``open_stream(client, url, body, *, call, headers=None, params=None, timeout=None, limits=None)``
    Async context manager yielding the streaming ``httpx.Response`` (same transport mapping).
    With ``limits`` the headers and then the first body byte must come within
    ``limits.first_byte_s`` of the request, and ``aiter_bytes`` enforces ``limits.idle_s``
    between chunks (``Timeout`` with ``code`` ``first_byte_timeout`` / ``idle_timeout``).

``await read_body(resp, limit=65536, call=None)``     read (part of) a streaming body (an error
                                                       body: a timeout gives what was read;
                                                       with ``call`` it raises ``Timeout``).
``aiter_bytes(resp, call)``                            async byte iterator mapping mid-stream
                                                       transport errors / timeouts.

``load_json(content, *, call, status=None, headers=None) -> Any``
    Parse a success body. Empty, truncated, non-JSON or HTML -> ``MalformedResponse``
    (never a crash, never an empty answer).

``ErrorInfo(status, code, type, message, raw)`` / ``parse_error_body(content, status=None) -> ErrorInfo``
    Pull code/type/message out of any envelope we know, never raising:
    OpenAI ``{"error":{"message","type","code","param"}}``; Anthropic
    ``{"type":"error","error":{...}}``; Gemini ``{"error":{"code":int,"status","message"}}``;
    Zhipu ``{"error":{"code":"1113","message"}}``; Ark ``{"error":{"code":"AccountOverdueError"}}``;
    DashScope native ``{"code":"Arrearage","message"}``; MiniMax ``{"base_resp":{"status_code","status_msg"}}``;
    Qianfan ``{"error_code","error_msg"}``; ``{"error":"text"}``; HTML pages (``type="html"``).
    ``code`` is always a string (``"1113"``), the message is redacted and truncated.

``status_class(status) -> type[ProviderError]``
    The status-first default: 400/404/422 BadRequest, 401/403 AuthFailed, 402 QuotaExhausted,
    408 Timeout, 409 Unavailable, 413 ContextTooLong, 429 RateLimited, 5xx/529 Unavailable.

``make_error(cls, info, *, call, headers=None, now=None, message=None, billed_usage=None) -> ProviderError``
    Build the error with ``rate_limits`` (a ``RateLimitSnapshot``), ``retry_after`` (Retry-After /
    retry-after-ms / exhausted-window reset, only for ``RateLimited``), safe headers, redacted body.
    ``x-should-retry: false`` turns retrying off for that instance.

``transport_error(exc, *, call) -> ProviderError``   map an httpx exception (a ``Timeout``'s
                                                       ``code``: ``connect_timeout``, ``read_timeout``, ...).
``dumps(obj) -> bytes``                               compact JSON (orjson).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from router.errors import (
    AuthFailed,
    BadRequest,
    ContextTooLong,
    MalformedResponse,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    UnencodableRequest,
    Unavailable,
    UpstreamBusy,
    redact,
)
from providers.ratelimit import parse_rate_limits, suggested_wait
from router.limits import AttemptLimits

__all__ = [
    "httpx_timeout",
    "Call",
    "ErrorInfo",
    "send_json",
    "open_stream",
    "read_body",
    "aiter_bytes",
    "load_json",
    "parse_error_body",
    "status_class",
    "make_error",
    "transport_error",
    "dumps",
    "is_html",
]


@dataclass(frozen=True, slots=True)
class Call:
    provider: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    status: int | None = None
    code: str | None = None
    type: str | None = None
    message: str = ""
    raw: Any = None


def dumps(obj: Any) -> bytes:
    """Compact JSON; a body that cannot be encoded (nested deeper than orjson's limit, a
    lone surrogate, an integer over 64 bits) is the client's mistake: UnencodableRequest."""
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, RecursionError) as e:
        raise UnencodableRequest(f"the request could not be encoded as JSON: {str(e)[:120]}") from e


def is_html(content: bytes | str) -> bool:
    """A markup page (load balancer / WAF / proxy error page) rather than JSON: JSON never starts with '<'."""
    head = (content[:64] if isinstance(content, str) else content[:64].decode("utf-8", "replace"))
    return head.lstrip("\ufeff \t\r\n").startswith("<")


_TIMEOUT_CODES = {httpx.ConnectTimeout: "connect_timeout", httpx.ReadTimeout: "read_timeout",
                  httpx.WriteTimeout: "write_timeout", httpx.PoolTimeout: "pool_timeout"}
_LIMITS = "quotaroute.limits"  # response extension: (loop time of the first-byte deadline, idle_s)


def _timeout(phase: str, seconds: float, call: Call) -> Timeout:
    what = {"first_byte": "no answer", "idle": "the stream stalled"}.get(phase, phase)
    return Timeout(f"upstream timed out: {what} within {seconds:g} s ({phase} limit)", provider=call.provider,
                   model=call.model, code=f"{phase}_timeout")


@functools.lru_cache(maxsize=256)
def httpx_timeout(limits: AttemptLimits) -> httpx.Timeout:
    """The transport's own limits for one attempt (a backstop: the deadlines above are
    enforced here too). Rounded up to whole seconds so a transport that caches its timeout
    objects by value sees few distinct ones."""
    wait = float(math.ceil(max(limits.first_byte_s, limits.idle_s if limits.stream else 0.0)))
    return httpx.Timeout(connect=limits.connect_s, read=wait, write=wait, pool=wait)


@functools.lru_cache(maxsize=256)
def _stream_timeout(limits: AttemptLimits) -> httpx.Timeout:
    t = httpx_timeout(limits)
    return httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.pool)


def transport_error(exc: BaseException, *, call: Call) -> ProviderError:
    if isinstance(exc, httpx.PoolTimeout):  # our own pool towards the host is full: not the vendor's fault
        return UpstreamBusy(f"upstream connection pool busy: {redact(str(exc))[:200]}", provider=call.provider,
                            model=call.model, code="upstream_busy", retry_after=getattr(exc, "retry_after", 1.0))
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"upstream timed out ({type(exc).__name__})", provider=call.provider, model=call.model,
                       code=_TIMEOUT_CODES.get(type(exc), "timeout"))
    return Unavailable(f"transport error: {type(exc).__name__}: {redact(str(exc))[:200]}",
                       provider=call.provider, model=call.model, status=None)


def _content(body: Any) -> bytes:
    return body if isinstance(body, (bytes, bytearray)) else dumps(body)


async def send_json(client: httpx.AsyncClient, url: str, body: Any, *, call: Call,
                    headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                    timeout: float | httpx.Timeout | None = None,
                    limits: AttemptLimits | None = None) -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    kw: dict[str, Any] = {"params": params} if params else {}
    if limits is not None:
        kw["timeout"] = httpx_timeout(limits)
    elif timeout is not None:
        kw["timeout"] = timeout
    try:
        if limits is None:
            return await client.post(url, content=_content(body), headers=h, **kw)
        async with asyncio.timeout(limits.first_byte_s):
            return await client.post(url, content=_content(body), headers=h, **kw)
    except TimeoutError as e:
        raise _timeout("first_byte", limits.first_byte_s if limits else 0.0, call) from e
    except httpx.HTTPError as e:
        raise transport_error(e, call=call) from e


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, url: str, body: Any, *, call: Call,
                      headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                      timeout: float | httpx.Timeout | None = None,
                      limits: AttemptLimits | None = None) -> AsyncIterator[httpx.Response]:
    h = {"content-type": "application/json", "accept": "text/event-stream", **(headers or {})}
    kw: dict[str, Any] = {"params": params} if params else {}
    if limits is not None:
        kw["timeout"] = httpx_timeout(limits)
    elif timeout is not None:
        kw["timeout"] = timeout
    if limits is not None:  # reads are watched by `aiter_bytes` (one timer per stream, not one per chunk)
        kw["timeout"] = _stream_timeout(limits)
    req = client.build_request("POST", url, content=_content(body), headers=h, **kw)
    try:
        if limits is None:
            resp = await client.send(req, stream=True)
        else:
            deadline = asyncio.get_running_loop().time() + limits.first_byte_s
            async with asyncio.timeout_at(deadline):
                resp = await client.send(req, stream=True)
            resp.extensions = {**resp.extensions, _LIMITS: (deadline, limits)}
    except TimeoutError as e:
        raise _timeout("first_byte", limits.first_byte_s if limits else 0.0, call) from e
    except httpx.HTTPError as e:
        raise transport_error(e, call=call) from e
    try:
        yield resp
    finally:
        await resp.aclose()


async def read_body(resp: httpx.Response, limit: int = 65536, *, call: Call | None = None) -> bytes:
    """Read up to `limit` bytes of a (streaming) response; transport errors and timeouts
    give what we have (an error body), except that with `call` (a body we need whole) a
    timeout is raised."""
    out = bytearray()
    try:
        async for chunk in aiter_bytes(resp, call or Call("")):
            out += chunk
            if len(out) >= limit:
                break
    except (httpx.HTTPError, RuntimeError, ProviderError) as e:
        if call is not None and isinstance(e, Timeout):
            raise
        if not out:
            try:
                return resp.content[:limit]
            except Exception:
                return b""
    return bytes(out[:limit])


async def aiter_bytes(resp: httpx.Response, call: Call) -> AsyncIterator[bytes]:
    """The body's chunks. On a response opened with `limits`, the first chunk must come by
    the first-byte deadline and each next one within `idle_s` of asking for it (time the
    caller spends between chunks is not counted): else `Timeout`."""
    lim = resp.extensions.get(_LIMITS)
    try:
        if lim is None:
            async for chunk in resp.aiter_bytes():
                yield chunk
            return
        when, limits = lim
        loop = asyncio.get_running_loop()
        w = _Watch(loop, when)
        it = _raw(resp).__aiter__()
        try:
            while True:
                w.task = asyncio.current_task(loop)  # the consumer may change tasks between chunks
                try:
                    chunk = await it.__anext__()
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if w.fired and w.task is not None and w.task.uncancel() == 0:
                        raise _timeout(w.phase, w.seconds(limits), call) from None
                    raise
                w.due = 0.0
                if w.phase == "first_byte":
                    w.phase = "idle"
                yield chunk
                w.due = loop.time() + limits.idle_s
        finally:
            w.stop()
    except httpx.HTTPError as e:
        raise transport_error(e, call=call) from e


def _raw(resp: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes: straight from the transport's stream when there is no content
    encoding to undo (two fewer layers per chunk), else httpx's decoding iterator."""
    stream = resp.stream
    if "content-encoding" not in resp.headers and isinstance(stream, httpx.AsyncByteStream):
        return stream.__aiter__()
    return resp.aiter_bytes()


class _Watch:
    """One timer per stream instead of one per chunk: while the caller waits for a
    chunk, `due` is the loop time it must arrive by (0 while the caller holds a chunk,
    so its own time between chunks is not counted). The timer sleeps until the earliest
    possible expiry, re-arms itself when a chunk came in time, and cancels the waiting
    task when one did not (turned into `Timeout` by `aiter_bytes`)."""

    __slots__ = ("loop", "due", "phase", "task", "fired", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, first_deadline: float) -> None:
        self.loop, self.due, self.phase = loop, first_deadline, "first_byte"
        self.task: asyncio.Task[Any] | None = None
        self.fired = False
        self.handle: asyncio.TimerHandle | None = loop.call_at(first_deadline, self._check)

    def seconds(self, limits: AttemptLimits) -> float:
        return limits.first_byte_s if self.phase == "first_byte" else limits.idle_s

    def _check(self) -> None:
        now = self.loop.time()
        if self.due and now >= self.due and self.task is not None and not self.task.done():
            self.fired, self.handle = True, None
            self.task.cancel()
            return
        # not waiting now (check again soon), or a chunk came in time (sleep until the new deadline)
        self.handle = self.loop.call_at(self.due if self.due > now else now + 1.0, self._check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _snippet(content: bytes | str, n: int = 300) -> str:
    s = content.decode("utf-8", "replace") if isinstance(content, (bytes, bytearray)) else content
    return redact(" ".join(s[:n].split()))


def load_json(content: bytes | str, *, call: Call, status: int | None = None,
              headers: Mapping[str, str] | None = None) -> Any:
    if not content or not (content.strip() if isinstance(content, str) else content.strip()):
        raise MalformedResponse("empty response body", provider=call.provider, model=call.model,
                                status=status, headers=headers)
    if is_html(content):
        raise MalformedResponse(f"HTML page instead of JSON: {_snippet(content, 120)}", provider=call.provider,
                                model=call.model, status=status, body=_snippet(content, 2000), headers=headers)
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as e:
        raise MalformedResponse(f"invalid JSON from upstream ({e.msg if hasattr(e, 'msg') else e})",
                                provider=call.provider, model=call.model, status=status,
                                body=_snippet(content, 2000), headers=headers) from e


def _s(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return str(v)


def parse_error_body(content: bytes | str | None, status: int | None = None) -> ErrorInfo:
    if not content:
        return ErrorInfo(status=status)
    if is_html(content):
        return ErrorInfo(status=status, type="html", message=f"HTML error page: {_snippet(content, 120)}")
    try:
        raw = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ErrorInfo(status=status, type="text", message=_snippet(content))
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        raw = raw[0]  # some gateways wrap the error in a list
    if not isinstance(raw, dict):
        return ErrorInfo(status=status, message=_snippet(content), raw=raw)
    code = typ = msg = None
    err = raw.get("error")
    if isinstance(err, dict):
        code = _s(err.get("code"))
        typ = _s(err.get("type")) or _s(err.get("status"))
        msg = err.get("message") or err.get("msg")
        if isinstance(err.get("metadata"), dict) and not msg:
            msg = str(err["metadata"])
    elif isinstance(err, str):
        msg = err
        typ = _s(raw.get("type"))
    br = raw.get("base_resp")
    if isinstance(br, dict) and br.get("status_code") not in (None, 0, "0"):
        code = code or _s(br.get("status_code"))
        msg = msg or br.get("status_msg")
    if code is None and raw.get("error_code") is not None:  # Baidu Qianfan v1 style
        code = _s(raw.get("error_code"))
        msg = msg or raw.get("error_msg")
    if code is None and isinstance(raw.get("code"), (str, int)) and raw.get("code") not in (0, "0", 200, ""):
        code = _s(raw.get("code"))  # DashScope native / some gateways
        msg = msg or raw.get("message") or raw.get("msg")
    if msg is None:
        msg = raw.get("message") or raw.get("detail") or raw.get("msg")
    if typ is None and isinstance(raw.get("type"), str) and raw.get("type") != "error":
        typ = raw["type"]
    return ErrorInfo(status=status, code=code, type=typ, message=redact(str(msg or ""))[:500], raw=raw)


def status_class(status: int | None) -> type[ProviderError]:
    if status is None:
        return Unavailable
    if status in (401, 403):
        return AuthFailed
    if status == 402:
        return QuotaExhausted
    if status == 408:
        return Timeout
    if status == 409:
        return Unavailable
    if status == 413:
        return ContextTooLong
    if status == 429:
        return RateLimited
    if status >= 500:
        return Unavailable
    if 400 <= status < 500:
        return BadRequest
    return MalformedResponse


def make_error(cls: type[ProviderError], info: ErrorInfo, *, call: Call,
               headers: Mapping[str, str] | None = None, now: float | None = None,
               message: str | None = None, billed_usage: Any = None) -> ProviderError:
    now = time.time() if now is None else now
    snap = parse_rate_limits(headers, now) if headers is not None else None
    retry_after = None
    if issubclass(cls, (RateLimited, Unavailable)) and not issubclass(cls, MalformedResponse):
        retry_after = snap.retry_after_s if snap else None
        if retry_after is None and issubclass(cls, RateLimited):
            retry_after = suggested_wait(snap)
    msg = message or info.message or (f"HTTP {info.status}" if info.status else cls.__name__)
    body = None
    if info.raw is not None:
        try:
            body = orjson.dumps(info.raw).decode()
        except TypeError:
            body = str(info.raw)
    err = cls(msg, provider=call.provider, model=call.model, status=info.status, code=info.code or info.type,
              body=body, headers=headers, retry_after=retry_after, rate_limits=snap, billed_usage=billed_usage)
    if headers is not None:
        should = {str(k).lower(): v for k, v in headers.items()}.get("x-should-retry")
        if should is not None and should.strip().lower() == "false":
            err.retryable = False
    return err
