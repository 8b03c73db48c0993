"""The demo's world: recorded models standing in for real vendors, example free
quotas, and a Router wired to them.

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

from providers.replay import Outcome, ReplayProvider, prompt_key

__all__ = ["DemoModel", "DEMO_MODELS", "World", "build_world", "demo_pools"]


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
    predictor: Any  # benchmarks.learned.LearnedPredictor
    train: Any  # Dataset
    test: Any  # Dataset
    models: tuple[DemoModel, ...]

    def quality_of(self, prompt_index: int, model_id: str) -> float:
        j = self.test.models.index(self._by_id[model_id].dataset_name)
        return float(self.test.quality[prompt_index, j])

    @property
    def _by_id(self) -> dict[str, DemoModel]:
        return {m.id: m for m in self.models}


def _cards(models: Sequence[DemoModel], train: Any) -> list[Any]:
    import numpy as np

    from router.catalog import ModelCard
    from router.pricing import Price

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


def build_world(*, n_prompts: int | None = None, seed: int = 0, dataset: Any = None) -> World:
    """Load the bundled data, split it, train the task-fit predictor on the train
    split, and build the replay deployments for the test split."""
    from benchmarks.datasets import load_shipped, split
    from benchmarks.learned import train as train_predictor
    from router.catalog import Catalog
    from router.quota.spec import load_quota_config

    ds = dataset if dataset is not None else load_shipped()
    models = tuple(m for m in DEMO_MODELS if m.dataset_name in ds.models)
    train, test = split(ds, None, seed)
    if n_prompts is not None and n_prompts < test.n_prompts:
        import numpy as np

        rng = np.random.default_rng(seed)
        test = test.subset(np.sort(rng.choice(test.n_prompts, size=n_prompts, replace=False)))
    outcomes: dict[str, dict[tuple[str, str], Outcome]] = {}
    col = {m.dataset_name: test.models.index(m.dataset_name) for m in models}
    for i, text in enumerate(test.prompts):
        key = prompt_key(text)
        for m in models:
            j = col[m.dataset_name]
            prov = m.id.split(":", 1)[0]
            outcomes.setdefault(prov, {})[(key, m.id.split(":", 1)[1])] = Outcome(
                quality=float(test.quality[i, j]),
                input_tokens=int(test.input_tokens[i, j]),
                output_tokens=int(test.output_tokens[i, j]),
                label=test.prompt_ids[i],
            )
    providers = {p: ReplayProvider(p, table) for p, table in outcomes.items()}
    pools, _ = load_quota_config({"quotas": demo_pools(test.n_prompts)}, file="<demo quotas>", include_defaults=False)
    predictor = train_predictor(train.select_models([m.dataset_name for m in models]), "ridge")
    # the predictor speaks dataset names; give it the demo ids
    predictor.model_ids = [next(m.id for m in models if m.dataset_name == n) for n in predictor.models]
    return World(Catalog(_cards(models, train)), providers, pools, predictor, train, test, models)
