"""Config reload (router.server.reload) in process: the swap, in-flight requests on the
old app, a refused file, the start-up-only settings. The real `quotaroute serve`
subprocess with SIGHUP is in test_reload_serve.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from providers.fake import FakeProvider, reply
from router.errors import ConfigError
from router.server.app import ProxyApp, create_app
from router.server.reload import Reloading, restart_only
from router.server.settings import ServerSettings
from router.server.spendlog import summarize
from tests.router.server.conftest import make_app
from tests.router.server.fakes import FakeRouter


class Call:
    """One ASGI request driven by hand: the body, then a receive() that waits (no disconnect)."""

    def __init__(self, app: Any, body: dict[str, Any], path: str = "/v1/chat/completions") -> None:
        self.scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                      "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 5000),
                      "server": ("127.0.0.1", 4000), "scheme": "http", "http_version": "1.1", "root_path": ""}
        self.body = orjson.dumps(body)
        self.sent: list[dict[str, Any]] = []
        self.first_chunk = asyncio.Event()
        self._hold = asyncio.Event()
        self._given = False
        self.task = asyncio.create_task(app(self.scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._given:
            self._given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._hold.wait()
        return {"type": "http.disconnect"}

    async def _send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)
        if msg["type"] == "http.response.body" and msg.get("body"):
            self.first_chunk.set()

    async def done(self) -> tuple[int, dict[bytes, bytes], bytes]:
        await asyncio.wait_for(self.task, 20)
        self._hold.set()
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return start["status"], dict(start["headers"]), body


def successor(router: FakeRouter) -> Any:
    def rebuild(current: ProxyApp) -> ProxyApp:
        return create_app(router, current.settings, spendlog=current.spend, responses=current.responses,
                          cache=current.cache, metrics=current.metrics)
    return rebuild


async def test_new_requests_take_the_new_app_while_a_stream_finishes_on_the_old(tmp_path: Any) -> None:
    old_router = FakeRouter(FakeProvider(scripts=[reply("y" * 40, chunks=40, per_event_s=0.02)]),
                            models=("fake:small",))
    new_router = FakeRouter(FakeProvider(scripts=[reply("from the new config")]), models=("fake:large",))
    old = make_app(old_router, tmp_path / "spend.sqlite")
    shared = old.spend
    rl = Reloading(old, successor(new_router))
    stream = Call(rl, {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    await asyncio.wait_for(stream.first_chunk.wait(), 10)
    assert await rl.reload()
    assert rl.app is not old and rl.reloads == 1
    status, headers, body = await Call(rl, {"model": "auto", "messages": [{"role": "user", "content": "x"}]}).done()
    assert status == 200 and headers[b"x-quotaroute-model"] == b"fake:large", body
    assert b"from the new config" in body
    assert not old_router.closed  # its stream is still running
    status, _, body = await stream.done()
    assert status == 200 and body.count(b'"content":"y"') == 40 and body.rstrip().endswith(b"[DONE]")
    for _ in range(200):  # retired once its last request ended
        if old_router.closed:
            break
        await asyncio.sleep(0.02)
    assert old_router.closed and not new_router.closed
    assert rl.app.spend is shared is not None and rl.app.metrics is old.metrics  # shared, still open
    shared.flush()
    rows = {r["model"]: r["requests"] for r in summarize(tmp_path / "spend.sqlite", by="model")}
    assert rows == {"fake:small": 1, "fake:large": 1}, rows  # one log for both apps, not closed with the old one
    await rl.aclose()
    assert new_router.closed


async def test_a_refused_file_keeps_the_running_app(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    router = FakeRouter(models=("fake:small",))
    app = make_app(router, tmp_path / "spend.sqlite")

    def broken(current: ProxyApp) -> ProxyApp:
        raise ConfigError("unknown key 'kyes'; did you mean 'keys'?", file="quotaroute.yaml", line=3,
                          key="server.kyes")

    rl = Reloading(app, broken)
    with caplog.at_level(logging.WARNING, logger="quotaroute.server"):
        assert not await rl.reload()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "reload refused" in lines[0] and "quotaroute.yaml:3" in lines[0], lines
    assert rl.app is app and not router.closed
    status, headers, _ = await Call(rl, {"model": "auto", "messages": [{"role": "user", "content": "x"}]}).done()
    assert status == 200 and headers[b"x-quotaroute-model"] == b"fake:small"
    await rl.aclose()
    assert router.closed


async def test_signals_during_a_reload_coalesce_into_one_more(tmp_path: Any) -> None:
    app = make_app(FakeRouter(), tmp_path / "spend.sqlite")
    built: list[int] = []

    def rebuild(current: ProxyApp) -> ProxyApp:
        built.append(1)
        import time

        time.sleep(0.2)  # a slow build (runs in a thread)
        return create_app(FakeRouter(), current.settings, spendlog=current.spend, responses=current.responses,
                          metrics=current.metrics)

    rl = Reloading(app, rebuild)
    for _ in range(5):
        rl.request_reload()
    await asyncio.sleep(0)
    assert rl._task is not None
    await asyncio.wait_for(rl._task, 10)
    assert len(built) == 2 and rl.reloads == 2
    await rl.aclose()


def test_start_up_only_settings_are_kept_and_named() -> None:
    running = ServerSettings(host="0.0.0.0", port=4000, spend_db="/data/spend.sqlite", reason_header_max=200)
    new = ServerSettings(host="0.0.0.0", port=5000, spend_db="/data/spend.sqlite", reason_header_max=50)
    kept, changed = restart_only(running, new)
    assert kept.port == 4000 and kept.reason_header_max == 50  # the port needs a restart; the rest applies
    assert changed == ["server.port"]
    assert restart_only(running, running)[1] == []


def test_a_reload_that_drops_every_key_is_refused_beyond_loopback(tmp_path: Any) -> None:
    from router.server.auth import hash_key
    from router.server.cli import check_reload

    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text(f"server:\n  keys:\n    - id: a\n      hash: \"{hash_key('qr-a-1234567890')}\"\n")
    running = check_reload(str(cfg), None, "0.0.0.0", ServerSettings())[1]
    cfg.write_text("server:\n  port: 4000\n")  # no keys left
    with pytest.raises(ConfigError, match="no proxy keys"):
        check_reload(str(cfg), None, "0.0.0.0", running)
    assert check_reload(str(cfg), None, "127.0.0.1", running)[1].keys.open_access  # loopback: allowed


async def test_the_response_cache_carries_over_while_its_section_is_unchanged(tmp_path: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from router.server.cli import build_app, rebuild_app

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    factory = "tests.router.server.fakes:build"
    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text("cache:\n  enabled: true\n  store: memory\n  ttl_s: 60\n")
    first = build_app(str(cfg), factory)
    assert first.cache is not None
    cfg.write_text("cache:\n  enabled: true\n  store: memory\n  ttl_s: 60\npolicy:\n  default: cheapest\n")
    second = rebuild_app(str(cfg), factory, "127.0.0.1", first)
    assert second.cache is first.cache and second.spend is first.spend and second.metrics is first.metrics
    await first.retire(second)
    assert second.cache is not None and first.cache is None  # the successor's; not closed with the old app
    cfg.write_text("cache:\n  enabled: true\n  store: memory\n  ttl_s: 5\n")
    third = rebuild_app(str(cfg), factory, "127.0.0.1", second)
    assert third.cache is not second.cache and third.cache is not None  # a changed section: a new cache
    await second.retire(third)
    await third.aclose()
