"""Metrics on tiny hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import metrics as M

# (2, .6) lies under the segment (1, .5)-(3, .9); (2.5, .55) and (4, .85) are dominated.
COST = [1.0, 2.0, 3.0, 4.0, 2.5]
QUAL = [0.5, 0.6, 0.9, 0.85, 0.55]


def test_hull():
    xs, ys = M.nondecreasing_hull(COST, QUAL)
    assert xs.tolist() == [1.0, 3.0] and ys.tolist() == [0.5, 0.9]


def test_hull_keeps_concave_points_and_ignores_nan():
    xs, ys = M.nondecreasing_hull([1, 2, 3, np.nan], [0.5, 0.8, 0.9, 1.0])
    assert xs.tolist() == [1, 2, 3] and ys.tolist() == [0.5, 0.8, 0.9]
    assert M.nondecreasing_hull([], [])[0].size == 0


def test_hull_quality_at():
    xs, ys = M.nondecreasing_hull(COST, QUAL)
    np.testing.assert_allclose(M.hull_quality_at(xs, ys, [0.5, 1.0, 2.0, 3.0, 10.0]), [0.0, 0.5, 0.7, 0.9, 0.9])


def test_aiq_by_hand():
    xs, ys = M.nondecreasing_hull(COST, QUAL)
    # [1,3]: trapezoid (0.5+0.9)/2*2 = 1.4; [3,5]: 0.9*2 = 1.8 -> 3.2 / 4
    assert M.aiq(xs, ys, 1.0, 5.0) == pytest.approx(0.8)
    # left of the cheapest point counts 0: 3.2 / 5
    assert M.aiq(xs, ys, 0.0, 5.0) == pytest.approx(0.64)
    # a flat curve has AIQ = its quality on any axis
    assert M.aiq(np.array([1.0]), np.array([0.7]), 1.0, 100.0, log=True) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        M.aiq(xs, ys, 2.0, 1.0)


def test_min_cost_for_quality():
    xs, ys = M.nondecreasing_hull(COST, QUAL)
    assert M.min_cost_for_quality(xs, ys, 0.7) == pytest.approx(2.0)
    assert M.min_cost_for_quality(xs, ys, 0.4) == pytest.approx(1.0)
    assert M.min_cost_for_quality(xs, ys, 0.95) is None


def test_pgr_apgr_cpt_by_hand():
    assert M.pgr(0.7, 0.5, 0.9) == pytest.approx(0.5)
    # PGR at shares 0, .5, 1 = 0, .75, 1 -> trapezoids .1875 + .4375
    assert M.apgr([0.5], [0.8], 0.5, 0.9) == pytest.approx(0.625)
    # a random router interpolates linearly: APGR 0.5
    shares = np.linspace(0, 1, 11)
    assert M.apgr(shares, 0.5 + 0.4 * shares, 0.5, 0.9) == pytest.approx(0.5)
    # CPT on the hull (0,.5)-(.5,.8)-(1,.9): PGR .5 = q .7 -> share 1/3; PGR .8 = q .82 -> .6
    assert M.cpt([0.5], [0.8], 0.5, 0.9, 0.5) == pytest.approx(1 / 3)
    assert M.cpt([0.5], [0.8], 0.5, 0.9, 0.8) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        M.pgr(0.5, 0.5, 0.5)


def test_bootstrap():
    assert M.bootstrap_mean_ci(np.full(50, 0.3)) == pytest.approx((0.3, 0.3))
    v = np.r_[np.zeros(500), np.ones(500)]
    lo, hi = M.bootstrap_mean_ci(v, n_boot=400, seed=1)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(1000), rel=0.3)
