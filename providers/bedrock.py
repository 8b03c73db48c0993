"""AWS Bedrock Converse / ConverseStream adapter (Claude and other models on Bedrock).

`POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse` and
`/converse-stream`. Requests are SigV4-signed with botocore's signer (an optional
extra: `pip install 'quotaroute[bedrock]'`), or carry a Bedrock API key as
`Authorization: Bearer`. The stream is the AWS binary event-stream encoding,
decoded with `botocore.eventstream.EventStreamBuffer`; botocore is imported lazily.

Usage: Bedrock's `inputTokens` excludes cache reads/writes, so our input_tokens =
inputTokens + cacheReadInputTokens + cacheWriteInputTokens (OpenAI semantics).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from providers import _http
from providers import _native as nat
from providers import params as P
from providers._aws import NEED_BOTOCORE, sigv4_headers
from providers.embed import estimate_usage, parse_titan, titan_body
from router.embed_types import EmbedCall, EmbedResult
from router.limits import attempt_limits
from router.errors import (
    AuthFailed,
    BadRequest,
    ConfigError,
    ContextTooLong,
    MalformedResponse,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Timeout,
    Unavailable,
    register_secret,
)
from router.types import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["BedrockProvider", "build_body", "converse_events", "EventState", "map_error"]

_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# AWS error type -> class. https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors
_ERRORS: dict[str, type[ProviderError]] = {
    "ValidationException": BadRequest,
    "ResourceNotFoundException": BadRequest,
    "AccessDeniedException": AuthFailed,
    "UnrecognizedClientException": AuthFailed,
    "InvalidSignatureException": AuthFailed,
    "IncompleteSignatureException": AuthFailed,
    "ExpiredTokenException": AuthFailed,
    "ThrottlingException": RateLimited,
    "ModelNotReadyException": RateLimited,
    "ServiceQuotaExceededException": QuotaExhausted,
    "ModelTimeoutException": Timeout,
    "ModelErrorException": Unavailable,
    "ModelStreamErrorException": Unavailable,
    "ServiceUnavailableException": Unavailable,
    "InternalServerException": Unavailable,
}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}


# ------------------------------------------------------------------ request


def _cache_point(cc: Any) -> list[dict[str, Any]]:
    """A `cachePoint` block for a part's cache breakpoint (none when it has none)."""
    if cc is None:
        return []
    return [{"cachePoint": {"type": "default", **({"ttl": cc.ttl} if cc.ttl else {})}}]


_DOC_NAME_BAD = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")


def _document(p: Any) -> dict[str, Any]:
    """A document part -> a Converse `document` block (bytes or text; Converse takes no URLs)."""
    if p.source == "url":
        raise BadRequest("Bedrock Converse takes documents as bytes or text only, not by URL", provider="bedrock")
    # Converse wants a neutral, unique name (letters, digits, single spaces, - ( ) [ ])
    title = " ".join(_DOC_NAME_BAD.sub(" ", p.title or "").split())[:100]
    name = f"{title or 'document'} {hashlib.sha1((p.data or '').encode()).hexdigest()[:8]}"
    src = {"bytes": p.data or ""} if p.source == "base64" else {"text": p.data or ""}
    doc: dict[str, Any] = {"format": "pdf" if p.source == "base64" else "txt", "name": name, "source": src}
    if p.context is not None:
        doc["context"] = p.context
    if p.citations is not None:
        doc["citations"] = {"enabled": p.citations}
    return {"document": doc}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if p.type == "text":
            if p.text:
                out += [{"text": p.text}, *_cache_point(p.cache_control)]
            continue
        if p.type == "document":
            out += [_document(p), *_cache_point(p.cache_control)]
            continue
        if p.type == "thinking":
            if p.signature:  # unsigned reasoning (another vendor's) would be refused: left out
                out.append({"reasoningContent": {"reasoningText": {"text": p.thinking, "signature": p.signature}}})
            continue
        if p.type == "redacted_thinking":
            out.append({"reasoningContent": {"redactedContent": p.data}})
            continue
        data = nat.parse_data_url(p.url)
        if data is None:
            raise BadRequest("Bedrock Converse takes images as bytes only: pass a data: URL (base64)",
                             provider="bedrock")
        mt = p.media_type or data[0]
        fmt = _IMAGE_FORMATS.get(mt)
        if fmt is None:
            raise BadRequest(f"Bedrock Converse does not accept image type {mt!r}", provider="bedrock")
        out += [{"image": {"format": fmt, "source": {"bytes": data[1]}}}, *_cache_point(p.cache_control)]
    return out


