"""Strictness: unknown keys anywhere, finite non-negative money, no YAML aliases, a
size cap, and secrets never echoed."""

from __future__ import annotations

import time

import pytest

from router.config import MAX_CONFIG_BYTES, load_config, parse_config
from router.errors import ConfigError

H = "sha256$abc$" + "0" * 64


def fails(tmp_path, text: str, name: str = "quotaroute.yaml") -> ConfigError:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(str(p))
    e = ei.value
    assert e.file == str(p) and str(e).startswith(f"{p}:{e.line}: " if e.line else f"{p}: ")
    return e


@pytest.mark.parametrize("text,line,key,suggestion", [
    ("server:\n  port: 4100\n  kyes: []\n", 3, "server.kyes", "keys"),
    ("server:\n  admin_keys: x\n", 2, "server.admin_keys", "admin_key"),
    (f"server:\n  keys:\n    - id: a\n      hash: \"{H}\"\n      budget: 5\n", 5, "server.keys[0].budget",
     "budget_usd"),
    (f"server:\n  keys:\n    - id: a\n      hash: \"{H}\"\n      rmp: 60\n", 5, "server.keys[0].rmp", "rpm"),
    ("server:\n  limits:\n    max_json_dept: 10\n", 3, "server.limits.max_json_dept", "max_json_depth"),
    ("providers:\n  openai:\n    timeouts: {conect_s: 3}\n", 3, "providers.openai.timeouts.conect_s", "connect_s"),
    ("budgets:\n  - id: b\n    limt_usd: 5\n", 3, "budgets[0].limt_usd", "limit_usd"),
    ("quotas:\n  - id: q\n    provider: groq\n    limits:\n      - {per: day, reqests: 5}\n", 5,
     "quotas[0].limits[0].reqests", "requests"),
    ("models:\n  overrides:\n    openai:gpt-4o-mini:\n      contxt_window: 1000\n", 4,
     "models.overrides.openai:gpt-4o-mini.contxt_window", "context_window"),
    ("fx:\n  rate: {CNY: 0.14}\n", 2, "fx.rate", "rates"),
])
def test_typos_are_refused_with_line_and_suggestion(tmp_path, text, line, key, suggestion):
    e = fails(tmp_path, text)
    typo = key.rsplit(".", 1)[-1]
    assert (e.line, e.key) == (line, key)
    assert f"unknown key {typo!r}; did you mean {suggestion!r}?" in str(e)


@pytest.mark.parametrize("value", ["-5", "-0.01", ".nan", ".inf", "-.inf", "'NaN'", "'Infinity'", "true", "[1]"])
@pytest.mark.parametrize("where", ["key", "budget", "policy", "rule", "price"])
def test_money_must_be_finite_and_not_negative(tmp_path, value, where):
    text = {
        "key": f"server:\n  keys:\n    - id: a\n      hash: \"{H}\"\n      budget_usd: {value}\n",
        "budget": f"budgets:\n  - id: b\n    limit_usd: {value}\n",
        "policy": f"policy:\n  default: cheapest\n  max_cost_usd: {value}\n",
        "rule": f"rules:\n  - name: r\n    max_cost_usd: {value}\n",
        "price": f"models:\n  overrides:\n    openai:gpt-4o-mini:\n      price: {{input: {value}, output: 1}}\n",
    }[where]
    e = fails(tmp_path, text)
    if where != "price" or value not in ("true", "[1]"):
        assert e.line == text.count("\n"), str(e)
    assert e.key and e.key.split(".")[-1] in ("budget_usd", "limit_usd", "max_cost_usd", "input", "price")


