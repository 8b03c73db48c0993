"""Seeded data for the dashboard tests and its screenshot: a spend log with a day of
requests across models, providers and keys (some failed, some fell back), and a
router whose ledger view has free pools and budgets.

    python -m tests.router.server.ui.seed docs/dashboard.png     # retake the screenshot
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.quota.view import BudgetView, LedgerView, PoolView
from router.server.spendlog import SpendLog
from tests.router.server.fakes import FakeRouter

XSS_MODEL = '<img src=x onerror="window.__pwned=1">'
XSS_REASON = "</script><script>window.__pwned=2</script>"
XSS_TAG = '"><svg onload="window.__pwned=3">'
XSS_KEY = "k<b>bold</b>"

MODELS = [("groq:llama-3.3-70b", "groq", "0"), ("gemini:gemini-2.5-flash", "gemini", "0.00041"),
          ("openai:gpt-4.1-mini", "openai", "0.00122"), ("anthropic:claude-sonnet-4", "anthropic", "0.00870"),
          ("deepseek:deepseek-chat", "deepseek", "0.00031")]
KEYS = ["team-a", "ci-bot", "research", None]


def spend_rows(now: float, *, hostile: bool = False, n: int = 240, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ts = now - 86000 + i * (86000 / n) + rng.random() * 30
        model, provider, cost = MODELS[rng.choice([0, 0, 1, 1, 1, 2, 2, 3, 4])]
        key = rng.choice(KEYS)
        status, error, chain = 200, None, model
        reason = {"groq": "free-first: groq free pool (13,9xx/14,400 requests left today)",
                  "gemini": "free-first: gemini free pool empty until 00:00Z; cheapest paid that fits (code)",
                  "openai": "cheapest that fits: needs tools + 12k context",
                  "anthropic": "best quality for task kind reasoning (auto:best)",
                  "deepseek": "cheapest that fits"}[provider]
        if i % 17 == 5:
            chain = f"{MODELS[0][0]},{model}"
            reason = f"fallback: {MODELS[0][0]} rate limited (429, retry-after 20 s); " + reason
        if i % 23 == 11:
            status, error, cost, chain = 503, "every candidate is out of quota or cooling down", "0", None
            model = provider = None  # type: ignore[assignment]
        tokens_in, tokens_out = rng.randint(200, 4000), rng.randint(50, 900)
        rows.append((ts, time.strftime("%Y-%m-%d", time.gmtime(ts)), key, "chat", "auto", model, provider,
                     tokens_in, tokens_out, 0, 0, cost, rng.uniform(300, 4000), rng.uniform(0.3, 1.5), reason,
                     chain, status, error, i % 3 == 0))
    if hostile:
        rows.append((now - 60, time.strftime("%Y-%m-%d", time.gmtime(now)), XSS_KEY, "chat", XSS_MODEL, XSS_MODEL,
                     "evil", 10, 5, 0, 0, "0.5", 100.0, 1.0, XSS_REASON, f"{XSS_MODEL},{XSS_MODEL}", 502,
                     "upstream said " + XSS_REASON, 0))
    return rows


def seed_spend(path: Path, *, hostile: bool = False, now: float | None = None) -> int:
    log = SpendLog(path)
    rows = spend_rows(time.time() if now is None else now, hostile=hostile)
    for r in rows:
        log.record(r)
    log.close()
    return len(rows)


class DashRouter(FakeRouter):
    """A FakeRouter whose ledger view has a few free pools (one empty, one cooling down) and budgets."""

    def __init__(self, *a: Any, hostile: bool = False, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.hostile = hostile

    async def quota_view(self, now: datetime) -> LedgerView:
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        pools = [
            PoolView("groq:free-daily", "free", True, remaining_requests=13_912, remaining_tokens=482_000,
                     resets_at=midnight),
            PoolView("gemini:free-daily", "free", True, remaining_requests=0, remaining_tokens=0, resets_at=midnight,
                     exhausted_until=midnight),
            PoolView("cerebras:free-minute", "free", True, remaining_requests=27, resets_at=now + timedelta(seconds=41),
                     cooldown_until=now + timedelta(seconds=20)),
            PoolView("openrouter:free-credits", "grant", True, on_exhaust="paid", remaining_usd=Decimal("4.2150"),
                     resets_at=None),
        ]
        if self.hostile:
            pools.append(PoolView(XSS_TAG, "free", True, remaining_requests=1, resets_at=midnight))
        month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        budgets = [
            BudgetView("global", "global", "*", "month", Decimal("50"), Decimal("12.41"), Decimal("0.02"),
                       resets_at=month),
            BudgetView("key:team-a", "key", "team-a", "month", Decimal("5"), Decimal("4.37"), resets_at=month),
            BudgetView("research-tag", "tag", XSS_TAG if self.hostile else "research", "day", Decimal("2"),
                       Decimal("0.35"), hard=False, resets_at=midnight),
        ]
        return LedgerView(pools={p.pool_id: p for p in pools}, budgets=tuple(budgets))


async def _shoot(out: Path) -> None:
    from router.server.auth import KeyStore, ProxyKey, hash_key
    from router.server.settings import ServerSettings
    from tests.router.server.conftest import LiveServer, make_app
    from tests.support.chromium import Chromium

    admin = "qr-admin-screenshot-0000"
    with tempfile.TemporaryDirectory() as d:
        spend = Path(d) / "spend.sqlite"
        seed_spend(spend)
        settings = ServerSettings(keys=KeyStore([ProxyKey("team-a", hash_key("qr-team-a-000000000"))],
                                                ProxyKey("admin", hash_key(admin), admin=True)))
        with LiveServer(make_app(DashRouter(), spend, settings)) as srv, Chromium() as b:
            page = await b.page()
            await page.goto(srv.url + "/ui/login")
            await page.submit(f"document.getElementById('key').value = {admin!r}; document.forms[0].submit()")
            await page.wait_for("document.body.dataset.charts === '3'")
            out.write_bytes(await page.screenshot())
            await page.close()
            await b.aclose()


if __name__ == "__main__":
    asyncio.run(_shoot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")))
