"""The README's commands and its example config stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_states_the_two_setup_commands_and_ci_uses_the_test_one():
    assert "pip install -e '.[demo]' && quotaroute demo" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def _going_live_yaml() -> str:
    section = README.split("## Going live", 1)[1]
    m = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert m, "the Going live section has a yaml block"
    return m.group(1)


def test_going_live_config_is_valid_and_builds_a_router(tmp_path, monkeypatch):
    from router.config import load_config
    from router.sdk import Router

    for var in ("OPENAI", "ANTHROPIC", "GEMINI", "DEEPSEEK", "MOONSHOT", "ZHIPU", "DASHSCOPE"):
        monkeypatch.setenv(f"{var}_API_KEY", f"test-key-{var.lower()}-0123456789")
    cfg_file = tmp_path / "quotaroute.yaml"
    cfg_file.write_text(_going_live_yaml().replace("~/.quotaroute/ledger.sqlite", str(tmp_path / "l.sqlite")))
    cfg = load_config(str(cfg_file))
    assert cfg is not None
    router = Router.from_config(str(cfg_file))
    try:
        providers = {c.provider for c in router.candidates}
        assert {"openai", "anthropic", "gemini", "deepseek", "moonshot", "zhipu", "dashscope", "ollama"} <= providers
        plan = router.explain("Write a Python function that reverses a list")
        assert plan.steps
    finally:
        router.close()


def _readme_commands() -> list[list[str]]:
    """Every `quotaroute ...` command the README names in backticks or a code block."""
    import shlex

    found = []
    for m in re.finditer(r"(?m)(?:^\$ |`)(quotaroute [^`\n#]+)", README):
        cmd = m.group(1).strip().rstrip("`").strip()
        found.append(shlex.split(cmd.replace("|", " ").replace("...", "")))
    return found


def test_every_quotaroute_command_in_the_readme_exists():
    from router.cli import BENCH, COMMANDS

    cmds = _readme_commands()
    assert len(cmds) >= 8
    for argv in cmds:
        assert argv[1] in COMMANDS or argv[1] == "bench", argv
        if argv[1] == "bench":
            assert all(w in BENCH for w in argv[2:] if not w.startswith("-")), argv


def test_route_explain_example_runs(tmp_path, monkeypatch, capsys):
    from router.cli import main

    monkeypatch.setenv("QUOTAROUTE_HOME", str(tmp_path))
    monkeypatch.delenv("QUOTAROUTE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["route", "--explain", "Write a Python function that reverses a list"]) == 0
    out = capsys.readouterr().out
    assert "task code" in out and "policy free-first" in out
