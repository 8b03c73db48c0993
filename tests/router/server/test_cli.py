"""`quotaroute serve` as a subprocess: "listening" only once it is true, one-line start-up
errors, and the connection cap derived from the open-file limit."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.router.server.conftest import free_port
from tests.router.server.test_transport import PARTIAL, read_all, readable

ROOT = Path(__file__).resolve().parents[3]
FACTORY = ["--router-factory", "tests.router.server.fakes:build"]


def serve(tmp_path: Any, *args: str, nofile: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return subprocess.Popen([sys.executable, "-m", "router.cli", "serve", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit)


def wait_listening(p: subprocess.Popen, timeout: float = 60) -> str:
    assert p.stderr is not None
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if not select.select([p.stderr], [], [], 0.5)[0]:
            continue
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "listening on" in line:
            return line
    raise AssertionError("no 'listening' line: " + "".join(lines))


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def test_listening_is_printed_once_requests_are_served(tmp_path: Any) -> None:
    port = free_port()
    p = serve(tmp_path, "--port", str(port), *FACTORY)
    try:
        line = wait_listening(p)
        assert f"http://127.0.0.1:{port}" in line
        r = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=10)  # no retry: it is up when it says so
        assert r.status_code == 200
    finally:
        stop(p)


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Any) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        p = serve(tmp_path, "--port", str(port), *FACTORY)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert err.strip().splitlines() == [
        f"quotaroute serve: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process holds it; pick another with --port)"]


def test_a_config_error_is_reported_before_anything_listens(tmp_path: Any) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  port: eighty\n")
    p = serve(tmp_path, "--config", str(cfg), *FACTORY)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "config error" in err and "server.port" in err
    assert "listening" not in err and "Traceback" not in err


def test_with_1024_open_files_a_flood_of_1100_idle_connections_cannot_lock_out_a_client(tmp_path: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2400:
        if hard != resource.RLIM_INFINITY and hard < 2400:
            pytest.skip("needs 2,400 open files in the test process")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2400, hard))
    port = free_port()
    p = serve(tmp_path, "--port", str(port), *FACTORY, nofile=1024)
    flood: list[socket.socket] = []
    try:
        wait_listening(p)
        for _ in range(1100):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(PARTIAL)
            flood.append(s)
        time.sleep(1.5)
        # the server keeps 416 (derived from 1,024 open files) and answers the rest 503 at once
        refused = [s for s in flood if readable(s)]
        got = read_all(refused, timeout=20)
        assert sum(b.startswith(b"HTTP/1.1 503 ") for b in got.values()) >= 500
        assert len(os.listdir(f"/proc/{p.pid}/fd")) < 1000
        # a client arriving now takes the place of the longest-waiting idle connection
        for _ in range(3):
            r = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert r.status_code == 200
        assert p.poll() is None
    finally:
        for s in flood:
            s.close()
        stop(p)


def broken_factory(config_path: str | None = None) -> Any:
    """A router factory whose config is wrong (for the tests below)."""
    from router.errors import ConfigError

    raise ConfigError("providers.openai.base_url: not a URL", file="config.yaml", key="providers.openai.base_url")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_router_that_cannot_be_built_never_says_listening(tmp_path: Any, workers: str) -> None:
    p = serve(tmp_path, "--port", str(free_port()), "--workers", workers,
              "--router-factory", "tests.router.server.test_cli:broken_factory")
    _, err = p.communicate(timeout=90)
    assert p.returncode == 2 and "config error" in err and "providers.openai.base_url" in err
    assert "listening" not in err and "Traceback" not in err


def test_two_workers_say_listening_once_both_serve(tmp_path: Any) -> None:
    port = free_port()
    p = serve(tmp_path, "--port", str(port), "--workers", "2", *FACTORY)
    try:
        wait_listening(p)
        assert all(httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200 for _ in range(4))
    finally:
        stop(p)
    assert p.returncode == 0
