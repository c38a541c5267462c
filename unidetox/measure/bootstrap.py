"""Percentile bootstrap: resampled row indices, and the interval of a statistic over those resamples.

One primitive serves every confidence interval of the package (paired differences over prompts in
:mod:`unidetox.measure.compare`, political shares over texts in :mod:`unidetox.analysis.politics.shares`):

* :func:`resample_indices` draws ``n_boot`` resamples of ``n`` rows with replacement from a seeded
  ``numpy.random.Generator``, optionally within strata;
* :func:`percentile_interval` takes the two tail quantiles of the resampled statistic;
* :func:`bootstrap_ci` runs both for a statistic of the resampled rows. Every array the statistic reads is
  indexed with the same rows, so a difference of two aligned arrays is a paired bootstrap.

>>> x = np.array([0.0, 1.0, 1.0, 0.0])
>>> bootstrap_ci(lambda rows: x[rows].mean(), x.size, n_boot=200, seed=0)[0]
0.5
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unidetox.measure.metrics import MetricError


def strata_rows(strata) -> list[np.ndarray]:
    """Row numbers of each stratum of `strata` (shape (n,), any labels), strata in first-seen order."""
    strata = np.asarray(strata)
    return [np.flatnonzero(strata == s) for s in dict.fromkeys(strata.tolist())]


def resample_indices(n_rows: int, n_boot: int, rng: np.random.Generator, strata=None) -> np.ndarray:
    """Row indices of `n_boot` resamples with replacement: int64 array of shape (n_boot, n_rows).

    Without `strata`: one draw ``rng.integers(0, n_rows, size=(n_boot, n_rows))``. With `strata` (shape
    (n_rows,), any labels): resample by resample, stratum by stratum (first-seen order), ``rng.choice(rows,
    size=len(rows))`` over the stratum's rows, written back at those rows' columns; so column c of every
    resample holds a row of the stratum of row c, and each stratum keeps its size.
    """
    if n_boot < 1:
        raise MetricError(f"n_boot must be >= 1, got {n_boot}")
    if n_rows < 1:
        raise MetricError(f"the bootstrap needs at least one row, got {n_rows}")
    if strata is None:
        return rng.integers(0, n_rows, size=(n_boot, n_rows))
    strata = np.asarray(strata)
    if strata.shape != (n_rows,):
        raise MetricError(f"strata must have shape ({n_rows},), got {strata.shape}")
    groups = strata_rows(strata)
    idx = np.empty((n_boot, n_rows), dtype=np.int64)
    for i in range(n_boot):
        for g in groups:
            idx[i, g] = rng.choice(g, size=g.size, replace=True)
    return idx


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """``(lo, hi)``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of `replicates` (shape (n_boot,)).

    Quantiles use numpy's default linear interpolation.
    """
    if not 0 < level < 1:
        raise MetricError(f"level must be in (0, 1), got {level}")
    tail = (1 - level) / 2
    lo, hi = np.quantile(replicates, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_rows: int,
    *,
    strata=None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, lo, hi)``: `statistic` on the data and its percentile interval at `level` over resamples.

    statistic: maps row numbers (shape (n_rows,), int) to a float, computed on those rows of the data it
    closes over; the point estimate is its value on ``arange(n_rows)``. It is called once per resample, so
    each value is summed exactly as on the data itself. Resamples come from :func:`resample_indices` with
    ``numpy.random.default_rng(seed)`` (`strata`: see there).
    """
    if not 0 < level < 1:
        raise MetricError(f"level must be in (0, 1), got {level}")
    idx = resample_indices(n_rows, n_boot, np.random.default_rng(seed), strata)
    replicates = np.array([statistic(rows) for rows in idx], dtype=float)
    lo, hi = percentile_interval(replicates, level)
    return float(statistic(np.arange(n_rows))), lo, hi


__all__ = ["bootstrap_ci", "percentile_interval", "resample_indices", "strata_rows"]
