"""The proxy's connection and authentication limits (`server.limits` in the config file).

    server:
      limits:
        max_header_bytes: 65536         # request line + headers; 431 above
        header_timeout_s: 10            # headers must arrive within this; else 408
        body_timeout_s: 30              # the body must arrive within this after the headers; else 408
        keepalive_timeout_s: 5          # an idle kept-alive connection is closed after this
        max_connections: null           # per process; null = derived from the open-file limit
        max_auth_failures_per_minute: 20   # unknown keys tried per client address; 429 above

Enforced by router/server/transport.py (connections) and router/server/auth.py
(key attempts). See docs/proxy.md, "Limits".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from router.config.schema import ServerLimits
from router.errors import ConfigError

__all__ = ["Limits", "DEFAULT_LIMITS", "default_max_connections"]

_DEFAULT = ServerLimits.model_fields
_FD_RESERVE = 192  # listeners, spend log, ledger, redis, pipes, logs, draining refusals
_UPSTREAM_MAX = 512  # the proxy's upstream pool size (one socket per in-flight vendor call)


@dataclass(frozen=True)
class Limits:
    """`server.limits` in the config file (see docs/proxy.md, "Limits")."""

    # defaults come from the config schema, the one place they are written
    max_header_bytes: int = _DEFAULT["max_header_bytes"].default
    header_timeout_s: float = _DEFAULT["header_timeout_s"].default
    body_timeout_s: float = _DEFAULT["body_timeout_s"].default
    keepalive_timeout_s: float = _DEFAULT["keepalive_timeout_s"].default
    max_connections: int | None = None  # None = derived from the open-file limit
    max_auth_failures_per_minute: int = _DEFAULT["max_auth_failures_per_minute"].default

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "max_connections":
                continue
            zero_ok = f.name == "max_auth_failures_per_minute"  # 0 = no limit
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or (v == 0 and not zero_ok) \
                    or v == float("inf"):
                raise ConfigError(f"must be a positive number, got {v!r}", key=f"server.limits.{f.name}")

    @classmethod
    def of(cls, settings: Any) -> "Limits":
        """The limits of a ServerSettings (its `limits` attribute: a Limits, a mapping or any
        object with these attribute names); defaults where absent."""
        src = getattr(settings, "limits", None)
        if src is None:
            return DEFAULT_LIMITS
        if isinstance(src, Limits):
            return src
        get = src.get if isinstance(src, Mapping) else (lambda k, d=None: getattr(src, k, d))
        vals = {f.name: get(f.name, None) for f in fields(cls)}
        return cls(**{k: v for k, v in vals.items() if v is not None})

    def resolved(self) -> "Limits":
        """With `max_connections` filled in from the open-file limit."""
        if self.max_connections:
            return self
        return replace(self, max_connections=default_max_connections())


DEFAULT_LIMITS = Limits()


def default_max_connections(nofile: int | None = None) -> int:
    """Connections one process may hold: the open-file limit less a reserve for its own
    files and one upstream socket per in-flight call (the upstream pool holds at most 512).
    1,024 open files -> 416 connections; 65,536 -> 64,832."""
    if nofile is None:
        try:
            import resource  # lazy: Unix only (no `resource` module on Windows)

            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if nofile == resource.RLIM_INFINITY or nofile <= 0:
                nofile = 65536
        except (ImportError, OSError, ValueError):
            nofile = 1024
    avail = max(0, nofile - _FD_RESERVE)
    return max(16, avail - min(_UPSTREAM_MAX, avail // 2))
