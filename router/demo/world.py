"""The demo's world: recorded models standing in for real vendors, example free
quotas, and a Router wired to them (built from the bundled data by
`benchmarks.cmd_demo.build_world`).

Every model of the bundled RouterBench-derived data becomes a `ReplayProvider`
deployment under a plausible vendor. The free quotas are *examples* (clearly
labelled): a small daily free pool on two cheap vendors and a one-time credit grant
on a third. Prices are the late-2023 list prices RouterBench used, so the billed
cost of a replayed answer tracks the recorded cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from providers.replay import ReplayProvider
from router.catalog import ModelCard
from router.pricing import Price

__all__ = ["DemoModel", "DEMO_MODELS", "World", "demo_pools", "demo_cards"]


@dataclass(frozen=True)
class DemoModel:
    dataset_name: str  # column in the RouterBench data
    id: str  # "provider:model" in the demo catalog
    input_per_m: str  # USD per 1M input tokens (RouterBench's late-2023 list prices)
    output_per_m: str
    context: int
    tier: str


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("gpt-4-1106-preview", "openai:gpt-4-1106-preview", "10", "30", 128000, "frontier"),
    DemoModel("gpt-3.5-turbo-1106", "openai:gpt-3.5-turbo-1106", "1", "2", 16385, "mid"),
    DemoModel("claude-v2", "anthropic:claude-2.0", "8", "24", 100000, "frontier"),
    DemoModel("claude-v1", "anthropic:claude-1.3", "8", "24", 100000, "mid"),
    DemoModel("claude-instant-v1", "anthropic:claude-instant-1.2", "0.8", "2.4", 100000, "mid"),
    DemoModel("mistralai/mixtral-8x7b-chat", "groq:mixtral-8x7b-32768", "0.6", "0.6", 32768, "mid"),
    DemoModel("meta/llama-2-70b-chat", "groq:llama2-70b-4096", "0.9", "0.9", 4096, "mid"),
    DemoModel("zero-one-ai/Yi-34B-Chat", "siliconflow:01-ai/Yi-34B-Chat", "0.8", "0.8", 4096, "mid"),
    DemoModel("meta/code-llama-instruct-34b-chat", "together:codellama/CodeLlama-34b-Instruct-hf", "0.776", "0.776", 16384, "small"),
    DemoModel("mistralai/mistral-7b-chat", "together:mistralai/Mistral-7B-Instruct-v0.1", "0.2", "0.2", 8192, "small"),
    DemoModel("WizardLM/WizardLM-13B-V1.2", "together:WizardLM/WizardLM-13B-V1.2", "0.3", "0.3", 4096, "small"),
)

BEST_MODEL = "openai:gpt-4-1106-preview"


def demo_pools(n_requests: int) -> list[dict[str, Any]]:
    """Example free quotas, sized so that they run out part-way through the demo
    (about a tenth of the traffic each), to show the switch to paid models."""
    daily = max(3, n_requests // 10)
    return [
        {
            "id": "groq-free-daily",
            "models": ["groq:*"],
            "free": True,
            "on_exhaust": "block",
            "limits": [{"per": "day", "requests": daily, "reset": "calendar", "tz": "UTC"}],
            "source": "example quota for the demo (shape of Groq's free tier: requests per day per account)",
        },
        {
            "id": "siliconflow-free-daily",
            "models": ["siliconflow:*"],
            "free": True,
            "on_exhaust": "block",
            "limits": [{"per": "day", "requests": daily, "reset": "calendar", "tz": "Asia/Shanghai"}],
            "source": "example quota for the demo (a free daily pool on a CN vendor, Beijing-time reset)",
        },
        {
            "id": "together-signup-credit",
            "models": ["together:*"],
            "free": True,
            "on_exhaust": "paid",
            "grant": {"usd": str(Decimal("0.00004") * max(1, n_requests))},
            "source": "example one-time sign-up credit for the demo (paid at list price once spent)",
        },
    ]


@dataclass
class World:
    catalog: Any  # router.catalog.Catalog
    providers: dict[str, ReplayProvider]
    pools: list[Any]  # PoolSpec
    predictor: Any  # router.predictor.LearnedPredictor
    train: Any  # Dataset
    test: Any  # Dataset
    models: tuple[DemoModel, ...]

    def quality_of(self, prompt_index: int, model_id: str) -> float:
        j = self.test.models.index(self._by_id[model_id].dataset_name)
        return float(self.test.quality[prompt_index, j])

    @property
    def _by_id(self) -> dict[str, DemoModel]:
        return {m.id: m for m in self.models}


def demo_cards(models: Sequence[DemoModel], train: Any) -> list[Any]:
    import numpy as np  # lazy: import time (`quotaroute demo --help` stays fast)

    cards = []
    kinds = np.array(train.task_kinds())
    for m in models:
        j = train.models.index(m.dataset_name)
        tq = {str(k): round(float(train.quality[kinds == k, j].mean()), 4) for k in sorted(set(kinds))}
        cards.append(
            ModelCard(
                id=m.id,
                provider=m.id.split(":", 1)[0],
                model=m.id.split(":", 1)[1],
                context_window=m.context,
                max_output=4096,
                capabilities=frozenset({"streaming"}),
                price=Price(
                    input=Decimal(m.input_per_m),
                    output=Decimal(m.output_per_m),
                    source="RouterBench (Hu et al. 2024) list prices of late 2023",
                    as_of="2023-12",
                ),
                regions=frozenset({"cn"}) if m.id.startswith("siliconflow:") else frozenset({"us"}),
                task_quality=tq,
                tier=m.tier,
            )
        )
    return cards
