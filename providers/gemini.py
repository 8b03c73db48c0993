"""Native Google Gemini API adapter (AI Studio, `generativelanguage.googleapis.com`).

`POST {base}/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`; the key goes in the `x-goog-api-key` header,
never in the URL (URLs end up in logs). Both paths feed the same
`GenerateContentResponse` chunks to one `ChunkState`, so they cannot drift apart.

Usage: input = promptTokenCount (includes cached) + toolUsePromptTokenCount;
cache_read = cachedContentTokenCount; output = candidatesTokenCount +
thoughtsTokenCount (thoughts are billed as output); reasoning = thoughtsTokenCount.

One proxy request, read downward: ... -> router/sdk.py -> router/executor.py -> providers/gemini.py
(ChatRequest -> vendor HTTP -> ChatResponse/StreamEvents); the last stop: back up the same way.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from providers import _http
from providers import _native as nat
from providers import params as P
from providers._gemini_errors import map_error
from providers.embed import estimate_usage, gemini_body, parse_gemini
from router.embed_types import EmbedCall, EmbedResult
from router.limits import attempt_limits
from router.errors import BadRequest, ContentFiltered, MalformedResponse, ProviderError
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

__all__ = ["GeminiProvider", "build_body", "ChunkState"]

DEFAULT_BASE = "https://generativelanguage.googleapis.com"
# Gemini 3 rejects replayed functionCall parts without their thoughtSignature; this documented sentinel
# (ai.google.dev/gemini-api/docs/thought-signatures) is sent when we have none (e.g. history from another vendor).
SKIP_SIGNATURE = "skip_thought_signature_validator"
_MAX_SIGNATURES = 4096

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}

# ------------------------------------------------------------------ request


def _image_part(url: str, media_type: str | None) -> dict[str, Any]:
    data = nat.parse_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": media_type or data[0], "data": data[1]}}
    mt = media_type or mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mt, "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if p.type == "text":
            if p.text:
                out.append({"text": p.text})
        elif p.type == "image_url":
            out.append(_image_part(p.url, p.media_type))
        elif p.type == "document" and p.source != "url":  # a PDF inline, a text document as text
            text = p.as_text()
            out.append({"text": text} if text is not None else
                       {"inlineData": {"mimeType": p.media_type or "application/pdf", "data": p.data or ""}})
        # thinking blocks (another vendor's signatures) and URL documents have no equivalent: left out
    return out


def _tool_response(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    return obj if isinstance(obj, dict) else {"result": text}


def _needs_signature(model: str) -> bool:
    m = re.match(r"(?:models/)?gemini-(\d+)", model)
    return bool(m) and int(m.group(1)) >= 3


def _contents(req: ChatRequest, signatures: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool_call_id -> function name (Gemini answers by name)
    sentinel = _needs_signature(req.model)
    out: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role in ("system", "developer"):
            continue
        if m.role == "tool":
            role = "user"
            name = m.name or names.get(m.tool_call_id or "") or ""
            if not name:
                raise BadRequest(f"tool message {m.tool_call_id!r}: no matching assistant tool call (name unknown)",
                                 provider="gemini")
            parts = [{"functionResponse": {"name": name, "response": _tool_response(m.text())}}]
        elif m.role == "assistant":
            role = "model"
            parts = _parts(m.content)
            for i, tc in enumerate(m.tool_calls or []):
                names[tc.id] = tc.name
                part: dict[str, Any] = {"functionCall": {"name": tc.name, "args": nat.tool_args(tc)}}
                sig = (signatures or {}).get(tc.id) or (SKIP_SIGNATURE if sentinel and i == 0 else None)
                if sig:
                    part["thoughtSignature"] = sig
                parts.append(part)
        else:
            role, parts = "user", _parts(m.content)
        nat.add_turn(out, role, parts, key="parts")
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice) if isinstance(choice, str) else None
    if mode:
        return {"functionCallingConfig": {"mode": mode}}
    name = nat.named_tool(choice)
    if name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise BadRequest(f"unsupported tool_choice {choice!r}", provider="gemini")


def build_body(req: ChatRequest, signatures: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ChatRequest -> generateContent JSON body (pure; same body for streaming).
    `signatures` maps tool-call ids to the thoughtSignature Gemini sent with them."""
    body: dict[str, Any] = {"contents": _contents(req, signatures)}
    system = req.system_text()
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if req.tools:
        decls = []
        for t in req.tools:
            d: dict[str, Any] = {"name": t.name, "parametersJsonSchema": t.parameters}
            if t.description:
                d["description"] = t.description
            decls.append(d)
        body["tools"] = [{"functionDeclarations": decls}]
        tc = _tool_config(req.tool_choice)
        if tc:
            body["toolConfig"] = tc
    gen: dict[str, Any] = {}
    if req.temperature is not None:
        gen["temperature"] = req.temperature
    if req.top_p is not None:
        gen["topP"] = req.top_p
    if req.max_tokens:
        gen["maxOutputTokens"] = req.max_tokens
    if req.stop:
        gen["stopSequences"] = list(req.stop)
    rf = req.response_format
    if rf is not None and rf.type != "text":
        gen["responseMimeType"] = "application/json"
        schema = (rf.json_schema or {}).get("schema") if rf.type == "json_schema" else None
        if schema:
            gen["responseJsonSchema"] = schema
    gen.update(P.gemini_fields(req).fields)  # thinkingConfig, seed, penalties, topK
    if gen:
        body["generationConfig"] = gen
    return nat.deep_merge(body, req.extra_body)