def _messages(req: ChatRequest) -> list[dict[str, Any]]:
    return nat.turns(
        req, _blocks,
        lambda m: [{"toolResult": {"toolUseId": m.tool_call_id or "", "content": [{"text": m.text()}]}},
                   *_cache_point(m.cache_control)],
        lambda tc: [{"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": nat.tool_args(tc)}},
                    *_cache_point(tc.cache_control)])


def _system(req: ChatRequest, rf: Any) -> list[dict[str, Any]]:
    if not req.system_parts:
        system = nat.json_system(req.system_text(), rf)  # JSON mode (when asked) via the system prompt
        return [{"text": system}] if system else []
    out = [b for p in req.system_parts if p.text for b in ({"text": p.text}, *_cache_point(p.cache_control))]
    rest = nat.json_system("\n\n".join(m.text() for m in req.messages if m.role in ("system", "developer")
                                        and m.text()) or None, rf)
    return out + ([{"text": rest}] if rest else [])


def build_body(req: ChatRequest) -> dict[str, Any]:
    """ChatRequest -> Converse JSON body (pure; ConverseStream takes the same body)."""
    wire = P.bedrock_fields(req)  # Claude thinking/effort/top_k, native or forced-tool JSON
    body: dict[str, Any] = {"messages": _messages(req)}
    system = _system(req, req.response_format if wire.structured == "instruction" else None)
    if system:
        body["system"] = system
    inf: dict[str, Any] = {}
    if req.max_tokens or "maxTokens" in wire.fields:
        inf["maxTokens"] = wire.fields.pop("maxTokens", req.max_tokens)
    if req.temperature is not None and "temperature" not in wire.skip:
        inf["temperature"] = req.temperature
    if req.top_p is not None and "top_p" not in wire.skip:
        inf["topP"] = req.top_p
    if req.stop:
        inf["stopSequences"] = list(req.stop)
    if inf:
        body["inferenceConfig"] = inf
    if req.tools:
        tools = [b for t in req.tools for b in (
            {"toolSpec": {k: v for k, v in {"name": t.name, "description": t.description,
                                            "inputSchema": {"json": t.parameters}}.items() if v is not None}},
            *_cache_point(t.cache_control))]
        cfg: dict[str, Any] = {"tools": tools}
        choice = req.tool_choice
        if choice == "required":
            cfg["toolChoice"] = {"any": {}}
        elif choice == "auto":
            cfg["toolChoice"] = {"auto": {}}
        elif nat.named_tool(choice):
            cfg["toolChoice"] = {"tool": {"name": nat.named_tool(choice)}}
        # "none": Converse has no such choice; the tools stay declared (needed for toolUse history)
        body["toolConfig"] = cfg
    if wire.structured == "tool":  # no native schema mode for this model: the schema as a forced tool
        jt = P.json_tool(req)
        body["toolConfig"] = {"tools": [{"toolSpec": {"name": jt["name"], "description": jt["description"],
                                                      "inputSchema": {"json": jt["schema"]}}}],
                              "toolChoice": {"tool": {"name": jt["name"]}}}
    body.update(wire.fields)
    return nat.deep_merge(body, req.extra_body)


# ------------------------------------------------------------------ response


def _usage(raw: dict[str, Any]) -> Usage:
    cr, cw = nat.count(raw, "cacheReadInputTokens"), nat.count(raw, "cacheWriteInputTokens")
    details = raw.get("cacheDetails")  # [{"ttl": "1h" | "5m", "inputTokens": n}]: writes by TTL
    w1h = sum(nat.count(d, "inputTokens") for d in details if isinstance(d, dict) and d.get("ttl") == "1h") \
        if isinstance(details, list) else 0
    return Usage(input_tokens=nat.count(raw, "inputTokens") + cr + cw, output_tokens=nat.count(raw, "outputTokens"),
                 cache_read_tokens=cr, cache_write_tokens=cw, cache_write_1h_tokens=min(w1h, cw))


