"""The SDK: `from router import Router`.

    router = Router.from_config("quotaroute.yaml")
    r = await router.achat("Summarise this ...")           # model="auto"
    print(r.response.text, r.route.model_id, r.route.cost_usd)
    async with await router.astream([...], model="auto:cheap") as s: ...

Async first; `chat()`, `stream()` and `explain()` are thin sync wrappers that run
the coroutine on one private event-loop thread (so upstream connection pools stay
bound to one loop across calls).

One proxy request, read downward: server/app.py -> server/handlers.py -> server/<wire> -> sdk.py
(features, `engine.choose()` -> RoutePlan; pure, read aside) -> next: executor.py.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from router.cards import prepare
from router.cascade import PREFIX, Cascade, CascadePlan, Prepared, StageError, plan_cascade, prepare_cascade
from router.cascade_run import BufferedStream, run_cascade
from router.chains import Chains, Link, chain_text, members, order
from router.checks import Verifier
from router.engine import _fmt as _money
from router.engine import choose
from providers.base import TokenCounter
from router.errors import ConfigError, ModelNotServed, NoRouteAvailable, ProviderError, UnknownModel
from router.executor import Executor
from router.health import HealthBook
from router.plan import RoutePlan
from router.policies import VIRTUAL_MODELS, Policy, Rule, compile_globs, policy_for_model
from router.quota.view import LedgerView
from router.result import RoutedResponse
from router.streaming import RoutedStream, open_stream
from router.tasks import QualityPredictor, extract_features, last_user_text
from router.tokens import TokenCount, estimate_request_tokens
from router.types import ChatRequest, Message

if TYPE_CHECKING:
    from router.config import QuotarouteConfig

__all__ = ["Router", "SyncRoutedStream"]

_EMPTY_VIEW = LedgerView()
_MAX_ALIAS_LEN = 256  # longer model strings are resolved each time, never remembered
_MAX_ALIASES = 4096


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _LoopThread:
    """One private event loop on a daemon thread, for the sync wrappers."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Any) -> Any:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="quotaroute-sync", daemon=True).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


