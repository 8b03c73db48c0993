from decimal import Decimal

import pytest
import yaml

from router.errors import ConfigError
from router.quota.spec import default_pools
from router.quota.spec import PoolSpec, load_quota_config


def test_catalog_defaults_have_source_and_date():
    pools = default_pools(include_disabled=True)
    assert {"openrouter-free", "gemini-free-2.5-flash", "groq-free-llama-3.3-70b-versatile", "mistral-experiment",
            "zhipu-flash-free", "siliconflow-free-models", "deepseek-new-user-grant"} <= {p.id for p in pools}
    for p in pools:
        assert p.source and p.as_of, p.id
    orf = next(p for p in pools if p.id == "openrouter-free")
    assert orf.applies_to("openrouter:qwen/qwen3-coder:free") and not orf.applies_to("openrouter:qwen/qwen3-coder")
    day = next(w for w in orf.limits if w.per == "day")
    assert (day.requests, day.tz, day.mode) == (50, "UTC", "calendar")
    gem = next(p for p in pools if p.id == "gemini-free-2.5-flash")
    assert any(w.tz == "America/Los_Angeles" and w.per == "day" for w in gem.limits)
    # grants that depend on the account's age ship disabled
    assert not next(p for p in pools if p.id == "deepseek-new-user-grant").enabled


def test_config_overrides_default_key_by_key_and_adds_pools():
    pools, budgets = load_quota_config(
        {
            "quotas": [
                {"id": "openrouter-free", "limits": [{"per": "day", "requests": 1000, "reset": "calendar"}]},
                {"id": "deepseek-new-user-grant", "enabled": True, "grant": {"tokens": 5000000, "expires": "2026-12-31"}},
                {"id": "gemini-free-2.5-flash", "enabled": False},
                {"id": "my-key", "provider": "openai", "credit_usd": "10.00"},
            ],
            "budgets": [{"id": "team-a", "scope": "team", "match": "a", "period": "day", "limit_usd": "1.5", "hard": False}],
        },
        file="quotaroute.yaml",
    )
    by = {p.id: p for p in pools}
    assert by["openrouter-free"].limits[0].requests == 1000
    assert by["openrouter-free"].models == ("openrouter:*:free", "openrouter:openrouter/free")  # kept from the default
    assert by["deepseek-new-user-grant"].grant.tokens == 5000000
    assert "gemini-free-2.5-flash" not in by
    assert by["my-key"].kind == "credit" and by["my-key"].credit_usd == Decimal("10.00")
    assert budgets[0].limit_usd == Decimal("1.5") and budgets[0].applies("m:x", "m", {"team": "a"})


@pytest.mark.parametrize(
    "entry, key",
    [
        ({"id": "x", "models": ["a:*"], "limits": [{"per": "day", "requests": 5, "tz": "Mars/Olympus"}]}, "quotas[0].limits.0.tz"),
        ({"id": "x", "models": ["a:*"], "limits": [{"per": "fortnight", "requests": 5}]}, "quotas[0].limits.0.per"),
        ({"id": "x", "limits": [{"per": "day", "requests": 5}]}, "quotas[0]"),
        ({"id": "x", "models": ["a:*"], "grant": {"tokens": 5, "usd": 1}}, "quotas[0].grant"),
        ({"id": "x", "models": ["a:*"], "limits": [{"per": "day"}]}, "quotas[0].limits.0"),
    ],
)
def test_bad_pool_names_file_and_key(entry, key):
    with pytest.raises(ConfigError) as ei:
        load_quota_config({"quotas": [entry]}, file="cfg.yaml", include_defaults=False)
    assert ei.value.file == "cfg.yaml" and ei.value.key == key
    assert "cfg.yaml" in str(ei.value)


def test_bad_budget_and_duplicate_ids():
    with pytest.raises(ConfigError) as ei:
        load_quota_config({"budgets": [{"id": "b", "limit_usd": "-1"}]}, file="c.yaml")
    assert ei.value.key == "budgets[0].limit_usd"
    with pytest.raises(ConfigError) as ei:
        load_quota_config({"budgets": [{"id": "b", "limit_usd": 1}, {"id": "b", "limit_usd": 2}]}, file="c.yaml")
    assert ei.value.key == "budgets[1].id"
    with pytest.raises(ConfigError):
        load_quota_config({"quotas": {"id": "x"}}, file="c.yaml")


def test_line_numbers_when_the_loader_attaches_them():
    data = {"quotas": [{"__line__": 7, "id": "x", "models": ["a:*"], "limits": [{"per": "day", "requests": -1}]}]}
    with pytest.raises(ConfigError) as ei:
        load_quota_config(data, file="c.yaml", include_defaults=False)
    assert ei.value.line == 7 and "c.yaml:7" in str(ei.value)


def test_per_model_pool_and_provider_pool():
    p = PoolSpec(id="m", models=("mistral:*",), per_model=True, free=True, limits=[{"per": "minute", "requests": 1}])
    assert p.applies_to("mistral:small") and not p.applies_to("openai:x")
    q = PoolSpec(id="q", provider="groq", limits=[{"per": "minute", "requests": 1}])
    assert q.applies_to("groq:llama") and q.kind == "rate"


def test_yaml_file_parses():
    from importlib import resources

    data = yaml.safe_load(resources.files("router.quota").joinpath("data/free_tiers.yaml").read_text())
    assert data["quotas"]


def test_store_options_on_the_url(tmp_path):
    from router.quota.redis_store import RedisStore
    from router.quota.sqlite_store import SQLiteStore
    from router.quota.stores import build_store

    r = build_store("redis://:pw@127.0.0.1:6379/0?on_redis_error=local_fallback&expected_replicas=3")
    assert isinstance(r, RedisStore) and (r.on_redis_error, r.expected_replicas) == ("local_fallback", 3)
    assert "on_redis_error" not in r.url
    s = build_store(f"sqlite:///{tmp_path}/l.sqlite?synchronous=FULL")
    assert isinstance(s, SQLiteStore) and s.path == f"{tmp_path}/l.sqlite" and s.synchronous == "FULL"
    with pytest.raises(ValueError):
        build_store("redis://h:1/0?expected_replicas=many")
