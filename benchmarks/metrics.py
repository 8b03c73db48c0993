"""Routing metrics on cost-quality points (RouterBench, RouteLLM). Pure numpy, no I/O.

Definitions (docs/replay-benchmark.md has the long version):

* **hull**: the non-decreasing convex hull of a router's (cost, quality) points: drop
  dominated points, keep the upper concave chain. Any point on it is reachable by
  randomly mixing the two neighbouring settings, so it is the router's real curve.
* **AIQ** (RouterBench): area under the hull between fixed cost bounds, divided by the
  width. Left of the hull's cheapest point the quality counts as 0 (callers anchor
  every curve at the cheapest single model, which any router can fall back to);
  right of its last point the curve stays flat.
* **PGR / APGR / CPT** (RouteLLM): for a strong/weak model pair, PGR = (q - q_weak) /
  (q_strong - q_weak); APGR = area under PGR over the share of calls sent to the strong
  model (0..1); CPT(x) = the smallest strong-call share reaching PGR >= x (on the hull).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "nondecreasing_hull",
    "hull_quality_at",
    "min_cost_for_quality",
    "aiq",
    "pgr",
    "apgr",
    "cpt",
    "bootstrap_mean_ci",
]


def nondecreasing_hull(costs: Sequence[float], qualities: Sequence[float]) -> tuple[Any, Any]:
    """Vertices (xs, ys) of the non-decreasing upper convex hull, cost ascending."""
    c = np.asarray(costs, dtype=float)
    q = np.asarray(qualities, dtype=float)
    ok = np.isfinite(c) & np.isfinite(q)
    c, q = c[ok], q[ok]
    if c.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.lexsort((-q, c))  # cost asc, then quality desc
    pareto: list[tuple[float, float]] = []
    best = -np.inf
    for i in order:
        if q[i] > best:
            pareto.append((float(c[i]), float(q[i])))
            best = q[i]
    hull: list[tuple[float, float]] = []
    for p in pareto:
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            # pop hull[-1] when it lies on or below the segment hull[-2] -> p
            if (x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    xs = np.array([h[0] for h in hull])
    ys = np.array([h[1] for h in hull])
    return xs, ys


def hull_quality_at(xs: Any, ys: Any, cost: Any) -> Any:
    """Quality reachable at `cost` (array ok): 0 left of the hull, flat right of it."""
    cost = np.asarray(cost, dtype=float)
    if len(xs) == 0:
        return np.zeros_like(cost)
    out = np.interp(cost, xs, ys, left=0.0, right=ys[-1])
    return np.where(cost < xs[0], 0.0, out)


def min_cost_for_quality(xs: Any, ys: Any, target: float) -> float | None:
    """Smallest cost at which the hull reaches `target` quality (None if never)."""
    if len(xs) == 0 or target > ys[-1] + 1e-12:
        return None
    if target <= ys[0]:
        return float(xs[0])
    k = int(np.searchsorted(ys, target))  # ys strictly increasing on the hull
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def aiq(xs: Any, ys: Any, c_lo: float, c_hi: float, *, log: bool = False, n: int = 4097) -> float:
    """Average quality on the hull over [c_lo, c_hi] (exact for linear cost; `log=True`
    averages over log-cost on a dense grid)."""
    if c_hi <= c_lo:
        raise ValueError("aiq needs c_hi > c_lo")
    if log:
        grid = np.exp(np.linspace(np.log(c_lo), np.log(c_hi), n))
        vals = hull_quality_at(xs, ys, grid)
        u = np.log(grid)
        return float(np.sum((vals[1:] + vals[:-1]) * np.diff(u)) / 2 / (u[-1] - u[0]))
    if len(xs) == 0:
        return 0.0
    pts = sorted({c_lo, c_hi, *[float(x) for x in xs if c_lo < x < c_hi]})
    total = 0.0
    for a, b in zip(pts[:-1], pts[1:]):
        if b <= xs[0]:
            continue
        fa = float(np.interp(a, xs, ys, right=ys[-1]))  # a >= xs[0] here (xs[0] is a breakpoint)
        fb = float(np.interp(b, xs, ys, right=ys[-1]))
        total += (fa + fb) / 2 * (b - a)
    return total / (c_hi - c_lo)


def pgr(quality: Any, q_weak: float, q_strong: float) -> Any:
    """Performance gap recovered (RouteLLM)."""
    if q_strong == q_weak:
        raise ValueError("pgr needs q_strong != q_weak")
    return (np.asarray(quality, dtype=float) - q_weak) / (q_strong - q_weak)


def _pair_hull(strong_share: Sequence[float], quality: Sequence[float], q_weak: float, q_strong: float) -> tuple[Any, Any]:
    xs = [0.0, 1.0, *map(float, strong_share)]
    ys = [q_weak, q_strong, *map(float, quality)]
    return nondecreasing_hull(xs, ys)


def apgr(strong_share: Sequence[float], quality: Sequence[float], q_weak: float, q_strong: float, *, hull: bool = False) -> float:
    """Area under PGR vs strong-call share in [0, 1], endpoints (0, weak) and (1, strong)
    added. `hull=False` (RouteLLM) integrates the points as measured."""
    if hull:
        xs, ys = _pair_hull(strong_share, quality, q_weak, q_strong)
        return aiq(xs, pgr(ys, q_weak, q_strong), 0.0, 1.0)
    pts = {0.0: q_weak, 1.0: q_strong}
    for s, q in zip(strong_share, quality):
        if 0.0 < float(s) < 1.0:
            pts[float(s)] = max(pts.get(float(s), -np.inf), float(q))
    x = np.array(sorted(pts))
    y = pgr(np.array([pts[k] for k in x]), q_weak, q_strong)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def cpt(strong_share: Sequence[float], quality: Sequence[float], q_weak: float, q_strong: float, target: float) -> float | None:
    """Call-performance threshold: the smallest strong-call share with PGR >= target (hull)."""
    xs, ys = _pair_hull(strong_share, quality, q_weak, q_strong)
    return min_cost_for_quality(xs, pgr(ys, q_weak, q_strong), target) if len(xs) else None


def bootstrap_mean_ci(values: Any, *, idx: Any = None, n_boot: int = 300, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean. Pass the same `idx` (n_boot x n) to
    several calls to resample the same prompts for every router."""
    v = np.asarray(values, dtype=float)
    if idx is None:
        idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
