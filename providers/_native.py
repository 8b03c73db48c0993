"""Shared glue for the native (non-OpenAI-format) adapters: Anthropic, Gemini, Bedrock.

Built on `providers._http` (transport mapping, safe JSON, typed errors) and
`providers.retry.RetryPolicy` (one retry layer; streams retry only before their
first event). Adds what the three native adapters share: request-part helpers,
client ownership, key hygiene, the SSE -> state machine loop and the
"stream ended without its terminal event -> MalformedResponse(billed_usage=...)" rule.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx

from providers import _http
from providers._sse import aiter_sse
from providers.ratelimit import parse_rate_limits
from providers.retry import RetryPolicy
from router.errors import BadRequest, MalformedResponse, ProviderError, register_secret
from router.limits import AttemptLimits, Timeouts, attempt_limits
from router.splice import spliced_text
from router.types import ChatRequest, ChatResponse, FinishEvent, RateLimitSnapshot, StreamEvent, ToolCall, accumulate

__all__ = [
    "NativeProvider",
    "parse_data_url",
    "tool_args",
    "named_tool",
    "deep_merge",
    "count",
    "json_system",
    "add_turn",
    "turns",
    "split_version",
    "feed_frames",
    "sse_events",
    "JSON_INSTRUCTION",
]

JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else (no prose, no code fences)."

_DATA_URL = re.compile(r"^data:(?P<mt>[\w.+-]+/[\w.+-]+)?(?:;[^,;]+)*;base64,(?P<data>.*)$", re.S)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,XXX` -> ("image/png", "XXX"); None for other URLs."""
    m = _DATA_URL.match(url)
    if not m:
        if url.startswith("data:"):
            raise BadRequest("image data: URL must be base64-encoded (data:<type>;base64,...)")
        return None
    return m.group("mt") or "image/png", m.group("data")


def tool_args(tc: ToolCall) -> Any:
    """Assistant tool-call arguments (JSON text) -> object, for vendors that want JSON."""
    if not tc.arguments.strip():
        return {}
    try:
        return json.loads(tc.arguments)
    except ValueError as e:
        raise BadRequest(f"tool call {tc.id!r} arguments are not valid JSON") from e


def named_tool(choice: Any) -> str | None:
    """OpenAI `{"type":"function","function":{"name":X}}` (or `{"name":X}`) -> X."""
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(choice.get("name"), str):
            return choice["name"]
    return None


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """`extra_body` passthrough: nested dicts are merged, anything else replaces."""
    for k, v in (extra or {}).items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            base[k] = deep_merge(dict(base[k]), v)
        else:
            base[k] = v
    return base


def count(raw: Mapping[str, Any], key: str) -> int:
    """A token count from a vendor usage object: a non-negative int, else 0."""
    v = raw.get(key)
    return v if isinstance(v, int) and v >= 0 else 0


def json_system(system: str | None, rf: Any) -> str | None:
    """JSON mode for APIs without a native switch (Anthropic Messages, Bedrock Converse):
    the instruction (and the schema, if any) appended to the system prompt."""
    if rf is None or rf.type == "text":
        return system
    extra = JSON_INSTRUCTION
    schema = (rf.json_schema or {}).get("schema") if rf.type == "json_schema" else None
    if schema:
        extra += " It must validate against this JSON Schema: " + json.dumps(schema, separators=(",", ":"))
    return f"{system}\n\n{extra}" if system else extra


def add_turn(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], key: str = "content") -> None:
    """Append a turn; consecutive turns of one role are merged (the APIs want alternating
    turns); empty turns are dropped."""
    if not blocks:
        return
    if out and out[-1]["role"] == role:
        out[-1][key].extend(blocks)
    else:
        out.append({"role": role, key: blocks})


