"""Derive the bundled task-fit profile (router/data/taskfit.yaml) from LiveBench.

    python scripts/derive_taskfit.py --table table_2026_01_08.csv --categories categories_2026_01_08.json \\
        [--commit SHA --date YYYY-MM-DD] [--out router/data/taskfit.yaml]

The inputs are two files of the LiveBench leaderboard repository
(github.com/LiveBench/livebench.github.io, `public/`): the per-task score table (one row
per model run, scores 0-100) and the task -> category map. What it does (deterministic):

* averages LiveBench tasks into our task kinds (`TASK_GROUPS`); translation and chat have
  no LiveBench task and keep the tier prior;
* reads one LiveBench row per catalog model (`ROWS`: the vendor's default reasoning
  effort where LiveBench ran it, else the row it has, noted);
* maps a score s of kind k to a quality in [0, 1]: c = 0.9 * s / F_k, where F_k is the
  median score of the catalog's frontier-tier models with data (so a typical frontier
  model lands on the frontier prior 0.9 and profiled kinds stay comparable with kinds
  and models that keep a tier prior); then q = (prior_tier + c) / 2, clipped to
  [0.05, 0.99] and rounded to 0.01. The half-and-half shrinkage toward the tier prior is
  there because LiveBench questions are harder and narrower than most requests: the data
  orders the models within a kind, the prior keeps one benchmark from deciding alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from router.catalog import TIER_QUALITY, load_catalog  # noqa: E402

# task kind -> LiveBench tasks averaged for it (categories as of the 2026-01-08 release)
TASK_GROUPS: dict[str, list[str]] = {
    "code": ["code_generation", "code_completion"],  # the Coding category (not the harness-bound Agentic Coding)
    "math": ["AMPS_Hard", "integrals_with_game", "math_comp", "olympiad"],  # Mathematics
    "reasoning": ["theory_of_mind", "zebra_puzzle", "spatial", "logic_with_navigation"],  # Reasoning
    "extraction": ["consecutive_events", "tablejoin", "tablereformat"],  # Data Analysis
    "summarization": ["summarize", "simplify"],  # IF: condense / rewrite a given text under constraints
    "creative": ["story_generation"],  # IF: write a story under constraints
}
NOT_COVERED = {
    "translation": "no LiveBench task translates; the tier prior stays",
    "chat": "no LiveBench task is open conversation; the tier prior stays",
}

# catalog id -> (LiveBench row, note). One row per underlying model; other providers of
# the same weights reuse it.
_ROWS: dict[str, tuple[str, str]] = {
    "openai:gpt-5.5": ("gpt-5.5-medium", "medium reasoning effort, the API default"),
    "openai:gpt-5.4-mini": ("gpt-5.4-mini", "default reasoning effort"),
    "openai:gpt-5-mini": ("gpt-5-mini", "default reasoning effort"),
    "openai:gpt-5-nano": ("gpt-5-nano", "default reasoning effort"),
    "anthropic:claude-opus-4-7": ("claude-opus-4-7-high-effort", "high effort, the API default"),
    "anthropic:claude-sonnet-4-6": ("claude-sonnet-4-6-thinking-auto-high-effort", "adaptive thinking, high effort: LiveBench ran no run without thinking"),
    "anthropic:claude-sonnet-5": ("claude-sonnet-5-xhigh-effort", "xhigh effort, the only run on LiveBench: may overstate the default"),
    "anthropic:claude-haiku-4-5": ("claude-haiku-4-5-20251001", "no extended thinking, the API default"),
    "gemini:gemini-3.1-pro-preview": ("gemini-3.1-pro-preview-high", "high thinking, the API default"),
    "gemini:gemini-2.5-pro": ("gemini-2.5-pro-06-05-highthinking", "high thinking budget"),
    "gemini:gemini-3.5-flash": ("gemini-3.5-flash-high", "high thinking"),
    "gemini:gemini-2.5-flash": ("gemini-2.5-flash-06-05-highthinking", "high thinking budget: may overstate the default"),
    "gemini:gemini-3.1-flash-lite": ("gemini-3.1-flash-lite-preview-high", "preview build, high thinking: may overstate the default"),
    "gemini:gemini-2.5-flash-lite": ("gemini-2.5-flash-lite-highthinking", "high thinking (off by default): may overstate the default"),
    "deepseek:deepseek-v4-pro": ("deepseek-v4-pro", ""),
    "deepseek:deepseek-flash": ("deepseek-v4-flash", "the catalog's deepseek-flash is deepseek-v4-flash (alias)"),
    "openrouter:deepseek/deepseek-v3.2": ("deepseek-v3.2", "non-thinking mode, the chat default"),
    "moonshot:kimi-k2.6": ("kimi-k2.6-thinking", "thinking mode"),
    "moonshot:kimi-k2-thinking": ("kimi-k2-thinking", ""),
    "together:moonshotai/Kimi-K2.5": ("kimi-k2.5-thinking", "thinking mode"),
    "zhipu:glm-5.1": ("glm-5.1", ""),
    "zhipu:glm-5": ("glm-5", ""),
    "zhipu:glm-4.7": ("glm-4.7", ""),
    "minimax:MiniMax-M3": ("minimax-m3", ""),
    "minimax:MiniMax-M2.7": ("minimax-m2.7", ""),
    "minimax:MiniMax-M2.5": ("minimax-m2.5", ""),
    "groq:openai/gpt-oss-120b": ("gpt-oss-120b", "default (medium) reasoning effort"),
    "groq:qwen/qwen3-32b": ("qwen3-32b-thinking", "thinking mode, Groq's default for this model"),
    "openrouter:qwen/qwen3-next-80b-a3b-instruct:free": ("qwen3-next-80b-a3b-instruct", ""),
    "openrouter:google/gemma-4-31b-it:free": ("gemma-4-31b-it", ""),
}
_SAME_WEIGHTS: dict[str, str] = {  # another provider's id -> the id above whose row it reuses
    "azure:gpt-5-mini": "openai:gpt-5-mini",
    "azure:eu/gpt-5-mini": "openai:gpt-5-mini",
    "bedrock:anthropic.claude-sonnet-4-6": "anthropic:claude-sonnet-4-6",
    "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0": "anthropic:claude-haiku-4-5",
    "together:openai/gpt-oss-120b": "groq:openai/gpt-oss-120b",
    "siliconflow:Qwen/Qwen3-Next-80B-A3B-Instruct": "openrouter:qwen/qwen3-next-80b-a3b-instruct:free",
}
SKIPPED = {  # catalog models with a LiveBench row we do not use, and why
    "openrouter:nvidia/nemotron-3-super-120b-a12b:free": "its LiveBench row is one value short of the header, so its scores cannot be matched to tasks",
    "siliconflow:moonshotai/Kimi-K2-Instruct-0905": "LiveBench's kimi-k2-instruct does not say which release it ran; 0905 may differ",
}


def _group_score(row: dict[str, str], tasks: list[str], dropped: list[str]) -> float | None:
    vals = {}
    for t in tasks:
        v = (row.get(t) or "").strip()
        if not v:
            return None
        vals[t] = float(v)
    # A 0.0 among strong scores of the same group is a run that did not happen (LiveBench
    # shows some unrun tasks as 0); it is left out, and the drop is recorded.
    for t, v in list(vals.items()):
        others = [x for k, x in vals.items() if k != t]
        if v == 0.0 and others and statistics.mean(others) >= 60:
            del vals[t]
            dropped.append(t)
    return statistics.mean(vals.values()) if vals else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", required=True, help="LiveBench public/table_<release>.csv")
    ap.add_argument("--categories", required=True, help="LiveBench public/categories_<release>.json")
    ap.add_argument("--commit", default="4bf96c8d9dc9b06c17d82dc76a54429975c2b2c2")
    ap.add_argument("--date", default="2026-07-01", help="date of that commit (the table's last change)")
    ap.add_argument("--as-of", default="2026-12-06", help="when the profile was derived")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "router", "data", "taskfit.yaml"))
    args = ap.parse_args(argv)

    with open(args.table, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        width = len(reader.fieldnames or [])
        table = {r["model"]: r for r in reader if None not in r and len(r) == width}
    with open(args.categories, encoding="utf-8") as fh:
        cats = json.load(fh)
    for kind, tasks in TASK_GROUPS.items():
        missing = [t for t in tasks if t not in sum(cats.values(), [])]
        if missing:
            raise SystemExit(f"{kind}: tasks {missing} are not in the categories file")
    catalog = load_catalog(use_genai=False)
    rows = dict(_ROWS)
    for other, same in _SAME_WEIGHTS.items():
        rows[other] = rows[same]

    scores: dict[str, dict[str, float]] = {}
    dropped: dict[str, list[str]] = {}
    for mid, (lb, _note) in rows.items():
        if mid not in catalog:
            raise SystemExit(f"{mid} is not in the catalog")
        if lb not in table:
            raise SystemExit(f"LiveBench row {lb!r} for {mid} is not in the table (or is malformed)")
        d: list[str] = []
        s = {k: _group_score(table[lb], tasks, d) for k, tasks in TASK_GROUPS.items()}
        scores[mid] = {k: round(v, 1) for k, v in s.items() if v is not None}
        if d:
            dropped[mid] = d
    frontier = {k: statistics.median(scores[m][k] for m in _ROWS if catalog.get(m).tier == "frontier" and k in scores[m])
                for k in TASK_GROUPS}
    models: dict[str, dict[str, object]] = {}
    for mid in sorted(rows):
        prior = TIER_QUALITY[catalog.get(mid).tier]
        quality = {}
        for k, s in scores[mid].items():
            c = 0.9 * s / frontier[k]
            quality[k] = round(min(0.99, max(0.05, (prior + c) / 2)), 2)
        lb, note = rows[mid]
        entry: dict[str, object] = {"source": "livebench", "livebench_row": lb}
        if note:
            entry["note"] = note
        if mid in dropped:
            entry["not_run"] = dropped[mid]
        entry["tier"] = catalog.get(mid).tier
        entry["score"] = scores[mid]
        entry["quality"] = quality
        models[mid] = entry
    table_url = f"https://github.com/LiveBench/livebench.github.io/blob/{args.commit}/public/{os.path.basename(args.table)}"
    doc = {
        "as_of": args.as_of,
        "sources": {
            "livebench": {
                "name": "LiveBench leaderboard (release 2026-01-08 questions)",
                "url": table_url,
                "categories": f"https://github.com/LiveBench/livebench.github.io/blob/{args.commit}/public/{os.path.basename(args.categories)}",
                "leaderboard": "https://livebench.ai",
                "date": args.date,
                "licence": "Apache-2.0 (LiveBench datasheet: the benchmark suite is distributed under the Apache "
                           "License 2.0, github.com/LiveBench/LiveBench docs/DATASHEET.md; the leaderboard "
                           "repository itself carries no LICENSE file). Cited with attribution.",
                "citation": "White et al., LiveBench: A Challenging, Contamination-Limited LLM Benchmark, ICLR 2025, arXiv:2406.19314",
            },
        },
        "task_groups": TASK_GROUPS,
        "not_covered": NOT_COVERED,
        "mapping": ("score = mean of the LiveBench task scores (0-100) in the kind's group; c = 0.9 * score / "
                    "frontier_median[kind]; quality = (tier prior + c) / 2, clipped to [0.05, 0.99], rounded to 0.01. "
                    "Kinds and models without a score keep the tier prior."),
        "tier_prior": dict(TIER_QUALITY),
        "frontier_median": {k: round(v, 1) for k, v in frontier.items()},
        "skipped": SKIPPED,
        "no_public_figure": sorted(c.id for c in catalog if c.id not in models),
        "models": models,
    }
    header = ("# Task-fit profile for the bundled catalog, derived by scripts/derive_taskfit.py from public\n"
              "# LiveBench results (sources below: URL, date, licence). Used by router.catalog.load_catalog\n"
              "# under the tier prior; a user profile (models.profile, `bench replay --export-profile`) overrides\n"
              "# it. Catalog models without a figure (`no_public_figure`) keep their tier prior for every task kind.\n")
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(header)
        yaml.safe_dump(doc, fh, sort_keys=False, allow_unicode=True, width=120)
    print(f"wrote {args.out}: {len(models)} models; frontier medians {doc['frontier_median']}")
    if dropped:
        print("scores of 0 left out as not run:", dropped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
