"""The model catalog: one `ModelCard` per "provider:model" with context window,
capabilities, price, regions, task-fit priors and raw free-tier facts.

`load_catalog()` reads the bundled `router/data/models.yaml`, fills prices the YAML
leaves out from genai-prices (imported lazily, offline), lays the bundled task-fit
profile (`router/data/taskfit.yaml`, from public benchmark results) over the tier
prior, then applies user overrides and an optional user task-fit profile, which wins.
Nothing happens at import.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router._catalog_yaml import line_of, load_yaml_file, load_yaml_text
from router.errors import ConfigError, UnknownModel, UnknownPrice
from router.limits import check_timeouts
from router.pricing import DEFAULT_FX, FxRates, Price
from router.types import TASK_KINDS

__all__ = [
    "CAPABILITIES",
    "REGIONS",
    "TIER_QUALITY",
    "ModelCard",
    "Catalog",
    "load_catalog",
    "load_profile",
    "load_taskfit",
    "BUNDLED_MODELS_PATH",
    "BUNDLED_TASKFIT_PATH",
]

CAPABILITIES = frozenset({"tools", "vision", "json_schema", "reasoning", "streaming"})
REGIONS = frozenset({"us", "cn", "eu", "local"})
TIER_QUALITY: dict[str, float] = {"frontier": 0.9, "mid": 0.78, "small": 0.62, "local": 0.5}
BUNDLED_MODELS_PATH = os.path.join(os.path.dirname(__file__), "data", "models.yaml")
BUNDLED_TASKFIT_PATH = os.path.join(os.path.dirname(__file__), "data", "taskfit.yaml")
_CAP_ALIASES = {"json": "json_schema", "structured_output": "json_schema", "function_calling": "tools"}


class ModelCard(BaseModel):
    """Everything the router knows about one deployable model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # "provider:model"
    provider: str
    model: str  # the vendor's model id, sent on the wire
    aliases: tuple[str, ...] = ()
    context_window: int = Field(gt=0)
    max_output: int | None = Field(default=None, gt=0)
    capabilities: frozenset[str] = frozenset({"streaming"})
    price: Price | None = None
    regions: frozenset[str] = frozenset()
    task_quality: dict[str, float] = Field(default_factory=dict)
    free_tier: dict[str, Any] | None = None
    tier: str = "mid"
    notes: str | None = None
    # per-model time limits, a partial {connect_s, first_byte_s, idle_s} over the provider's
    # (router.limits; docs/providers.md "Timeouts")
    timeouts: dict[str, float] | None = None

    @field_validator("timeouts", mode="before")
    @classmethod
    def _timeouts(cls, v: Any) -> Any:
        if v is None:
            return None
        return check_timeouts(v) or None

    @field_validator("capabilities", mode="before")
    @classmethod
    def _caps(cls, v: Any) -> Any:
        if v is None:
            return frozenset({"streaming"})
        caps = {_CAP_ALIASES.get(str(c), str(c)) for c in v}
        bad = caps - CAPABILITIES
        if bad:
            raise ValueError(f"unknown capabilities {sorted(bad)}; allowed: {sorted(CAPABILITIES)}")
        return frozenset(caps)

    @field_validator("regions", mode="before")
    @classmethod
    def _regions(cls, v: Any) -> Any:
        regs = frozenset(str(r) for r in (v or ()))
        bad = regs - REGIONS
        if bad:
            raise ValueError(f"unknown regions {sorted(bad)}; allowed: {sorted(REGIONS)}")
        return regs

    @field_validator("task_quality")
    @classmethod
    def _tq(cls, v: dict[str, float]) -> dict[str, float]:
        for k, q in v.items():
            if k not in TASK_KINDS:
                raise ValueError(f"unknown task kind {k!r}; allowed: {list(TASK_KINDS)}")
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quality for {k!r} must be in [0, 1], got {q}")
        return v

    def __hash__(self) -> int:  # task_quality/free_tier are dicts: hash by identity of the id
        return hash(self.id)

    @property
    def is_local(self) -> bool:
        return "local" in self.regions

    @property
    def has_free_tier(self) -> bool:
        """A free model or a recurring rate-limited free tier. One-time sign-up grants
        (`free_tier.kind == "grant"`) and local models do not count."""
        if self.is_local:
            return False
        if self.price is not None and self.price.is_free:
            return True
        return bool(self.free_tier) and self.free_tier.get("kind") in ("rate_limited_free", "free_model")

    def quality(self, task: str | None) -> float:
        if task and task in self.task_quality:
            return self.task_quality[task]
        return TIER_QUALITY.get(self.tier, 0.7)

    def require_price(self) -> Price:
        if self.price is None:
            raise UnknownPrice(
                f"no known price for {self.id}; set one in your config (models: {{{self.id!r}: {{price: ...}}}})"
            )
        return self.price


