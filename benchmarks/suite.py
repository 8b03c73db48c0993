"""Live-benchmark task suites: format and loader.

A suite is a YAML file with an ``items`` list (plus optional ``name``,
``defaults`` and ``judge``), or a JSONL file with one item object per line (an
optional line ``{"suite": {...}}`` carries the name/defaults/judge). Each item:

    id: math-001                 # unique
    task: math                   # one of router.types.TASK_KINDS
    prompt: "What is 17 * 23?"   # or `messages: [{role, content}, ...]`
    system: "..."                # optional
    max_tokens: 256              # optional (defaults.max_tokens, else 512)
    reference: "391"             # optional reference answer (judge context, --fake answers)
    scorer: {type: numeric, expected: 391, abs_tol: 0}

Scorer types and their keys are listed in ``SCORER_KEYS``; see
docs/live-benchmark.md. Every error names the file, line and key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from router.errors import ConfigError
from router.types import TASK_KINDS, ChatRequest, Message

__all__ = ["SuiteItem", "Suite", "JudgeSpec", "load_suite", "SCORER_KEYS", "DEFAULT_MAX_TOKENS"]

DEFAULT_MAX_TOKENS = 512

# scorer type -> (required keys, optional keys)
SCORER_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "exact": (frozenset({"expected"}), frozenset({"strip"})),
    "normalized": (frozenset({"expected"}), frozenset({"contains"})),
    "regex": (frozenset(), frozenset({"pattern", "all", "none", "ignore_case"})),
    "keywords": (frozenset({"keywords"}), frozenset({"min_fraction", "forbidden"})),
    "numeric": (frozenset({"expected"}), frozenset({"abs_tol", "rel_tol"})),
    "json_schema": (frozenset({"schema"}), frozenset({"expected"})),
    "python_tests": (frozenset({"tests"}), frozenset({"timeout_s", "entrypoint", "memory_mb"})),
    "judge": (frozenset(), frozenset({"rubric", "model", "pass_score"})),
}
_ITEM_KEYS = {"id", "task", "prompt", "messages", "system", "max_tokens", "scorer", "reference", "temperature", "tags"}
_SUITE_KEYS = {"name", "description", "defaults", "judge", "items", "version"}
_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,120}$")


@dataclass(frozen=True)
class JudgeSpec:
    model: str
    rubric: str = "Score the answer for correctness, completeness and clarity."
    max_tokens: int = 300


@dataclass(frozen=True)
class SuiteItem:
    id: str
    task: str
    messages: tuple[Message, ...]
    scorer: dict[str, Any]
    system: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    reference: str | None = None
    line: int | None = None
    tags: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """The prompt text as one string (for the long results format)."""
        return "\n\n".join(m.text() for m in self.messages if m.role == "user")

    def request(self, model: str = "auto") -> ChatRequest:
        return ChatRequest(
            model=model, messages=list(self.messages), system=self.system, max_tokens=self.max_tokens,
            temperature=self.temperature, metadata={"bench_item": self.id, "task": self.task},
        )

    def fingerprint(self) -> str:
        """Hash of everything that affects the call and its score (cache invalidation)."""
        blob = json.dumps(
            [self.task, [m.model_dump(exclude_none=True) for m in self.messages], self.system,
             self.max_tokens, self.temperature, self.scorer], sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    items: tuple[SuiteItem, ...]
    judge: JudgeSpec | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


# ---------------------------------------------------------------- loading


def load_suite(path: str | os.PathLike[str]) -> Suite:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigError(f"cannot read suite: {e.strerror}", file=path) from e
    if path.endswith((".jsonl", ".ndjson")):
        header, raw_items = _read_jsonl(path, text)
    else:
        header, raw_items = _read_yaml(path, text)
    return _build(path, header, raw_items)


def _read_jsonl(path: str, text: str) -> tuple[dict[str, Any], list[tuple[dict[str, Any], int, dict[str, int]]]]:
    header: dict[str, Any] = {}
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON: {e.msg} (column {e.colno})", file=path, line=n) from e
        if not isinstance(obj, dict):
            raise ConfigError("each line must be a JSON object", file=path, line=n)
        if set(obj) == {"suite"}:
            if not isinstance(obj["suite"], dict):
                raise ConfigError("must be an object", file=path, line=n, key="suite")
            header = obj["suite"]
            continue
        items.append((obj, n, {k: n for k in obj}))
    return header, items


def _read_yaml(path: str, text: str) -> tuple[dict[str, Any], list[tuple[dict[str, Any], int, dict[str, int]]]]:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(f"invalid YAML: {e.problem or e}", file=path,
                          line=mark.line + 1 if mark else None) from e
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError("a suite must be a mapping with an `items` list", file=path, line=1)
    items_node = next((v for k, v in node.value if k.value == "items"), None)
    if items_node is None or not isinstance(data.get("items"), list):
        line = items_node.start_mark.line + 1 if items_node is not None else 1
        raise ConfigError("missing or not a list", file=path, line=line, key="items")
    for k, v in node.value:
        if k.value not in _SUITE_KEYS:
            raise ConfigError(f"unknown suite key (allowed: {', '.join(sorted(_SUITE_KEYS))})",
                              file=path, line=k.start_mark.line + 1, key=k.value)
    header = {k: v for k, v in data.items() if k != "items"}
    items = []
    for raw, inode in zip(data["items"], items_node.value):
        line = inode.start_mark.line + 1
        keylines = {k.value: k.start_mark.line + 1 for k, _ in inode.value} if isinstance(inode, yaml.MappingNode) else {}
        if not isinstance(raw, dict):
            raise ConfigError("each item must be a mapping", file=path, line=line, key="items")
        items.append((raw, line, keylines))
    return header, items


def _build(path: str, header: dict[str, Any], raw_items: list[tuple[dict[str, Any], int, dict[str, int]]]) -> Suite:
    defaults = header.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError("must be a mapping", file=path, key="defaults")
    judge = None
    if header.get("judge") is not None:
        j = header["judge"]
        if not isinstance(j, dict) or not isinstance(j.get("model"), str):
            raise ConfigError("needs `model: provider:model`", file=path, key="judge")
        judge = JudgeSpec(model=j["model"], rubric=str(j.get("rubric") or JudgeSpec.rubric),
                          max_tokens=int(j.get("max_tokens") or 300))
    items: list[SuiteItem] = []
    seen: dict[str, int] = {}
    for raw, line, keylines in raw_items:
        item = _build_item(path, raw, line, keylines, defaults)
        if item.id in seen:
            raise ConfigError(f"duplicate id {item.id!r} (first at line {seen[item.id]})", file=path, line=line, key="id")
        seen[item.id] = line
        items.append(item)
    if not items:
        raise ConfigError("the suite has no items", file=path, key="items")
    for it in items:
        if it.scorer["type"] == "judge" and judge is None and not it.scorer.get("model"):
            raise ConfigError("judge scorer needs a `model` here or a suite-level `judge:`", file=path,
                              line=it.line, key="scorer.model")
    name = str(header.get("name") or os.path.splitext(os.path.basename(path))[0])
    return Suite(name=name, path=path, items=tuple(items), judge=judge, defaults=dict(defaults))


def _build_item(path: str, raw: dict[str, Any], line: int, keylines: dict[str, int],
                defaults: dict[str, Any]) -> SuiteItem:
    def err(msg: str, key: str) -> ConfigError:
        return ConfigError(msg, file=path, line=keylines.get(key.split(".")[0], line), key=key)

    for k in raw:
        if k not in _ITEM_KEYS:
            raise err(f"unknown item key (allowed: {', '.join(sorted(_ITEM_KEYS))})", k)
    iid = raw.get("id")
    if not isinstance(iid, (str, int)) or not _ID_RE.match(str(iid)):
        raise err("missing or invalid id (letters, digits, _ . : - ; at most 120)", "id")
    task = raw.get("task")
    if task not in TASK_KINDS:
        raise err(f"must be one of {', '.join(TASK_KINDS)} (got {task!r})", "task")
    if ("prompt" in raw) == ("messages" in raw):
        raise err("give exactly one of `prompt` or `messages`", "prompt")
    if "prompt" in raw:
        if not isinstance(raw["prompt"], str) or not raw["prompt"].strip():
            raise err("must be a non-empty string", "prompt")
        messages = (Message(role="user", content=raw["prompt"]),)
    else:
        msgs = raw["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise err("must be a non-empty list of {role, content}", "messages")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise err("each message needs role (system|user|assistant) and string content", f"messages[{i}]")
            out.append(Message(role=m["role"], content=m["content"]))
        messages = tuple(out)
    system = raw.get("system", defaults.get("system"))
    if system is not None and not isinstance(system, str):
        raise err("must be a string", "system")
    max_tokens = raw.get("max_tokens", defaults.get("max_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 200_000:
        raise err("must be an integer in 1..200000", "max_tokens")
    temperature = raw.get("temperature", defaults.get("temperature"))
    if temperature is not None and (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)):
        raise err("must be a number", "temperature")
    reference = raw.get("reference")
    if reference is not None and not isinstance(reference, (str, int, float)):
        raise err("must be a string", "reference")
    scorer = _check_scorer(raw.get("scorer"), err)
    tags = raw.get("tags") or []
    if not isinstance(tags, list):
        raise err("must be a list of strings", "tags")
    return SuiteItem(
        id=str(iid), task=task, messages=messages, scorer=scorer, system=system, max_tokens=max_tokens,
        temperature=float(temperature) if temperature is not None else None,
        reference=str(reference) if reference is not None else None, line=line, tags=tuple(map(str, tags)),
    )


def _check_scorer(sc: Any, err: Any) -> dict[str, Any]:
    if isinstance(sc, str):
        sc = {"type": sc}
    if not isinstance(sc, dict) or "type" not in sc:
        raise err(f"needs a mapping with `type` (one of {', '.join(SCORER_KEYS)})", "scorer")
    kind = sc["type"]
    if kind not in SCORER_KEYS:
        raise err(f"unknown scorer type {kind!r} (one of {', '.join(SCORER_KEYS)})", "scorer.type")
    required, optional = SCORER_KEYS[kind]
    for k in required:
        if k not in sc:
            raise err(f"{kind} scorer needs `{k}`", f"scorer.{k}")
    for k in sc:
        if k != "type" and k not in required | optional:
            raise err(f"unknown key for a {kind} scorer", f"scorer.{k}")
    if kind == "regex":
        pats = ([sc["pattern"]] if "pattern" in sc else []) + list(sc.get("all") or []) + list(sc.get("none") or [])
        if not pats:
            raise err("regex scorer needs `pattern`, `all` or `none`", "scorer.pattern")
        for p in pats:
            try:
                re.compile(p)
            except (re.error, TypeError) as e:
                raise err(f"bad regular expression {p!r}: {e}", "scorer.pattern") from e
    if kind == "numeric":
        for k in ("expected", "abs_tol", "rel_tol"):
            if k in sc and (not isinstance(sc[k], (int, float)) or isinstance(sc[k], bool)):
                raise err("must be a number", f"scorer.{k}")
    if kind == "keywords" and (not isinstance(sc["keywords"], list) or not sc["keywords"]):
        raise err("must be a non-empty list", "scorer.keywords")
    if kind == "json_schema" and not isinstance(sc["schema"], dict):
        raise err("must be a JSON-schema object", "scorer.schema")
    if kind == "python_tests":
        if not isinstance(sc["tests"], str) or not sc["tests"].strip():
            raise err("must be Python source with assert statements or test_* functions", "scorer.tests")
        try:
            compile(sc["tests"], "<tests>", "exec")
        except SyntaxError as e:
            raise err(f"tests do not compile: {e.msg} (line {e.lineno})", "scorer.tests") from e
        t = sc.get("timeout_s", 10)
        if not isinstance(t, (int, float)) or not 0 < t <= 300:
            raise err("must be a number of seconds in (0, 300]", "scorer.timeout_s")
    return dict(sc)
