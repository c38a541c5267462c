"""The bootstrap primitive against plain-Python reference computations on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unidetox.measure.bootstrap import bootstrap_ci, percentile_interval, resample_indices, strata_rows
from unidetox.measure.metrics import MetricError


def _quantile(sorted_x: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), written out."""
    pos = q * (len(sorted_x) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_x) - 1)
    return sorted_x[lo] + (pos - lo) * (sorted_x[hi] - sorted_x[lo])


def test_plain_resamples_are_one_integers_draw():
    idx = resample_indices(5, 7, np.random.default_rng(4))
    assert idx.shape == (7, 5)
    np.testing.assert_array_equal(idx, np.random.default_rng(4).integers(0, 5, size=(7, 5)))


def test_stratified_resamples_match_a_loop_and_stay_in_their_stratum():
    strata = np.array(["b", "a", "b", "b", "a", "c"])
    assert [g.tolist() for g in strata_rows(strata)] == [[0, 2, 3], [1, 4], [5]]  # first-seen order
    idx = resample_indices(6, 20, np.random.default_rng(9), strata)
    rng = np.random.default_rng(9)
    for row in idx.tolist():
        ref = [None] * 6
        for members in ([0, 2, 3], [1, 4], [5]):
            for col, r in zip(members, rng.choice(np.array(members), size=len(members), replace=True).tolist()):
                ref[col] = r
        assert row == ref
    assert all(strata[r] == strata[c] for row in idx for c, r in enumerate(row))


def test_bootstrap_ci_matches_loop_reference():
    x = [0.9, 0.1, 0.4, 0.7, 0.3]
    y = [0.2, 0.3, 0.1, 0.5, 0.3]
    n, n_boot, seed, level = len(x), 60, 11, 0.9
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n)).tolist()
    diffs = sorted(sum(x[j] for j in row) / n - sum(y[j] for j in row) / n for row in idx)  # paired
    xa, ya = np.array(x), np.array(y)
    point, lo, hi = bootstrap_ci(lambda r: xa[r].mean() - ya[r].mean(), n, n_boot=n_boot, level=level, seed=seed)
    assert point == pytest.approx(sum(x) / n - sum(y) / n)
    assert lo == pytest.approx(_quantile(diffs, 0.05)) and hi == pytest.approx(_quantile(diffs, 0.95))
    assert bootstrap_ci(lambda r: xa[r].mean(), n, n_boot=n_boot, seed=seed + 1) != bootstrap_ci(
        lambda r: xa[r].mean(), n, n_boot=n_boot, seed=seed
    )


def test_stratified_bootstrap_ci_matches_loop_reference():
    x = [1.0, 0.0, 3.0, 2.0, 5.0, 4.0]
    strata = [0, 0, 1, 1, 1, 0]
    n_boot, seed = 30, 2
    rng = np.random.default_rng(seed)
    groups = [[0, 1, 5], [2, 3, 4]]
    reps = []
    for _ in range(n_boot):  # statistic: mean over strata of the stratum mean
        means = [sum(x[r] for r in rng.choice(np.array(g), size=len(g)).tolist()) / len(g) for g in groups]
        reps.append(sum(means) / len(means))
    xa = np.array(x)
    point, lo, hi = bootstrap_ci(
        lambda r: np.mean([xa[r[g]].mean() for g in groups]), 6, strata=strata, n_boot=n_boot, seed=seed
    )
    assert point == pytest.approx((5 / 3 + 10 / 3) / 2)
    assert (lo, hi) == pytest.approx((_quantile(sorted(reps), 0.025), _quantile(sorted(reps), 0.975)))


def test_percentile_interval_and_errors():
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert bootstrap_ci(lambda r: 1.0, 3, n_boot=10) == (1.0, 1.0, 1.0)
    with pytest.raises(MetricError, match="level"):
        percentile_interval(np.ones(3), 1.0)
    with pytest.raises(MetricError, match="n_boot"):
        resample_indices(3, 0, np.random.default_rng(0))
    with pytest.raises(MetricError, match="at least one row"):
        resample_indices(0, 5, np.random.default_rng(0))
    with pytest.raises(MetricError, match="strata"):
        resample_indices(3, 5, np.random.default_rng(0), strata=[0, 1])