def _finish(stop: Any, extra: dict[str, Any]) -> FinishEvent:
    return FinishEvent(finish_reason=_STOP.get(stop, "unknown"),  # type: ignore[arg-type]
                       provider_details={"stop_reason": stop, **extra})


def converse_events(data: Any, call: _http.Call | None = None) -> list[StreamEvent]:
    """A Converse response body -> StreamEvents (raises MalformedResponse)."""
    call = call or _http.Call("bedrock")
    msg = (data.get("output") or {}).get("message") if isinstance(data, dict) else None
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
        raise MalformedResponse("Bedrock response has no output.message", provider=call.provider, model=call.model,
                                body=str(data)[:500])
    events: list[StreamEvent] = []
    tools = 0
    for block in msg["content"]:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            events.append(TextDelta(text=block["text"]))
        elif isinstance(block.get("toolUse"), dict):
            tu = block["toolUse"]
            events.append(ToolCallDelta(index=tools, id=tu.get("toolUseId"), name=tu.get("name"),
                                        arguments=json.dumps(tu.get("input") or {}, ensure_ascii=False)))
            tools += 1
        elif isinstance(block.get("reasoningContent"), dict):
            rc = block["reasoningContent"]
            rt = rc.get("reasoningText") if isinstance(rc.get("reasoningText"), dict) else {}
            sig = rt.get("signature") if isinstance(rt.get("signature"), str) else None
            if rt.get("text") or sig:
                events.append(ReasoningDelta(text=rt.get("text") or "", signature=sig or None))
            elif isinstance(rc.get("redactedContent"), str):
                events.append(ReasoningDelta(text="", redacted=rc["redactedContent"]))
    if isinstance(data.get("usage"), dict):
        events.append(UsageEvent(usage=_usage(data["usage"])))
    extra = {"metrics": data["metrics"]} if isinstance(data.get("metrics"), dict) else {}
    events.append(_finish(data.get("stopReason"), extra))
    return events


class EventState:
    """Decoded event-stream messages -> StreamEvents. Complete (`done`) once both messageStop
    and the metadata event (usage; normally the last frame) arrived, in either order."""

    def __init__(self, call: _http.Call | None = None) -> None:
        self.call = call or _http.Call("bedrock")
        self.usage: Usage | None = None
        self._stopped = self._metadata = False
        self._stop: Any = None
        self._extra: dict[str, Any] = {}
        self._tools: dict[Any, int] = {}

    def feed(self, headers: dict[str, Any], payload: bytes) -> list[StreamEvent]:
        mtype = headers.get(":message-type")
        if mtype == "error":
            raise map_error(None, str(headers.get(":error-code") or "InternalServerException"),
                            str(headers.get(":error-message") or "stream error"), call=self.call,
                            billed_usage=self.usage)
        try:
            obj = json.loads(payload) if payload else {}
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise MalformedResponse("Bedrock event payload is not a JSON object", provider=self.call.provider,
                                    model=self.call.model, body=payload[:500].decode("utf-8", "replace"),
                                    billed_usage=self.usage)
        if mtype == "exception":
            return self._raise(str(headers.get(":exception-type") or ""), obj)
        kind = headers.get(":event-type")
        if kind == "contentBlockStart":
            tu = (obj.get("start") or {}).get("toolUse")
            if isinstance(tu, dict):
                i = self._tools.setdefault(obj.get("contentBlockIndex"), len(self._tools))
                return [ToolCallDelta(index=i, id=tu.get("toolUseId"), name=tu.get("name"))]
        elif kind == "contentBlockDelta":
            return self._delta(obj.get("contentBlockIndex"), obj.get("delta") or {})
        elif kind == "messageStop":
            self._stop, self._stopped = obj.get("stopReason"), True
        elif kind == "metadata":
            self._metadata = True
            if isinstance(obj.get("metrics"), dict):
                self._extra["metrics"] = obj["metrics"]
            if isinstance(obj.get("usage"), dict):
                self.usage = _usage(obj["usage"])
                return [UsageEvent(usage=self.usage)]
        return []  # messageStart, contentBlockStop, unknown future events

    def _delta(self, index: Any, delta: dict[str, Any]) -> list[StreamEvent]:
        if isinstance(delta.get("text"), str):
            return [TextDelta(text=delta["text"])] if delta["text"] else []
        if isinstance(delta.get("toolUse"), dict):
            i = self._tools.setdefault(index, len(self._tools))
            return [ToolCallDelta(index=i, arguments=str(delta["toolUse"].get("input") or ""))]
        rc = delta.get("reasoningContent")
        if isinstance(rc, dict):
            if rc.get("text"):
                return [ReasoningDelta(text=rc["text"])]
            if isinstance(rc.get("signature"), str):
                return [ReasoningDelta(text="", signature=rc["signature"])]
            if isinstance(rc.get("redactedContent"), str):
                return [ReasoningDelta(text="", redacted=rc["redactedContent"])]
        return []

    def _raise(self, etype: str, obj: dict[str, Any]) -> list[StreamEvent]:
        name = etype[:1].upper() + etype[1:]  # stream exceptions are lowerCamel (throttlingException)
        raise map_error(None, name, str(obj.get("message") or obj.get("Message") or name), call=self.call,
                        raw=obj, billed_usage=self.usage)

    @property
    def done(self) -> bool:
        return self._stopped and self._metadata

    def finish(self) -> list[StreamEvent]:
        return [_finish(self._stop, self._extra)] if self.done else []


