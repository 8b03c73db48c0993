"""`quotaroute keys create|list|rotate|revoke` against a running proxy's admin API."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from router.commands import keys
from router.server.auth import KeyStore, ProxyKey, hash_key
from router.server.settings import ServerSettings
from tests.router.server.conftest import LiveServer, make_app
from tests.router.server.fakes import FakeRouter

ADMIN = "qr-cli-admin-key-0000000000"


def _run(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    keys.add_arguments(p)
    rc = keys.run(p.parse_args(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_keys_commands_against_a_live_proxy(tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    settings = ServerSettings(keys=KeyStore([], ProxyKey("admin", hash_key(ADMIN), admin=True)))
    with LiveServer(make_app(FakeRouter(), tmp_path / "spend.sqlite", settings)) as s:
        url = ["--url", s.url]
        rc, out, err = _run(["list", *url], capsys)
        assert rc == 2 and "QUOTAROUTE_ADMIN_KEY" in err
        monkeypatch.setenv("QUOTAROUTE_ADMIN_KEY", ADMIN)
        rc, out, err = _run(["create", "ci-bot", *url, "--budget-usd", "5", "--model", "auto", "--rpm", "60",
                             "--tag", "ci", "--expires", "30d"], capsys)
        assert rc == 0 and out.startswith("key ci-bot: qr-") and "shown once" in err
        rc, out, _ = _run(["list", *url, "--json"], capsys)
        (row,) = json.loads(out)["data"]
        assert (row["id"], row["budget_usd"], row["models"], row["rpm"], row["tags"]) == ("ci-bot", "5", ["auto"], 60, ["ci"])
        assert row["expires_at"] > 0
        rc, out, _ = _run(["rotate", "ci-bot", *url], capsys)
        assert rc == 0 and "qr-" in out
        rc, out, err = _run(["create", "bad id", *url], capsys)
        assert rc == 1 and "(id)" in err
        rc, out, _ = _run(["revoke", "ci-bot", *url], capsys)
        assert rc == 0 and "revoked" in out
        rc, out, err = _run(["revoke", "ci-bot", *url], capsys)
        assert rc == 1 and "404" in err
        rc, out, err = _run(["rotate", *url], capsys)
        assert rc == 2


@pytest.mark.parametrize("value", ["30d", "12h", "90m"])
def test_relative_expiry(value: str) -> None:
    assert keys.parse_expiry(value, now=1000.0) > 1000.0
