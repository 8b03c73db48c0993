"""OpenAI chat completions adapter; with a `VendorRow` it serves every OpenAI-compatible
vendor (DeepSeek, Moonshot, Zhipu, Qwen, ... see `providers.vendors`).

Both paths produce `StreamEvent`s and reduce them with `router.types.accumulate`:
`complete()` turns the JSON body into events, `stream()` turns SSE chunks into events.
Errors are mapped in one place, `map_error()` (in `providers.vendors`, beside the code tables): HTTP status first, then the vendor's
structured code (row table, then OpenAI's common codes), message matching last.
Response parsing (bodies and chunks -> events) is in `providers._openai_events`.

One proxy request, read downward: ... -> router/sdk.py -> router/executor.py -> providers/openai.py
(ChatRequest -> vendor HTTP -> ChatResponse/StreamEvents); the last stop: back up the same way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import orjson

from providers import _http
from providers import params as P
from providers._http import Call, ErrorInfo
from providers._native import json_system
from providers._openai_events import LeanText, StreamState, events_from_json, parse_usage
from providers.embed import estimate_usage, openai_body, parse_openai
from providers._splice import openai_plain, tap_for
from providers._sse import aiter_data
from providers.ratelimit import parse_rate_limits
from providers.retry import RetryPolicy
from providers.vendors import VendorRow, embedded_error as _embedded_error, get_vendor, map_error
from router import errors as E
from router.embed_types import EmbedCall, EmbedResult
from router.errors import redact, register_secret
from router.limits import Timeouts, attempt_limits
from router.splice import spliced_text
from router.types import (ChatRequest, ChatResponse, Message, RateLimitSnapshot, StreamEvent, Usage, accumulate,
                          text_delta)

__all__ = ["OpenAIProvider", "build_body"]


# ------------------------------------------------------------------ request translation


def _content(m: Message, row: VendorRow | None = None) -> Any:
    if m.content is None or isinstance(m.content, str):
        return m.content
    parts: list[dict[str, Any]] = []
    for p in m.content:
        if p.type == "text":
            parts.append({"type": "text", "text": p.text})
        elif p.type == "image_url":
            iu: dict[str, Any] = {"url": p.url}
            if p.detail:
                iu["detail"] = p.detail
            parts.append({"type": "image_url", "image_url": iu})
        elif p.type == "document":
            text = p.as_text()
            if text is not None:
                parts.append({"type": "text", "text": text})
            elif p.source == "base64" and row is not None and row.name == "openai":  # OpenAI reads PDFs as files
                parts.append({"type": "file", "file": {"filename": f"{p.title or 'document'}.pdf",
                                                       "file_data": f"data:application/pdf;base64,{p.data}"}})
        # thinking blocks (and documents the vendor cannot read) have no equivalent: left out
    if not parts and m.tool_calls:
        return None  # e.g. thinking blocks before a tool call: the call alone
    if all(x["type"] == "text" for x in parts):
        return "".join(x["text"] for x in parts)  # text-only parts as one string: many vendors reject arrays
    return parts


def build_body(req: ChatRequest, row: VendorRow, *, stream: bool) -> dict[str, Any]:
    """ChatRequest -> chat completions JSON for `row`: reasoning, sampling knobs and the response
    format as this vendor takes them (`providers.params.openai_fields`)."""
    wire = P.openai_fields(req, row)
    msgs: list[dict[str, Any]] = []
    system = req.system
    instruct = wire.structured in ("json_object", "instruction")  # no native schema mode: say it in the prompt
    if instruct and (system or not _has_system(req)):
        system, instruct = json_system(system, req.response_format), False
    if system:
        msgs.append({"role": "system", "content": system})
    for m in req.messages:
        role = m.role
        if role == "developer" and "developer_role" not in row.quirks:
            role = "system"
        out: dict[str, Any] = {"role": role, "content": _content(m, row)}
        if m.name:
            out["name"] = m.name
        if m.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                                 for c in m.tool_calls]
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
        msgs.append(out)
    if row.prefill and msgs and msgs[-1]["role"] == "assistant":  # mark the prefill the way the vendor wants
        msgs[-1][row.prefill] = True
    body: dict[str, Any] = {"model": req.model, "messages": msgs}
    if req.tools:
        tools = []
        for t in req.tools:
            fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
            if t.description:
                fn["description"] = t.description
            if t.strict is not None:
                fn["strict"] = t.strict
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
    if req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    rf = req.response_format
    if wire.structured in ("native", "json_object"):
        body["response_format"] = ({"type": "json_schema", "json_schema": rf.json_schema or {}}
                                   if rf.type == "json_schema" and wire.structured == "native"
                                   else {"type": "json_object"})
    if instruct:
        _instruct(msgs, req)
    for k in ("temperature", "top_p", "stop", "user"):
        v = getattr(req, k)
        if v is not None and k not in wire.skip:
            body[k] = v
    if req.max_tokens is not None:
        mct = "max_completion_tokens" in row.quirks and req.model.lower().startswith(
            row.max_completion_tokens_prefixes)
        body["max_completion_tokens" if mct else "max_tokens"] = req.max_tokens
    if stream:
        body["stream"] = True
        if "no_stream_options" not in row.quirks:
            body["stream_options"] = {"include_usage": True}
    body.update(wire.fields)
    body.update(req.extra_body)
    return body


def _has_system(req: ChatRequest) -> bool:
    return any(m.role in ("system", "developer") for m in req.messages)


def _instruct(msgs: list[dict[str, Any]], req: ChatRequest) -> None:
    """Append the JSON instruction (and schema) to the last system message."""
    for m in reversed(msgs):
        if m["role"] in ("system", "developer") and isinstance(m.get("content"), str):
            m["content"] = json_system(m["content"], req.response_format)
            return


class _Once:
    """An async iterator over one already-read body."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> "_Once":
        return self

    async def __anext__(self) -> bytes:
        if self._body is None:
            raise StopAsyncIteration
        b, self._body = self._body, None
        return b



