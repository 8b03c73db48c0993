"""Spend log rows, exact sums, the `quotaroute spend` command, metrics, secrets."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

import httpx2

from providers.fake import FakeProvider, Script
from router.cli import main
from router.errors import AuthFailed, register_secret
from router.server.spendlog import SpendLog, parse_since, summarize
from tests.router.server.conftest import make_app
from tests.router.server.fakes import FakeRouter

OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


async def test_every_request_is_logged(client: Any, app: Any, spend_path: Any) -> None:
    await client.post("/v1/chat/completions", json=OK)
    await client.post("/v1/chat/completions", json={**OK, "stream": True})
    await client.post("/v1/messages", json={**OK, "max_tokens": 5})
    await client.post("/v1/chat/completions", json={**OK, "model": "nope:x"})
    app.spend.flush()
    con = sqlite3.connect(spend_path)
    rows = con.execute("SELECT endpoint, requested_model, model, provider, input_tokens, output_tokens, cost_usd, "
                       "status, stream, fallback_chain, route_reason, latency_ms FROM spend ORDER BY id").fetchall()
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[7] for r in rows] == [200, 200, 200, 404]
    assert rows[0][:10] == ("chat", "auto", "fake:small", "fake", 10, 5, "0.000030", 200, 0, "fake:small")
    assert rows[1][4:9] == (10, 5, "0.000030", 200, 1)  # streamed: final usage and cost
    assert rows[2][0] == "messages" and rows[0][10].startswith("free-first") and rows[0][11] > 0


def test_summaries_are_exact(tmp_path: Any) -> None:
    log = SpendLog(tmp_path / "s.sqlite")
    for i in range(10):
        log.record((1_800_000_000 + i * 86400 / 2, "2027-01-1" + str(i // 2), "k" + str(i % 2), "chat", "auto", "m",
                    "p", 1, 1, 0, 0, "0.1", 1.0, 0.1, "r", "m", 200, None, 0))
    log.close()
    rows = summarize(tmp_path / "s.sqlite", by="key")
    assert [r["cost_usd"] for r in rows] == [Decimal("0.5"), Decimal("0.5")]  # exact, not 0.49999999
    assert len(summarize(tmp_path / "s.sqlite", by="day")) == 5
    assert sum(r["requests"] for r in summarize(tmp_path / "s.sqlite", by="day", since=1_800_000_000 + 86400 * 4)) == 2
    assert parse_since("2026-01-01") == 1767225600.0 and parse_since("1d", now=100000.0) == 13600.0


def test_spend_command(tmp_path: Any, capsys: Any) -> None:
    log = SpendLog(tmp_path / "s.sqlite")
    log.record((1_800_000_000, "2027-01-15", "team-a", "chat", "auto", "fake:small", "fake", 10, 5, 0, 0, "0.25",
                3.0, 0.2, "r", "fake:small", 200, None, 0))
    log.close()
    assert main(["spend", "--db", str(tmp_path / "s.sqlite"), "--by", "model", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_cost_usd"] == "0.25" and out["rows"][0]["model"] == "fake:small"
    assert main(["spend", "--db", str(tmp_path / "s.sqlite"), "--by", "key"]) == 0
    assert "team-a" in capsys.readouterr().out
    assert main(["spend", "--db", str(tmp_path / "s.sqlite"), "--since", "garbage"]) == 2


async def test_metrics_and_no_upstream_key_anywhere(spend_path: Any) -> None:
    secret = "upstream-key-without-known-shape-42"
    register_secret(secret)
    fake = FakeProvider(scripts=[Script(error=AuthFailed(f"bad key {secret} and sk-proj-abcdefgh12345678"))])
    app = make_app(FakeRouter(fake), spend_path)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        bodies = [await c.post("/v1/chat/completions", json={**OK, "stream": s}) for s in (False, True)]
        bodies.append(await c.post("/v1/messages", json={**OK, "max_tokens": 5}))
        m = await c.get("/metrics")
        spend = await c.get("/v1/spend")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    assert 'quotaroute_requests_total{endpoint="chat",model="-",provider="-",status="502"} 2.0' in m.text
    assert "quotaroute_free_quota_remaining_requests{pool=\"fake:free-daily\"} 99.0" in m.text
    for r in bodies + [m, spend]:
        for s in (secret, "sk-proj-abcdefgh12345678"):
            assert s not in r.text and s not in str(r.headers)
    app.spend.flush()
    dump = "\n".join(str(r) for r in sqlite3.connect(spend_path).execute("SELECT * FROM spend"))
    assert secret not in dump and "sk-proj-abcdefgh12345678" not in dump and "upstream_auth" not in dump
    await app.aclose()


async def test_spend_since_out_of_range_is_a_400(client: Any) -> None:
    for since in ("9" * 400 + "d", "99999999999h", "0001-01-01T00:00:00+14:00x", "²d"):
        r = await client.get("/v1/spend", params={"since": since})
        assert r.status_code == 400, (since, r.text)
        assert r.json()["error"]["param"] == "since" and len(r.json()["error"]["message"]) < 200


async def test_client_strings_are_cut_before_they_reach_the_log(client: Any, app: Any, spend_path: Any) -> None:
    """60 requests naming a 400 kB model (name and error stored in full: ~48 MB) add a few KiB."""
    huge = "openai:gpt-4o-mini" + " " * 400_000
    for i in range(60):
        r = await client.post("/v1/chat/completions", json={**OK, "model": huge if i % 2 else "nope:" + "x" * 400_000})
        assert r.status_code < 500
    app.spend.flush()
    con = sqlite3.connect(spend_path)
    n, longest, longest_error = con.execute(
        "SELECT count(*), max(length(requested_model)), max(length(error)) FROM spend").fetchone()
    assert n == 60 and (longest or 0) <= 256 and longest_error <= 1024  # the edge refuses names > 256 chars
    size = sum(p.stat().st_size for p in spend_path.parent.glob(spend_path.name + "*"))
    assert size < 2 << 20


def test_the_writer_cuts_every_text_column(tmp_path: Any) -> None:
    from router.server.spendlog import CLIP, COLUMNS, SpendLog

    log = SpendLog(tmp_path / "s.sqlite")
    row = []
    for name in COLUMNS:
        row.append("x" * 1_000_000 if name in CLIP else ("2026-12-06" if name == "day" else "0" if name == "cost_usd" else 0))
    log.record(tuple(row))
    log.flush()
    con = sqlite3.connect(tmp_path / "s.sqlite")
    assert con.execute("SELECT count(*) FROM spend").fetchone() == (1,)
    for name, limit in CLIP.items():
        (n,) = con.execute(f"SELECT max(length({name})) FROM spend").fetchone()
        assert n is None or n <= limit, name
    log.close()
