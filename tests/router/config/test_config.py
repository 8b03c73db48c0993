"""Config: one YAML file validated once; errors name file, line and key."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from router.config import build_router_kwargs, load_config, parse_config
from router.errors import ConfigError
from router.sdk import Router

GOOD = """\
providers:
  openai:
    api_key_env: [OPENAI_API_KEY, OPENAI_API_KEY_2]
  deepseek:
    api_key_env: DEEPSEEK_API_KEY
    base_url: https://api.deepseek.com/v1
models:
  exclude: ["openai:gpt-4o*"]
  overrides:
    deepseek:deepseek-chat:
      context_window: 64000
policy:
  default: balanced
  lambda: 0.1
  quality_floors: {code: 0.8, default: 0.4}
  max_cost_usd: "0.05"
  regions: [us, cn]
  cascade: {floor: 0.3, max_steps: 2}
rules:
  - name: code-cheap
    match: {task: code, metadata: {team: infra}}
    models: ["deepseek:*"]
    policy: cheapest
quotas:
  - id: ds-free
    models: ["deepseek:*"]
    free: true
    limits: [{per: day, requests: 10}]
budgets:
  - {id: monthly, scope: global, period: month, limit_usd: "5"}
ledger:
  store: sqlite
server:
  port: 4100
  keys: []
