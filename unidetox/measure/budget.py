"""The training-budget curve's statistics: each budget's detoxifying effect, and the cheapest budget as good as the best.

A *budget* is a number of optimizer steps of one full fine-tune (its own learning-rate schedule). Inputs are
:func:`unidetox.measure.compare.per_prompt_values` tables of the same prompts: one per budget and one of the
untouched model. Effects are in-distribution differences (fine-tuned − untouched) with paired, domain-stratified
bootstrap CIs over prompts (:func:`unidetox.measure.compare.paired_ci`); the comparison with the best budget is
paired the same way, so "as good as the best" means the interval of (budget − best) contains 0.
"""

from __future__ import annotations

import pandas as pd

from unidetox.measure.compare import paired_ci
from unidetox.measure.metrics import IN_DISTRIBUTION, MetricError

#: the columns of :func:`budget_table`
COLUMNS = ["steps", "metric", "diff", "lo", "hi", "vs_best", "vs_best_lo", "vs_best_hi", "n_prompts"]


def _in_dist(ci: pd.DataFrame, metric: str) -> tuple[float, float, float, int]:
    row = ci[(ci.metric == metric) & (ci.domain == IN_DISTRIBUTION)]
    if row.empty:
        raise MetricError(f"no in-distribution {metric} in the paired comparison (every domain must be present)")
    r = row.iloc[0]
    return float(r["diff"]), float(r.lo), float(r.hi), int(r.n_prompts)


def budget_table(per_prompt: dict[int, pd.DataFrame], untouched: pd.DataFrame, *, metrics: tuple[str, ...] = ("EMT", "TP"),
                 n_boot: int = 1000, level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """One row per (budget, metric), budgets ascending: ``diff, lo, hi`` = budget − untouched and ``vs_best*`` =
    budget − the budget with the lowest ``diff`` of that metric (0, 0, 0 on the best's own row), in-distribution,
    with `level` paired bootstrap intervals over prompts; ``n_prompts`` in-distribution prompts."""
    if not per_prompt:
        raise MetricError("budget_table needs at least one budget")
    effect = {n: paired_ci(pp, untouched, n_boot=n_boot, level=level) for n, pp in per_prompt.items()}
    rows = []
    for metric in metrics:
        diffs = {n: _in_dist(ci, metric) for n, ci in effect.items()}
        best = min(diffs, key=lambda n: (diffs[n][0], n))  # ties: the cheaper budget
        for n in sorted(per_prompt):
            d, lo, hi, n_prompts = diffs[n]
            if n == best:
                vs = (0.0, 0.0, 0.0)
            else:
                vs = _in_dist(paired_ci(per_prompt[n], per_prompt[best], n_boot=n_boot, level=level), metric)[:3]
            rows.append((n, metric, d, lo, hi, *vs, n_prompts))
    return pd.DataFrame(rows, columns=COLUMNS)


def cheapest_as_good(table: pd.DataFrame, metric: str = "EMT") -> int:
    """The fewest steps whose `metric` difference from the best budget has an interval containing 0 (the best
    budget itself when every cheaper one is significantly worse)."""
    sub = table[table.metric == metric].sort_values("steps")
    if sub.empty:
        raise MetricError(f"the budget table has no {metric} rows")
    ok = sub[(sub.vs_best_lo <= 0) & (sub.vs_best_hi >= 0)]
    return int(ok.steps.iloc[0])
