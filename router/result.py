"""What a routed call returns: the answer plus how it was routed and billed.

The SDK (`Router.achat`) returns `RoutedResponse`; streaming returns a
`RoutedStream` whose `route` is filled once the first event has arrived (a later
model may finish a cut answer; `route.reason` then says so) and whose cost is final
when iteration ends.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from router.types import ChatResponse, Usage

__all__ = ["Attempt", "CandidateReason", "CascadeInfo", "RouteInfo", "RoutedResponse"]


class Attempt(BaseModel):
    model_id: str  # "provider:model"
    provider: str
    ok: bool
    error_type: str | None = None  # e.g. "RateLimited"
    error_message: str | None = None
    usage: Usage | None = None  # what the vendor billed for this attempt (None = not billed)
    cost_usd: Decimal = Decimal(0)
    free_pool: str | None = None  # pool that covered it, if free
    latency_ms: float = 0.0
    retries: int = 0
    stage: int | None = None  # cascades: the stage (1-based) that made this call
    answer: str | None = None  # cascades: the final answer read from the reply (None: none could be read)


class CandidateReason(BaseModel):
    model_id: str
    kept: bool
    rank: int | None = None
    reason: str
    expected_cost_usd: Decimal | None = None
    quality: float | None = None
    free: bool = False


class CascadeInfo(BaseModel):
    """What an answer-agreement cascade did (router.cascade_run)."""

    name: str
    calls: int = 0  # vendor calls made (every one billed or released)
    stages_run: int = 0  # sequential stages run (a latency proxy)
    accepted_stage: int | None = None  # the stage whose answer was returned (1-based)
    agreed: list[str] = Field(default_factory=list)  # the models that gave the accepted answer
    answer: str | None = None  # the accepted answer, normalised
    agreement: bool = False  # False: the last stage answered without agreement (or a single stage)


class RouteInfo(BaseModel):
    model_id: str = ""  # the model that answered
    provider: str = ""
    policy: str = ""
    reason: str = ""  # one line, e.g. "free-first: gemini free pool (1,420/1,500 left), quality 0.82 >= 0.7"
    task: str | None = None
    candidates: list[CandidateReason] = Field(default_factory=list)
    estimated_cost_usd: Decimal | None = None
    cost_usd: Decimal = Decimal(0)  # sum over billed attempts
    cost_native: Decimal | None = None
    currency: str = "USD"
    free_quota_used: bool = False
    attempts: list[Attempt] = Field(default_factory=list)
    overhead_ms: float | None = None
    cascade: CascadeInfo | None = None  # set when an answer-agreement cascade answered

    @property
    def fallback_chain(self) -> list[str]:
        return [a.model_id for a in self.attempts]


class RoutedResponse(BaseModel):
    response: ChatResponse
    route: RouteInfo
