"""Assemble README.md from docs/: the intro, then each topic with its headings
demoted one level. Run after editing docs/*.md: `python scripts/build_readme.py`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = [
    ("router.md", "The router and the SDK (issue 5)"),
    ("proxy.md", "The local proxy (issue 6)"),
    ("quota-ledger.md", "Free quotas and budgets (issue 4)"),
    ("cost-model.md", "Cost model: catalog, prices, token estimates (issue 3)"),
    ("providers.md", "Provider adapters: OpenAI and compatible vendors (issue 2)"),
    ("providers-native.md", "Provider adapters: Anthropic, Gemini, Bedrock (issue 2)"),
    ("replay-benchmark.md", "Offline replay benchmark (issue 7)"),
    ("live-benchmark.md", "Live benchmark (issue 9)"),
    ("architecture.md", "Architecture"),
]


def demote(md: str) -> str:
    out, fence = [], False
    for line in md.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def main() -> None:
    parts = [(ROOT / "docs" / "intro.md").read_text(encoding="utf-8").rstrip()]
    table = ROOT / "docs" / "demo-table.md"
    parts[0] = parts[0].replace("DEMO_TABLE_PLACEHOLDER", table.read_text(encoding="utf-8").strip() if table.exists() else "")
    toc = ["", "## Contents", ""]
    body = []
    for name, title in ORDER:
        f = ROOT / "docs" / name
        if not f.exists():
            continue
        text = f.read_text(encoding="utf-8").strip()
        text = re.sub(r"^# .*\n", "", text, count=1)  # the doc's own title -> ours
        anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        toc.append(f"- [{title}](#{anchor})")
        body += ["", f"## {title}", "", demote(text).strip()]
    readme = "\n".join(parts + toc + body) + "\n"
    (ROOT / "README.md").write_text(readme, encoding="utf-8")
    print(f"README.md: {len(readme.splitlines())} lines")


if __name__ == "__main__":
    main()
