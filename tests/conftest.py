"""Test-wide guards: no test may reach the network.

Any socket connect to a non-loopback address fails the test. respx/MockTransport
never open sockets, so mocked HTTP is unaffected; loopback stays allowed for the
real redis-server and proxy subprocess tests.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    if isinstance(host, (bytes, bytearray)):
        host = host.decode()
    if not isinstance(host, str):
        return True
    if host in ("localhost", "", "testserver") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkBlocked(RuntimeError):
    pass


def _guard(addr: object) -> None:
    if isinstance(addr, tuple) and addr and not _is_local(addr[0]):
        raise NetworkBlocked(f"test tried to reach the network: {addr!r}")


def _connect(self, addr):  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(addr)
    return _real_connect(self, addr)


def _connect_ex(self, addr):  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(addr)
    return _real_connect_ex(self, addr)


def _getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if not _is_local(host):
        raise NetworkBlocked(f"test tried to resolve a network host: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
    os.environ.setdefault("QUOTAROUTE_HOME", os.path.join(str(config.rootpath), ".pytest-home"))
    # No real keys from the developer's environment leak into tests.
    for k in list(os.environ):
        if k.endswith("_API_KEY") or k in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
            del os.environ[k]


SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


@pytest.fixture
def shared_dir() -> str:
    """Path to ../shared; skips the test with a reason when it is absent (plain clone)."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared is absent (plain clone): this test reads the shared datasets/catalog")
    return SHARED