# ------------------------------------------------------------------ the adapter


class OpenAIProvider:
    """Chat completions over HTTP for OpenAI and every row in `providers.vendors.VENDORS`."""

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 client: httpx.AsyncClient | None = None, name: str | None = None,
                 retry: RetryPolicy | None = None, vendor: VendorRow | str = "openai",
                 deployment: str | None = None, api_version: str = "2024-10-21",
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 timeouts: Timeouts | Mapping[str, float] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.vendor = get_vendor(vendor) if isinstance(vendor, str) else vendor
        self.name = name or self.vendor.name
        url = base_url or self.vendor.base_url
        if not url:
            raise E.ConfigError(f"{self.vendor.title} needs base_url (the resource endpoint)", key="base_url")
        self.base_url = url.rstrip("/")
        self._key = api_key or None
        register_secret(self._key)
        self._owns_client = client is None
        # per-attempt limits (connect, first byte, idle; `timeout=N` is the older single number)
        self.timeouts = Timeouts.coerce(timeouts, timeout=timeout)
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeouts.idle_s, connect=self.timeouts.connect_s))
        self._retry = retry or RetryPolicy()
        self._deployment = deployment
        self._api_version = api_version
        self._extra_headers = dict(self.vendor.default_headers) | dict(headers or {})
        self._clock = clock
        self.last_rate_limits: RateLimitSnapshot | None = None

    @property
    def prefill(self) -> bool:
        """Whether this vendor continues a trailing assistant message (vendor data)."""
        return self.vendor.prefill is not None

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r}, vendor={self.vendor.name!r}, base_url={self.base_url!r})"

    # -- request plumbing
    def _target(self, req: ChatRequest) -> tuple[str, dict[str, str] | None]:
        if "azure_deployments" in self.vendor.quirks:
            dep = self._deployment or req.model
            return f"{self.base_url}/openai/deployments/{dep}/chat/completions", {"api-version": self._api_version}
        return f"{self.base_url}/chat/completions", None

    def _headers(self) -> dict[str, str]:
        h = dict(self._extra_headers)
        if self._key and self.vendor.auth == "bearer":
            h["authorization"] = f"Bearer {self._key}"
        elif self._key and self.vendor.auth == "api-key":
            h["api-key"] = self._key
        return h

    def _error(self, info: ErrorInfo, call: Call, headers: Mapping[str, str] | None,
               billed: Usage | None = None) -> E.ProviderError:
        return map_error(self.vendor, info, call=call, headers=headers, now=self._clock(), billed_usage=billed)

    def _events_from_body(self, body: bytes, call: Call, resp: httpx.Response) -> list[StreamEvent]:
        """A whole (2xx) JSON body -> events; errors inside it -> typed errors."""
        data = _http.load_json(body, call=call, status=resp.status_code, headers=resp.headers)
        emb = _embedded_error(data)
        if emb is not None and not (isinstance(data, dict) and data.get("choices")):
            raise self._error(emb, call, resp.headers)
        try:
            events = events_from_json(data)
        except (ValueError, TypeError, AttributeError) as e:
            raise E.MalformedResponse(f"unexpected response shape: {e}", provider=call.provider, model=call.model,
                                      status=resp.status_code, body=body[:2000].decode("utf-8", "replace"),
                                      headers=resp.headers) from e
        if emb is not None and events[-1].finish_reason == "error":
            raise self._error(emb, call, resp.headers, billed=parse_usage(data.get("usage")))
        return events

    # -- non-streaming
    async def _complete_once(self, req: ChatRequest) -> ChatResponse:
        call = Call(self.name, req.model)
        url, params = self._target(req)
        lim = attempt_limits(self.timeouts, stream=False, max_tokens=req.max_tokens)
        resp = await _http.send_json(self._client, url, build_body(req, self.vendor, stream=False), call=call,
                                     headers=self._headers(), params=params, limits=lim)
        if resp.status_code >= 300:
            raise self._error(_http.parse_error_body(resp.content, resp.status_code), call, resp.headers)
        snap = parse_rate_limits(resp.headers, self._clock())
        self.last_rate_limits = snap
        events = self._events_from_body(resp.content, call, resp)
        return accumulate(events, provider=self.name, model=req.model, rate_limits=snap)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        return await self._retry.run(lambda: self._complete_once(req))

    # -- streaming
    async def _stream_once(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        call = Call(self.name, req.model)
        url, params = self._target(req)
        state = StreamState()
        lim = attempt_limits(self.timeouts, stream=True, max_tokens=req.max_tokens)
        async with _http.open_stream(self._client, url, build_body(req, self.vendor, stream=True), call=call,
                                     headers=self._headers(), params=params, limits=lim) as resp:
            if resp.status_code >= 300:
                body = await _http.read_body(resp)
                raise self._error(_http.parse_error_body(body, resp.status_code), call, resp.headers)
            snap = parse_rate_limits(resp.headers, self._clock())
            self.last_rate_limits = snap
            ctype = resp.headers.get("content-type", "").lower()
            chunks: AsyncIterator[bytes] = _http.aiter_bytes(resp, call)
            if "event-stream" not in ctype and ("json" in ctype or "html" in ctype):
                # A JSON body (an error, or a whole completion) or an HTML page instead of an
                # event stream -- or an event stream that a proxy mislabelled as JSON.
                body = await _http.read_body(resp, limit=4 << 20, call=call)
                if body.lstrip().startswith((b"data:", b":", b"event:")):
                    chunks = _Once(body)
                else:
                    for ev in self._events_from_body(body, call, resp):
                        yield ev
                    return
            done = False
            lean_text = LeanText()
            tap = tap_for(resp, call, openai_plain(lean_text))  # the proxy's splice, when it offers one
            try:
                async for raw in aiter_data(chunks, tap, call):
                    if raw.__class__ is str:  # text the splice already wrote to the client
                        yield spliced_text(raw)  # type: ignore[arg-type]
                        continue
                    # after the first output chunk (read in full: id and model), the common
                    # chunk (text only) is read by a flat scan of its bytes
                    t = lean_text(raw) if state.output else None
                    if t is not None:
                        if t:
                            if tap is not None:
                                tap.armed = True
                            yield text_delta(t)
                        continue
                    data = raw.decode("utf-8", "replace").strip()
                    if not data:
                        continue
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError as e:
                        raise E.MalformedResponse(f"invalid JSON in stream event: {redact(data[:120])}",
                                                  provider=self.name, model=req.model, headers=resp.headers,
                                                  billed_usage=state.usage) from e
                    if not isinstance(chunk, dict):
                        raise E.MalformedResponse("stream event is not a JSON object", provider=self.name,
                                                  model=req.model, billed_usage=state.usage)
                    try:
                        emb = _embedded_error(chunk)
                        evs = state.feed(chunk)  # on error too: keep usage reported before failing
                    except (ValueError, TypeError, AttributeError) as e:  # pydantic errors are ValueErrors
                        raise E.MalformedResponse(f"unexpected stream chunk shape: {str(e)[:200]}",
                                                  provider=self.name, model=req.model,
                                                  billed_usage=state.usage) from e
                    if emb is not None:
                        raise self._error(emb, call, resp.headers, billed=state.usage)
                    for ev in evs:
                        yield ev
            except E.ProviderError as e:
                if e.billed_usage is None and state.usage is not None:
                    e.billed_usage = state.usage
                raise
            if state.finish is None and not (done and state.output):
                why = "a finish_reason or any output" if done else "[DONE] or a finish_reason (cut short)"
                raise E.MalformedResponse(f"stream ended without {why}", provider=self.name, model=req.model,
                                          headers=resp.headers, billed_usage=state.usage)
            fin = state.finish_event()
            fin.provider_details.setdefault("rate_limits", snap.model_dump(exclude_none=True))
            if not done:
                fin.provider_details["stream_terminated_early"] = True
            yield fin

    def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        return self._retry.stream(lambda: self._stream_once(req))

    # -- embeddings (wire: providers.embed)
    async def _embed_once(self, call_: EmbedCall) -> EmbedResult:
        call = Call(self.name, call_.model)
        if "azure_deployments" in self.vendor.quirks:
            url = f"{self.base_url}/openai/deployments/{self._deployment or call_.model}/embeddings"
            params: dict[str, str] | None = {"api-version": self._api_version}
        else:
            url, params = f"{self.base_url}/embeddings", None
        lim = attempt_limits(self.timeouts, stream=False, max_tokens=None)
        resp = await _http.send_json(self._client, url, openai_body(call_), call=call, headers=self._headers(),
                                     params=params, limits=lim)
        if resp.status_code >= 300:
            raise self._error(_http.parse_error_body(resp.content, resp.status_code), call, resp.headers)
        snap = parse_rate_limits(resp.headers, self._clock())
        self.last_rate_limits = snap
        data = _http.load_json(resp.content, call=call, status=resp.status_code, headers=resp.headers)
        emb = _embedded_error(data)
        if emb is not None and not (isinstance(data, dict) and data.get("data")):
            raise self._error(emb, call, resp.headers)
        vectors, usage, model = parse_openai(data, call, len(call_.inputs))
        return EmbedResult(vectors=vectors, usage=usage or estimate_usage(call_.inputs),
                           usage_reported=usage is not None, model=model, rate_limits=snap)

    async def embed(self, call: EmbedCall) -> EmbedResult:
        """One batch of embeddings (`POST {base}/embeddings`; Azure: the deployment's URL)."""
        return await self._retry.run(lambda: self._embed_once(call))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