class Catalog:
    """Immutable set of cards with alias lookup."""

    def __init__(self, cards: list[ModelCard] | tuple[ModelCard, ...], *, fx: FxRates | None = None,
                 tier_quality: Mapping[str, float] | None = None) -> None:
        self._cards: dict[str, ModelCard] = {}
        for c in cards:
            self._cards[c.id] = c
        self.fx = fx or DEFAULT_FX
        self.tier_quality = dict(tier_quality or TIER_QUALITY)
        self._index: dict[str, str] = {}
        for c in self._cards.values():  # bare model names: first provider in catalog order wins
            self._index.setdefault(c.model.lower(), c.id)
        for c in self._cards.values():
            for a in c.aliases:
                self._index.setdefault(a.lower(), c.id)
                self._index.setdefault(f"{c.provider}:{a}".lower(), c.id)
        for cid in self._cards:
            self._index[cid.lower()] = cid

    def get(self, id_or_alias: str) -> ModelCard:
        key = id_or_alias.strip()
        if key in self._cards:
            return self._cards[key]
        low = key.lower()
        cid = self._index.get(low)
        if cid is not None:
            return self._cards[cid]
        prov, sep, rest = low.partition("/")  # "openai/gpt-4o-mini" (LiteLLM's spelling) = "openai:gpt-4o-mini"
        if sep and rest:
            cid = self._index.get(f"{prov}:{rest}")
            if cid is not None:
                return self._cards[cid]
        close: list[str] = []
        if len(key) <= 200:  # no fuzzy search over a padded or huge name (a client's string)
            hits = difflib.get_close_matches(low, list(self._index), n=8, cutoff=0.6)
            close = list(dict.fromkeys(self._index[c] for c in hits))[:3]  # each model once
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = id_or_alias if len(id_or_alias) <= 200 else id_or_alias[:200] + "..."
        raise UnknownModel(f"unknown model {shown!r}{hint}", model=shown, suggestions=tuple(close))

    def __contains__(self, id_or_alias: object) -> bool:
        if not isinstance(id_or_alias, str):
            return False
        try:
            self.get(id_or_alias)
            return True
        except UnknownModel:
            return False

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def all(self) -> list[ModelCard]:
        return list(self._cards.values())

    def by_provider(self, provider: str) -> list[ModelCard]:
        return [c for c in self._cards.values() if c.provider == provider]

    def providers(self) -> list[str]:
        return list(dict.fromkeys(c.provider for c in self._cards.values()))

    def with_overrides(self, overrides: Mapping[str, Any] | None, *, file: str | None = None) -> "Catalog":
        """New catalog with `{model_id: {field: value}}` applied (user config wins).
        An unknown id whose fields include `context_window` adds a new card."""
        if not overrides:
            return self
        cards = dict(self._cards)
        for mid, fields in overrides.items():
            if not isinstance(fields, Mapping):
                raise ConfigError("expected a mapping of card fields", file=file, line=line_of(overrides, mid),
                                  key=str(mid))
            try:
                base = self.get(mid)
            except UnknownModel:
                base = None
            cards_key = base.id if base else str(mid)
            cards[cards_key] = _card_from(fields, mid=str(mid), base=base, file=file,
                                          tier_quality=self.tier_quality, parent=overrides)
        return Catalog(list(cards.values()), fx=self.fx, tier_quality=self.tier_quality)

    def with_profile(self, profile: Mapping[str, Mapping[str, float]]) -> "Catalog":
        cards = []
        for c in self._cards.values():
            tq = profile.get(c.id)
            cards.append(c.model_copy(update={"task_quality": {**c.task_quality, **tq}}) if tq else c)
        return Catalog(cards, fx=self.fx, tier_quality=self.tier_quality)


# ---------------------------------------------------------------------------- loading


def _validation_message(e: ValidationError) -> tuple[str, str]:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return loc, err.get("msg", str(e))


