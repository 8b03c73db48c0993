"""Config `fallbacks:` and `deployments:` (router.chains): built into the Router; a cycle,
an unknown model or a key the provider does not have is a config error naming its line."""

from __future__ import annotations

import random

import pytest

from router.config import load_config
from router.errors import ConfigError
from router.sdk import Router

ROUTES = """\
providers:
  openai: {api_key_env: OPENAI_API_KEY}
  deepseek: {api_key_env: [DEEPSEEK_API_KEY, DEEPSEEK_API_KEY_2]}
  siliconflow: {api_key_env: SILICONFLOW_API_KEY}
fallbacks:
  openai:gpt-5-nano: [deepseek-v3, openai:gpt-5-mini]
  auto:cheap: [openai:gpt-4.1-mini]
deployments:
  deepseek-v3:
    - {provider: deepseek, model: deepseek-flash, weight: 3, key: DEEPSEEK_API_KEY_2}
    - {provider: siliconflow, model: deepseek-ai/DeepSeek-V3.1, weight: 1}
"""


@pytest.fixture
def keys(monkeypatch, tmp_path):
    for v in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "DEEPSEEK_API_KEY_2", "SILICONFLOW_API_KEY"):
        monkeypatch.setenv(v, f"test-{v.lower()}-0123456789")
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))


def write(tmp_path, text):
    p = tmp_path / "quotaroute.yaml"
    p.write_text(text)
    return str(p)


def test_routes_from_config_reach_the_router(tmp_path, keys):
    router = Router.from_config(write(tmp_path, ROUTES), rng=random.Random(5))
    plan = router.explain("hello", model="gpt-5-nano")
    steps = [s.deployment for s in plan.steps]
    assert steps[0] == "openai:gpt-5-nano@OPENAI_API_KEY" and steps[-1] == "openai:gpt-5-mini@OPENAI_API_KEY"
    assert set(steps[1:3]) == {"deepseek:deepseek-flash@DEEPSEEK_API_KEY_2", "siliconflow:deepseek-ai/DeepSeek-V3.1@SILICONFLOW_API_KEY"}
    assert plan.chain[1] == ("fallback 1: deepseek-v3: deepseek:deepseek-flash@DEEPSEEK_API_KEY_2 weight 3 (75%), "
                             "siliconflow:deepseek-ai/DeepSeek-V3.1 weight 1 (25%)")
    assert router.explain("hello", model="deepseek-v3").steps
    plan = router.explain("hello", model="auto:cheap")
    assert plan.steps[-1].model_id == "openai:gpt-4.1-mini" and plan.chain == ["fallback 1: openai:gpt-4.1-mini"]
    router.close()


@pytest.mark.parametrize("text,key,line,msg", [
    ("fallbacks:\n  openai:gpt-5-nano: [openai:gpt-5-mini, nope-model]\n", "fallbacks.openai:gpt-5-nano[1]", 2,
     "unknown model 'nope-model'"),
    ("fallbacks:\n  openai:gpt-5-nano: [openai:gpt-5-mini]\n  openai:gpt-5-mini: [gpt-5-nano]\n",
     "fallbacks.openai:gpt-5-nano", 2, "cycle: openai:gpt-5-nano -> openai:gpt-5-mini -> openai:gpt-5-nano"),
    ("deployments:\n  dual:\n    - {provider: openai, model: gpt-5-nano}\n    - {provider: openai, model: gpt-9}\n",
     "deployments.dual[1].model", 4, "unknown model 'openai:gpt-9'"),
    ("deployments:\n  dual:\n    - {provider: openai, model: gpt-5-nano, key: OTHER_KEY}\n",
     "deployments.dual[0].key", 3, "provider openai has no key 'OTHER_KEY'"),
])
def test_route_errors_name_the_path_and_line(tmp_path, keys, text, key, line, msg):
    path = write(tmp_path, "providers:\n  openai: {api_key_env: OPENAI_API_KEY}\n" + text)
    with pytest.raises(ConfigError) as ei:
        Router.from_config(path)
    e = ei.value
    assert e.key == key and e.line == line + 2 and msg in str(e), (e.key, e.line, str(e))


def test_a_weight_must_be_positive(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, "deployments:\n  x:\n    - {model: openai:gpt-5-nano, weight: 0}\n"))
    assert ei.value.key == "deployments.x[0].weight" or "deployments.x.0.weight" in str(ei.value)