class SyncRoutedStream:
    """`router.stream(...)`: iterate events synchronously; `route` as on RoutedStream."""

    def __init__(self, runner: _LoopThread, stream: RoutedStream) -> None:
        self._runner, self._s = runner, stream

    @property
    def route(self) -> Any:
        return self._s.route

    @property
    def response(self) -> Any:
        return self._s.response

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self._runner.run(self._s.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._runner.run(self._s.aclose())

    def __enter__(self) -> "SyncRoutedStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Router:
    """Route each request to the model that fits, spending free quota first.

    `providers` maps a provider name (as in the catalog, e.g. "openai") to a
    Provider, or to several (a list, or {key_id: Provider}) to spread load over
    API keys. `models` (ids, aliases or globs) limits the candidates; by default
    every catalog model of a configured provider (all models when `providers` is
    None: explain-only). `ledger=None` builds an in-memory ledger with the
    catalog's default free tiers.

    `fallbacks` ({model or virtual name: [model ids]}) and `deployments` ({name:
    [{provider, model, weight, key}]}) are explicit routes (`router.chains`,
    docs/config.md); `rng` draws among weighted deployments (pass a seeded
    `random.Random` for repeatable runs).
    """

    def __init__(self, catalog: Any = None, providers: Mapping[str, Any] | None = None, ledger: Any = None,
                 policy: str | Policy = "free-first", rules: Sequence[Rule | Mapping[str, Any]] = (),
                 models: Sequence[str] | None = None, clock: Callable[[], datetime] = _utcnow,
                 predictor: QualityPredictor | None = None, *, health: HealthBook | None = None,
                 verifier: Verifier | None = None, scope: Mapping[str, Any] | None = None,
                 config: Any = None, view_ttl_s: float = 0.25,
                 cascades: Mapping[str, Cascade] | Sequence[Cascade] = (), embeddings: Any = None,
                 fallbacks: Mapping[str, Sequence[str]] | None = None,
                 deployments: Mapping[str, Sequence[Any]] | None = None, rng: random.Random | None = None) -> None:
        if catalog is None:
            from router.catalog import load_catalog  # lazy: import time (only a Router built without a catalog loads it)

            catalog = load_catalog()
        self.catalog = catalog
        self.clock = clock
        self.predictor = predictor
        self.config = config
        self.scope = dict(scope or {})
        self._providers: dict[str, Any] = {}
        self._keys: dict[str, tuple[str, ...]] | None = None
        if providers is not None:
            self._keys = {}
            for name, p in providers.items():
                if isinstance(p, Mapping):
                    group = dict(p)
                elif isinstance(p, (list, tuple)):
                    group = {f"{name}#{i + 1}": x for i, x in enumerate(p)} if len(p) > 1 else {name: p[0]}
                else:
                    group = {name: p}
                if any(k in self._providers for k in group):  # the same key name under another provider
                    group = {f"{name}/{k}" if k in self._providers else k: v for k, v in group.items()}
                self._providers.update(group)
                self._keys[name] = tuple(group)
        self._own_ledger = ledger is None
        self._own_client: Any = None  # a shared HTTP client handed over by from_config(owns_client=True)
        if ledger is None:
            from router.quota.spec import default_pools  # lazy: import time (only a Router built without a ledger)
            from router.quota.ledger import Ledger
            from router.quota.memory_store import MemoryStore

            ledger = Ledger(MemoryStore(), default_pools())
        self.ledger = ledger
        base = policy if isinstance(policy, Policy) else Policy(policy)
        parsed = tuple(r if isinstance(r, Rule) else _rule(r) for r in rules)
        self.policy = base.with_(rules=parsed) if parsed else base
        self.health = health if health is not None else HealthBook()
        cards = list(catalog.all())
        if self._keys is not None:
            cards = [c for c in cards if c.provider in self._keys]
        if models is not None:
            wanted = set()
            for m in models:
                if any(ch in m for ch in "*?["):
                    g = compile_globs((m,))
                    wanted.update(c.id for c in cards if g is not None and g.match(c.id))
                else:
                    wanted.add(catalog.get(m).id)
            cards = [c for c in cards if c.id in wanted]
        self._fx = getattr(catalog, "fx", None)
        self._cands = prepare(cards, self._fx)
        self._cascades = self._bind_cascades(cascades, cards)
        self._model_ids = tuple(c.id for c in cards)
        self._pinned: dict[str, Any] = {}  # card id -> its prepared candidates
        self._policies: dict[str, Policy] = {}  # virtual name or card id -> policy
        self._resolved: dict[str, str] = {}  # a request's model string -> virtual name or card id (bounded)
        self.chains = Chains(catalog, fallbacks, deployments) if fallbacks or deployments else None
        self.rng = rng if rng is not None else random.Random()
        self._chain_cands: dict[tuple[str, ...], Any] = {}  # a chain's member ids -> their prepared candidates
        self._chain_policy = self.policy.with_(name="pinned", pinned=None, rules=())
        self.executor = Executor(self._providers, ledger=ledger, health=self.health, clock=clock, fx=self._fx,
                                 verifier=verifier)
        self._runner = _LoopThread()
        self._embedder = embeddings  # router.embed_run.Embedder; built on first use when None
        # The ledger view is cached for `view_ttl_s` (monotonic) and refreshed at once
        # when the executor learns something (cool-down, exhaustion, failure). Counts
        # may lag by the TTL; `ledger.reserve()` is the hard check either way.
        self.view_ttl_s = view_ttl_s
        self._view: LedgerView | None = None
        self._view_t = 0.0
        self._view_v = -1

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, path: str | QuotarouteConfig | None = None, *, default_store: str | None = None,
                    owns_client: bool = False, **overrides: Any) -> "Router":
        """Build from one YAML file (docs/config.md), found by `router.config.find_config`,
        or from an already loaded `QuotarouteConfig`. Explicit keyword arguments win
        over the file, which wins over the environment. `client=`/`http_client=` is an
        `httpx.AsyncClient` shared by every adapter; it never changes the ledger store.

        `default_store` ("memory" | "sqlite") is the ledger store when the config's
        `ledger:` section names none: default `$QUOTAROUTE_DEFAULT_STORE`, else
        "memory" (the SDK's default; the proxy passes "sqlite"). A ledger built here
        is closed by `aclose()`, and so is the shared client when `owns_client=True`
        (the proxy hands over the one it made)."""
        from router.config import QuotarouteConfig, build_policy, build_router_kwargs, load_config  # lazy: import time (the config schema loads only for from_config)

        cfg = path if isinstance(path, QuotarouteConfig) else load_config(path)
        client = overrides.pop("client", None) or overrides.pop("http_client", None)
        kw = build_router_kwargs(cfg, client=client, default_store=default_store,
                                 with_ledger="ledger" not in overrides)
        if isinstance(overrides.get("policy"), str):  # a policy name keeps the file's floors/lambda
            overrides["policy"] = build_policy(cfg, overrides["policy"])
        kw.update(overrides)
        router = cls(**kw)
        if "ledger" not in overrides:
            router._own_ledger = True  # built from the config: ours to close
        if owns_client and client is not None:
            router._own_client = client
        return router

    @property
    def candidates(self) -> tuple[Any, ...]:
        return tuple(self._cands)

    @property
    def adapters(self) -> Mapping[str, Any]:
        """The provider adapters by deployment name (`name`, or `name#2`... for several keys)."""
        return MappingProxyType(self._providers)

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The catalog ids this router may route to."""
        return self._model_ids

    @property
    def policy_name(self) -> str:
        return PREFIX + self.policy.cascade if self.policy.cascade else self.policy.name

    async def quota_view(self, now: datetime | None = None) -> LedgerView | None:
        """The ledger's view of this router's models at `now` (default: the router's clock):
        free pools left, cool-downs, budgets. Read fresh, not the routing cache."""
        if self.ledger is None:
            return None
        return await self.ledger.view(now if now is not None else self.clock(), self._model_ids)

    def _bind_cascades(self, cascades: Mapping[str, Cascade] | Sequence[Cascade], cards: list[Any]
                       ) -> dict[str, Prepared]:
        """Answer-agreement cascades bound to the served models; names that rules and the
        policy refer to must exist (ConfigError naming the config key)."""
        items = list(cascades.values()) if isinstance(cascades, Mapping) else list(cascades)
        file = getattr(self.config, "file", None)
        out: dict[str, Prepared] = {}
        for c in items:
            try:
                out[c.name] = prepare_cascade(c, cards, self.catalog, self.policy, self._fx)
            except StageError as e:
                line_of = getattr(self.config, "line_of", None)
                line = line_of("cascades", c.name, "stages", e.stage, "models") if line_of is not None else None
                raise ConfigError(str(e), file=file, line=line, key=f"cascades.{c.name}.stages[{e.stage}].models"
                                  ) from None
        wanted = [("policy.default", self.policy.cascade)] + [
            (f"rules[{i}].cascade", r.cascade) for i, r in enumerate(self.policy.rules)]
        for key, name in wanted:
            if name is not None and name not in out:
                raise ConfigError(f"unknown cascade {name!r}; define it under `cascades:` (defined: "
                                  f"{', '.join(out) or 'none'})", file=file, key=key)
        self._cascade_rules = any(r.cascade for r in self.policy.rules)
        return out

    def _cascade_for(self, model: str, features: Any) -> tuple[Prepared, str | None] | None:
        """(the cascade a request runs, the rule that chose it) or None: model
        "cascade:<name>", else for "auto" the first matching rule's or the default."""
        if model.startswith(PREFIX):
            prep = self._cascades.get(model[len(PREFIX):])
            if prep is None:
                raise UnknownModel(f"{model[:80]} (no such cascade; configured: "
                                   f"{', '.join(PREFIX + n for n in self._cascades) or 'none'})")
            return prep, None
        if model != "auto":
            return None
        if self._cascade_rules:
            for i, rule in enumerate(self.policy.rules):
                if rule.matches(features):
                    return (self._cascades[rule.cascade], rule.label(i)) if rule.cascade else None
        name = self.policy.cascade
        return (self._cascades[name], None) if name else None

    # ------------------------------------------------------------------ planning
    def _request(self, request: Any, model: str | None, kw: Mapping[str, Any]) -> ChatRequest:
        if isinstance(request, ChatRequest):
            upd = dict(kw)
            if model is not None:
                upd["model"] = model
            # re-validated (model_copy would not check e.g. a negative max_tokens)
            return ChatRequest.model_validate({**request.__dict__, **upd}) if upd else request
        if isinstance(request, str):
            messages = [Message(role="user", content=request)]
        else:
            messages = [m if isinstance(m, Message) else Message.model_validate(m) for m in request]
        return ChatRequest(model=model or "auto", messages=messages, **kw)

    def _resolve(self, model: str) -> str:
        """A request's model string as a virtual name, a deployments name or a card id."""
        key = self._resolved.get(model)
        if key is None:
            if model in VIRTUAL_MODELS:
                key = model
            elif self.chains is not None and model in self.chains.groups:
                key = model
            else:
                card = self.catalog.get(model)  # UnknownModel with a hint
                key = card.id
                if self._keys is not None and card.provider not in self._keys and (
                        self.chains is None or self.chains.links(key) is None):  # (a chain may serve it elsewhere)
                    raise ModelNotServed(f"its provider {card.provider} is not configured (add providers.{card.provider} "
                                         "with api_key_env in the config)", model=model[:200])
            if len(model) <= _MAX_ALIAS_LEN:
                if len(self._resolved) >= _MAX_ALIASES:
                    self._resolved.clear()
                self._resolved[model] = key
        return key

    def _policy_and_candidates(self, model: str) -> tuple[Policy, Any]:
        # Policies and pinned candidates are cached by what the model string resolves to
        # (a virtual name or a card id: bounded by the catalog); the client's raw string
        # is remembered only when short, in a bounded map, so padding or endless
        # spellings of one model cannot grow memory.
        key = self._resolve(model)
        pol = self._policies.get(key)
        if pol is None:
            pol = self._policies[key] = policy_for_model(key, self.policy)
            if key not in VIRTUAL_MODELS:
                self._pinned[key] = prepare([self.catalog.get(key)], self._fx)
        return pol, self._pinned.get(key, self._cands)

    async def _plan(self, req: ChatRequest, scope: Mapping[str, Any] | None,
                    fallbacks: Sequence[str] = ()) -> RoutePlan | CascadePlan:
        if self._keys is not None and not self._keys:
            raise NoRouteAvailable("no providers configured: add a `providers:` section to the config "
                                   "(api_key_env: NAME) or set a vendor's key variable, e.g. OPENAI_API_KEY")
        text = last_user_text(req)
        features = extract_features(req, text=text)
        cas = self._cascade_for(req.model or "auto", features) if self._cascades else None
        if cas is not None:
            now = self.clock()
            return plan_cascade(cas[0], features, await self._ledger_view(now), self.health, now, keys=self._keys,
                                scope=scope, predictor=self.predictor, text=text, fx=self._fx, rule=cas[1])
        model = req.model or "auto"
        links = None
        if self.chains is not None or fallbacks:
            key = self._resolve(model)
            chains = self.chains if self.chains is not None else Chains(self.catalog)
            links = chains.links(key, fallbacks)
        now = self.clock()
        view = await self._ledger_view(now)
        if links is not None:
            return self._chain_plan(key, links, features, view, now, scope, text)
        policy, cands = self._policy_and_candidates(model)
        return choose(features, cands, view, self.health, policy, now, keys=self._keys, scope=scope,
                      predictor=self.predictor, text=text, fx=self._fx)

    def _chain_plan(self, key: str, links: Sequence[Link], features: Any, view: LedgerView, now: datetime,
                    scope: Mapping[str, Any] | None, text: str) -> RoutePlan:
        """An explicit route (router.chains): the chain's members through `choose()`'s
        filters, ordered link by link (weighted draw within a link). A virtual model
        plans by its policy first and appends its fallbacks."""
        ids = tuple(members(links))
        cands = self._chain_cands.get(ids)
        if cands is None:
            if len(self._chain_cands) >= _MAX_ALIASES:
                self._chain_cands.clear()
            cands = self._chain_cands[ids] = prepare([self.catalog.get(i) for i in ids], self._fx)
        cplan = choose(features, cands, view, self.health, self._chain_policy, now, keys=self._keys, scope=scope,
                       text=text, fx=self._fx)
        steps = order(cplan, links, self.rng)
        kept = {c.info.id for c in cplan.kept}
        dropped = {} if len(kept) == len(ids) else {r.model_id: r.reason for r in cplan.reasons if not r.kept}
        if key not in VIRTUAL_MODELS:
            cplan.steps = steps
            cplan.chain = chain_text(links, dropped=dropped)
            if steps:
                rank = {s.model_id: i for i, s in reversed(list(enumerate(steps)))}
                cplan._kept = sorted((c for c in cplan.kept if c.info.id in rank), key=lambda c: rank[c.info.id])
                cplan._kept_msg = "rank %d: explicit route"
                cplan._reasons = None  # (read above for the skipped members: rebuilt in the chain's order)
                first = steps[0]
                what = f"free pool {first.pool_id}" if first.free else f"expected ${_money(first.expected_cost_usd)}"
                more = f"; then {len(steps) - 1} more in the chain" if len(steps) > 1 else ""
                cplan.reason = f"pinned {key}: {first.deployment} for {features.task}, {what}{more}"
            return cplan
        policy, cands = self._policy_and_candidates(key)
        plan = choose(features, cands, view, self.health, policy, now, keys=self._keys, scope=scope,
                      predictor=self.predictor, text=text, fx=self._fx)
        have = {(s.model_id, s.key_id) for s in plan.steps}
        plan.steps = plan.steps + [s for s in steps if (s.model_id, s.key_id) not in have]
        plan.chain = chain_text(links, pinned=False, dropped=dropped)
        return plan

    async def _ledger_view(self, now: datetime) -> LedgerView:
        if self.ledger is None:
            return _EMPTY_VIEW
        t = time.monotonic()
        v = self.executor.version
        if self._view is None or v != self._view_v or t - self._view_t >= self.view_ttl_s:
            self._view = await self.ledger.view(now, self._model_ids)
            self._view_t, self._view_v = t, v
        return self._view

    def _scope(self, scope: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not scope and not self.scope:
            return None
        return {**self.scope, **(scope or {})}

    # ------------------------------------------------------------------ async API
    async def achat(self, request: Any, *, model: str | None = None, scope: Mapping[str, Any] | None = None,
                    verifier: Verifier | None = None, fallbacks: Sequence[str] = (), **kw: Any) -> RoutedResponse:
        """Route and run one request: a ChatRequest, a list of messages, or a prompt.
        `fallbacks`: model ids to try, in order, after this request's model (or plan)."""
        t0 = time.perf_counter()
        req = self._request(request, model, kw)
        sc = self._scope(scope)
        plan = await self._plan(req, sc, fallbacks)
        if isinstance(plan, CascadePlan):
            out = await run_cascade(self.executor, plan, req, scope=sc)
        else:
            out = await self.executor.run(plan, req, scope=sc, verifier=verifier)
        total = (time.perf_counter() - t0) * 1000
        out.route.overhead_ms = max(0.0, total - sum(a.latency_ms for a in out.route.attempts))
        return out

    async def astream(self, request: Any, *, model: str | None = None, scope: Mapping[str, Any] | None = None,
                      fallbacks: Sequence[str] = (), **kw: Any) -> RoutedStream | BufferedStream:
        """Open a routed stream; returns once the model has produced its first event,
        so `.route` is known before any token is consumed. A cascade with `stream: buffer`
        runs to the end first (the whole cascade's latency before the first event); with
        `stream: single` the request is routed with the cascade's `fallback_policy`."""
        t0 = time.perf_counter()
        req = self._request(request, model, {**kw, "stream": True})
        sc = self._scope(scope)
        plan = await self._plan(req, sc, fallbacks)
        if isinstance(plan, CascadePlan):
            if plan.cascade.stream == "buffer":  # run the cascade, then hand the accepted answer out
                return await self._buffered(plan, req, sc, t0)
            plan = await self._single_model_plan(plan, req, sc)
        s: RoutedStream | BufferedStream = await open_stream(self.executor, plan, req, scope=sc)
        total = (time.perf_counter() - t0) * 1000
        s.route.overhead_ms = max(0.0, total - sum(a.latency_ms for a in s.route.attempts))
        return s

    async def _buffered(self, plan: CascadePlan, req: ChatRequest, sc: Mapping[str, Any] | None,
                        t0: float) -> BufferedStream:
        rr = await run_cascade(self.executor, plan, req, scope=sc)
        total = (time.perf_counter() - t0) * 1000
        rr.route.overhead_ms = max(0.0, total - sum(a.latency_ms for a in rr.route.attempts))
        return BufferedStream(rr)

    async def _single_model_plan(self, plan: CascadePlan, req: ChatRequest, sc: Mapping[str, Any] | None
                                 ) -> RoutePlan:
        """A stream request under a `stream: single` cascade: one model, by its fallback policy."""
        cas = plan.cascade
        key = PREFIX + cas.name
        pol = self._policies.get(key)
        if pol is None:
            pol = self._policies[key] = self.policy.with_(name=cas.fallback_policy, rules=(), cascade=None)
        now = self.clock()
        out = choose(plan.features, self._cands, await self._ledger_view(now), self.health, pol, now,
                     keys=self._keys, scope=sc, predictor=self.predictor, text=last_user_text(req), fx=self._fx)
        out.reason = f"{key} (stream: single): {out.reason}"
        return out

    @property
    def embedder(self) -> Any:
        """The embeddings side (`router.embed_run.Embedder`): the bundled embedding catalog
        unless the config (`embeddings:`) or the constructor gave one."""
        if self._embedder is None:
            from router.embed_run import Embedder  # lazy: import time (only routers that embed load it)
            from router.embeddings import load_embedding_catalog

            self._embedder = Embedder(load_embedding_catalog(fx=self._fx))
        return self._embedder

    async def aembed(self, input: Any, *, model: str = "auto", dimensions: int | None = None,
                     encoding_format: str | None = None, user: str | None = None,
                     scope: Mapping[str, Any] | None = None) -> Any:
        """Embed a string, a list of strings or token-id lists (docs/embeddings.md): routed
        like chat (free pools, budgets, fallback), billed per input token. Returns a
        `RoutedEmbeddings` (`vectors`, `usage`, `route`, `as_openai()`)."""
        from router.embeddings import EmbedRequest, embed_request  # lazy: import time, as above

        t0 = time.perf_counter()
        req = input if isinstance(input, EmbedRequest) else embed_request(
            input, model=model, dimensions=dimensions, encoding_format=encoding_format, user=user)
        out = await self.embedder.run(req, executor=self.executor, ledger=self.ledger, keys=self._keys,
                                      scope=self._scope(scope))
        total = (time.perf_counter() - t0) * 1000
        out.route.overhead_ms = max(0.0, total - sum(a.latency_ms for a in out.route.attempts))
        return out

    async def aexplain(self, request: Any, *, model: str | None = None, scope: Mapping[str, Any] | None = None,
                       fallbacks: Sequence[str] = (), **kw: Any) -> RoutePlan | CascadePlan:
        return await self._plan(self._request(request, model, kw), self._scope(scope), fallbacks)

    def wire_of(self, provider: str) -> str:
        """The wire a configured provider speaks: "anthropic", "bedrock", "gemini", or the
        OpenAI-compatible vendor row's name (e.g. "openai", "deepseek"); "" when unknown."""
        ids = (self._keys or {}).get(provider) or (provider,)
        p = self._providers.get(ids[0])
        v = getattr(p, "vendor", None)
        return v if isinstance(v, str) else str(getattr(v, "name", "") or "")

    async def acount_tokens(self, request: Any, *, model: str | None = None,
                            scope: Mapping[str, Any] | None = None) -> TokenCount:
        """Input tokens of `request` on the model it would be routed to: exact from that vendor
        when it counts (Anthropic, Gemini), else the estimate the router plans with. Free: no
        ledger reservation, no spend."""
        req = self._request(request, model, {})
        try:
            plan = await self._plan(req, self._scope(scope))
        except NoRouteAvailable:
            plan = None
        if isinstance(plan, CascadePlan):  # a cascade: the best candidate of its models
            plan = plan.base
        step = plan.steps[0] if plan is not None and plan.steps else None
        if step is not None:
            p = self.executor.provider_for(step)
            if isinstance(p, TokenCounter):
                try:
                    n = await p.count_tokens(self.executor.request_for(step, req))
                    return TokenCount(n, True, step.provider, step.model_id)
                except ProviderError:
                    pass  # the vendor could not count: the estimate below, labelled as such
        return TokenCount(estimate_request_tokens(req), False, "estimate", step.model_id if step else "")

    async def aclose(self) -> None:
        for p in self._providers.values():
            close = getattr(p, "aclose", None)
            if close is not None:
                await close()
        if self._own_ledger and self.ledger is not None:
            await self.ledger.aclose()
        if self._own_client is not None:
            client, self._own_client = self._own_client, None
            await client.aclose()

    async def __aenter__(self) -> "Router":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ sync wrappers
    def chat(self, request: Any, **kw: Any) -> RoutedResponse:
        return self._runner.run(self.achat(request, **kw))

    def stream(self, request: Any, **kw: Any) -> SyncRoutedStream:
        return SyncRoutedStream(self._runner, self._runner.run(self.astream(request, **kw)))

    def embed(self, input: Any, **kw: Any) -> Any:
        """Sync `aembed`."""
        return self._runner.run(self.aembed(input, **kw))

    def explain(self, request: Any, **kw: Any) -> RoutePlan | CascadePlan:
        """The ranked plan with reasons, without calling any model."""
        return self._runner.run(self.aexplain(request, **kw))

    def close(self) -> None:
        self._runner.run(self.aclose())
        self._runner.close()


def _rule(d: Mapping[str, Any]) -> Rule:
    """A rule from config-style data: {match: {task, metadata, user, tag}, models, policy, ...settings}."""
    d = dict(d)
    match = dict(d.pop("match", {}) or {})
    task = match.get("task")
    return Rule(name=str(d.pop("name", "") or ""), task=frozenset([task] if isinstance(task, str) else task)
                if task else None, metadata=dict(match.get("metadata") or {}), user=match.get("user"),
                tag=match.get("tag"), models=tuple(d.pop("models", ()) or ()), policy=d.pop("policy", None),
                settings=d)
