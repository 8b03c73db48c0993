"""One home directory and one config lookup, in a documented order."""

from __future__ import annotations

from pathlib import Path

from router.config import find_config, home, load_config


def test_home(monkeypatch, tmp_path):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path / "h"))
    assert home() == tmp_path / "h"
    monkeypatch.delenv("QUOTAROUTE_HOME")
    assert home() == Path("~/.quotaroute").expanduser()


def test_find_config_order(monkeypatch, tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("QUOTAROUTE_HOME", str(h))
    monkeypatch.delenv("QUOTAROUTE_CONFIG", raising=False)
    monkeypatch.chdir(work)
    assert find_config() is None and load_config().file is None
    (h / "config.yaml").write_text("policy: {default: best}\n")
    assert find_config() == str(h / "config.yaml")  # 4. $QUOTAROUTE_HOME/config.yaml
    (work / "quotaroute.yaml").write_text("policy: {default: cheapest}\n")
    assert find_config() == "quotaroute.yaml"  # 3. ./quotaroute.yaml beats home
    assert load_config().policy.default == "cheapest"
    env = tmp_path / "env.yaml"
    env.write_text("policy: {default: balanced}\n")
    monkeypatch.setenv("QUOTAROUTE_CONFIG", str(env))
    assert find_config() == str(env)  # 2. $QUOTAROUTE_CONFIG beats the current directory
    assert find_config("explicit.yaml") == "explicit.yaml"  # 1. --config beats everything
    assert find_config(Path("p.yaml")) == "p.yaml"


def test_every_command_uses_the_same_lookup(monkeypatch, tmp_path):
    """The proxy, the quota CLI and the SDK read the same file."""
    from router.quota.cli_support import open_ledger
    from router.sdk import Router
    from router.server.cli import load

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    env = tmp_path / "env.yaml"
    env.write_text("policy: {default: best}\nserver: {port: 4321}\nbudgets:\n  - {id: mine, limit_usd: 1}\n")
    monkeypatch.setenv("QUOTAROUTE_CONFIG", str(env))
    cfg, settings = load(find_config(None))
    assert cfg.file == str(env) and settings.port == 4321
    ledger, path, _ = open_ledger(None)
    assert path == str(env) and any(b.spec.id == "mine" for b in ledger.budgets)
    assert Router.from_config().policy.name == "best"
