"""In-process store (the SDK default): dicts and a heap, no I/O, no locks needed
(every method runs to completion without awaiting, so it is atomic on the loop).

An expired reservation is charged at its reserved amounts (the call may have
reached the vendor; see `router.quota.store`): the sweep drops only its in-flight
holds and keeps it as a tombstone for `GRACE_S`, so a late commit corrects the
charge to the actual usage instead of adding it on top."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from router.quota.store import GRACE_S, HOLD_SUFFIX, Acquired, Adjust, Check

__all__ = ["MemoryStore"]

_GC_EVERY = 4096


class MemoryStore:
    """Counters: key -> [value, expire_at]. Reservations: id -> (expires_at, [(key, amount, hold)])."""

    def __init__(self, *, limit_divisor: int = 1) -> None:
        self._c: dict[str, list[float]] = {}
        self._res: dict[str, tuple[float, list[tuple[str, int, bool]]]] = {}
        self._heap: list[tuple[float, str]] = []
        self._expired: set[str] = set()  # reservations charged at their reserved amounts on expiry
        self._ops = 0
        self.limit_divisor = max(1, int(limit_divisor))  # local fallback: limit / expected replicas
        # local fallback: last known shared usage per check span (what the replica read or
        # wrote on the shared store); the local limit is (limit - base) / divisor on top of it
        self.base: dict[tuple[str, ...], int] = {}

    # -- sync core (also used by the Redis store's local fallback) ---------------
    def _get(self, key: str, now: float) -> int:
        v = self._c.get(key)
        if v is None or v[1] <= now:
            return 0
        return int(v[0])

    def _add(self, key: str, amount: int, expire_at: float, now: float) -> None:
        v = self._c.get(key)
        if v is None or v[1] <= now:
            self._c[key] = [amount, expire_at]
        else:
            v[0] += amount
            if expire_at > v[1]:
                v[1] = expire_at

    def _undo(self, items: list[tuple[str, int, bool]], now: float) -> None:
        for key, amount, hold in items:
            v = self._c.get(key)
            if v is not None and v[1] > now:
                v[0] -= amount
            if hold:
                h = self._c.get(key + HOLD_SUFFIX)
                if h is not None:
                    h[0] -= amount

    def _charge_expired(self, rid: str, items: list[tuple[str, int, bool]], exp: float) -> None:
        """Settle an expired reservation at its reserved amounts: drop only the in-flight holds."""
        for key, amount, hold in items:
            if hold:
                h = self._c.get(key + HOLD_SUFFIX)
                if h is not None:
                    h[0] -= amount
        self._res[rid] = (exp + GRACE_S, [(k, a, False) for k, a, _ in items])
        self._expired.add(rid)
        heapq.heappush(self._heap, (exp + GRACE_S, rid))

    def sweep_sync(self, now: float) -> int:
        n = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            exp, rid = heapq.heappop(heap)
            r = self._res.get(rid)
            if r is not None and r[0] == exp:
                if rid in self._expired:  # the tombstone's grace is over
                    del self._res[rid]
                    self._expired.discard(rid)
                    continue
                self._charge_expired(rid, r[1], exp)
                n += 1
        self._ops += 1
        if self._ops % _GC_EVERY == 0:
            for k in [k for k, v in self._c.items() if v[1] <= now]:
                del self._c[k]
        return n

    def acquire_sync(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        self.sweep_sync(now)
        got = self._fits(checks, now)
        if not got.ok:
            return got
        items = []
        for ch in checks:
            if ch.amount:
                self._add(ch.charge, ch.amount, ch.expire_at, now)
            if ch.hold:
                self._add(ch.charge + HOLD_SUFFIX, ch.amount, max(ch.expire_at, expires_at), now)
            items.append((ch.charge, ch.amount, ch.hold))
        self._res[res_id] = (expires_at, items)
        heapq.heappush(self._heap, (expires_at, res_id))
        return got

    def take_sync(self, checks: Sequence[Check], now: float) -> Acquired:
        got = self._fits(checks, now)
        if got.ok:
            for ch in checks:
                if ch.amount:
                    self._add(ch.charge, ch.amount, ch.expire_at, now)
        return got

    def _fits(self, checks: Sequence[Check], now: float) -> Acquired:
        get = self._c.get
        d = self.limit_divisor
        base = self.base
        totals = []
        for i, ch in enumerate(checks):
            used = base.get(ch.span, 0) if base else 0
            for k in ch.span:
                v = get(k)
                if v is not None and v[1] > now:
                    used += v[0]
            if ch.limit is not None:
                if d > 1 or base:  # local fallback: a share of what was left when the shared store went away
                    b = base.get(ch.span, 0)
                    fits = used - b + ch.amount <= (ch.limit - b) // d
                else:
                    fits = used + ch.amount <= ch.limit
                if not fits:
                    return Acquired(False, i, tuple(totals) + (used,))
            totals.append(used + ch.amount)
        return Acquired(True, -1, tuple(totals))

    def settle_sync(self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True) -> tuple[bool, list[int]]:
        r = self._res.get(res_id)
        live = r is not None and res_id not in self._expired
        held: dict[str, tuple[int, bool]] = {k: (a, h) for k, a, h in r[1]} if r is not None else {}
        applied = []
        for adj in adjusts:
            h_amt, h_hold = held.pop(adj.charge, (0, False))
            actual = adj.actual
            if adj.clamp is not None:
                others = sum(self._get(k, now) for k in (adj.span or (adj.charge,))) - h_amt
                actual = max(0, min(actual, adj.clamp - others))
            delta = actual - h_amt
            if delta:
                self._add(adj.charge, delta, adj.expire_at, now)
            if h_hold:
                hv = self._c.get(adj.charge + HOLD_SUFFIX)
                if hv is not None:
                    hv[0] -= h_amt
            applied.append(actual)
        if r is not None:
            rest = [(k, a, h) for k, (a, h) in held.items()]
            if final:
                del self._res[res_id]
                self._expired.discard(res_id)
                self._undo(rest, now)
            else:
                self._res[res_id] = (r[0], rest)
        return live, applied

    def release_sync(self, res_id: str, now: float) -> bool:
        r = self._res.pop(res_id, None)
        if r is None:
            return False
        self._expired.discard(res_id)
        self._undo(r[1], now)
        return True

    def read_sync(self, keys: Sequence[str], now: float) -> list[int]:
        return [self._get(k, now) for k in keys]

    def raise_to_sync(self, key: str, value: int, expire_at: float, now: float) -> None:
        v = self._c.get(key)
        if v is None or v[1] <= now:
            self._c[key] = [value, expire_at]
        else:
            v[0] = max(v[0], value)
            v[1] = max(v[1], expire_at)

    # -- async Store interface -------------------------------------------------
    async def acquire(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        return self.acquire_sync(res_id, checks, expires_at, now)

    async def settle(self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True) -> tuple[bool, list[int]]:
        return self.settle_sync(res_id, adjusts, now, final)

    async def release(self, res_id: str, now: float) -> bool:
        return self.release_sync(res_id, now)

    async def take(self, checks: Sequence[Check], now: float) -> Acquired:
        return self.take_sync(checks, now)

    async def read(self, keys: Sequence[str], now: float) -> list[int]:
        return self.read_sync(keys, now)

    async def raise_to(self, key: str, value: int, expire_at: float, now: float) -> None:
        self.raise_to_sync(key, value, expire_at, now)

    async def sweep(self, now: float) -> int:
        return self.sweep_sync(now)

    async def aclose(self) -> None:
        return None
