"""SIGHUP reload of a real `quotaroute serve` subprocess (one process, and --workers 2)
against a loopback OpenAI-compatible upstream: a new model and a new key take effect,
a broken file is refused with one log line and the old config keeps serving, a
stream running during the reload completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from router.server.auth import hash_key
from tests.router.server.conftest import free_port
from tests.router.server.test_live import _up, _wait
from tests.router.server.test_real_router import UPSTREAM_KEY, FakeUpstream

ROOT = Path(__file__).resolve().parents[3]
KEY_A, KEY_B = "qr-reload-key-A-1234567890", "qr-reload-key-B-0987654321"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX only")


def config(up_port: int, port: int, model: str, keys: dict[str, str]) -> str:
    entries = "".join(f"    - id: {k}\n      hash: \"{hash_key(v)}\"\n" for k, v in keys.items())
    return (f"providers:\n  openai:\n    base_url: http://127.0.0.1:{up_port}/v1\n    api_key_env: TEST_UPSTREAM_KEY\n"
            f"models:\n  include: [{model}]\npolicy:\n  default: cheapest\n"
            f"server:\n  port: {port}\n  keys:\n{entries}")


class Serve:
    """`quotaroute serve` in a subprocess; its stderr lines are collected as they come."""

    def __init__(self, cfg: Path, home: Path, workers: int) -> None:
        env = {**os.environ, "QUOTAROUTE_HOME": str(home), "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
        self.p = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg),
                                   "--workers", str(workers)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def matching(self, text: str) -> list[str]:
        return [ln for ln in self.lines if text in ln]

    def hup(self) -> None:
        self.p.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self._t.join(5)


_CLIENT: list[httpx2.Client] = []


def chat(url: str, key: str, content: str = "hi") -> httpx2.Response:
    """One request on a new connection (so with workers any of them may answer)."""
    if not _CLIENT:
        _CLIENT.append(httpx2.Client(timeout=10, limits=httpx2.Limits(max_keepalive_connections=0)))
    return _CLIENT[0].post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "auto", "messages": [{"role": "user", "content": content}]})


def serves(url: str, key: str, model: str) -> bool:
    r = chat(url, key)
    return r.status_code == 200 and r.headers.get("x-quotaroute-model") == model


@pytest.mark.slow
def test_sighup_reloads_a_single_process_server(tmp_path: Any) -> None:
    with FakeUpstream() as up:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = tmp_path / "quotaroute.yaml"
        cfg.write_text(config(up.port, port, "openai:gpt-4o-mini", {"a": KEY_A}))
        srv = Serve(cfg, tmp_path, workers=1)
        try:
            assert _wait(lambda: _up(url), 60), "\n".join(srv.lines)
            assert serves(url, KEY_A, "openai:gpt-4o-mini")
            assert chat(url, KEY_B).status_code == 401

            # a stream that runs across the reload (200 chunks, 20 ms apart, from the upstream)
            got: dict[str, Any] = {}
            started = threading.Event()

            def stream() -> None:
                with httpx2.stream("POST", url + "/v1/chat/completions", timeout=30,
                                   headers={"authorization": f"Bearer {KEY_A}"},
                                   json={"model": "auto", "stream": True,
                                         "messages": [{"role": "user", "content": "slow"}]}) as r:
                    got["status"] = r.status_code
                    parts = []
                    for chunk in r.iter_bytes():
                        parts.append(chunk)
                        started.set()
                    got["body"] = b"".join(parts)

            t = threading.Thread(target=stream, daemon=True)
            t.start()
            assert started.wait(10)

            cfg.write_text(config(up.port, port, "openai:gpt-4o", {"a": KEY_A, "b": KEY_B}))
            t0 = time.monotonic()
            srv.hup()
            assert _wait(lambda: serves(url, KEY_B, "openai:gpt-4o"), 10), "\n".join(srv.lines)
            took = time.monotonic() - t0
            assert serves(url, KEY_A, "openai:gpt-4o")
            assert srv.matching("config reloaded"), srv.lines
            t.join(20)
            assert got.get("status") == 200 and got["body"].count(b'"content":"z"') == 200  # finished on the old config
            assert b"[DONE]" in got["body"]
            assert up.stream_ended == ["complete"]

            # the port is read at start-up only: said in one line, the rest applies, the socket stays
            cfg.write_text(config(up.port, free_port(), "openai:gpt-4o-mini", {"a": KEY_A, "b": KEY_B}))
            srv.hup()
            assert _wait(lambda: serves(url, KEY_B, "openai:gpt-4o-mini"), 10), "\n".join(srv.lines)
            assert _wait(lambda: bool(srv.matching("server.port changed: takes effect on the next restart")), 5)

            cfg.write_text("server:\n  kyes: []\n")  # a typo: refused
            srv.hup()
            assert _wait(lambda: bool(srv.matching("reload refused")), 10), srv.lines
            refused = srv.matching("reload refused")
            assert len(refused) == 1 and "kyes" in refused[0], refused
            assert serves(url, KEY_B, "openai:gpt-4o-mini")  # still the last good config
            assert srv.p.poll() is None
            print(f"reload took {took:.2f} s (SIGHUP to the first request served by the new config)")
        finally:
            srv.stop()
        assert UPSTREAM_KEY not in "\n".join(srv.lines)


@pytest.mark.slow
def test_sighup_reaches_every_worker(tmp_path: Any) -> None:
    with FakeUpstream() as up:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = tmp_path / "quotaroute.yaml"
        cfg.write_text(config(up.port, port, "openai:gpt-4o-mini", {"a": KEY_A}))
        srv = Serve(cfg, tmp_path, workers=2)
        try:
            assert _wait(lambda: _up(url), 60), "\n".join(srv.lines)
            assert serves(url, KEY_A, "openai:gpt-4o-mini")
            cfg.write_text(config(up.port, port, "openai:gpt-4o", {"a": KEY_A, "b": KEY_B}))
            t0 = time.monotonic()
            srv.hup()

            assert _wait(lambda: serves(url, KEY_B, "openai:gpt-4o"), 15), "\n".join(srv.lines)
            took = time.monotonic() - t0

            def everywhere() -> bool:  # new connections land on either worker: 12 in a row on the new config
                return all(serves(url, KEY_B, "openai:gpt-4o") for _ in range(12))

            assert _wait(everywhere, 30), "\n".join(srv.lines)
            assert len(srv.matching("config reloaded")) == 1, srv.lines  # said once, by the supervisor

            cfg.write_text("server:\n  kyes: []\n")
            srv.hup()
            assert _wait(lambda: bool(srv.matching("reload refused")), 10), srv.lines
            time.sleep(1.0)  # a worker that reloaded on its own would log too
            assert len(srv.matching("reload refused")) == 1, srv.lines
            assert all(serves(url, KEY_B, "openai:gpt-4o") for _ in range(6))
            assert srv.p.poll() is None
            print(f"reload took {took:.2f} s with 2 workers")
        finally:
            srv.stop()
