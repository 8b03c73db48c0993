"""The dashboard in a real browser: Debian's headless Chromium, driven over the
DevTools protocol, signs in through the form against a proxy on a loopback port
(uvicorn, seeded spend log and ledger view), then the test reads the rendered page:
charts drawn by uPlot, tables, no script error, no Content-Security-Policy violation,
hostile names inert."""

from __future__ import annotations

from typing import Any

import pytest

from tests.router.server.conftest import ADMIN, LiveServer, keyed_settings, make_app
from tests.router.server.ui.seed import XSS_MODEL, XSS_REASON, DashRouter, seed_spend
from tests.support.chromium import Chromium, find_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed: the browser test needs Debian's "
                       "`chromium` package (scripts/test.sh installs it; or set $CHROMIUM)"),
]


@pytest.fixture
def server(tmp_path: Any) -> Any:
    spend = tmp_path / "spend.sqlite"
    seed_spend(spend, hostile=True)
    with LiveServer(make_app(DashRouter(hostile=True), spend, keyed_settings())) as s:
        yield s


@pytest.fixture
async def page() -> Any:
    with Chromium() as browser:
        p = await browser.page()
        yield p
        await p.close()
        await browser.aclose()


async def sign_in(page: Any, key: str) -> None:
    await page.submit(f"document.getElementById('key').value = {key!r}; document.forms[0].submit()")


async def test_dashboard_renders_in_chromium(server: Any, page: Any) -> None:
    # without a session the browser only ever gets the sign-in form
    await page.goto(server.url + "/ui")
    assert await page.eval("location.pathname") == "/ui/login"
    assert await page.eval("document.querySelectorAll('table').length") == 0
    assert "groq" not in await page.eval("document.body.innerText")
    await sign_in(page, "qr-wrong-key-000000000")
    assert "Incorrect admin key." in await page.eval("document.body.innerText")
    assert page.problems == ["log: Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    page.problems.clear()

    await sign_in(page, ADMIN)
    assert await page.eval("location.pathname") == "/ui"
    assert await page.wait_for("document.body.dataset.charts") == "3"
    assert await page.eval("document.querySelectorAll('.chart canvas').length") == 3
    assert await page.eval("document.cookie") == ""  # HttpOnly: scripts cannot read the session
    text = await page.eval("document.body.innerText")
    for want in ("Spend over time", "groq:llama-3.3-70b", "anthropic", "ci-bot", "gemini:free-daily", "exhausted",
                 "cooling down", "key:team-a", "Latest routing decisions", "cheapest that fits",
                 "Fallbacks and errors", "every candidate is out of quota"):
        assert want in text, want
    legend = await page.eval("[...document.querySelectorAll('#by-model .u-legend .u-label')].map(e => e.textContent)")
    assert "groq:llama-3.3-70b" in legend and XSS_MODEL in legend  # hostile name shown as text in the legend too
    # hostile values render as text and run nothing
    assert await page.eval("typeof window.__pwned") == "undefined"
    assert await page.eval("document.querySelectorAll('img, svg, b').length") == 0
    assert XSS_REASON in text and XSS_MODEL in text
    assert page.problems == []  # no script error, no CSP violation, no failed resource

    await page.submit("document.querySelector('header form').submit()")
    assert await page.eval("location.pathname") == "/ui/login"
    await page.goto(server.url + "/ui")
    assert await page.eval("location.pathname") == "/ui/login"