# ------------------------------------------------------------------ response


def _usage(meta: dict[str, Any]) -> Usage:
    thoughts = nat.count(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=nat.count(meta, "promptTokenCount") + nat.count(meta, "toolUsePromptTokenCount"),
        output_tokens=nat.count(meta, "candidatesTokenCount") + thoughts,
        cache_read_tokens=nat.count(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


class ChunkState:
    """GenerateContentResponse chunks -> StreamEvents. The stream has no terminal event:
    it is complete once a candidate carried a `finishReason` (`done`)."""

    def __init__(self, call: _http.Call | None = None,
                 on_signature: Callable[[str, str], None] | None = None) -> None:
        self.call = call or _http.Call("gemini")
        self._on_signature = on_signature
        self.done = False
        self.usage: Usage | None = None
        self._finish: str | None = None
        self._message: str | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._tools = 0

    def feed(self, event: str, data: str) -> list[StreamEvent]:
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise MalformedResponse("Gemini stream sent a non-JSON chunk", provider=self.call.provider,
                                    model=self.call.model, body=data[:500], billed_usage=self.usage)
        return self.absorb(obj)

    def absorb(self, obj: dict[str, Any]) -> list[StreamEvent]:
        if isinstance(obj.get("error"), dict):  # an error chunk mid-stream
            raise map_error(None, obj, call=self.call, billed_usage=self.usage)
        self._id = obj.get("responseId") or self._id
        self._model = obj.get("modelVersion") or self._model
        if isinstance(obj.get("usageMetadata"), dict):
            self.usage = _usage(obj["usageMetadata"])  # cumulative: the latest chunk wins
        events: list[StreamEvent] = []
        cands = obj.get("candidates")
        if not cands:
            block = (obj.get("promptFeedback") or {}).get("blockReason")
            if block:
                raise ContentFiltered(f"Gemini blocked the prompt ({block})", provider=self.call.provider,
                                      model=self.call.model, code=block, body=json.dumps(obj)[:2000],
                                      billed_usage=self.usage)
            return events
        cand = cands[0] if isinstance(cands[0], dict) else {}
        for part in (cand.get("content") or {}).get("parts") or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                fc = part["functionCall"]
                cid = fc.get("id") or (f"call_{self._id}_{self._tools}" if self._id else f"call_{self._tools}")
                if part.get("thoughtSignature") and self._on_signature is not None:
                    self._on_signature(cid, part["thoughtSignature"])
                events.append(ToolCallDelta(index=self._tools, id=cid, name=fc.get("name"),
                                            arguments=json.dumps(fc.get("args") or {}, ensure_ascii=False)))
                self._tools += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                cls = ReasoningDelta if part.get("thought") else TextDelta
                events.append(cls(text=part["text"]))
        if cand.get("finishReason"):
            self._finish = cand["finishReason"]
            self._message = cand.get("finishMessage")
            self.done = True
        return events

    def finish(self) -> list[StreamEvent]:
        """Called once the body ended: usage and finish (only if a finishReason came)."""
        events: list[StreamEvent] = [UsageEvent(usage=self.usage)] if self.usage is not None else []
        if self._finish is not None:
            reason = _FINISH.get(self._finish, "unknown")
            if reason == "stop" and self._tools:
                reason = "tool_calls"
            details: dict[str, Any] = {"finish_reason": self._finish}
            if reason == "error":  # a malformed/unexpected tool call: the model's output, not the service
                details["model_error"] = True
            if self._message:
                details["finish_message"] = self._message
            events.append(FinishEvent(finish_reason=reason, id=self._id, model=self._model,  # type: ignore[arg-type]
                                      provider_details=details))
        return events


# ------------------------------------------------------------------ errors (mapping: providers._gemini_errors)


def _on_error(resp: httpx.Response, raw: bytes, call: _http.Call, now: float) -> ProviderError:
    obj = _http.parse_error_body(raw, resp.status_code)
    return map_error(resp.status_code, obj.raw, call=call, headers=resp.headers, now=now,
                     fallback_message=obj.message)


# ------------------------------------------------------------------ provider


class GeminiProvider(nat.NativeProvider):
    """`GeminiProvider(api_key=..., base_url=None, client=None, name="gemini", retry=None)`."""

    vendor = "gemini"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 client: httpx.AsyncClient | None = None, name: str = "gemini", retry: Any = None,
                 api_version: str = "v1beta", extra_headers: dict[str, str] | None = None,
                 timeout: float | None = None, clock: Any = None, timeouts: Any = None) -> None:
        super().__init__(api_key=api_key, client=client, name=name, retry=retry, timeout=timeout, clock=clock,
                         timeouts=timeouts)
        base, version = nat.split_version(base_url or DEFAULT_BASE, ("/v1beta", "/v1"))
        self.base_url, self.api_version = base, version or api_version
        self._extra = dict(extra_headers or {})
        self._signatures: OrderedDict[str, str] = OrderedDict()  # tool-call id -> thoughtSignature (bounded)

    def _remember(self, call_id: str, signature: str) -> None:
        self._signatures[call_id] = signature
        self._signatures.move_to_end(call_id)
        while len(self._signatures) > _MAX_SIGNATURES:
            self._signatures.popitem(last=False)

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", **self._extra}
        if self._api_key:
            h["x-goog-api-key"] = self._api_key
        return h

    def _url(self, model: str, method: str) -> str:
        model = model.removeprefix("models/")
        return f"{self.base_url}/{self.api_version}/models/{model}:{method}"

    async def count_tokens(self, req: ChatRequest) -> int:
        """`models/{model}:countTokens` over the whole generateContent request: the exact input count."""
        model = req.model.removeprefix("models/")
        body = _http.dumps({"generateContentRequest": {"model": f"models/{model}",
                                                       **build_body(req, self._signatures)}})
        call = self._call(req)

        async def attempt() -> int:
            data, _ = await self._post_json(self._url(req.model, "countTokens"), body, self._headers(), call,
                                            _on_error, self._limits(req, stream=False))
            n = data.get("totalTokens") if isinstance(data, dict) else None
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise MalformedResponse("Gemini countTokens answer has no totalTokens", provider=call.provider,
                                        model=call.model, body=str(data)[:500])
            return n

        return await self._run(attempt)  # type: ignore[no-any-return]

    async def complete(self, req: ChatRequest) -> ChatResponse:
        body = _http.dumps(build_body(req, self._signatures))
        call, lim = self._call(req), self._limits(req, stream=False)

        async def attempt() -> ChatResponse:
            data, rl = await self._post_json(self._url(req.model, "generateContent"), body, self._headers(), call,
                                             _on_error, lim)
            if not isinstance(data, dict) or not (data.get("candidates") or data.get("promptFeedback")
                                                  or data.get("error")):
                raise MalformedResponse("Gemini response has no candidates", provider=call.provider,
                                        model=call.model, body=str(data)[:500])
            state = ChunkState(call, self._remember)
            events = state.absorb(data)
            if not state.done:  # a complete body always has a finishReason; be explicit if not
                state._finish = "FINISH_REASON_UNSPECIFIED"
            return self._accumulate(events + state.finish(), req, rl)

        return await self._run(attempt)

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        body = _http.dumps(build_body(req, self._signatures))
        call = self._call(req)
        url = self._url(req.model, "streamGenerateContent") + "?alt=sse"

        def events(resp: httpx.Response) -> AsyncIterator[StreamEvent]:
            return nat.sse_events(resp, ChunkState(call, self._remember), call,
                                  "Gemini stream ended without a finishReason")

        async for ev in self._stream(url, body, lambda: {**self._headers(), "accept": "text/event-stream"}, call,
                                     _on_error, events, self._limits(req, stream=True)):
            yield ev

    async def embed(self, req: EmbedCall) -> EmbedResult:
        """One batch through `:batchEmbedContents` (its reply has no token count: the
        result carries an estimate, `usage_reported=False`)."""
        body = _http.dumps(gemini_body(req))
        call = _http.Call(self.name, req.model)
        lim = attempt_limits(self.timeouts, stream=False, max_tokens=None)

        async def attempt() -> EmbedResult:
            data, rl = await self._post_json(self._url(req.model, "batchEmbedContents"), body, self._headers(), call,
                                             _on_error, lim)
            return EmbedResult(vectors=parse_gemini(data, call, len(req.inputs)), usage=estimate_usage(req.inputs),
                               usage_reported=False, model=req.model, rate_limits=rl)

        return await self._run(attempt)
