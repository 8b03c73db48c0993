"""The proxy's own settings: the `server:` section of the config file.

    server:
      host: 127.0.0.1
      port: 4000
      max_body_bytes: 4194304        # 413 above this
      spend_db: ~/.quotaroute/spend.sqlite   # default $QUOTAROUTE_HOME/spend.sqlite; "off" disables
      admin_key: "sha256$..$.."
      keys: [...]                    # see router/server/auth.py
      budget_period: month           # default period for per-key budgets
      reason_header_max: 200         # x-quotaroute-route-reason truncation

Validated once at start-up; a bad value raises `ConfigError(file=, key=)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from router.config.paths import home
from router.errors import ConfigError
from router.server.auth import KeyStore, ProxyKey

__all__ = ["ServerSettings", "LOOPBACK", "is_loopback"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (never 0.0.0.0 / ::, which listen everywhere)."""
    import ipaddress

    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = 4 * 1024 * 1024
    spend_db: str | None = ""  # "" = default path, None = disabled
    keys: KeyStore = field(default_factory=lambda: KeyStore([]))
    reason_header_max: int = 200
    virtual_models: tuple[str, ...] = ("auto", "auto:cheap", "auto:best", "auto:free")

    def spend_db_path(self) -> Path | None:
        if self.spend_db is None:
            return None
        if self.spend_db == "":
            return home() / "spend.sqlite"
        return Path(os.path.expanduser(self.spend_db))

    @classmethod
    def from_mapping(cls, data: Any, *, file: str | None = None) -> "ServerSettings":
        """Build from the `server:` mapping (a dict, or an object with attributes / model_dump)."""
        if data is None:
            return cls()
        if hasattr(data, "model_dump"):
            data = data.model_dump()
        elif not isinstance(data, Mapping):
            data = {k: getattr(data, k) for k in dir(data) if not k.startswith("_")}

        def err(key: str, msg: str) -> ConfigError:
            return ConfigError(msg, file=file, key=f"server.{key}")

        s = cls()
        if data.get("host") is not None:
            s.host = str(data["host"])
        for name in ("port", "max_body_bytes", "reason_header_max"):
            if data.get(name) is not None:
                v = data[name]
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise err(name, f"must be a positive integer, got {v!r}")
                setattr(s, name, v)
        if "spend_db" in data:
            v = data["spend_db"]
            s.spend_db = None if v in (None, False, "off", "none") else str(v)
        period = data.get("budget_period") or "month"
        if period not in ("day", "month", "total"):
            raise err("budget_period", f"must be day, month or total, got {period!r}")
        admin = None
        if data.get("admin_key"):
            admin = ProxyKey(id="admin", hash=_check_hash(data["admin_key"], err("admin_key", "")), admin=True)
        keys: list[ProxyKey] = []
        raw_keys = data.get("keys") or []
        if not isinstance(raw_keys, list):
            raise err("keys", "must be a list of {id, hash, budget_usd, models, rpm}")
        for i, k in enumerate(raw_keys):
            where = f"keys[{i}]"
            if not isinstance(k, Mapping) or not k.get("id") or not k.get("hash"):
                raise err(where, "each key needs an `id` and a `hash` (see `quotaroute serve --new-key ID`)")
            budget = None
            if k.get("budget_usd") is not None:
                try:
                    budget = Decimal(str(k["budget_usd"]))
                except InvalidOperation:
                    raise err(where + ".budget_usd", f"not a number: {k['budget_usd']!r}") from None
            models = k.get("models")
            if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
                raise err(where + ".models", "must be a list of model ids / glob patterns")
            rpm = k.get("rpm")
            if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm <= 0):
                raise err(where + ".rpm", f"must be a positive integer, got {rpm!r}")
            kp = k.get("budget_period") or period
            if kp not in ("day", "month", "total"):
                raise err(where + ".budget_period", f"must be day, month or total, got {kp!r}")
            keys.append(ProxyKey(
                id=str(k["id"]), hash=_check_hash(k["hash"], err(where + ".hash", "")), budget_usd=budget,
                budget_period=kp, models=tuple(models) if models is not None else None, rpm=rpm,
            ))
        try:
            s.keys = KeyStore(keys, admin)
        except ValueError as e:
            raise err("keys", str(e)) from None
        return s


def _check_hash(value: Any, err: ConfigError) -> str:
    v = str(value)
    if not (v.startswith("sha256$") and v.count("$") == 2) and not (v.startswith("scrypt$") and v.count("$") == 5):
        raise ConfigError(
            "must be a key hash like sha256$<salt>$<hex> (run `quotaroute serve --new-key ID`), not a clear-text key",
            file=err.file, key=err.key,
        )
    return v
