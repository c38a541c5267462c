"""Choosing the shared configuration on validation prompts by an interval, and how stable that choice is.

The paper picks the grid point with the lowest validation Toxicity Probability. On a few dozen prompts TP moves
in steps of one prompt, so two machines (or two seeds) can pick different points. The rule here reads the
continuous EMT and an interval instead, the rule of the training-budget curve (:mod:`unidetox.measure.budget`):

* the *best* grid point has the lowest in-distribution value of the metric (mean of the three domain means);
* each point is compared with the best on the same prompts (paired, domain-stratified bootstrap over prompts,
  :func:`unidetox.measure.compare.paired_ci`);
* the choice is the *cheapest* point (fewest steps; ties: the smaller learning rate, i.e. the smaller change to the
  model) whose interval of (point − best) contains 0, i.e. one that prompt noise cannot tell apart from the best.
  The order among those points is fixed before any value is seen: ordering equally cheap points by their values
  would hand the choice back to prompt noise (two cpu builds whose AdamW kernels rounded differently picked lr 5e-5
  and lr 1e-4 at 8 steps that way, each inside the other's interval).

:func:`selection_stability` resamples the validation prompts (within domains) and counts, for each point, the
share of resamples in which it has the lowest value: a choice that a resample of the prompts overturns often is
a choice made by noise.

Inputs are :func:`unidetox.measure.compare.per_prompt_values` tables of the same prompts, one per grid point,
keyed by ``(lr, steps)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from unidetox.measure.bootstrap import resample_indices, strata_rows
from unidetox.measure.compare import PER_PROMPT, paired_ci
from unidetox.measure.metrics import IN_DISTRIBUTION, IN_DOMAINS, MetricError

Point = tuple[float, int]  # (learning rate, steps)
#: the columns of :func:`selection_table`
COLUMNS = ["lr", "steps", "value", "vs_best", "vs_best_lo", "vs_best_hi", "wins", "chosen"]


def _aligned(per_prompt: Mapping[Point, pd.DataFrame]) -> tuple[list[Point], np.ndarray, np.ndarray, np.ndarray]:
    """Grid points, their in-distribution prompts' domains ``(n,)``, numerators and denominators ``(points, n)``."""
    if not per_prompt:
        raise MetricError("choosing a configuration needs at least one grid point")
    points = sorted(per_prompt)
    frames = [per_prompt[p][per_prompt[p].domain.isin(IN_DOMAINS)].sort_values("prompt_id") for p in points]
    ids = frames[0].prompt_id.to_numpy()
    if any(len(f) != len(ids) or (f.prompt_id.to_numpy() != ids).any() for f in frames):
        raise MetricError("the grid points were evaluated on different prompts; evaluate them on the same ones")
    if set(frames[0].domain) != set(IN_DOMAINS):
        raise MetricError(f"choosing a configuration needs prompts of every in-distribution domain {IN_DOMAINS}")
    return (
        points,
        frames[0].domain.to_numpy(),
        np.stack([f.num.to_numpy(float) for f in frames]),
        np.stack([f.den.to_numpy(float) for f in frames]),
    )


def _with_num_den(per_prompt: Mapping[Point, pd.DataFrame], metric: str) -> dict[Point, pd.DataFrame]:
    if metric not in ("TP", "EMT"):
        raise MetricError(f"the selection metric must be TP or EMT, got {metric!r}")
    num, den = PER_PROMPT[metric]
    return {p: t.assign(num=t[num], den=t[den]) for p, t in per_prompt.items()}


def _in_dist_values(num: np.ndarray, den: np.ndarray, groups: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Per grid point, the mean over domains of ``sum(num) / sum(den)`` on the prompts `rows` ``(n,)``."""
    return np.mean([num[:, rows[g]].sum(1) / den[:, rows[g]].sum(1) for g in groups], axis=0)


def _cheapest_first(points: list[Point], values: np.ndarray) -> list[int]:
    """Indices of `points` by cost: fewest steps, then the lower value, then the smaller learning rate."""
    return sorted(range(len(points)), key=lambda i: (points[i][1], values[i], points[i][0]))


def selection_stability(
    per_prompt: Mapping[Point, pd.DataFrame], metric: str = "EMT", *, n_boot: int = 1000, seed: int = 0
) -> dict[Point, float]:
    """Share of `n_boot` resamples of the prompts (within each in-distribution domain) in which each grid point has
    the lowest in-distribution `metric` (ties: the cheaper point); the shares sum to 1."""
    points, domains, num, den = _aligned(_with_num_den(per_prompt, metric))
    groups = strata_rows(domains)
    idx = resample_indices(domains.size, n_boot, np.random.default_rng(seed), strata=domains)
    wins = np.zeros(len(points))
    for rows in idx:
        values = _in_dist_values(num, den, groups, rows)
        low = values.min()
        wins[next(i for i in _cheapest_first(points, values) if values[i] == low)] += 1
    return {p: float(w / n_boot) for p, w in zip(points, wins)}


def selection_table(
    per_prompt: Mapping[Point, pd.DataFrame],
    metric: str = "EMT",
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chosen: Point | None = None,
) -> pd.DataFrame:
    """One row per grid point (columns :data:`COLUMNS`): its in-distribution `metric` (``value``), its paired
    difference from the best point with the `level` interval (0, 0, 0 on the best's own row), its share of
    bootstrap wins (:func:`selection_stability`), and ``chosen``: the cheapest point whose interval contains 0, or
    the point `chosen` when given (another rule's pick, e.g. the paper's lowest TP, shown with the same columns)."""
    points, domains, num, den = _aligned(_with_num_den(per_prompt, metric))
    values = _in_dist_values(num, den, strata_rows(domains), np.arange(domains.size))
    best = next(i for i in _cheapest_first(points, values) if values[i] == values.min())
    wins = selection_stability(per_prompt, metric, n_boot=n_boot, seed=seed)
    rows = []
    for i, p in enumerate(points):
        if i == best:
            vs = (0.0, 0.0, 0.0)
        else:
            ci = paired_ci(per_prompt[p], per_prompt[points[best]], n_boot=n_boot, level=level, seed=seed)
            r = ci[(ci.metric == metric) & (ci.domain == IN_DISTRIBUTION)].iloc[0]
            vs = (float(r["diff"]), float(r.lo), float(r.hi))
        rows.append([p[0], p[1], float(values[i]), *vs, wins[p], False])
    table = pd.DataFrame(rows, columns=COLUMNS)
    if chosen is not None:
        if chosen not in points:
            raise MetricError(f"the chosen point {chosen} is not among the grid points {points}")
        table.loc[points.index(chosen), "chosen"] = True
        return table
    tied = table[(table.vs_best_lo <= 0) & (table.vs_best_hi >= 0)]
    pick = min(range(len(tied)), key=lambda i: (tied.steps.iloc[i], tied.lr.iloc[i]))  # fixed order, no values
    table.loc[tied.index[pick], "chosen"] = True
    return table


def choose_by_interval(table: pd.DataFrame) -> Point:
    """The ``(lr, steps)`` marked ``chosen`` in a :func:`selection_table`."""
    row = table[table.chosen]
    if len(row) != 1:
        raise MetricError(f"a selection table marks exactly one chosen point, this one {len(row)}")
    return float(row.lr.iloc[0]), int(row.steps.iloc[0])


__all__ = ["COLUMNS", "choose_by_interval", "selection_stability", "selection_table"]
