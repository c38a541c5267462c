"""Choosing the shared configuration and paired bootstrap CIs, against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.compare import (
    choose_config,
    choose_value,
    paired_ci,
    per_prompt_values,
    stratified_paired_bootstrap,
)
from unidetox.measure.metrics import MetricError


def _grid(values: dict[tuple[float, int], tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for (lr, steps), (tp, emt) in values.items():
        for seed, jitter in ((1, -0.01), (2, 0.01)):  # seed mean = the given value
            rows += [(lr, steps, seed, "in_distribution", "TP", tp + jitter),
                     (lr, steps, seed, "in_distribution", "EMT", emt + jitter),
                     (lr, steps, seed, "disability", "TP", 0.0)]  # fmt: skip
    return pd.DataFrame(rows, columns=["lr", "steps", "seed", "domain", "metric", "value"])


def test_choose_config_lowest_tp_then_emt_then_fewer_steps():
    assert choose_config(_grid({(5e-5, 100): (0.30, 0.4), (1e-5, 100): (0.20, 0.5), (1e-5, 200): (0.25, 0.1)})) == (
        1e-5,
        100,
    )
    # a TP tie is broken by EMT
    assert choose_config(_grid({(5e-5, 100): (0.2, 0.4), (1e-5, 200): (0.2, 0.3)})) == (1e-5, 200)
    # a full tie goes to fewer steps
    assert choose_config(_grid({(5e-5, 200): (0.2, 0.3), (1e-5, 100): (0.2, 0.3)})) == (1e-5, 100)


def test_choose_config_needs_rows():
    with pytest.raises(MetricError, match="no in-distribution"):
        choose_config(_grid({}).reindex(columns=["lr", "steps", "seed", "domain", "metric", "value"]))


def test_choose_value():
    rows = _grid({(1.0, 1): (0.3, 0.2), (2.0, 1): (0.1, 0.9)}).rename(columns={"lr": "hparam"})
    assert choose_value(rows, "hparam") == 2.0


def test_per_prompt_values_by_hand():
    gens = pd.DataFrame(
        [  # seed, prompt, domain, toxicity
            (1, "p1", "religion", 0.2), (1, "p1", "religion", 0.7),
            (2, "p1", "religion", 0.1), (2, "p1", "religion", 0.4),
            (1, "p2", "disability", 0.5), (2, "p2", "disability", 0.9),
        ],
        columns=["seed", "prompt_id", "domain", "toxicity"],
    )  # fmt: skip
    ppl = pd.DataFrame(
        [(1, "p1", 0, 10.0), (1, "p1", 1, 2e4), (2, "p1", 0, 20.0), (1, "p2", 0, 5.0)],
        columns=["seed", "prompt_id", "sample", "ppl"],
    )
    out = per_prompt_values(gens, ppl, threshold=0.5, max_ppl=1e4).set_index("prompt_id")
    # p1: max 0.7 (toxic) in seed 1, 0.4 (not) in seed 2 -> toxic 0.5, max_score 0.55
    assert out.loc["p1", "toxic"] == pytest.approx(0.5)
    assert out.loc["p1", "max_score"] == pytest.approx(0.55)
    # p2: 0.5 is not > 0.5, 0.9 is -> 0.5; max 0.7
    assert out.loc["p2", "toxic"] == pytest.approx(0.5)
    assert out.loc["p2", "max_score"] == pytest.approx(0.7)
    # 2e4 is dropped (>= 1e4)
    assert (out.loc["p1", "ppl_sum"], out.loc["p1", "ppl_n"]) == (30.0, 2)
    assert (out.loc["p2", "ppl_sum"], out.loc["p2", "ppl_n"]) == (5.0, 1)


def test_bootstrap_point_is_the_macro_mean_difference():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    strata = np.array(["x", "x", "y", "y", "y"])
    one = np.ones(5)
    diff, lo, hi = stratified_paired_bootstrap(a, one, b, one, strata, n_boot=200, seed=3)
    # macro: a = (0.5 + 2/3) / 2, b = (0 + 1/3) / 2
    assert diff == pytest.approx((0.5 + 2 / 3) / 2 - (1 / 3) / 2)
    assert lo <= diff <= hi


def test_bootstrap_constant_difference_has_a_degenerate_interval():
    rng = np.random.default_rng(0)
    b = rng.random(30)
    one = np.ones(30)
    diff, lo, hi = stratified_paired_bootstrap(b + 0.25, one, b, one, np.zeros(30), n_boot=100)
    assert diff == pytest.approx(0.25) and lo == pytest.approx(0.25) and hi == pytest.approx(0.25)


def test_bootstrap_width_matches_the_standard_error():
    """With one stratum the 95% interval is about mean +- 1.96 SE of the per-prompt differences."""
    rng = np.random.default_rng(1)
    n = 400
    d = rng.normal(0.1, 1.0, n)
    one = np.ones(n)
    diff, lo, hi = stratified_paired_bootstrap(d, one, np.zeros(n), one, np.zeros(n), n_boot=3000, seed=0)
    se = d.std(ddof=1) / np.sqrt(n)
    assert diff == pytest.approx(d.mean())
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_bootstrap_ratio_statistic_pools_within_strata():
    num_a, den_a = np.array([10.0, 30.0]), np.array([1.0, 3.0])  # pooled 40/4 = 10 (not the mean of 10 and 10)
    num_b, den_b = np.array([4.0, 0.0]), np.array([2.0, 2.0])  # pooled 4/4 = 1
    diff, _, _ = stratified_paired_bootstrap(num_a, den_a, num_b, den_b, np.zeros(2), n_boot=10)
    assert diff == pytest.approx(9.0)


def test_bootstrap_refuses_misaligned_inputs():
    with pytest.raises(MetricError):
        stratified_paired_bootstrap(np.ones(3), np.ones(3), np.ones(2), np.ones(2), np.zeros(3))


def _pp(toxic: list[float], domains: list[str]) -> pd.DataFrame:
    n = len(toxic)
    return pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "domain": domains, "toxic": toxic,
                         "max_score": [t / 2 for t in toxic], "one": 1.0, "ppl_sum": 10.0, "ppl_n": 1.0})  # fmt: skip


def test_paired_ci_rows():
    domains = ["gender_lgbtq", "race_nationality", "religion", "disability"] * 2
    cand = _pp([0, 0, 1, 0, 0, 1, 1, 1], domains)
    ref = _pp([1, 1, 1, 1, 1, 1, 1, 1], domains)
    out = paired_ci(cand, ref, n_boot=50).set_index(["metric", "domain"])
    # in-distribution: domain means of cand 0, 0.5, 1 -> 0.5; ref 1 -> diff -0.5
    assert out.loc[("TP", "in_distribution"), "diff"] == pytest.approx(-0.5)
    assert out.loc[("TP", "out_of_distribution"), "diff"] == pytest.approx(-0.5)
    assert out.loc[("EMT", "in_distribution"), "diff"] == pytest.approx(-0.25)
    assert out.loc[("PPL", "all"), "diff"] == pytest.approx(0.0)
    assert out.loc[("TP", "in_distribution"), "n_prompts"] == 6


def test_paired_ci_needs_the_same_prompts():
    d = ["religion", "disability"]
    with pytest.raises(MetricError, match="same prompts"):
        paired_ci(_pp([1, 0], d), _pp([1, 0, 1], d + ["religion"]))


def test_verdicts_state_the_interval_and_the_floor():
    from unidetox.report.tables.main import verdicts

    main = pd.DataFrame(
        [
            {"target": "m", "method": "No detoxification", "TP (in)": 0.02, "PPL": 10.0, "note": ""},
            {"target": "m", "method": "UniDetox", "TP (in)": 0.0, "PPL": 12.5, "note": "", "ΔTP (in)": -0.2,
             "ΔTP (in) lo": -0.3, "ΔTP (in) hi": -0.1, "ΔEMT (in)": 0.01, "ΔEMT (in) lo": -0.02, "ΔEMT (in) hi": 0.05},
            {"target": "m", "method": "DExperts", "note": "n/a: tokenizer"},
        ]
    )  # fmt: skip
    text = verdicts(main)
    assert "only 0.020" in text  # below the floor: said so
    assert "ΔTP (in) -0.200 [-0.300, -0.100], lower than the untouched model" in text
    assert "ΔEMT (in) +0.010 [-0.020, +0.050]" in text and "perplexity 10.0 → 12.5" in text
    assert "DExperts: n/a: tokenizer." in text