# ------------------------------------------------------------------ errors


def map_error(status: int | None, etype: str | None, message: str, *, call: _http.Call, headers: Any = None,
              now: float | None = None, raw: Any = None, billed_usage: Any = None) -> ProviderError:
    """AWS error type (x-amzn-ErrorType / __type / :exception-type) first, then the status;
    message matching only for context length and the per-day token quota (tested)."""
    cls = _ERRORS.get(etype or "") or _http.status_class(status)
    low = (message or "").lower()
    if cls is BadRequest and ("too long" in low or "context window" in low):
        cls = ContextTooLong
    elif cls is RateLimited and "per day" in low:  # "Too many tokens per day, please wait before trying again."
        cls = QuotaExhausted
    info = _http.ErrorInfo(status=status, code=etype, message=message, raw=raw)
    return _http.make_error(cls, info, call=call, headers=headers, now=now, billed_usage=billed_usage)


def _error_type(resp: httpx.Response, obj: Any) -> str | None:
    t = resp.headers.get("x-amzn-errortype") or (obj.get("__type") if isinstance(obj, dict) else None)
    if not t:
        return None
    return str(t).split(":", 1)[0].rsplit("#", 1)[-1] or None


def _on_error(resp: httpx.Response, raw: bytes, call: _http.Call, now: float) -> ProviderError:
    info = _http.parse_error_body(raw, resp.status_code)
    obj = info.raw if isinstance(info.raw, dict) else {}
    message = str(obj.get("message") or obj.get("Message") or info.message or f"HTTP {resp.status_code}")
    return map_error(resp.status_code, _error_type(resp, obj), message, call=call, headers=resp.headers, now=now,
                     raw=info.raw)


def event_stream(resp: httpx.Response, state: EventState, call: _http.Call) -> AsyncIterator[StreamEvent]:
    """application/vnd.amazon.eventstream body -> StreamEvents (botocore's decoder)."""
    from botocore.eventstream import EventStreamBuffer, ParserError  # lazy: optional extra [bedrock]

    async def frames() -> AsyncIterator[tuple[dict[str, Any], bytes]]:
        buf = EventStreamBuffer()
        try:
            async for chunk in _http.aiter_bytes(resp, call):
                buf.add_data(chunk)
                for msg in buf:
                    yield msg.headers, msg.payload
        except ParserError as e:
            raise MalformedResponse(f"corrupt AWS event-stream frame ({type(e).__name__})", provider=call.provider,
                                    model=call.model, billed_usage=state.usage) from e

    return nat.feed_frames(frames(), state, call, "Bedrock stream ended before messageStop + metadata")


# ------------------------------------------------------------------ provider


def _have_botocore() -> bool:
    return importlib.util.find_spec("botocore") is not None


_NEED_BOTOCORE = NEED_BOTOCORE


