"""Real sockets: client disconnect mid-stream, graceful shutdown, and `quotaroute serve` as a subprocess."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai

from providers.fake import FakeProvider, reply
from tests.router.server.conftest import LiveServer, free_port, make_app
from tests.router.server.fakes import FakeRouter, hang_up_mid_stream, track_stream

ROOT = Path(__file__).resolve().parents[3]
BODY = b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}'


def _wait(pred: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_client_disconnect_cancels_upstream(spend_path: Any) -> None:
    seen: list[int] = []
    fake = FakeProvider(scripts=[reply("x" * 200, chunks=200, per_event_s=0.02)])
    track_stream(fake, seen)
    router = FakeRouter(fake)
    app = make_app(router, spend_path)
    with LiveServer(app) as srv:
        hang_up_mid_stream(srv.port, BODY, b'"content":"x"')
        assert _wait(lambda: router.stream_closed == 1 and seen)
        assert seen[0] < 100  # the upstream generator stopped early
        app.spend.flush()
        status, = sqlite3.connect(spend_path).execute("SELECT status FROM spend").fetchone()
        assert status == 499


def test_graceful_shutdown_finishes_in_flight(spend_path: Any) -> None:
    fake = FakeProvider(scripts=[reply("slow answer", latency_s=0.5)])
    router = FakeRouter(fake)
    app = make_app(router, spend_path)
    srv = LiveServer(app).__enter__()
    import threading

    out: dict[str, Any] = {}

    def call() -> None:
        c = openai.OpenAI(api_key="x", base_url=srv.url + "/v1", max_retries=0)
        out["r"] = c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])

    t = threading.Thread(target=call)
    t.start()
    assert _wait(lambda: app.in_flight == 1)
    srv.__exit__(None, None, None)  # ask uvicorn to stop while the request is in flight
    t.join(5)
    assert out["r"].choices[0].message.content == "slow answer"
    assert router.closed and app.closed  # lifespan closed the Router after the request finished
    assert sqlite3.connect(spend_path).execute("SELECT count(*) FROM spend").fetchone()[0] == 1


def test_serve_subprocess_with_both_sdks(tmp_path: Any) -> None:
    port = free_port()
    env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  max_body_bytes: 100000\n")
    p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--port", str(port),
                          "--router-factory", "tests.router.server.fakes:build"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait(lambda: _up(url), 60), p.stderr.read1().decode() if p.poll() is not None else "not up"
        o = openai.OpenAI(api_key="x", base_url=url + "/v1", max_retries=0)
        r = o.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        assert r.parse().choices[0].message.content == "Hello from the fake upstream!"
        assert r.headers["x-quotaroute-model"] == "fake:small"
        chunks = list(o.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].usage.total_tokens == 15
        a = anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)
        with a.messages.stream(model="auto", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as st:
            assert "".join(st.text_stream) == "Hello from the fake upstream!"
        big = httpx2.post(url + "/v1/chat/completions", content=b"x" * 100001)
        assert big.status_code == 413
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(15)
    assert p.returncode == 0
    assert sqlite3.connect(tmp_path / "spend.sqlite").execute("SELECT count(*) FROM spend").fetchone()[0] == 4


def test_serve_refuses_public_host_without_keys(tmp_path: Any) -> None:
    env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "router.cli", "serve", "--host", "0.0.0.0"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0" in r.stderr


def _up(url: str) -> bool:
    try:
        return httpx2.get(url + "/healthz", timeout=0.5).status_code == 200
    except httpx2.HTTPError:
        return False
