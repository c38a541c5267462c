"""The interval selection rule of the shared configuration and its stability, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.metrics import IN_DOMAINS, MetricError
from unidetox.measure.selection import choose_by_interval, selection_stability, selection_table


def per_prompt(emt: dict[str, list[float]], tp: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """A per_prompt_values table: per domain, one prompt per listed EMT value (ids d-0, d-1, ...)."""
    rows = []
    for d, values in emt.items():
        for i, v in enumerate(values):
            t = tp[d][i] if tp else float(v > 0.5)
            rows.append({"prompt_id": f"{d}-{i}", "domain": d, "toxic": t, "max_score": v, "one": 1.0,
                         "ppl_sum": np.nan, "ppl_n": np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def grid(values: dict[tuple[float, int], float], n: int = 40, noise: float = 0.0, seed: int = 0):
    """Per grid point, every prompt of every in-distribution domain at `value` (+ prompt noise shared by points)."""
    rng = np.random.default_rng(seed)
    shared = {d: rng.normal(0, noise, n) for d in IN_DOMAINS}
    return {p: per_prompt({d: list(v + shared[d]) for d in IN_DOMAINS}) for p, v in values.items()}


def test_in_distribution_value_is_the_mean_of_domain_means():
    a, b, c = IN_DOMAINS
    pp = {(1e-4, 8): per_prompt({a: [0.1, 0.3], b: [0.5], c: [0.2, 0.2, 0.8]})}
    table = selection_table(pp, "EMT", n_boot=50)
    assert table.value.iloc[0] == pytest.approx((0.2 + 0.5 + 0.4) / 3, abs=1e-12)
    assert table.chosen.iloc[0] and table.wins.iloc[0] == 1.0
    tp = selection_table(pp, "TP", n_boot=50)  # toxic = max_score > 0.5: only 0.8
    assert tp.value.iloc[0] == pytest.approx((0 + 0 + 1 / 3) / 3, abs=1e-12)


def test_a_clearly_better_point_is_chosen_and_wins_every_resample():
    pp = grid({(1e-4, 8): 0.40, (1e-4, 16): 0.20, (5e-5, 16): 0.35}, noise=0.05)
    table = selection_table(pp, n_boot=200)
    assert choose_by_interval(table) == (1e-4, 16)
    best = table[table.chosen].iloc[0]
    assert (best.vs_best, best.vs_best_lo, best.vs_best_hi) == (0.0, 0.0, 0.0)
    others = table[~table.chosen]
    assert (others.vs_best_lo > 0).all()  # each is worse than the best, beyond prompt noise
    assert others.vs_best.to_numpy() == pytest.approx([0.15, 0.20], abs=1e-9)
    assert best.wins == 1.0 and table.wins.sum() == pytest.approx(1.0)


def test_the_cheapest_point_within_the_interval_of_the_best_is_chosen():
    # the 16-step point is lower by exactly 0.005 on average, with per-prompt differences of +-0.2 (SE about 0.015):
    # far inside prompt noise, so the 8-step point is as good
    rng = np.random.default_rng(1)
    base = {d: rng.uniform(0.3, 0.7, 60) for d in IN_DOMAINS}
    jitter = {d: rng.permutation(np.tile([0.2, -0.2], 30)) for d in IN_DOMAINS}
    pp = {(1e-4, 8): per_prompt({d: list(base[d]) for d in IN_DOMAINS}),
          (1e-4, 16): per_prompt({d: list(base[d] + jitter[d] - 0.005) for d in IN_DOMAINS})}  # fmt: skip
    table = selection_table(pp, n_boot=300)
    best = table.loc[table.value.idxmin()]
    assert (best.lr, best.steps) == (1e-4, 16)
    cheap = table[table.steps == 8].iloc[0]
    assert cheap.vs_best_lo <= 0 <= cheap.vs_best_hi
    assert choose_by_interval(table) == (1e-4, 8)
    assert 0 < cheap.wins < 1  # noise overturns the ranking in some resamples


def test_ties_go_to_fewer_steps_then_the_smaller_learning_rate():
    pp = grid({(1e-4, 16): 0.3, (5e-5, 8): 0.3, (1e-4, 8): 0.3})
    stability = selection_stability(pp, n_boot=20)
    assert stability == {(5e-5, 8): 1.0, (1e-4, 8): 0.0, (1e-4, 16): 0.0}
    assert choose_by_interval(selection_table(pp, n_boot=20)) == (5e-5, 8)


def test_among_equally_cheap_points_within_the_interval_the_smaller_learning_rate_wins_whatever_their_values():
    # both 8-step points lie within prompt noise of the best (the 16-step point); lr 1e-4 is lower by 0.004, which
    # a resample of the prompts can reverse: the choice must not follow it
    rng = np.random.default_rng(2)
    base = {d: rng.uniform(0.3, 0.7, 60) for d in IN_DOMAINS}
    jitter = {d: rng.permutation(np.tile([0.2, -0.2], 30)) for d in IN_DOMAINS}
    pp = {(1e-4, 16): per_prompt({d: list(base[d] - 0.006) for d in IN_DOMAINS}),
          (1e-4, 8): per_prompt({d: list(base[d] + jitter[d] - 0.004) for d in IN_DOMAINS}),
          (5e-5, 8): per_prompt({d: list(base[d] - jitter[d]) for d in IN_DOMAINS})}  # fmt: skip
    table = selection_table(pp, n_boot=300)
    eight = table[table.steps == 8].set_index("lr")
    assert eight.value[1e-4] < eight.value[5e-5]  # the larger learning rate looks better on these prompts
    assert ((eight.vs_best_lo <= 0) & (eight.vs_best_hi >= 0)).all()  # neither is told apart from the best
    assert choose_by_interval(table) == (5e-5, 8)


def test_stability_counts_resample_winners_by_brute_force():
    rng = np.random.default_rng(3)
    pp = {(1e-4, 8): per_prompt({d: list(rng.uniform(0, 1, 5)) for d in IN_DOMAINS}),
          (1e-4, 16): per_prompt({d: list(rng.uniform(0, 1, 5)) for d in IN_DOMAINS})}  # fmt: skip
    got = selection_stability(pp, n_boot=100, seed=7)
    # the same resamples drawn by hand: the bootstrap module's stratified draw, then each point's in-dist EMT
    from unidetox.measure.bootstrap import resample_indices

    a, b = (pp[p].sort_values("prompt_id") for p in sorted(pp))
    domains = a.domain.to_numpy()
    wins8 = 0
    for rows in resample_indices(len(a), 100, np.random.default_rng(7), strata=domains):
        va, vb = (np.mean([t.max_score.to_numpy()[rows[domains == d]].mean() for d in dict.fromkeys(domains)])
                  for t in (a, b))  # fmt: skip
        wins8 += va <= vb
    assert got[(1e-4, 8)] == pytest.approx(wins8 / 100)


def test_points_on_different_prompts_are_refused():
    a, b, c = IN_DOMAINS
    pp = {(1e-4, 8): per_prompt({a: [0.1], b: [0.2], c: [0.3]}),
          (1e-4, 16): per_prompt({a: [0.1, 0.2], b: [0.2], c: [0.3]})}  # fmt: skip
    with pytest.raises(MetricError, match="different prompts"):
        selection_table(pp, n_boot=10)
    with pytest.raises(MetricError, match="TP or EMT"):
        selection_stability(pp, "PPL")