def _listed(x: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return x if isinstance(x, list) else [x]


def turns(req: ChatRequest, content: Callable[[Any], list[dict[str, Any]]],
          tool_result: Callable[[Any], Any], tool_use: Callable[[ToolCall], Any]) -> list[dict[str, Any]]:
    """Messages-style turns (Anthropic Messages, Bedrock Converse): system/developer
    messages are left out (they go to the body's `system`), a tool result is a user turn,
    an assistant turn is its content then its tool calls (`add_turn` merges and drops).
    `tool_result`/`tool_use` return a block or a list of blocks (e.g. with a cache point)."""
    out: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role in ("system", "developer"):
            continue
        if m.role == "tool":
            role, blocks = "user", _listed(tool_result(m))
        elif m.role == "assistant":
            role = "assistant"
            blocks = content(m.content) + [b for tc in m.tool_calls or [] for b in _listed(tool_use(tc))]
        else:
            role, blocks = "user", content(m.content)
        add_turn(out, role, blocks)
    return out


def split_version(base_url: str, suffixes: tuple[str, ...]) -> tuple[str, str | None]:
    """`https://host/v1/` -> ("https://host", "v1"): a base URL without a trailing slash and
    without any of the version `suffixes` (tried in order), and the last version removed."""
    base, version = base_url.rstrip("/"), None
    for suffix in suffixes:
        if base.endswith(suffix):
            base, version = base[: -len(suffix)], suffix[1:]
    return base, version


async def feed_frames(frames: AsyncIterator[tuple[Any, Any]], state: Any, call: _http.Call,
                      missing_terminal: str) -> AsyncIterator[StreamEvent]:
    """Decoded frames -> `state.feed(*frame)` events; MalformedResponse if the terminal event never came.
    A frame `(None, text)` is text a splice wrote: a `SplicedText`, not fed to `state`.

    `state` has `feed(a, b) -> list[StreamEvent]`, `done: bool`, `usage` (billed so
    far, or None) and optionally `finish() -> list[StreamEvent]` called at end of body.
    A ProviderError raised mid-stream gets `billed_usage` = what was billed so far.
    """
    try:
        async for a, b in frames:
            if a is None:  # text a splice already wrote to the client (see `sse_events`)
                yield spliced_text(b)
                continue
            for ev in state.feed(a, b):
                yield ev
    except ProviderError as e:
        if e.billed_usage is None:
            e.billed_usage = state.usage
        raise
    end = getattr(state, "finish", None)
    if end is not None:
        for ev in end():
            yield ev
    if not state.done:
        raise MalformedResponse(missing_terminal, provider=call.provider, model=call.model,
                                billed_usage=state.usage)


def sse_events(resp: httpx.Response, state: Any, call: _http.Call,
               missing_terminal: str, tap: Any = None) -> AsyncIterator[StreamEvent]:
    """SSE body -> `state.feed(event, data)` events (see `feed_frames`). With a
    `providers._splice.Tap` (which `state` arms after a plain text event), the texts the
    splice wrote to the client come out as one `router.splice.SplicedText` per splice."""

    async def frames() -> AsyncIterator[tuple[str | None, str]]:
        async for sse in aiter_sse(_http.aiter_bytes(resp, call), tap, call):
            if sse.__class__ is str:
                yield None, sse  # type: ignore[misc]
            else:
                yield sse.event, sse.data  # type: ignore[union-attr]

    return feed_frames(frames(), state, call, missing_terminal)


OnError = Callable[[httpx.Response, bytes, _http.Call, float], ProviderError]


class NativeProvider:
    """Base for the native adapters: client ownership, secrets, retries, rate limits."""

    vendor = "native"

    def __init__(self, *, api_key: str | None, client: httpx.AsyncClient | None, name: str, retry: Any,
                 timeout: float | None = None, clock: Callable[[], float] | None = None,
                 timeouts: Timeouts | Mapping[str, float] | None = None) -> None:
        self.name = name
        self._api_key = api_key
        register_secret(api_key)
        self._client = client
        self._owns_client = client is None
        # per-attempt limits (connect, first byte, idle; `timeout=N` is the older single number)
        self.timeouts = Timeouts.coerce(timeouts, timeout=timeout)
        if retry is None:
            retry = RetryPolicy()
        self.retry = retry
        self._clock = clock or time.time
        self.last_rate_limits: RateLimitSnapshot | None = None

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(name={self.name!r}, key={'set' if self._api_key else 'unset'})"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeouts.idle_s,
                                                                   connect=self.timeouts.connect_s))
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _call(self, req: ChatRequest) -> _http.Call:
        return _http.Call(self.name, req.model)

    def _observe(self, headers: Mapping[str, str]) -> RateLimitSnapshot:
        snap = parse_rate_limits(headers, self._clock())
        self.last_rate_limits = snap
        return snap

    # -- one request -------------------------------------------------------------------

    def _limits(self, req: ChatRequest, *, stream: bool) -> AttemptLimits:
        return attempt_limits(self.timeouts, stream=stream, max_tokens=self._max_tokens(req))

    def _max_tokens(self, req: ChatRequest) -> int | None:
        return req.max_tokens

    async def _post_json(self, url: str, content: bytes, headers: dict[str, str], call: _http.Call,
                         on_error: OnError, limits: AttemptLimits | None = None
                         ) -> tuple[Any, RateLimitSnapshot]:
        """POST, map non-2xx with `on_error`, parse the JSON body (MalformedResponse on garbage)."""
        resp = await _http.send_json(self.client, url, content, call=call, headers=headers, limits=limits)
        rl = self._observe(resp.headers)
        if resp.status_code >= 400:
            raise on_error(resp, resp.content, call, self._clock())
        return _http.load_json(resp.content, call=call, status=resp.status_code, headers=resp.headers), rl

    async def _run(self, factory: Callable[[], Awaitable[Any]]) -> Any:
        return await self.retry.run(factory)

    def _accumulate(self, events: list[StreamEvent], req: ChatRequest, rl: Any) -> ChatResponse:
        return accumulate(events, provider=self.name, model=req.model, rate_limits=rl)

    async def _stream(self, url: str, content: bytes, headers: Callable[[], dict[str, str]], call: _http.Call,
                      on_error: OnError,
                      events: Callable[[httpx.Response], AsyncIterator[StreamEvent]],
                      limits: AttemptLimits | None = None) -> AsyncIterator[StreamEvent]:
        """One streamed call; the retry policy re-opens it only before the first event."""

        async def attempt() -> AsyncIterator[StreamEvent]:
            async with _http.open_stream(self.client, url, content, call=call, headers=headers(),
                                         limits=limits) as resp:
                rl = self._observe(resp.headers)
                if resp.status_code >= 400:
                    raise on_error(resp, await _http.read_body(resp), call, self._clock())
                async for ev in events(resp):
                    if isinstance(ev, FinishEvent) and not rl.is_empty():  # same shape as providers.openai
                        ev.provider_details.setdefault("rate_limits", rl.model_dump(exclude_none=True))
                    yield ev

        async for ev in self.retry.stream(attempt):
            yield ev
