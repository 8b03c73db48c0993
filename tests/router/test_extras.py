"""An optional dependency that is not installed fails a command with one clear line."""

from __future__ import annotations

import sys

import pytest

from router.cli import main
from router.extras import MissingExtra, need


def test_need_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingExtra, match=r"the plot needs matplotlib, .*pip install 'quotaroute\[bench\]'"):
        need("matplotlib", extra="bench", purpose="the plot")
    assert need("json", extra="bench", purpose="x") is sys.modules["json"]


@pytest.mark.parametrize("argv, extra", [
    (["bench", "replay"], "bench"),
    (["demo", "--prompts", "3"], "demo"),
])
def test_a_command_without_matplotlib_says_so_in_one_line(monkeypatch, tmp_path, capsys, argv, extra):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"quotaroute {argv[0] if argv[0] != 'bench' else 'bench replay'}: ")
    assert f"'quotaroute[{extra}]'" in err and "Traceback" not in err
