"""The `server:` section: one strict schema, built into the proxy's ServerSettings;
`quotaroute serve` reports config mistakes as one line before anything else."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from router.config import ServerLimits, build_server_settings, load_config, parse_config
from router.errors import ConfigError
from router.server.auth import KeyStore, hash_key

ROOT = Path(__file__).resolve().parents[3]
H = hash_key("k1")


def settings(server: dict) -> object:
    return build_server_settings(parse_config({"server": server}, file="cfg.yaml"))


def test_full_server_section_builds_settings(tmp_path):
    s = settings({
        "host": "127.0.0.1", "port": 4100, "max_body_bytes": 1000, "spend_db": "off", "admin_key": H,
        "budget_period": "day", "reason_header_max": 50,
        "keys": [{"id": "team-a.1", "hash": H, "budget_usd": 5, "models": ["auto", "openai:*"], "rpm": 60,
                  "user": "alice", "tags": ["team-a", "batch"]},
                 {"id": "ci", "hash": H, "budget_period": "total"}],
        "limits": {"max_header_bytes": 8192, "header_timeout_s": 2.5, "max_connections": 100, "max_json_depth": 32},
    })
    assert (s.host, s.port, s.max_body_bytes, s.reason_header_max, s.budget_period) == (
        "127.0.0.1", 4100, 1000, 50, "day")
    assert s.spend_db_path() is None and isinstance(s.keys, KeyStore) and s.keys.admin is not None
    a, ci = s.keys.keys
    assert (a.id, a.budget_usd, a.budget_period, a.models, a.rpm, a.user, a.tags) == (
        "team-a.1", Decimal(5), "day", ("auto", "openai:*"), 60, "alice", ("team-a", "batch"))
    assert (ci.budget_period, ci.user, ci.tags, ci.budget_usd) == ("total", None, None, None)
    lim = s.limits
    assert (lim.max_header_bytes, lim.header_timeout_s, lim.max_connections, lim.max_json_depth) == (8192, 2.5, 100, 32)
    assert (lim.body_timeout_s, lim.keepalive_timeout_s, lim.stream_write_timeout_s) == (30, 5, 30)
    assert lim.max_auth_failures_per_minute == 20
    assert s.virtual_models and lim.max_connections == 100


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    s = settings({})
    assert (s.host, s.port, s.max_body_bytes, s.budget_period) == ("127.0.0.1", 4000, 4 * 1024 * 1024, "month")
    assert s.spend_db_path() == tmp_path / "spend.sqlite" and s.keys.open_access
    assert s.limits == ServerLimits() and s.limits.max_connections is None
    assert s.limits.max_connections is None  # derived from the open-file limit when served


@pytest.mark.parametrize("spend_db", [False, None, "off", "none"])
def test_spend_db_off(spend_db):
    assert settings({"spend_db": spend_db}).spend_db_path() is None
    assert settings({"spend_db": "~/x.sqlite"}).spend_db_path() == Path(os.path.expanduser("~/x.sqlite"))


def test_yaml_off_means_off(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("server:\n  spend_db: off\n")
    assert build_server_settings(load_config(str(p))).spend_db_path() is None


@pytest.mark.parametrize("server,key,msg", [
    ({"port": 0}, "server.port", "greater than or equal to 1"),
    ({"port": 70000}, "server.port", "less than or equal to 65535"),
    ({"port": True}, "server.port", "valid integer"),
    ({"max_body_bytes": 0}, "server.max_body_bytes", "greater than 0"),
    ({"budget_period": "week"}, "server.budget_period", "'day', 'month' or 'total'"),
    ({"admin_key": "hunter2"}, "server.admin_key", "key hash"),
    ({"keys": [{"id": "a b", "hash": H}]}, "server.keys[0].id", "pattern"),
    ({"keys": [{"id": "x" * 65, "hash": H}]}, "server.keys[0].id", "pattern"),
    ({"keys": [{"hash": H}]}, "server.keys[0].id", "required"),
    ({"keys": [{"id": "a"}]}, "server.keys[0].hash", "required"),
    ({"keys": [{"id": "a", "hash": H}, {"id": "a", "hash": H}]}, "server.keys", "duplicate key id 'a'"),
    ({"keys": [{"id": "a", "hash": H, "rpm": 0}]}, "server.keys[0].rpm", "greater than or equal to 1"),
    ({"keys": [{"id": "a", "hash": H, "rpm": 1.5}]}, "server.keys[0].rpm", "valid integer"),
    ({"keys": [{"id": "a", "hash": H, "user": "u" * 257}]}, "server.keys[0].user", "at most 256"),
    ({"keys": [{"id": "a", "hash": H, "tags": ["t" * 65]}]}, "server.keys[0].tags[0]", "at most 64"),
    ({"keys": [{"id": "a", "hash": H, "tags": [f"t{i}" for i in range(17)]}]}, "server.keys[0].tags", "at most 16"),
    ({"keys": [{"id": "a", "hash": H, "models": "auto"}]}, "server.keys[0].models", "valid list"),
    ({"keys": {"id": "a"}}, "server.keys", "valid list"),
    ({"limits": {"header_timeout_s": 0}}, "server.limits.header_timeout_s", "greater than 0"),
    ({"limits": {"body_timeout_s": float("nan")}}, "server.limits.body_timeout_s", "finite"),
    ({"limits": {"max_connections": 0}}, "server.limits.max_connections", "greater than or equal to 1"),
    ({"limits": {"max_header_bytes": 10}}, "server.limits.max_header_bytes", "greater than or equal to 1024"),
    ({"limits": {"max_json_depth": 10**6}}, "server.limits.max_json_depth", "less than or equal to 1000"),
])
def test_bad_server_values(server, key, msg):
    with pytest.raises(ConfigError) as ei:
        settings(server)
    assert ei.value.key == key and msg in str(ei.value), str(ei.value)
    assert "hunter2" not in str(ei.value)


def test_provider_timeouts_reach_the_adapter_only_when_set(monkeypatch):
    import providers.registry as reg
    from router.config import build_providers

    seen = []
    real = reg.build_provider

    def spy(*a, **kw):
        seen.append(kw.get("timeouts", "absent"))
        kw.pop("timeouts", None)
        return real(*a, **kw)

    monkeypatch.setattr(reg, "build_provider", spy)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-aaaaaaaaaaaaaaaa")
    build_providers(parse_config({"providers": {"openai": {"api_key_env": "OPENAI_API_KEY"}}}))
    build_providers(parse_config({"providers": {"openai": {"api_key_env": "OPENAI_API_KEY",
                                                           "timeouts": {"connect_s": 3, "idle_s": 20.5}}}}))
    assert seen == ["absent", {"connect_s": 3.0, "idle_s": 20.5}]
    with pytest.raises(ConfigError, match="providers.openai.timeouts.first_byte_s"):
        parse_config({"providers": {"openai": {"timeouts": {"first_byte_s": -1}}}})


def _serve(tmp_path, text: str, *extra: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "quotaroute.yaml"
    cfg.write_text(text)
    env = {**os.environ, "QUOTAROUTE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--port", "1", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("text,line,needle", [
    ("server:\n  port: 4100\n  kyes: []\n", 3, "server.kyes: unknown key 'kyes'; did you mean 'keys'?"),
    ("server:\n  keys:\n    - id: a\n      hash: \"" + H + "\"\n      budget_usd: .nan\n", 5,
     "server.keys[0].budget_usd"),
    ("providers:\n  openai:\n    api_key_env: OPENAI_API_KEY\n", 3, "OPENAI_API_KEY is not set"),
])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_reports_config_errors_first_as_one_line(tmp_path, text, line, needle, workers):
    r = _serve(tmp_path, text, "--workers", workers)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"quotaroute.yaml:{line}: " in lines[0] and needle in lines[0]
    assert "Traceback" not in r.stderr and "listening" not in r.stderr
