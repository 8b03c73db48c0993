"""The demo's live view (rich): a progress bar with the running cost, the latest
routing decisions with their reasons, and the free pools draining."""

from __future__ import annotations

import threading
from collections import deque
from decimal import Decimal
from typing import Any

__all__ = ["LiveUI", "QuietUI"]


class QuietUI:
    """No live view (non-terminal output, --json, tests): one line per run."""

    def __init__(self, console: Any = None) -> None:
        self.console = console

    def start_run(self, strategy: Any, total: int) -> None:
        self.strategy = strategy

    def update(self, result: Any, req: Any) -> None:
        pass

    def end_run(self) -> None:
        pass


class LiveUI:
    def __init__(self, console: Any, pool_limits: dict[str, str]) -> None:
        self.console = console
        self.pool_limits = pool_limits  # pool id -> human limit, e.g. "94 requests/day"
        self._lock = threading.Lock()
        self._live: Any = None
        self._recent: deque[Any] = deque(maxlen=8)
        self._result: Any = None
        self._switches: list[str] = []
        self._seen_paid_after_free = False

    def start_run(self, strategy: Any, total: int) -> None:
        from rich.live import Live  # lazy: import time (rich), only for the live view
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.strategy = strategy
        self.total = total
        self._recent.clear()
        self._switches = []
        self._free_seen: set[str] = set()
        self._paid_started = False
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("cost ${task.fields[cost]}  free {task.fields[free]}"), console=self.console,
        )
        self.task = self.progress.add_task(strategy.label, total=total, cost="0.0000", free=0)
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self._live.start()

    def update(self, result: Any, req: Any) -> None:
        with self._lock:
            self._result = result
            self._recent.append(req)
            if req.error is None:
                if req.free:
                    self._free_seen.add(req.provider)
                elif self._free_seen and not self._paid_started and self.strategy.name == "free-first":
                    self._paid_started = True
                    self._switches.append(
                        f"request {len(result.requests)}: a free pool ran dry -> {req.model} (paid, ${req.cost_usd})"
                    )
            self.progress.update(self.task, completed=len(result.requests),
                                 cost=f"{result.cost_usd:.4f}", free=result.free_requests)
            if self._live is not None:
                self._live.update(self._render())

    def end_run(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None

    def _render(self) -> Any:
        from rich.console import Group  # lazy: import time (rich)
        from rich.table import Table

        parts: list[Any] = [self.progress]
        t = Table(title="latest routing decisions (recorded outcomes, not live answers)", expand=True,
                  title_justify="left", show_edge=False)
        t.add_column("#", justify="right", width=4)
        t.add_column("task", width=13)
        t.add_column("model", overflow="fold")
        t.add_column("cost $", justify="right", width=10)
        t.add_column("why", overflow="ellipsis", ratio=2, no_wrap=True)
        for r in list(self._recent):
            cost = "[green]free[/]" if r.free else f"{r.cost_usd:.6f}"
            if r.error:
                t.add_row(str(r.index), r.task, "[red]error[/]", "", r.error[:80])
            else:
                t.add_row(str(r.index), r.task, r.model, cost, r.reason)
        parts.append(t)
        res = self._result
        if res is not None and res.pool_remaining:
            p = Table(title="free quota (from GET /v1/quota)", title_justify="left", show_edge=False)
            p.add_column("pool")
            p.add_column("left", justify="right")
            p.add_column("", width=32)
            for pid, pv in sorted(res.pool_remaining.items()):
                left = pv.get("remaining_requests")
                usd = pv.get("remaining_usd")
                limit = self.pool_limits.get(pid, "")
                if left is not None:
                    frac = _frac(left, limit)
                    shown = f"{left} req ({limit})"
                elif usd is not None:
                    frac = _frac(Decimal(str(usd)), limit)
                    shown = f"${Decimal(str(usd)):.4f} ({limit})"
                else:
                    frac, shown = 1.0, "n/a"
                bar = "█" * int(round(frac * 30))
                colour = "green" if frac > 0.25 else ("yellow" if frac > 0 else "red")
                p.add_row(pid, shown, f"[{colour}]{bar:<30}[/]")
            parts.append(p)
        for s in self._switches[-2:]:
            parts.append(f"[bold yellow]switch:[/] {s}")
        return Group(*parts)


def _frac(left: Any, limit: str) -> float:
    try:
        total = Decimal(limit.split()[0].lstrip("$"))
        return max(0.0, min(1.0, float(Decimal(str(left)) / total))) if total else 0.0
    except Exception:  # noqa: BLE001 - display only
        return 1.0
