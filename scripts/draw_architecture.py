"""Draw docs/architecture.png: the layers and one proxy request's path through them.

    python scripts/draw_architecture.py        # needs the [bench] extra (matplotlib)

Hand-laid (boxes are layers, top to bottom in import order: a layer imports only
the ones below it); the numbered arrows are one `POST /v1/chat/completions`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "architecture.png"

# (label, modules, y, colour)
LAYERS = [
    ("edge: the proxy and the CLI", "router/server/  transport · app · handlers · openai_wire · anthropic_wire · "
     "validate · keygate · auth · spendlog\nrouter/cli.py · router/commands/", 9.0, "#dbe9f6"),
    ("SDK and config", "router/sdk.py  Router: from_config · achat · astream · explain · quota_view\n"
     "router/config/  schema · paths · build (one strict schema, read in one place)", 7.6, "#e3f1df"),
    ("routing core (pure, no I/O)", "router/tasks.py (features) · engine.py choose() · filters.py · policies.py · "
     "plan.py\ncatalog.py · pricing.py · tokens.py · predictor.py (learned task fit, run-time half)", 6.2, "#fdf1d6"),
    ("execution (all I/O)", "router/executor.py (one plan walk) · streaming.py · health.py · checks.py", 4.8, "#fbe3e1"),
    ("ledger", "router/quota/  ledger.py reserve → commit | release · memory · SQLite · Redis stores", 3.4, "#efe4f5"),
    ("providers", "providers/  registry · openai.py + vendors.py (19 rows) · anthropic · gemini · bedrock · "
     "_http · _sse · retry", 2.0, "#e6e6e6"),
    ("foundation", "router/types.py (ChatRequest, ChatResponse, StreamEvent, Usage) · errors.py (one tree) · limits.py",
     0.6, "#f7f7f7"),
]

STEPS = [
    "1  socket → transport.py (header/body limits) → app.py (dispatch)",
    "2  handlers.py: key gate (auth, rpm), body, depth check",
    "3  openai_wire.py: JSON → ChatRequest (allow-list, types)",
    "4  sdk.py Router.achat → tasks.features → engine.choose() → RoutePlan",
    "5  executor.py: reserve on the ledger → provider.complete()",
    "6  providers/openai.py → vendor → ChatResponse",
    "7  executor: commit the billed usage (or fall back) → RoutedResponse",
    "8  handlers.py: encode, send, spend log + metrics",
]


def main() -> None:
    fig, ax = plt.subplots(figsize=(13, 8.2), dpi=110)
    ax.set_xlim(0, 13)
    ax.set_ylim(-0.2, 10.8)
    ax.axis("off")
    for label, mods, y, colour in LAYERS:
        ax.add_patch(FancyBboxPatch((0.2, y - 0.5), 7.4, 1.0, boxstyle="round,pad=0.02", fc=colour, ec="#555"))
        ax.text(0.35, y + 0.26, label, fontsize=10.5, weight="bold", va="center")
        ax.text(0.35, y - 0.2, mods, fontsize=7.2, va="center")

    def arrow(x: float, y0: float, y1: float, colour: str, ls: str = "-", text: str = "") -> None:
        ax.add_patch(FancyArrowPatch((x, y0), (x, y1), arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.5,
                                     ls=ls))
        if text:
            ax.text(x + 0.08, (y0 + y1) / 2, text, fontsize=7, va="center", color=colour)

    # the request goes down the gutter beside the layers; answer and bill come back up
    for a, b in zip([9.0, 7.6, 6.2], [7.6, 6.2, 4.8]):
        arrow(7.8, a - 0.1, b + 0.1, "#1f5fa8")
        arrow(8.05, b + 0.1, a - 0.1, "#b8412c", "--")
    arrow(7.8, 4.7, 3.5, "#1f5fa8", text="")
    arrow(8.05, 3.5, 4.7, "#b8412c", "--", "reserve / commit")
    arrow(8.5, 4.7, 2.1, "#1f5fa8")
    arrow(8.7, 2.1, 4.7, "#b8412c", "--", "call / answer")
    ax.text(8.9, 10.35, "one POST /v1/chat/completions", fontsize=10.5, weight="bold")
    for i, s in enumerate(STEPS):
        ax.text(8.9, 9.9 - i * 0.42, s, fontsize=7.6, va="top")
    ax.text(8.9, 6.3, "blue: the request, down\nred dashed: the answer and the bill, back up", fontsize=7.6,
            va="top", color="#333")
    ax.text(8.9, 5.3, "imports point down only\n(tests/test_import_graph.py fails on a circle\n"
            "or on runtime code importing benchmarks/)", fontsize=7.6, va="top", color="#333")
    ax.text(0.2, 10.45, "quotaroute: the layers and one request's path", fontsize=13, weight="bold")
    fig.tight_layout()
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