def _card_from(fields: Mapping[str, Any], *, mid: str, base: ModelCard | None, file: str | None,
               tier_quality: Mapping[str, float], parent: Any = None, provider_defaults: Mapping[str, Any] | None = None,
               genai_price: Price | None = None) -> ModelCard:
    data: dict[str, Any] = base.model_dump() if base else {}
    if base is None:
        if ":" not in mid:
            raise ConfigError("a new model id must be 'provider:model'", file=file,
                              line=line_of(parent, mid), key=mid)
        prov, model = mid.split(":", 1)
        data.update(id=mid, provider=prov, model=fields.get("model", model))
    for k, v in fields.items():
        if k == "price" and v is not None:
            try:
                data["price"] = Price.model_validate(v)
            except ValidationError as e:
                loc, msg = _validation_message(e)
                raise ConfigError(msg, file=file, line=line_of(v, loc.split(".")[0]) or line_of(fields, k),
                                  key=f"{mid}.price.{loc}") from None
        elif k == "timeouts" and isinstance(v, Mapping) and isinstance(data.get("timeouts"), Mapping):
            data[k] = {**data["timeouts"], **v}  # an override names only the limits it changes
        elif k not in ("model", "genai_ref"):
            data[k] = v
    if data.get("price") is None and genai_price is not None:
        data["price"] = genai_price
    if not data.get("task_quality"):
        q = float(tier_quality.get(str(data.get("tier", "mid")), 0.7))
        data["task_quality"] = {t: q for t in TASK_KINDS}
    caps = set(data.get("capabilities") or ())
    caps.add("streaming")
    data["capabilities"] = caps
    try:
        return ModelCard.model_validate(data)
    except ValidationError as e:
        loc, msg = _validation_message(e)
        top = loc.split(".")[0]
        raise ConfigError(msg, file=file, line=line_of(fields, top) or line_of(parent, mid),
                          key=f"{mid}.{loc}") from None


def load_profile(path: str) -> dict[str, dict[str, float]]:
    """Read a task-fit profile `{model_id: {task_kind: quality in [0,1]}}` (YAML or JSON)."""
    data = load_yaml_file(path)  # JSON is YAML
    if not isinstance(data, Mapping):
        raise ConfigError("a profile must map model ids to {task: quality}", file=path, line=1)
    return {str(mid): _profile_row(tasks, path=path, parent=data, mid=str(mid), key=str(mid))
            for mid, tasks in data.items()}


def _profile_row(tasks: Any, *, path: str, parent: Any, mid: str, key: str) -> dict[str, float]:
    if not isinstance(tasks, Mapping):
        raise ConfigError("expected {task_kind: quality}", file=path, line=line_of(parent, mid), key=key)
    row: dict[str, float] = {}
    for task, q in tasks.items():
        where = dict(file=path, line=line_of(tasks, task), key=f"{key}.{task}")
        if task not in TASK_KINDS:
            raise ConfigError(f"unknown task kind; allowed: {', '.join(TASK_KINDS)}", **where)
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ConfigError(f"quality must be a number in [0, 1], got {q!r}", **where)
        row[str(task)] = float(q)
    return row


_TASKFIT_CACHE: dict[tuple[str, int], dict[str, dict[str, float]]] = {}


def load_taskfit(path: str = BUNDLED_TASKFIT_PATH) -> dict[str, dict[str, float]]:
    """The profile `{model_id: {task_kind: quality}}` held in a task-fit data file (the
    `models.<id>.quality` maps of `router/data/taskfit.yaml`, whose other fields record
    each figure's source, date, licence and how scores map to [0, 1]). Cached per file
    version; treat the result as read-only."""
    key = (path, os.stat(path).st_mtime_ns)
    if key in _TASKFIT_CACHE:
        return _TASKFIT_CACHE[key]
    data = load_yaml_file(path)
    models = data.get("models") if isinstance(data, Mapping) else None
    if not isinstance(models, Mapping):
        raise ConfigError("a task-fit file needs a 'models' mapping", file=path, line=1, key="models")
    out: dict[str, dict[str, float]] = {}
    for mid, entry in models.items():
        if not isinstance(entry, Mapping):
            raise ConfigError("expected {quality: {task_kind: quality}, ...}", file=path,
                              line=line_of(models, mid), key=f"models.{mid}")
        out[str(mid)] = _profile_row(entry.get("quality"), path=path, parent=entry, mid="quality",
                                     key=f"models.{mid}.quality")
    _TASKFIT_CACHE[key] = out
    return out


