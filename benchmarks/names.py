"""Names across datasets, the router and price data: task kinds, catalog model ids."""

from __future__ import annotations

from router.types import TASK_KINDS

__all__ = ["TASK_KIND_MAP", "MODEL_ID_MAP", "task_kind", "genai_rates"]

# RouterBench / AlpacaEval sub-dataset -> router task kind (router.types.TASK_KINDS).
TASK_KIND_MAP: dict[str, str] = {
    "arc-challenge": "reasoning",
    "winogrande": "reasoning",
    "mmlu": "reasoning",
    "hellaswag": "reasoning",
    "mbpp": "code",
    "gsm8k": "math",
    "mt-bench": "chat",
    "alpacaeval": "chat",
}

# Dataset model names -> catalog ids ("provider:model"), where a catalog entry can exist.
MODEL_ID_MAP: dict[str, str] = {
    "gpt-4-1106-preview": "openai:gpt-4-1106-preview",
    "gpt-3.5-turbo-1106": "openai:gpt-3.5-turbo-1106",
    "claude-instant-v1": "anthropic:claude-instant-1.2",
    "claude-v1": "anthropic:claude-v1",
    "claude-v2": "anthropic:claude-2.0",
    "mistralai/mistral-7b-chat": "mistral:open-mistral-7b",
    "mistralai/mixtral-8x7b-chat": "mistral:open-mixtral-8x7b",
    "meta/llama-2-70b-chat": "together:meta-llama/Llama-2-70b-chat-hf",
    "meta/code-llama-instruct-34b-chat": "together:codellama/CodeLlama-34b-Instruct-hf",
    "zero-one-ai/Yi-34B-Chat": "together:zero-one-ai/Yi-34B-Chat",
    "WizardLM/WizardLM-13B-V1.2": "together:WizardLM/WizardLM-13B-V1.2",
    # AlpacaEval names
    "gpt4_1106_preview": "openai:gpt-4-1106-preview",
    "gpt-3.5-turbo-0301": "openai:gpt-3.5-turbo-0301",
    "Mixtral-8x7B-Instruct-v0.1": "mistral:open-mixtral-8x7b",
    "Mistral-7B-Instruct-v0.2": "mistral:open-mistral-7b",
    "gemini-pro": "gemini:gemini-pro",
    "claude-2": "anthropic:claude-2.0",
    "claude-2.1": "anthropic:claude-2.1",
    "claude-instant-1.2": "anthropic:claude-instant-1.2",
    "claude": "anthropic:claude-v1",
    "gpt35_turbo_instruct": "openai:gpt-3.5-turbo-instruct",
    "text_davinci_003": "openai:text-davinci-003",
    "OpenHermes-2.5-Mistral-7B": "together:teknium/OpenHermes-2p5-Mistral-7B",
    "Qwen-14B-Chat": "together:Qwen/Qwen1.5-14B-Chat",
    "gemma-7b-it": "together:google/gemma-7b-it",
    "gemma-2b-it": "together:google/gemma-2b-it",
    "vicuna-13b-v1.5": "together:lmsys/vicuna-13b-v1.5",
    "phi-2": "together:microsoft/phi-2",
}



def task_kind(task: str) -> str:
    """Router task kind of a dataset task name (unknown names map to ``chat``)."""
    t = task.lower()
    if t in TASK_KIND_MAP:
        return TASK_KIND_MAP[t]
    return t if t in TASK_KINDS else "chat"


def genai_rates(model_id: str) -> tuple[float, float] | None:
    """(USD per input token, per output token) from genai-prices for "provider:model"."""
    try:
        from genai_prices import Usage, calc_price  # lazy: import time (genai_prices ~0.2 s)
    except ImportError:  # pragma: no cover - declared dependency
        return None
    prov, _, ref = model_id.partition(":")
    prov = {"gemini": "google"}.get(prov, prov)
    try:
        pin = calc_price(Usage(input_tokens=1_000_000, output_tokens=0), model_ref=ref, provider_id=prov).total_price
        pout = calc_price(Usage(input_tokens=0, output_tokens=1_000_000), model_ref=ref, provider_id=prov).total_price
    except Exception:
        return None
    return float(pin) / 1e6, float(pout) / 1e6
