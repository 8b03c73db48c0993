"""Candidate filters for the routing core (`router.engine.choose`): hard budgets,
the pinned model, the static pass (pin, rule restriction, capabilities, allow/deny,
region, known price, quality floor), usable keys (bad keys, open circuits) and why a
free pool is blocked. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from router.cards import CardInfo
from router.plan import NO_PRICE, Candidate
from router.quota.view import LedgerView
from router.tasks import Features

__all__ = ["budget_headroom", "specific_budget", "resolve_pinned", "static_pass", "usable_keys", "why_blocked",
           "no_health", "NO_KEYS", "hhmmss", "unavailable"]


def budget_headroom(ledger: LedgerView, features: Features, scope: Mapping[str, Any] | None
                     ) -> tuple[Decimal | None, str, dict[str, list[Any]], dict[str, list[Any]]]:
    """Hard budgets that apply to every candidate (min headroom) and per model/provider."""
    common: Decimal | None = None
    common_id = ""
    by_model: dict[str, list[Any]] = {}
    by_provider: dict[str, list[Any]] = {}
    if not ledger.budgets:
        return None, "", by_model, by_provider
    key = scope.get("key") if scope else None
    user = (scope.get("user") if scope else None) or features.user
    tags = set(features.tags)
    if scope and scope.get("tags"):
        tags.update(scope["tags"])
    for b in ledger.budgets:
        if not b.hard:
            continue
        s = b.scope
        if s == "model":
            by_model.setdefault(b.match, []).append(b)
            continue
        if s == "provider":
            by_provider.setdefault(b.match, []).append(b)
            continue
        if s == "global":
            ok = True
        elif s == "key":
            ok = key is not None and fnmatch.fnmatchcase(str(key), b.match)
        elif s == "user":
            ok = user is not None and fnmatch.fnmatchcase(str(user), b.match)
        else:  # tag
            ok = any(fnmatch.fnmatchcase(str(t), b.match) for t in tags)
        if ok:
            h = b.headroom()
            if common is None or h < common:
                common, common_id = h, b.budget_id
    return common, common_id, by_model, by_provider


def specific_budget(pid: str, provider: str, by_model: dict[str, list[Any]], by_provider: dict[str, list[Any]]
                     ) -> tuple[Decimal, str] | None:
    best: tuple[Decimal, str] | None = None
    for name, by in ((pid, by_model), (provider, by_provider)):
        for pat, bs in by.items():
            if pat == name or fnmatch.fnmatchcase(name, pat):
                for b in bs:
                    h = b.headroom()
                    if best is None or h < best[0]:
                        best = (h, b.budget_id)
    return best


def resolve_pinned(pinned: str, infos: Sequence[Any]) -> str | None:
    for c in infos:
        if c.id == pinned or pinned in (getattr(c, "aliases", None) or ()):
            return c.id
    for c in infos:  # "model" without the provider prefix
        if c.model == pinned:
            return c.id
    return None


NO_KEYS: tuple[None] = (None,)


def static_pass(infos: Sequence[CardInfo], is_pinned: bool, pinned: str | None, restrict: Any, rule_label: str | None,
                 needs: frozenset[str], allow: Any, deny: Any, regions: frozenset[str] | None,
                 predicted: Mapping[str, float] | None, task: str, chinese: bool, bonus: float, use_floor: bool,
                 floor: float) -> tuple[list[tuple[CardInfo, float]], list[tuple[Any, ...]], list[Candidate]]:
    survivors: list[tuple[CardInfo, float]] = []
    dropped: list[tuple[Any, ...]] = []
    below: list[Candidate] = []
    for info in infos:
        mid = info.id
        if is_pinned and mid != pinned:
            dropped.append((mid, "not the pinned model"))
            continue
        if restrict is not None and not restrict.match(mid):
            dropped.append((mid, "excluded by %s", (rule_label,)))
            continue
        if needs and not needs <= info.caps:
            dropped.append((mid, "lacks %s", (", ".join(sorted(needs - info.caps)),)))
            continue
        if allow is not None and not allow.match(mid):
            dropped.append((mid, "not in the allow list"))
            continue
        if deny is not None and deny.match(mid):
            dropped.append((mid, "in the deny list"))
            continue
        if regions is not None and info.regions.isdisjoint(regions):
            dropped.append((mid, "region %s not allowed (need %s)",
                            ("/".join(sorted(info.regions)) or "unknown", "/".join(sorted(regions)))))
            continue
        if info.unpriced:  # even with free quota: an overflow or a misattributed call would bill as $0
            dropped.append((mid, NO_PRICE, (mid,)))
            continue
        q = predicted.get(mid) if predicted is not None else None
        if q is None:
            q = info.tq.get(task)
            if q is None:
                q = info.qdefault
        if chinese and info.cn:
            q = min(1.0, q + bonus)
        if use_floor and q < floor:  # below the task's quality floor: no need to price it
            below.append(Candidate(info, None, False, None, q, NO_KEYS))
            continue
        survivors.append((info, q))
    return survivors, dropped, below


def no_health(_key: str) -> None:
    return None


def usable_keys(mid: str, pkeys: Sequence[str], hget: Any, now: datetime) -> tuple[list[str | None], float, str]:
    usable: list[tuple[int, int, int, str]] = []
    why = ""
    lat = 0.0
    for i, k in enumerate(pkeys):
        kh = hget(k)
        if kh is not None and kh.bad and kh.blocked(now):
            why = f"key {k} marked bad ({kh.bad_reason})"
            continue
        dh = hget(mid + "@" + k)
        if dh is not None:
            if not dh.available(now):
                r = unavailable(mid, dh, now)
                why = r[1] % r[2]
                continue
            if dh.latency_ewma_ms is not None and not usable:
                lat = dh.latency_ewma_ms
            usable.append((dh.in_flight, dh.requests, i, k))
        else:
            usable.append((0, 0, i, k))
    if len(usable) > 1:
        usable.sort()
    return [u[3] for u in usable], lat, why


def unavailable(mid: str, h: Any, now: datetime) -> tuple[str, str, tuple[Any, ...]]:
    """The reason a deployment that is not `available(now)` is dropped."""
    if h.bad and h.blocked(now):
        if h.probing:
            return (mid, "key may not use this model (%s): a probe is in flight", (h.bad_reason,))
        return (mid, "key may not use this model (%s) until %s", (h.bad_reason, hhmmss(h.bad_until)))
    if h.open_until is not None and now < h.open_until:
        return (mid, "circuit open until %s", (hhmmss(h.open_until),))
    return (mid, "circuit half-open: a probe is in flight", ())


def hhmmss(t: datetime | None) -> str:
    return t.strftime("%H:%M:%S") if t else "?"


def why_blocked(p: Any, now: datetime) -> str:
    if p.exhausted_until is not None and now < p.exhausted_until:
        return f"exhausted until {hhmmss(p.exhausted_until)}"
    if p.cooldown_until is not None and now < p.cooldown_until:
        return f"cooling down until {hhmmss(p.cooldown_until)}"
    if p.resets_at is not None:
        return f"empty until {hhmmss(p.resets_at)}"
    return "empty"