def load_catalog(
    *,
    overrides: Mapping[str, Any] | str | None = None,
    profile_path: str | None = None,
    fx: FxRates | Mapping[str, Any] | None = None,
    now: datetime | None = None,
    use_genai: bool = True,
    models_path: str | None = None,
    taskfit_path: str | None = BUNDLED_TASKFIT_PATH,
) -> Catalog:
    """Bundled YAML + genai-prices (for prices the YAML leaves out) + task-fit profile +
    overrides + user profile.

    `overrides` is `{model_id: {field: value}}` or a path to such a YAML file; `fx`
    replaces/extends the bundled FX rates; `now` selects dated genai-prices entries.
    `taskfit_path` (default: the bundled `taskfit.yaml`; None: tier priors only) sets the
    task qualities of cards whose YAML entry gives none, kind by kind; overrides and the
    user's `profile_path` win over it.
    """
    path = models_path or BUNDLED_MODELS_PATH
    data = load_yaml_file(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("providers"), Mapping):
        raise ConfigError("expected a top-level 'providers' mapping", file=path, line=1, key="providers")
    fx_rates = _fx_from(data.get("fx"), path)
    if isinstance(fx, FxRates):
        fx_rates = fx
    elif isinstance(fx, Mapping):
        fx_rates = fx_rates.with_rates(dict(fx.get("rates", fx)), as_of=fx.get("as_of"), source=fx.get("source"))
    tier_q = {**TIER_QUALITY, **(data.get("tier_quality") or {})}
    now = now or datetime.now(timezone.utc)
    genai_lookup = _genai_lookup(now) if use_genai else (lambda p, r: None)

    cards: list[ModelCard] = []
    explicit_tq: set[str] = set()  # cards whose YAML entry sets task_quality: the bundled profile leaves them be
    for prov, pdata in data["providers"].items():
        if not isinstance(pdata, Mapping) or not isinstance(pdata.get("models"), list):
            raise ConfigError("expected a 'models' list", file=path, line=line_of(data["providers"], prov),
                              key=f"providers.{prov}")
        defaults = pdata.get("free_tier_defaults")
        for m in pdata["models"]:
            if not isinstance(m, Mapping) or "model" not in m:
                raise ConfigError("each model needs a 'model' field", file=path,
                                  line=line_of(pdata, "models"), key=f"providers.{prov}.models")
            mid = f"{prov}:{m['model']}"
            if m.get("task_quality"):
                explicit_tq.add(mid)
            fields = dict(m)
            fields.setdefault("regions", pdata.get("regions") or [])
            if "free_tier" not in fields and defaults:
                fields["free_tier"] = dict(defaults)
            gp = None
            if fields.get("price") is None and pdata.get("genai"):
                gp = genai_lookup(str(pdata["genai"]), str(m.get("genai_ref") or m["model"]))
            cards.append(_card_from(fields, mid=mid, base=None, file=path, tier_quality=tier_q,
                                    parent=m, genai_price=gp))
    cards = _with_aliases(cards, data.get("aliases"), path)
    cat = Catalog(cards, fx=fx_rates, tier_quality=tier_q)
    if taskfit_path:
        cat = cat.with_profile({mid: row for mid, row in load_taskfit(taskfit_path).items() if mid not in explicit_tq})
    if overrides:
        ofile = None
        if isinstance(overrides, str):
            ofile = overrides
            overrides = load_yaml_file(overrides)
            if isinstance(overrides, Mapping) and isinstance(overrides.get("models"), Mapping):
                overrides = overrides["models"]
            if not isinstance(overrides, Mapping):
                raise ConfigError("expected a mapping of model ids", file=ofile, line=1)
        cat = cat.with_overrides(overrides, file=ofile)
    if profile_path:
        cat = cat.with_profile(load_profile(profile_path))
    return cat


def _with_aliases(cards: list[ModelCard], raw: Any, path: str) -> list[ModelCard]:
    """The catalog's `aliases:` section ({name clients send: catalog id}): dated, renamed
    or retired names, added to the target card's aliases."""
    if not raw:
        return cards
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping {alias: provider:model}", file=path, line=line_of(raw), key="aliases")
    by_id = {c.id: i for i, c in enumerate(cards)}
    extra: dict[str, list[str]] = {}
    for alias, target in raw.items():
        if str(target) not in by_id:
            raise ConfigError(f"alias target {target!r} is not a catalog model id", file=path,
                              line=line_of(raw, alias), key=f"aliases.{alias}")
        extra.setdefault(str(target), []).append(str(alias))
    out = list(cards)
    for cid, names in extra.items():
        c = out[by_id[cid]]
        out[by_id[cid]] = c.model_copy(update={"aliases": tuple(dict.fromkeys((*c.aliases, *names)))})
    return out


def _fx_from(raw: Any, path: str) -> FxRates:
    if not raw:
        return DEFAULT_FX
    try:
        return FxRates.model_validate(raw)
    except ValidationError as e:
        loc, msg = _validation_message(e)
        raise ConfigError(msg, file=path, line=line_of(raw, loc.split(".")[0]), key=f"fx.{loc}") from None


def _genai_lookup(now: datetime):  # type: ignore[no-untyped-def]
    """Return f(provider_id, model_ref) -> Price | None using genai-prices' bundled data."""
    from router._catalog_genai import genai_price  # lazy: genai_prices import costs ~0.2 s

    return lambda prov, ref: genai_price(prov, ref, now)


def parse_overrides_text(text: str, *, file: str = "<string>") -> Any:
    """Parse override YAML text with line marks (for tests and config loaders)."""
    return load_yaml_text(text, file=file)
