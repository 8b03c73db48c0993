"""`quotaroute route` and `quotaroute spend`: bad arguments end in one-line errors (exit 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from router.commands import route, spend


def _run(mod: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    mod.add_arguments(p)  # type: ignore[attr-defined]
    rc = mod.run(p.parse_args(argv))  # type: ignore[attr-defined]
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("n", ["-5", "0", str(2**31), "9" * 30])
def test_route_refuses_a_bad_max_tokens(n: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_CONFIG", raising=False)
    rc, out, err = _run(route, ["hi", f"--max-tokens={n}"], capsys)
    assert rc == 2 and not out
    assert err.count("\n") == 1 and err.startswith("quotaroute route: --max-tokens must be an integer from 1 to")


def test_route_clamps_a_huge_max_tokens_and_prices_it_at_or_above_zero(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    import json

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_CONFIG", raising=False)
    rc, out, _ = _run(route, ["write a poem", f"--max-tokens={2**31 - 1}", "--json", "--policy", "cheapest"], capsys)
    plan = json.loads(out)
    assert rc == 0 and plan["plan"]
    assert all(float(c["expected_cost_usd"]) >= 0 for c in plan["candidates"] if c["expected_cost_usd"] is not None)
    assert not [c for c in plan["candidates"] if "max output" in c["reason"]]


@pytest.mark.parametrize("argv,needle", [
    (["--since", "9" * 400 + "d"], "too far back"),
    (["--since", "99999999999h"], "too far back"),
    (["--since", "yesterday"], "cannot read --since"),
    (["--db", "/etc/passwd"], "cannot read /etc/passwd as a spend log"),
    (["--db", "/"], "cannot read / as a spend log"),
])
def test_spend_bad_arguments_are_one_line_errors(argv: list[str], needle: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(spend, argv, capsys)
    assert rc == 2 and not out
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert len(err) < 300
