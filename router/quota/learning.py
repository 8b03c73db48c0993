"""Learning from upstream signals: rate-limit headers and QuotaExhausted errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from router.quota.records import FAR
from router.quota.windows import from_ts, to_ts
from router.types import RateLimitSnapshot

if TYPE_CHECKING:
    from router.quota.ledger import Ledger
    from router.quota.records import _Win

__all__ = ["observe", "mark_exhausted"]



async def observe(ledger: "Ledger", model_id: str, snapshot: RateLimitSnapshot, now: datetime) -> None:
    """Rate-limit headers: raise our usage counters to what the vendor reports."""
    ts = to_ts(now)
    ledger.known_models.add(model_id)
    ledger.observed[model_id] = (snapshot.remaining_requests, snapshot.remaining_tokens, ts)
    for metric, limit, rem, reset_s in (
        ("r", snapshot.limit_requests, snapshot.remaining_requests, snapshot.reset_requests_s),
        ("t", snapshot.limit_tokens, snapshot.remaining_tokens, snapshot.reset_tokens_s),
    ):
        if rem is None:
            continue
        matched = False
        for p in ledger.pools_for(model_id):
            w = _match_window(p.wins, metric, limit, reset_s)
            if w is None:
                continue
            matched = True
            lim = w.requests if metric == "r" else w.tokens
            s = w.window.slot(ts)
            pre = f"w|{p.id}|{w.index}|{metric}|"
            keys = [pre + k for k in s.span]
            vals = await ledger.store.read(keys, ts)
            others = sum(vals) - vals[-1]
            target = max(0, (lim or 0) - rem) - others
            if target > vals[-1]:
                await ledger.store.raise_to(pre + s.charge, target, s.expire_at, ts)
        if rem <= 0 and not matched:
            await ledger.cooldown(model_id, reset_s if reset_s else 60.0, now)
    if snapshot.retry_after_s:
        await ledger.cooldown(model_id, snapshot.retry_after_s, now)


async def mark_exhausted(ledger: "Ledger", model_id: str, now: datetime, until: datetime | None = None,
                         *, pool_id: str | None = None) -> datetime:
    """A QuotaExhausted error: the model's free pools (or the model itself) are
    empty until `until` (default: the pool's next reset)."""
    ts = to_ts(now)
    ledger.known_models.add(model_id)
    pools = [ledger.pools[pool_id]] if pool_id in ledger.pools else [p for p in ledger.pools_for(model_id) if p.free_call]
    last = ts
    for p in pools:
        if p.grant_unit is not None and until is None:
            await ledger.store.raise_to(p.key("g"), p.grant_limit, p.grant_expires or ts + FAR, ts)
            continue
        end = until.timestamp() if until else max(
            (w.window.slot(ts).resets_at for w in p.wins if w.window.mode == "calendar"),
            default=ts + ledger.default_exhaust_s)
        await ledger.store.raise_to(p.key("x"), int(end * 1000), end, ts)
        last = max(last, end)
    if not pools:
        end = until.timestamp() if until else ts + ledger.default_exhaust_s
        await ledger.store.raise_to(f"xm|{model_id}", int(end * 1000), end, ts)
        last = end
    return from_ts(last)


def _match_window(wins: Sequence["_Win"], metric: str, limit: int | None, reset_s: float | None) -> "_Win | None":
    cands = [w for w in wins if (w.requests if metric == "r" else w.tokens) is not None]
    if not cands:
        return None
    if limit is not None:
        for w in cands:
            if (w.requests if metric == "r" else w.tokens) == limit:
                return w
    length = {"minute": 60, "hour": 3600, "day": 86400, "month": 2592000}
    if reset_s is not None:
        fits = [w for w in cands if length[w.window.per] >= reset_s]
        if fits:
            return min(fits, key=lambda w: length[w.window.per])
    return min(cands, key=lambda w: length[w.window.per])