def test_good_money_is_exact(tmp_path):
    cfg = parse_config({"server": {"keys": [{"id": "a", "hash": H, "budget_usd": 0.1}]},
                        "policy": {"max_cost_usd": 0}, "budgets": [{"id": "b", "limit_usd": "2.50"}]})
    from decimal import Decimal

    assert cfg.server.keys[0].budget_usd == Decimal("0.1") and cfg.policy.max_cost_usd == 0
    assert cfg.budget_specs[0].limit_usd == Decimal("2.50")


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("under", ["version", "quotas", "models.overrides", "server.keys"])
def test_alias_bomb_is_refused_at_once(tmp_path, under):
    def nest(indent: int) -> str:
        return "\n".join(" " * indent + ln for ln in BOMB.splitlines())

    text = {
        "version": f"version:\n{nest(2)}\n",
        "quotas": f"quotas:\n  - id: x\n    provider: groq\n    extra:\n{nest(6)}\n",
        "models.overrides": f"models:\n  overrides:\n{nest(4)}\n",
        "server.keys": f"server:\n  keys:\n    - id: a\n      models:\n{nest(8)}\n",
    }[under]
    t = time.perf_counter()
    e = fails(tmp_path, text)
    assert time.perf_counter() - t < 5  # in practice a few milliseconds
    first_anchor = next(i for i, ln in enumerate(text.splitlines(), 1) if "&a" in ln)
    assert "anchors and aliases" in str(e) and e.line == first_anchor


def test_a_single_anchor_is_refused_too(tmp_path):
    e = fails(tmp_path, "policy: &p {default: cheapest}\n")
    assert e.line == 1 and "not allowed" in str(e)


def test_deep_nesting_is_refused(tmp_path):
    e = fails(tmp_path, "rules:\n  - match:\n      metadata: " + "[" * 200 + "]" * 200 + "\n")
    assert "nested deeper" in str(e) and e.line == 3


def test_size_cap(tmp_path):
    e = fails(tmp_path, "# padding\n" * (MAX_CONFIG_BYTES // 10 + 10))
    assert "larger than 1024 KiB" in str(e)


PASTED = ["sk-proj-AbCdEf0123456789abcdefGHIJ", "gsk_abcdefghijklmnop0123456789",
          "AIzaSyA1234567890abcdefghijklmnopqrstu", "xai-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56"]


@pytest.mark.parametrize("key", PASTED)
def test_a_pasted_key_in_api_key_env_is_never_echoed(tmp_path, key, capsys):
    for text in (f"providers:\n  openai:\n    api_key_env: {key}\n",
                 f"providers:\n  openai:\n    api_key_env: [OPENAI_API_KEY, {key}]\n",
                 f"providers:\n  openai:\n    api_key: {key}\n",
                 f"providers:\n  openai:\n    {key}: 1\n",
                 f"providers:\n  {key}:\n    base_url: http://x\n",
                 f"server:\n  admin_key: {key}\n",
                 f"server:\n  keys:\n    - id: a\n      hash: {key}\n",
                 f"policy:\n  default: {key}\n"):
        e = fails(tmp_path, text)
        assert key not in str(e) and key not in repr(e.key) and key[:12] not in str(e), str(e)
    e = fails(tmp_path, f"providers:\n  openai:\n    api_key_env: {key}\n")
    assert "looks like an API key" in str(e) and e.line == 3
    from router.errors import redact

    if redact(key) != key:  # a known key shape is refused as an adapter option too
        e = fails(tmp_path, f"providers:\n  openai:\n    options: {{deployment: {key}}}\n")
        assert key not in str(e) and "looks like a secret" in str(e)
    assert key not in capsys.readouterr().err


def test_unknown_sections_and_internal_names(tmp_path):
    e = fails(tmp_path, "serve:\n  port: 1\n")
    assert e.key == "serve" and "did you mean 'server'?" in str(e)
    for name in ("pools", "budget_specs", "file", "_data"):
        with pytest.raises(ConfigError, match="unknown key"):
            parse_config({name: []}, file="x.yaml")


def test_unknown_adapter_option_is_a_config_error(tmp_path, monkeypatch):
    from router.sdk import Router

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-aaaaaaaaaaaaaaaa")
    p = tmp_path / "c.yaml"
    p.write_text("providers:\n  openai:\n    api_key_env: OPENAI_API_KEY\n    options: {colour: blue}\n")
    with pytest.raises(ConfigError) as ei:
        Router.from_config(str(p))
    assert ei.value.key == "providers.openai.options" and ei.value.line == 4 and "colour" in str(ei.value)
