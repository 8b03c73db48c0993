"""The /ui endpoints in process: nothing without a session, the sign-in form, CSRF
refusals, the security headers, static files, and escaping of hostile values."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest

from router.server.settings import ServerSettings
from router.server.ui.session import COOKIE
from router.server.ui.views import CSP
from tests.router.server.conftest import ADMIN, KEY_A, keyed_settings, make_app
from tests.router.server.ui.seed import XSS_KEY, XSS_MODEL, XSS_REASON, XSS_TAG, DashRouter, seed_spend

BASE = "http://127.0.0.1:4000"
SAME = {"origin": BASE, "sec-fetch-site": "same-origin"}


@pytest.fixture
async def dash(tmp_path: Any) -> Any:
    spend = tmp_path / "spend.sqlite"
    seed_spend(spend, hostile=True)
    app = make_app(DashRouter(hostile=True), spend, keyed_settings())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as c:
        yield c
    await app.aclose()


async def login(c: Any, key: str = ADMIN, **headers: str) -> Any:
    return await c.post("/ui/login", data={"key": key}, headers={**SAME, **headers})


async def test_nothing_is_served_without_a_session(dash: Any) -> None:
    for path in ("/ui", "/ui/", "/ui?window=7d"):
        r = await dash.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login" and r.content == b""
    # an API key header does not open the pages; a made-up session token does not either
    for headers in ({"authorization": f"Bearer {ADMIN}"}, {"cookie": f"{COOKIE}={'A' * 43}"}):
        r = await dash.get("/ui", headers=headers)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    form = await dash.get("/ui/login")
    assert form.status_code == 200 and '<form method="post" action="/ui/login"' in form.text
    for secret in ("team-a", "groq", "fake:small", "chart-data", "$", "research"):
        assert secret not in form.text
    assert (await dash.get("/ui/nope")).status_code == 404
    assert (await dash.get("/ui/logout")).status_code == 405


async def test_sign_in_sets_a_strict_cookie_and_opens_the_dashboard(dash: Any) -> None:
    r = await login(dash)
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    cookie = r.headers["set-cookie"]
    assert re.fullmatch(rf"{COOKIE}=[A-Za-z0-9_-]{{43}}; Max-Age=28800; Path=/ui; HttpOnly; SameSite=Strict", cookie)
    assert ADMIN not in cookie and ADMIN not in r.headers["location"]
    page = await dash.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP and "'unsafe-inline'" not in CSP
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    for text in ("Spend over time", "groq:llama-3.3-70b", "gemini:free-daily", "exhausted", "key:team-a",
                 "Latest routing decisions", "free-first: groq free pool", "Fallbacks and errors",
                 "groq:llama-3.3-70b → openai:gpt-4.1-mini", "every candidate is out of quota"):
        assert text in page.text, text
    assert (await dash.get("/ui/login")).headers["location"] == "/ui"  # already signed in
    assert (await dash.get("/ui?window=30d")).status_code == 200
    bad = await dash.get("/ui?window=<script>alert(1)</script>")
    assert bad.status_code == 400 and "<script>alert" not in bad.text
    # sign out: the cookie is cleared and the old token no longer opens anything
    token = cookie.split(";")[0].split("=", 1)[1]
    out = await dash.post("/ui/logout", headers=SAME)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login" and "Max-Age=0" in out.headers["set-cookie"]
    again = await dash.get("/ui", headers={"cookie": f"{COOKIE}={token}"})
    assert again.status_code == 303


async def test_wrong_keys_and_the_attempt_limit(dash: Any) -> None:
    r = await login(dash, "qr-not-a-key-000000")
    assert r.status_code == 401 and "Incorrect admin key." in r.text and "set-cookie" not in r.headers
    r = await login(dash, KEY_A)  # a valid key, not the admin key
    assert r.status_code == 403 and "not the admin key" in r.text and "set-cookie" not in r.headers
    assert (await login(dash, "")).status_code == 401
    assert (await login(dash, "x" * 600)).status_code == 401
    for i in range(30):
        r = await login(dash, f"qr-guess-{i:04d}-000000")
        if r.status_code == 429:
            break
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # same per-address limit as the API


async def test_cross_site_posts_are_refused(dash: Any) -> None:
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        r = await dash.post("/ui/login", data={"key": ADMIN}, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    r = await dash.post("/ui/login", content=b'{"key": "x"}', headers={**SAME, "content-type": "application/json"})
    assert r.status_code == 415
    await login(dash)
    r = await dash.post("/ui/logout", headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert (await dash.get("/ui")).status_code == 200  # still signed in


async def test_secure_cookie_off_loopback(tmp_path: Any) -> None:
    app = make_app(DashRouter(), tmp_path / "s.sqlite", keyed_settings())
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://router.example") as c:
        form = await c.get("/ui/login")
        assert "plain HTTP on a non-loopback address" in form.text
        r = await c.post("/ui/login", data={"key": ADMIN}, headers={"origin": "http://router.example"})
        assert r.status_code == 303 and r.headers["set-cookie"].endswith("; Secure")
    await app.aclose()


async def test_dashboard_is_off_without_an_admin_key(tmp_path: Any) -> None:
    app = make_app(DashRouter(), tmp_path / "s.sqlite", ServerSettings())  # open access: no keys at all
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as c:
        for path in ("/ui", "/ui/login"):
            r = await c.get(path)
            assert r.status_code == 404 and "server.admin_key" in r.text
        assert (await c.post("/ui/login", data={"key": "x"}, headers=SAME)).status_code == 404
    await app.aclose()


async def test_static_files(dash: Any) -> None:
    js = await dash.get("/ui/static/uPlot.iife.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert "MIT License" in (await dash.get("/ui/static/uPlot.LICENSE")).text
    assert (await dash.get("/ui/static/dashboard.css")).headers["content-type"].startswith("text/css")
    for bad in ("/ui/static/../views.py", "/ui/static/%2e%2e/views.py", "/ui/static/", "/ui/static/nope.js",
                "/ui/static/__init__.py"):
        assert (await dash.get(bad)).status_code == 404, bad


async def test_hostile_values_are_escaped(dash: Any) -> None:
    await login(dash)
    page = (await dash.get("/ui")).text
    for raw in (XSS_MODEL, XSS_REASON, XSS_TAG, XSS_KEY, "<script>window", "<svg", "<img", "<b>"):
        assert raw not in page, raw
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=2&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;svg onload=&quot;window.__pwned=3&quot;&gt;" in page  # a pool id / budget match
    block = page.split('<script type="application/json" id="chart-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and "\\u003cimg" in block  # the model name reaches the chart as data only
    # every script the page runs is a file of this origin
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/ui/static/uPlot.iife.min.js" defer>', '<script src="/ui/static/dashboard.js" defer>',
        '<script type="application/json" id="chart-data">']
    assert " style=" not in page and "<style" not in page and " on" not in re.sub(r">[^<]*<", "><", page)


async def test_a_page_without_spend_log_or_ledger_still_renders(tmp_path: Any) -> None:
    class Bare(DashRouter):
        async def quota_view(self, now: Any) -> None:
            return None

    settings = keyed_settings()
    app = make_app(Bare(), tmp_path / "s.sqlite", settings)
    app.handed.spend = None
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as c:
        await login(c)
        page = (await c.get("/ui")).text
        assert "The spend log is off" in page and "No quota pools" in page and "No budgets configured." in page
    await app.aclose()


def test_every_static_file_ships_in_the_package() -> None:
    """pyproject's package data covers each file the proxy serves (a wheel install has them)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from router.server.ui.views import static_files

    root = Path(__file__).resolve().parents[4]
    pats = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["router.server.ui"]
    names = set(static_files())
    assert {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "dashboard.js", "dashboard.css"} <= names
    for name in names:
        assert any(fnmatch.fnmatch("static/" + name, p) for p in pats), name


async def test_an_unreachable_session_store_is_a_503_page(tmp_path: Any) -> None:
    class Down:
        async def read(self, *a: Any) -> Any:
            raise ConnectionError("ledger store down")

        raise_to = take = read

    app = make_app(DashRouter(), tmp_path / "s.sqlite", keyed_settings())
    app.gate.store = Down()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as c:
        assert (await c.get("/ui")).status_code == 303  # no cookie: the form, without asking the store
        r = await c.get("/ui", headers={"cookie": f"{COOKIE}={'A' * 43}"})
        assert r.status_code == 503 and "ledger store" in r.text and r.headers["content-security-policy"] == CSP
        assert (await login(c)).status_code == 503
    await app.aclose()
