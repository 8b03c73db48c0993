"""`bench replay --export-config FILE`: the chosen answer-agreement cascade as a config
snippet (`cascades:` + `policy.default` or `rules:`) that `quotaroute serve` runs as is.

The snippet is built from the report's `agreement` section only (model names mapped to
catalog ids through `benchmarks.names.MODEL_ID_MAP`), and checked against the config
contract before it is written (`check_snippet`), so a snippet that the router would
refuse is never written.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from benchmarks.names import MODEL_ID_MAP
from router.errors import ConfigError

__all__ = ["build_snippet", "check_snippet", "render_yaml", "write_snippet", "pick_choice", "NAME_RE", "EXTRACT_SPECS"]

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
EXTRACT_SPECS = ("number", "choice", "code", "text")  # plus json:<field>, regex:<pattern>
_MODES = ("consensus", "lazy-majority", "single")


def pick_choice(agreement: dict[str, Any], target: float = 0.97) -> str:
    """The cascade to export, chosen on train: of the global and the per-task-kind
    choice at `target`, the one reaching the target on train at the lower train cost
    (else the higher train quality)."""
    ch = agreement["chosen"]
    keys = [k for k in (f"per-kind@{target:.2f}", f"global@{target:.2f}") if k in ch]
    if not keys:
        raise ValueError(f"no cascade chosen at target {target}")

    def rank(k: str) -> tuple[Any, ...]:
        t = ch[k]["train"]
        ok = t["quality_pct_of_best_single"] >= 100 * target - 1e-9
        return (not ok, t["cost_usd"] if ok else -t["quality"])

    return min(keys, key=rank)


def _ids(models: list[str]) -> list[str]:
    return [MODEL_ID_MAP.get(m, m) for m in models]


def _stages(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in stages:
        d: dict[str, Any] = {"mode": s["mode"]}
        if s["mode"] == "consensus":
            d["k"], d["m"] = s["k"], s["m"]
        d["models"] = _ids(s["models"])
        if s["mode"] != "single":
            d["policy"] = "cheapest"  # the listed models, called cheapest first
        out.append(d)
    return out


def build_snippet(agreement: dict[str, Any], key: str, *, prefix: str = "replay") -> dict[str, Any]:
    """{"cascades": ..., "policy": {"default": ...}} for one policy for every prompt, or
    {"cascades": ..., "rules": [...]} with one rule per task kind."""
    row = agreement["chosen"][key]
    extract: dict[str, str] = agreement["extract"]
    pols: dict[str, Any] = row["policy"]
    cascades: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    if "*" in pols:
        specs = sorted(set(extract.values()))
        if len(specs) != 1:
            raise ValueError(f"one cascade for task kinds with different answer extractors {extract}: "
                             "export the per-task-kind choice instead (or pass --extract)")
        cascades[prefix] = {"extract": specs[0], "stages": _stages(pols["*"]["stages"])}
        snippet: dict[str, Any] = {"cascades": cascades, "policy": {"default": f"cascade:{prefix}"}}
    else:
        for kind in sorted(pols):
            st = pols[kind]["stages"]
            if len(st) == 1 and st[0]["mode"] == "single":  # one model: an ordinary rule
                rules.append({"match": {"task": kind}, "models": _ids(st[0]["models"])})
                continue
            name = f"{prefix}-{kind}"
            cascades[name] = {"extract": extract.get(kind, "text"), "stages": _stages(st)}
            rules.append({"match": {"task": kind}, "cascade": name})
        snippet = {"cascades": cascades, "rules": rules}
    check_snippet(snippet)
    return snippet


def check_snippet(data: Any, *, file: str | None = None) -> None:
    """The contract's shape of `cascades:` (and the rules/policy that name them);
    ConfigError naming the key otherwise. The real loader checks more once it knows
    `cascades:`; this keeps the replay from writing what it would refuse."""
    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(msg, file=file, key=key)

    cas = data.get("cascades") if isinstance(data, dict) else None
    if not isinstance(cas, dict) or not (cas or data.get("rules")):
        raise bad("cascades", "expected a mapping of named cascades")
    for name, c in cas.items():
        at = f"cascades.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise bad(at, "a cascade name is 1-64 of A-Z a-z 0-9 . _ -")
        if not isinstance(c, dict):
            raise bad(at, "expected a mapping")
        unknown = set(c) - {"extract", "tolerance", "stream", "fallback_policy", "stages"}
        if unknown:
            raise bad(f"{at}.{sorted(unknown)[0]}", "unknown key")
        ex = c.get("extract")
        if not isinstance(ex, str) or not (ex in EXTRACT_SPECS or ex.startswith(("json:", "regex:"))):
            raise bad(f"{at}.extract", "required: number, choice, code, text, json:<field> or regex:<pattern>")
        if c.get("stream", "buffer") not in ("buffer", "single"):
            raise bad(f"{at}.stream", "buffer or single")
        stages = c.get("stages")
        if not isinstance(stages, list) or not 1 <= len(stages) <= 5:
            raise bad(f"{at}.stages", "1..5 stages")
        for i, s in enumerate(stages):
            sat = f"{at}.stages.{i}"
            if not isinstance(s, dict) or s.get("mode") not in _MODES:
                raise bad(f"{sat}.mode", f"one of {_MODES}")
            if set(s) - {"mode", "k", "m", "models", "policy"}:
                raise bad(sat, f"unknown key {sorted(set(s) - {'mode', 'k', 'm', 'models', 'policy'})[0]}")
            if s["mode"] == "consensus":
                k, m = s.get("k"), s.get("m")
                if not isinstance(k, int) or not 1 <= k <= 8:
                    raise bad(f"{sat}.k", "consensus: k in 1..8")
                if not isinstance(m, int) or not 1 <= m <= k:
                    raise bad(f"{sat}.m", "consensus: m in 1..k")
            ms = s.get("models")
            if ms is not None and (not isinstance(ms, list) or not ms or not all(isinstance(x, str) and x for x in ms)):
                raise bad(f"{sat}.models", "a non-empty list of model ids")
            if s.get("policy", "free-first") not in ("free-first", "cheapest", "best", "balanced"):
                raise bad(f"{sat}.policy", "free-first, cheapest, best or balanced")
    for i, r in enumerate(data.get("rules") or []):
        if "cascade" in r and r["cascade"] not in cas:
            raise bad(f"rules.{i}.cascade", f"no cascade named {r['cascade']!r}")
    default = (data.get("policy") or {}).get("default")
    if isinstance(default, str) and default.startswith("cascade:") and default[len("cascade:"):] not in cas:
        raise bad("policy.default", f"no cascade named {default[len('cascade:'):]!r}")


def render_yaml(snippet: dict[str, Any], header: Sequence[str] = ()) -> str:
    import yaml  # lazy: import time (only the export writes YAML)

    body = yaml.safe_dump(snippet, sort_keys=False, default_flow_style=False, width=120)
    return "".join(f"# {h}\n" for h in header) + body


def write_snippet(agreement: dict[str, Any], path: str, *, dataset: str, target: float = 0.97) -> dict[str, Any]:
    """Write the chosen cascade to `path`; returns what was written (key, figures)."""
    key = pick_choice(agreement, target)
    snippet = build_snippet(agreement, key)
    row = agreement["chosen"][key]
    best = agreement["best_single"]["name"]
    header = [
        f"Answer-agreement cascade chosen by `quotaroute bench replay` on {dataset} ({row['router']}, target {row['target_pct']:.0f}%).",
        f"Chosen on the train split: {row['train']['quality_pct_of_best_single']:.1f}% of {best}'s quality at "
        f"{row['train']['cost_pct_of_best_single']:.1f}% of its cost.",
        f"Test split: {row['quality_pct_of_best_single']:.1f}% quality at {row['cost_pct_of_best_single']:.1f}% cost, "
        f"escalation {100 * row['escalation_rate']:.1f}%, {row['rounds_mean']:.2f} sequential rounds on average.",
        "Merge into your quotaroute config; the models must be served by your providers.",
    ]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_yaml(snippet, header))
    return {"path": path, "choice": key, "cascades": sorted(snippet["cascades"]), "rules": len(snippet.get("rules", []))}