"""


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-aaaaaaaaaaaaaaaa")
    monkeypatch.setenv("OPENAI_API_KEY_2", "sk-test-bbbbbbbbbbbbbbbb")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-cccccccccccccccc")


def write(tmp_path, text, name="quotaroute.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def fails(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    e = ei.value
    assert e.file == path
    return e


def test_good_config_builds_a_router(tmp_path, keys, monkeypatch):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path / "home"))
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.server.port == 4100 and cfg.server.keys == []
    assert [p.id for p in cfg.pools][-1] == "ds-free" and cfg.budget_specs[0].limit_usd == Decimal(5)
    router = Router.from_config(cfg.file)
    assert router._keys == {"openai": ("OPENAI_API_KEY", "OPENAI_API_KEY_2"), "deepseek": ("DEEPSEEK_API_KEY",)}
    assert router.policy.name == "balanced" and router.policy.cost_weight == 0.1
    assert router.policy.quality_floors["code"] == 0.8 and router.policy.default_floor == 0.4
    assert router.policy.max_cost_usd == Decimal("0.05") and router.policy.regions == frozenset({"us", "cn"})
    assert router.policy.rules[0].name == "code-cheap" and router.policy.rules[0].policy == "cheapest"
    assert not any(c.id.startswith("openai:gpt-4o") for c in router.candidates)
    assert router.catalog.get("deepseek:deepseek-chat").context_window == 64000
    assert (tmp_path / "home").is_dir()  # sqlite ledger under $QUOTAROUTE_HOME
    plan = router.explain("hello", metadata={"team": "infra"}, )
    assert plan.steps
    router.close()


def test_explicit_argument_beats_file_beats_environment(tmp_path, keys, monkeypatch):
    path = write(tmp_path, "providers:\n  deepseek: {api_key_env: DEEPSEEK_API_KEY}\npolicy: {default: best}\n")
    monkeypatch.setenv("QUOTAROUTE_POLICY", "cheapest")
    assert Router.from_config(path).policy.name == "best"  # file > environment
    assert Router.from_config(path, policy="cascade").policy.name == "cascade"  # argument > file
    bare = write(tmp_path, "providers:\n  deepseek: {api_key_env: DEEPSEEK_API_KEY}\n", "bare.yaml")
    assert Router.from_config(bare).policy.name == "cheapest"  # environment when the file is silent
    monkeypatch.setenv("QUOTAROUTE_CONFIG", path)
    assert load_config().file == path
    monkeypatch.delenv("QUOTAROUTE_CONFIG")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    write(tmp_path, "policy: {default: cheapest}\n", "config.yaml")
    assert load_config().file == str(tmp_path / "config.yaml")


def test_no_config_uses_environment_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.setenv("GROQ_API_KEY", "gsk_aaaaaaaaaaaaaaaaaaaaaaaa")
    kw = build_router_kwargs(load_config())
    assert list(kw["providers"]) == ["groq"] and list(kw["providers"]["groq"]) == ["GROQ_API_KEY"]


def test_unknown_top_level_key_suggests(tmp_path):
    e = fails(tmp_path, "providers: {}\npolcy:\n  default: best\n")
    assert e.line == 2 and e.key == "polcy" and "did you mean 'policy'" in str(e)


def test_unknown_nested_key_names_line_and_path(tmp_path):
    e = fails(tmp_path, "providers:\n  openai:\n    base_url: https://x\n    api_key: OPENAI_API_KEY\n")
    assert e.line == 4 and e.key == "providers.openai.api_key" and "did you mean 'api_key_env'" in str(e)
    e = fails(tmp_path, "rules:\n  - name: r\n    match:\n      tsk: code\n")
    assert e.line == 4 and e.key == "rules[0].match.tsk" and "did you mean 'task'" in str(e)


def test_bad_values(tmp_path):
    e = fails(tmp_path, "policy:\n  default: fastest\n")
    assert e.line == 2 and e.key == "policy.default" and "fastest" in str(e)
    e = fails(tmp_path, "policy:\n  lambda: 0.1\n  quality_floors:\n    poetry: 0.5\n")
    assert e.line == 3 and "unknown task kind 'poetry'" in str(e)
    e = fails(tmp_path, "policy:\n  max_attempts: 0\n")
    assert e.line == 2 and e.key == "policy.max_attempts"


def test_pasted_key_is_rejected_without_echoing_it(tmp_path):
    e = fails(tmp_path, "providers:\n  openai:\n    api_key_env: sk-live-abcdefghijklmnop\n")
    assert e.line == 3 and "sk-live" not in str(e) and "NAME" in str(e)


def test_quota_errors_come_from_the_quota_spec_with_lines(tmp_path):
    e = fails(tmp_path, "quotas:\n  - id: ok\n    provider: groq\n    limits: [{per: day, requests: 5}]\n"
                        "  - id: bad\n    provider: groq\n    limits: [{per: fortnight, requests: 5}]\n")
    assert e.line == 7 and e.key == "quotas[1].limits[0].per"


def test_missing_key_variable_names_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = write(tmp_path, "server: {}\nproviders:\n  openai:\n    api_key_env: OPENAI_API_KEY\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(path)
    assert ei.value.line == 4 and ei.value.key == "providers.openai.api_key_env" and "OPENAI_API_KEY" in str(ei.value)


def test_invalid_yaml_and_non_mapping(tmp_path):
    e = fails(tmp_path, "policy:\n  default: [best\n")
    assert e.line is not None
    e = fails(tmp_path, "- just\n- a list\n")
    assert "mapping" in str(e)


def test_reserved_internal_fields_are_not_config_keys():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"pools": []}, file="x.yaml")


def test_secrets_never_in_reprs(tmp_path, keys, monkeypatch):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    router = Router.from_config(write(tmp_path, GOOD.replace("store: sqlite", "store: memory")))
    blob = repr(router.config) + repr(router._providers) + str(router.config.model_dump())
    assert "sk-test" not in blob
    assert os.environ["OPENAI_API_KEY"] not in blob


def test_the_documented_complete_example_is_valid(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "config.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "complete example" in b)
    for var in ("OPENAI_API_KEY", "OPENAI_API_KEY_2", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "GROQ_API_KEY"):
        monkeypatch.setenv(var, f"test-{var.lower()}-0123456789")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    path = write(tmp_path, block.replace("~/.quotaroute/ledger.sqlite", str(tmp_path / "l.sqlite")))
    router = Router.from_config(path)
    assert router.policy.name == "free-first" and len(router.policy.rules) == 4
    assert router.policy.rules[3].cascade == "math-agree"
    assert router.explain("What is 17 * 23?", metadata={"task": "math"}).policy == "cascade:math-agree"
    assert set(router._keys) == {"openai", "gemini", "deepseek", "groq"}
    assert any(p.id == "deepseek-new-user-grant" for p in router.config.pools)
    assert router.config.server.port == 4000
    from router.config import build_server_settings

    s = build_server_settings(router.config)
    assert [k.id for k in s.keys.keys] == ["team-a", "ci"] and s.keys.keys[0].tags == ("team-a",)
    assert s.keys.keys[1].user == "ci-bot" and s.limits.max_connections == 1000 and s.keys.admin is not None
    assert router.explain("write a python function").steps
    router.close()


def test_unknown_model_in_include_is_a_config_error(tmp_path, keys):
    path = write(tmp_path, "providers:\n  openai: {api_key_env: OPENAI_API_KEY}\nmodels:\n  include: [gpt-4o-mnii]\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(path)
    assert ei.value.line == 4 and ei.value.key == "models.include" and "did you mean" in str(ei.value)


def test_learned_predictor_file_errors_name_the_line(tmp_path):
    path = write(tmp_path, "models:\n  predictor: /nonexistent/learned\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(path)
    assert ei.value.line == 2 and ei.value.key == "models.predictor"


# ------------------------------------------------------------------ ledger store defaults and options


def _store(router):
    return type(router.ledger.store).__name__


def test_ledger_default_is_memory_for_the_sdk_sqlite_for_the_proxy(tmp_path, monkeypatch):
    """No `ledger:` section: the SDK keeps counters in memory; the proxy passes
    `default_store="sqlite"` (router/server/cli.py) and gets $QUOTAROUTE_HOME/ledger.sqlite.
    `http_client=` is only a client: it never changes the store."""
    import httpx

    from router.config import PROXY_DEFAULT_STORE, default_store

    home = tmp_path / "home"
    monkeypatch.setenv("QUOTAROUTE_HOME", str(home))
    monkeypatch.delenv("QUOTAROUTE_LEDGER_URL", raising=False)
    monkeypatch.delenv("QUOTAROUTE_DEFAULT_STORE", raising=False)
    path = write(tmp_path, "policy: {default: cheapest}\n")
    assert _store(Router.from_config(path)) == "MemoryStore"
    assert _store(Router(**build_router_kwargs(load_config(path)))) == "MemoryStore"
    r = Router.from_config(path, default_store="sqlite")
    assert _store(r) == "SQLiteStore" and r.ledger.store.path == str(home / "ledger.sqlite")
    r.close()  # a ledger built by from_config is the router's to close
    client = httpx.AsyncClient()
    assert _store(Router.from_config(path, http_client=client)) == "MemoryStore"  # a keyword picks no store
    assert _store(Router.from_config(path, client=client)) == "MemoryStore"
    r = Router.from_config(path, http_client=client, default_store=default_store(fallback=PROXY_DEFAULT_STORE))
    assert _store(r) == "SQLiteStore"  # what `quotaroute serve` does
    r.close()
    monkeypatch.setenv("QUOTAROUTE_DEFAULT_STORE", "memory")  # the environment can change the proxy default
    assert default_store(fallback=PROXY_DEFAULT_STORE) == "memory"
    monkeypatch.setenv("QUOTAROUTE_DEFAULT_STORE", "sqlite")  # ... and the SDK's
    r = Router.from_config(path)
    assert _store(r) == "SQLiteStore"
    r.close()
    monkeypatch.setenv("QUOTAROUTE_DEFAULT_STORE", "mongo")
    with pytest.raises(ConfigError, match="QUOTAROUTE_DEFAULT_STORE must be one of memory, sqlite"):
        Router.from_config(path)
    monkeypatch.delenv("QUOTAROUTE_DEFAULT_STORE")
    # the file wins over any default
    mem = write(tmp_path, "ledger: {store: memory}\n", "mem.yaml")
    assert _store(Router.from_config(mem, default_store="sqlite")) == "MemoryStore"
    from router.config import effective_store  # what it would be, without opening it

    assert effective_store(load_config(path)) == "memory"
    assert effective_store(load_config(path), default_store="sqlite") == "sqlite"
    assert effective_store(load_config(mem), default_store="sqlite") == "memory"
    assert effective_store(parse_config({"ledger": {"store": "redis", "url": "redis://h"}})) == "redis"
    monkeypatch.setenv("QUOTAROUTE_LEDGER_URL", "redis://h:1/0")
    assert effective_store(load_config(path), default_store="sqlite") == "redis"


def test_ledger_options_reach_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    from router.config import build_ledger

    led = build_ledger(parse_config({"ledger": {"store": "sqlite", "path": str(tmp_path / "l.sqlite"),
                                                "synchronous": "full"}}))
    assert type(led.store).__name__ == "SQLiteStore" and led.store.path == str(tmp_path / "l.sqlite")
    assert led.store.synchronous == "FULL"
    led = build_ledger(parse_config({"ledger": {"store": "redis", "url": "redis://127.0.0.1:1/0",
                                                "on_redis_error": "local_fallback", "expected_replicas": 3}}))
    st = led.store
    assert type(st).__name__ == "RedisStore" and st.on_redis_error == "local_fallback" and st.expected_replicas == 3


@pytest.mark.parametrize("text,key,msg", [
    ("ledger:\n  store: memory\n  synchronous: FULL\n", "ledger.synchronous", "only applies to a sqlite ledger"),
    ("ledger:\n  store: sqlite\n  on_redis_error: local_fallback\n", "ledger.on_redis_error",
     "only applies to a redis ledger"),
    ("ledger:\n  store: redis\n  on_redis_error: local_fallback\n", "ledger.url", "a redis ledger needs `url`"),
    ("ledger:\n  on_redis_error: local_fallback\n", "ledger.store", "set `store: redis`"),
    ("ledger:\n  path: /tmp/x.sqlite\n", "ledger.store", "never guessed from `path`"),
    ("ledger:\n  store: redis\n  url: redis://h\n  on_redis_error: ignore\n", "ledger.on_redis_error",
     "'fail_closed' or 'local_fallback'"),
    ("ledger:\n  store: sqlite\n  synchronous: OFF\n", "ledger.synchronous", "'NORMAL' or 'FULL'"),
    ("ledger:\n  store: redis\n  url: redis://h\n  expected_replicas: 0\n", "ledger.expected_replicas", "greater"),
])
def test_ledger_option_errors_name_the_key(tmp_path, monkeypatch, text, key, msg):
    from router.config import build_ledger

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        build_ledger(load_config(path))
    e = ei.value
    assert e.file == path and e.key == key and msg in str(e) and e.line is not None


def test_policy_quality_margin_from_config(tmp_path):
    from router.config import build_policy, build_rules

    cfg = parse_config({"policy": {"default": "cheapest", "quality_margin": 0.05},
                        "rules": [{"match": {"task": "code"}, "quality_margin": 0.0}]})
    assert build_policy(cfg).quality_margin == 0.05
    assert build_rules(cfg)[0].settings["quality_margin"] == 0.0
    assert build_policy(parse_config({})).quality_margin is None
    e = fails(tmp_path, "policy:\n  default: cheapest\n  quality_margin: 1.5\n")
    assert e.line == 3 and e.key == "policy.quality_margin"


def test_every_missing_key_variable_is_reported_at_once(tmp_path, monkeypatch):
    for v in ("OPENAI_API_KEY", "OPENAI_API_KEY_2", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(v, raising=False)
    path = write(tmp_path, "providers:\n  openai:\n    api_key_env: [OPENAI_API_KEY, OPENAI_API_KEY_2]\n"
                           "  deepseek:\n    api_key_env: DEEPSEEK_API_KEY\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(path)
    msg = str(ei.value)
    assert ei.value.line == 3 and ei.value.key == "providers.openai.api_key_env"
    assert "OPENAI_API_KEY is not set" in msg
    assert "also unset: OPENAI_API_KEY_2 (providers.openai), DEEPSEEK_API_KEY (providers.deepseek)" in msg
