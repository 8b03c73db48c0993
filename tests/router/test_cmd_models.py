from __future__ import annotations

import argparse
import json

import pytest

from router.commands import models


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    models.add_arguments(p)
    rc = models.run(p.parse_args(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_for_one_provider(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["--provider", "deepseek", "--json"], capsys)
    assert rc == 0
    data = json.loads(out)
    ids = [m["id"] for m in data["models"]]
    assert ids == ["deepseek:deepseek-flash", "deepseek:deepseek-v4-pro"]
    flash = data["models"][0]
    assert flash["price"]["currency"] == "CNY"
    assert flash["price"]["native_per_1m"]["input"] == "2"
    assert flash["price"]["usd_per_1m"]["input"] == "0.2808"  # 2 CNY * 0.1404
    assert len(flash["price"]["time_discounts"]) == 4
    assert flash["context_window"] == 1_000_000


def test_table_lists_prices_and_free_tier(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["--provider", "gemini"], capsys)
    assert rc == 0
    assert "gemini:gemini-2.5-flash" in out and "free tier (5 RPM, 20 RPD)" in out
    assert "gemini:gemini-2.5-pro" in out and "+tiers" in out


def test_filters(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["--free", "--needs", "tools", "--region", "us", "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and data["count"] >= 5
    assert all(m["has_free_tier"] and "tools" in m["capabilities"] and "us" in m["regions"] for m in data["models"])


def test_unknown_provider_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["--provider", "nope"], capsys)
    assert rc == 2 and "unknown provider nope" in err and "openai" in err


def test_bad_overrides_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "o.yaml"
    f.write_text("openai:gpt-5.5:\n  context_window: -3\n")
    rc, _, err = _run(["--overrides", str(f)], capsys)
    assert rc == 2 and str(f) in err and "openai:gpt-5.5.context_window" in err