class BedrockProvider(nat.NativeProvider):
    """`BedrockProvider(region=..., aws_access_key_id=..., aws_secret_access_key=..., aws_session_token=...)`,
    or `api_key=` a Bedrock API key (bearer). Explicit arguments win over AWS_* environment variables."""

    vendor = "bedrock"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 client: httpx.AsyncClient | None = None, name: str = "bedrock", retry: Any = None,
                 region: str | None = None, aws_access_key_id: str | None = None,
                 aws_secret_access_key: str | None = None, aws_session_token: str | None = None,
                 timeout: float | None = None, clock: Any = None, timeouts: Any = None) -> None:
        api_key = api_key or os.environ.get("AWS_BEARER_TOKEN_BEDROCK") or None
        super().__init__(api_key=api_key, client=client, name=name, retry=retry, timeout=timeout, clock=clock,
                         timeouts=timeouts)
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.base_url = (base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")
        explicit = aws_access_key_id is not None or aws_secret_access_key is not None
        self._ak = aws_access_key_id if explicit else os.environ.get("AWS_ACCESS_KEY_ID")
        self._sk = aws_secret_access_key if explicit else os.environ.get("AWS_SECRET_ACCESS_KEY")
        self._token = aws_session_token if explicit else os.environ.get("AWS_SESSION_TOKEN")
        for s in (self._sk, self._token):
            register_secret(s)
        if not self._api_key and not _have_botocore():
            raise ConfigError(_NEED_BOTOCORE, key="bedrock")

    def __repr__(self) -> str:
        auth = "api_key" if self._api_key else ("sigv4" if self._ak else "default-chain")
        return f"BedrockProvider(name={self.name!r}, region={self.region!r}, auth={auth})"

    def _url(self, model: str, op: str) -> str:
        return f"{self.base_url}/model/{quote(model, safe='')}/{op}"

    def _headers(self, url: str, body: bytes, accept: str) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": accept}
        if self._api_key:
            return {**h, "authorization": f"Bearer {self._api_key}"}
        return sigv4_headers(url, body, h, region=self.region, access_key=self._ak, secret_key=self._sk,
                             session_token=self._token, provider=self.name)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        body = _http.dumps(build_body(req))
        call, url = self._call(req), self._url(req.model, "converse")
        lim = self._limits(req, stream=False)

        async def attempt() -> ChatResponse:
            data, rl = await self._post_json(url, body, self._headers(url, body, "application/json"), call,
                                             _on_error, lim)
            events = converse_events(data, call)
            return self._accumulate(P.unwrap_json_tool(events) if tool_json else events, req, rl)

        tool_json = P.bedrock_fields(req).structured == "tool"
        return await self._run(attempt)

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        body = _http.dumps(build_body(req))
        call, url = self._call(req), self._url(req.model, "converse-stream")

        def events(resp: httpx.Response) -> AsyncIterator[StreamEvent]:
            return event_stream(resp, EventState(call), call)

        out = self._stream(url, body, lambda: self._headers(url, body, "application/vnd.amazon.eventstream"),
                           call, _on_error, events, self._limits(req, stream=True))
        async for ev in (P.aunwrap_json_tool(out) if P.bedrock_fields(req).structured == "tool" else out):
            yield ev

    async def embed(self, req: EmbedCall) -> EmbedResult:
        """Titan Text Embeddings through `InvokeModel`, one text per call (the model takes
        one `inputText`); a failure after some texts carries their usage as billed."""
        call, url = _http.Call(self.name, req.model), self._url(req.model, "invoke")
        lim = attempt_limits(self.timeouts, stream=False, max_tokens=None)
        vectors: list[list[float]] = []
        used, reported, rl = 0, True, None
        for text in req.inputs:
            body = _http.dumps(titan_body(str(text), req.dimensions))

            async def attempt(body: bytes = body) -> tuple[Any, Any]:
                return await self._post_json(url, body, self._headers(url, body, "application/json"), call,
                                             _on_error, lim)

            try:
                data, rl = await self._run(attempt)
            except ProviderError as e:
                if used and e.billed_usage is None:
                    e.billed_usage = Usage(input_tokens=used)
                raise
            vec, tok = parse_titan(data, call)
            vectors.append(vec)
            if tok is None:
                reported, tok = False, estimate_usage([text]).input_tokens
            used += tok
        return EmbedResult(vectors=vectors, usage=Usage(input_tokens=used), usage_reported=reported,
                           model=req.model, rate_limits=rl)
