"""`quotaroute quota` / `quotaroute budget` against a real SQLite ledger in a temp QUOTAROUTE_HOME."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from decimal import Decimal

from router.cli import main
from router.quota.cli_support import open_ledger
from router.types import Usage

CFG = """
quotas:
  - {id: openrouter-free, limits: [{per: day, requests: 1000, reset: calendar, tz: UTC}]}
  - {id: my-rpm, provider: acme, limits: [{per: minute, requests: 10}]}
budgets:
  - {id: monthly, scope: global, period: month, limit_usd: "5.00"}
  - {id: team-a, scope: team, match: a, period: day, limit_usd: "1", hard: false, tz: Asia/Shanghai}
ledger: {store: memory://}
"""


async def _record(cfg: str, tmp_path) -> None:
    ledger, path, url = open_ledger(cfg)
    assert url == "sqlite:///" + str(tmp_path / "ledger.sqlite")
    now = datetime.now(timezone.utc)
    r = await ledger.reserve("openrouter:x:free", tokens=5, now=now)
    await ledger.commit(r, Usage(input_tokens=2, output_tokens=3), Decimal(0), now)
    r = await ledger.reserve("acme:m", tokens=5, cost_usd=Decimal("0.25"), scope={"team": "a"}, now=now)
    await ledger.commit(r, Usage(input_tokens=2, output_tokens=3), Decimal("0.25"), now)
    await ledger.aclose()


def test_quota_and_budget_json_show_recorded_usage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    cfg = tmp_path / "q.yaml"
    cfg.write_text(CFG.replace("ledger: {store: memory://}", ""))
    asyncio.run(_record(str(cfg), tmp_path))

    assert main(["quota", "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(p["pool"], p["window"]): p for p in out["pools"]}
    assert rows[("openrouter-free", "day (calendar)")]["used"] == 1
    assert rows[("openrouter-free", "day (calendar)")]["limit"] == 1000
    assert rows[("my-rpm", "minute (rolling)")]["used"] == 1
    assert rows[("gemini-free-2.5-flash", "day (calendar)")]["tz"] == "America/Los_Angeles"

    assert main(["budget", "--config", str(cfg), "--json"]) == 0
    b = {x["budget"]: x for x in json.loads(capsys.readouterr().out)["budgets"]}
    assert b["monthly"]["spent_usd"] == "0.25" and b["monthly"]["limit_usd"] == "5.00"
    assert b["team-a"]["hard"] is False and b["team-a"]["tz"] == "Asia/Shanghai"

    assert main(["quota", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "openrouter-free" in text and "1 / 1,000" in text and "PST" in text  # Gemini rows in vendor time
    assert main(["budget", "--config", str(cfg)]) == 0
    assert "0.25 + 0 / 5.00" in capsys.readouterr().out


def test_bad_config_names_file_line_and_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("budgets:\n  - {id: a, limit_usd: 1}\n  - id: b\n    limit_usd: lots\n")
    assert main(["budget", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:4: budgets[1].limit_usd" in err  # the line of the bad value


def test_defaults_without_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["quota", "--json", "--store", "memory://"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] is None and any(p["pool"] == "openrouter-free" for p in out["pools"])
    assert main(["budget", "--store", "memory://"]) == 0
    assert "no budgets configured" in capsys.readouterr().out


def test_budget_cli_reads_config_and_names_bad_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    cfg = tmp_path / "q.yaml"
    cfg.write_text(CFG.replace("ledger: {store: memory://}", ""))
    assert main(["budget", "--config", str(cfg), "--json", "--store", "memory://"]) == 0
    assert {b["budget"] for b in json.loads(capsys.readouterr().out)["budgets"]} == {"monthly", "team-a"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets:\n  - {id: a, limit_usd: 1}\n  - id: b\n    limit_usd: lots\n")
    assert main(["budget", "--config", str(bad)]) == 2
    assert f"{bad}:4: budgets[1].limit_usd" in capsys.readouterr().err
