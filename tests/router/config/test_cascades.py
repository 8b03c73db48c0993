"""The `cascades:` section: the contract's shape loads and builds a Router that runs it;
mistakes are one ConfigError naming file, line and key path."""

from __future__ import annotations

import pytest

from router.cascade import CascadePlan
from router.config import load_config
from router.errors import ConfigError
from router.sdk import Router

GOOD = """\
providers:
  openai: {api_key_env: OPENAI_API_KEY}
  deepseek: {api_key_env: DEEPSEEK_API_KEY}
cascades:
  math-agree:
    extract: number
    tolerance: 0.000001
    stream: buffer
    fallback_policy: cheapest
    stages:
      - mode: consensus
        k: 2
        m: 2
        models: [deepseek-flash, "openai:gpt-5-mini"]
        policy: cheapest
      - mode: lazy-majority
        models: ["openai:gpt-5-nano", "openai:gpt-4.1-mini", "openai:gpt-4o-mini"]
      - mode: single
        models: [gpt-5.5]
rules:
  - match: {task: math}
    cascade: math-agree
policy:
  default: "cascade:math-agree"
"""


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-aaaaaaaaaaaaaaaa")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-cccccccccccccccc")


def write(tmp_path, text):
    p = tmp_path / "quotaroute.yaml"
    p.write_text(text)
    return str(p)


def fails(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        Router.from_config(load_config(path))
    assert ei.value.file == path
    return ei.value


def test_the_contract_shape_builds_a_router_that_plans_the_stages(tmp_path, keys):
    router = Router.from_config(load_config(write(tmp_path, GOOD)))
    try:
        assert router.policy_name == "cascade:math-agree"
        plan = router.explain("What is 17 * 23?", model="auto")
        assert isinstance(plan, CascadePlan) and plan.rule == "rule #1"
        assert [s.stage.mode for s in plan.stages] == ["consensus", "lazy-majority", "single"]
        assert plan.stages[0].chosen() == ["deepseek:deepseek-flash", "openai:gpt-5-mini"]
        assert plan.stages[2].chosen() == ["openai:gpt-5.5"]
        assert [s.stage.k for s in plan.stages] == [2, 3, 1]
        assert isinstance(router.explain("hello", model="cascade:math-agree"), CascadePlan)  # not a math prompt
        assert not isinstance(router.explain("hello", model="auto:cheap"), CascadePlan)
    finally:
        router.close()


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_a_cascade_without_an_extractor_is_refused(tmp_path, keys):
    e = fails(tmp_path, replace("    extract: number\n", ""))
    assert e.key == "cascades.math-agree" and "needs `extract:`" in str(e) and e.line == 5


def test_an_unknown_extractor_is_refused(tmp_path, keys):
    e = fails(tmp_path, replace("extract: number", "extract: vibes"))
    assert e.key == "cascades.math-agree.extract" and e.line == 6 and "vibes" in str(e)


def test_m_above_k_is_refused(tmp_path, keys):
    e = fails(tmp_path, replace("        m: 2\n", "        m: 3\n"))
    assert e.key == "cascades.math-agree.stages[0].m" and "cannot be more than k" in str(e) and e.line == 13


def test_k_and_m_belong_to_consensus_stages(tmp_path, keys):
    e = fails(tmp_path, replace("      - mode: lazy-majority\n", "      - mode: lazy-majority\n        k: 3\n"))
    assert e.key == "cascades.math-agree.stages[1]" and "consensus stages only" in str(e)


def test_a_stage_with_no_candidate_model_is_refused(tmp_path, keys):
    e = fails(tmp_path, replace("models: [gpt-5.5]", "models: [\"anthropic:*\"]"))  # no anthropic provider
    assert e.key == "cascades.math-agree.stages[2].models" and "no candidate model" in str(e) and e.line == 19
    e = fails(tmp_path, replace("models: [gpt-5.5]", "models: [gpt-9]"))
    assert e.key == "cascades.math-agree.stages[2].models" and "unknown model 'gpt-9'" in str(e)


def test_a_rule_or_default_naming_an_unknown_cascade_is_refused(tmp_path, keys):
    e = fails(tmp_path, replace("    cascade: math-agree\n", "    cascade: math-agre\n"))
    assert e.key == "rules[0].cascade" and e.line == 22 and "unknown cascade 'math-agre'" in str(e)
    assert "defined: math-agree" in str(e)
    e = fails(tmp_path, replace('default: "cascade:math-agree"', 'default: "cascade:nope"'))
    assert e.key == "policy.default" and "unknown cascade 'nope'" in str(e)
    e = fails(tmp_path, replace('default: "cascade:math-agree"', "default: fastest"))
    assert e.key == "policy.default" and "'fastest'" in str(e) and "cascade:<name>" in str(e)


def test_a_rule_with_a_cascade_takes_no_policy_or_models(tmp_path, keys):
    e = fails(tmp_path, replace("    cascade: math-agree\n", "    cascade: math-agree\n    policy: best\n"))
    assert e.key == "rules[0]" and "drop `policy` and `models`" in str(e)


def test_bad_names_stage_counts_and_modes(tmp_path, keys):
    e = fails(tmp_path, replace("  math-agree:\n", "  math agree:\n"))
    assert e.key == "cascades" and "cascade name" in str(e)
    e = fails(tmp_path, replace("      - mode: single\n", "      - mode: unanimous\n"))
    assert e.key == "cascades.math-agree.stages[2].mode" and "unanimous" in str(e)
    e = fails(tmp_path, replace("stream: buffer", "stream: sometimes"))
    assert e.key == "cascades.math-agree.stream"
    e = fails(tmp_path, "cascades:\n  x:\n    extract: number\n    stages: []\n")
    assert e.key == "cascades.x.stages" and e.line == 4


def test_route_explain_shows_the_stages_and_their_models(tmp_path, capsys):
    import argparse
    import json

    from router.commands import route

    path = write(tmp_path, GOOD)  # explaining names the providers only: no key needs to be set

    def run(*argv: str) -> tuple[int, str]:
        p = argparse.ArgumentParser()
        route.add_arguments(p)
        rc = route.run(p.parse_args(["--config", path, *argv]))
        return rc, capsys.readouterr().out

    rc, out = run("What is 17 * 23?")
    assert rc == 0 and "policy cascade:math-agree" in out
    assert "stage 1 consensus 2 of 2 (cheapest): deepseek:deepseek-flash, openai:gpt-5-mini" in out
    assert "stage 3 single (free-first): openai:gpt-5.5" in out
    rc, out = run("hello", "--model", "cascade:math-agree", "--json")
    d = json.loads(out)
    assert d["policy"] == "cascade:math-agree" and [s["mode"] for s in d["cascade"]["stages"]] == [
        "consensus", "lazy-majority", "single"]
    assert d["cascade"]["stages"][1]["models"] == ["openai:gpt-5-nano", "openai:gpt-4o-mini", "openai:gpt-4.1-mini"]
