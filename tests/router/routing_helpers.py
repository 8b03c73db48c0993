"""Shared builders for the router tests: model cards, ledger views, features."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from router.catalog import ModelCard
from router.pricing import Price
from router.quota.view import BudgetView, LedgerView, PoolView
from router.tasks import Features
from router.types import TASK_KINDS

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def card(mid: str, inp: str | None = "1", out: str | None = "2", *, q: float = 0.8, caps: tuple[str, ...] = ("tools",),
         ctx: int = 128_000, regions: tuple[str, ...] = ("us",), max_output: int | None = None,
         tq: dict[str, float] | None = None, currency: str = "USD", **price_kw: Any) -> ModelCard:
    prov, model = mid.split(":", 1)
    price = None if inp is None else Price(input=inp, output=out, currency=currency, **price_kw)
    return ModelCard(id=mid, provider=prov, model=model, context_window=ctx, max_output=max_output,
                     capabilities=frozenset(caps) | {"streaming"}, price=price, regions=frozenset(regions),
                     task_quality=tq if tq is not None else {t: q for t in TASK_KINDS})


def feats(task: str = "chat", *, needs: tuple[str, ...] = (), inp: int = 1000, out: int = 500, **kw: Any) -> Features:
    return Features(task=task, needs=frozenset(needs), input_tokens=inp, expected_output_tokens=out, **kw)


def free_pool(pid: str, *, remaining: int | None = 100, exhausted: bool = False, cooldown: bool = False,
              on_exhaust: str = "block") -> PoolView:
    return PoolView(pool_id=pid, kind="free", free=True, on_exhaust=on_exhaust,  # type: ignore[arg-type]
                    remaining_requests=remaining,
                    exhausted_until=NOW + timedelta(hours=3) if exhausted else None,
                    cooldown_until=NOW + timedelta(seconds=30) if cooldown else None)


def view(pools: dict[str, tuple[PoolView, tuple[str, ...]]] | None = None, budgets: tuple[BudgetView, ...] = ()
         ) -> LedgerView:
    pv: dict[str, PoolView] = {}
    mp: dict[str, list[str]] = {}
    for pid, (p, models) in (pools or {}).items():
        pv[pid] = p
        for m in models:
            mp.setdefault(m, []).append(pid)
    return LedgerView(pools=pv, model_pools={k: tuple(v) for k, v in mp.items()}, budgets=budgets)


def budget(bid: str, limit: str, spent: str = "0", *, scope: str = "global", match: str = "*", hard: bool = True
           ) -> BudgetView:
    return BudgetView(budget_id=bid, scope=scope, match=match, period="month",  # type: ignore[arg-type]
                      limit_usd=Decimal(limit), spent_usd=Decimal(spent), hard=hard)
