"""A real PostgreSQL server for the store tests: initdb in a temp dir, `postgres` on a
free loopback port, one fresh database per test.

initdb refuses to run as root, so under root (CI containers) both run as an
unprivileged user (`postgres` when the Debian package created it, else `nobody`)
through subprocess's `user=`/`group=`. Skips (with the reason) when no PostgreSQL
binaries are found or psycopg is not installed; scripts/test.sh installs both.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.router.quota.conftest import free_port

__all__ = ["pg_server", "pg_dsn", "pg_bin"]


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, else the newest Debian install."""
    exe = shutil.which(name)
    if exe:
        return exe
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else None


def _run_as() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    pytest.skip("running as root and no unprivileged user (postgres/nobody) to run initdb as")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a running server's `postgres` database (trust auth on 127.0.0.1)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -e '.[postgres]'")
    initdb, postgres = pg_bin("initdb"), pg_bin("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found; scripts/test.sh installs them "
                    "with apt-get install postgresql")
    as_user = _run_as()
    root = tempfile.mkdtemp(prefix="qr-pg-")
    data = os.path.join(root, "data")
    if as_user:
        os.chown(root, as_user["user"], as_user["group"])
    port = free_port()
    subprocess.run([initdb, "-D", data, "-U", "qr", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root, **as_user)
    proc = subprocess.Popen([postgres, "-D", data, "-p", str(port), "-k", root, "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                             "-c", "max_connections=200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root, **as_user)
    dsn = f"postgresql://qr@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("postgres did not start")
                time.sleep(0.1)
        yield dsn
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: str) -> str:
    """A fresh, empty database on the session's server (tests never see each other's rows)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return pg_server.rsplit("/", 1)[0] + "/" + name
