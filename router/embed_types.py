"""What an adapter's `embed()` takes and returns (the normalized embeddings types).

    result = await provider.embed(EmbedCall(model="text-embedding-3-small", inputs=("a", "b")))
    result.vectors  # one list of floats per input, in input order
    result.usage    # input tokens the vendor billed (estimated when it reported none)

`EmbedCall` is one vendor-sized batch: the router (`router.embeddings`) validates the
client's request, splits it into batches the vendor accepts and sums what they cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.types import RateLimitSnapshot, Usage

__all__ = ["EmbedCall", "EmbedResult"]


@dataclass(frozen=True, slots=True)
class EmbedCall:
    """One batch for one vendor. `inputs` are strings, or token-id lists where the
    vendor accepts them (OpenAI-compatible rows marked `tokens` in the catalog).
    `dimensions` is sent only when set (the router sets it only for models that honour it)."""

    model: str
    inputs: tuple[Any, ...]
    dimensions: int | None = None
    user: str | None = None


@dataclass(slots=True)
class EmbedResult:
    vectors: list[list[float]]
    usage: Usage
    usage_reported: bool = True  # False: the vendor reported no token count (usage is an estimate)
    model: str = ""  # the vendor's model id as it answered
    rate_limits: RateLimitSnapshot | None = None
    provider_details: dict[str, Any] = field(default_factory=dict)
