"""`quotaroute route | quota | budget`: they read ./quotaroute.yaml, say when no config
was found, never create the ledger file (read-only), `route --explain` shows explicit
routes with their weights, and route reasons print money as plain decimals."""

from __future__ import annotations

import json

import pytest

from router import Router
from router.catalog import Catalog
from router.cli import main
from tests.router.routing_helpers import card

LOCAL = """\
providers:
  deepseek: {api_key_env: DEEPSEEK_API_KEY}
  siliconflow: {api_key_env: SILICONFLOW_API_KEY}
budgets:
  - {id: monthly, scope: global, period: month, limit_usd: "5"}
fallbacks:
  deepseek:deepseek-flash: [ds-pair]
deployments:
  ds-pair:
    - {provider: deepseek, model: deepseek-v4-pro, weight: 3}
    - {provider: siliconflow, model: deepseek-ai/DeepSeek-V3.1, weight: 1}
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path / "home"))
    for v in ("QUOTAROUTE_CONFIG", "QUOTAROUTE_LEDGER_URL", "QUOTAROUTE_DEFAULT_STORE"):
        monkeypatch.delenv(v, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_the_commands_read_the_local_config_and_create_no_ledger(here, tmp_path, capsys):
    (here / "quotaroute.yaml").write_text(LOCAL)
    assert main(["route", "hello", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"] and all(p["model"].startswith(("deepseek:", "siliconflow:")) for p in out["plan"])
    assert main(["budget", "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["config"] == "quotaroute.yaml" and [b["budget"] for b in out["budgets"]] == ["monthly"]
    assert "nothing recorded" in out["store"] and "no config file found" not in cap.err
    assert main(["quota", "--json"]) == 0
    capsys.readouterr()
    assert not (tmp_path / "home" / "ledger.sqlite").exists()  # read-only commands never create it


@pytest.mark.parametrize("command", [["quota"], ["budget"], ["route", "hello", "--json"]])
def test_no_config_is_said_on_stderr(here, tmp_path, capsys, command):
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "no config file found" in err and "./quotaroute.yaml" in err
    assert not (tmp_path / "home" / "ledger.sqlite").exists()


def test_route_explain_shows_the_chain_and_the_weights(here, capsys):
    (here / "quotaroute.yaml").write_text(LOCAL)
    assert main(["route", "--explain", "hello", "--model", "deepseek-flash"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "explicit route" in text and "pinned deepseek:deepseek-flash" in text
    assert ("fallback 1: ds-pair: deepseek:deepseek-v4-pro weight 3 (75%), siliconflow:deepseek-ai/DeepSeek-V3.1 "
            "weight 1 (25%)") in text
    assert main(["route", "hello", "--model", "ds-pair", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chain"][0].startswith("pinned ds-pair: ") and len(out["plan"]) == 2


def test_route_reasons_print_money_in_plain_decimals():
    tiny = card("pa:tiny", "0.0001", "0.0001")
    router = Router(catalog=Catalog([tiny]), providers=None, policy="cheapest")
    plan = router.explain("hi", max_tokens=2)
    assert "expected $0.0000000" in plan.reason and "E-" not in plan.reason, plan.reason
    router.close()
