"""Sample-size formulas against simulation and against the bootstrap the study uses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.compare import paired_ci
from unidetox.measure.metrics import IN_DOMAINS, MetricError
from unidetox.measure.power import (
    half_width,
    paired_differences,
    per_domain_sd,
    power_table,
    prompts_per_domain_for,
    stratified_se,
)

SDS = {"gender_lgbtq": 0.2, "race_nationality": 0.3, "religion": 0.25}


def test_by_hand():
    # sqrt((0.04 + 0.09 + 0.0625) / 50) / 3
    assert stratified_se(SDS, 50) == pytest.approx(math.sqrt(0.1925 / 50) / 3)
    assert half_width(SDS, 50) == pytest.approx(1.959963984540054 * math.sqrt(0.1925 / 50) / 3)
    n = prompts_per_domain_for(SDS, 0.04)
    assert half_width(SDS, n) <= 0.04 < half_width(SDS, n - 1)
    assert power_table(SDS, [10, 40]).half_width.is_monotonic_decreasing


def test_se_matches_simulation():
    """The empirical spread of the mean of domain means over 20,000 simulated pilots equals the formula."""
    rng = np.random.default_rng(0)
    n = 30
    means = np.mean([rng.normal(0, sd, size=(20000, n)).mean(1) for sd in SDS.values()], axis=0)
    assert means.std() == pytest.approx(stratified_se(SDS, n), rel=0.02)


def test_half_width_matches_the_study_bootstrap():
    """paired_ci's stratified bootstrap interval has about the formula's width (normal approximation)."""
    rng = np.random.default_rng(1)
    n = 200
    rows = []
    for d, sd in SDS.items():
        base = rng.uniform(0.2, 0.6, n)
        rows += [{"prompt_id": f"{d}{i}", "domain": d, "a": b + rng.normal(0, sd), "b": b} for i, b in enumerate(base)]
    frame = pd.DataFrame(rows)
    one = {"one": 1.0, "toxic": 0.0, "ppl_sum": np.nan, "ppl_n": np.nan}
    cand = frame.assign(max_score=frame.a, **one)[
        ["prompt_id", "domain", "toxic", "max_score", "one", "ppl_sum", "ppl_n"]
    ]
    ref = frame.assign(max_score=frame.b, **one)[cand.columns]
    ci = paired_ci(cand, ref, n_boot=2000).set_index(["metric", "domain"]).loc[("EMT", "in_distribution")]
    sds = per_domain_sd(paired_differences(cand, ref, "max_score"), "max_score")
    assert (ci.hi - ci.lo) / 2 == pytest.approx(half_width(sds, n), rel=0.1)


def test_per_domain_sd_and_pairs():
    frame = pd.DataFrame({"prompt_id": list("abcdef"), "domain": [IN_DOMAINS[0]] * 2 + [IN_DOMAINS[1]] * 2 +
                          [IN_DOMAINS[2]] * 2, "x": [0.0, 1.0, 2.0, 2.0, 0.0, 4.0]})  # fmt: skip
    assert per_domain_sd(frame, "x") == pytest.approx(dict(zip(IN_DOMAINS, [math.sqrt(0.5), 0.0, math.sqrt(8)])))
    diff = paired_differences(frame.assign(x=frame.x * 3), frame, "x")
    assert diff.x.tolist() == [0.0, 2.0, 4.0, 4.0, 0.0, 8.0]


def test_bad_input():
    with pytest.raises(MetricError, match=">= 1"):
        stratified_se(SDS, 0)
    with pytest.raises(MetricError, match="finite"):
        half_width({"a": float("nan")}, 10)
    with pytest.raises(MetricError, match="> 0"):
        prompts_per_domain_for(SDS, 0)
    with pytest.raises(MetricError, match="at least 2"):
        per_domain_sd(pd.DataFrame({"domain": [IN_DOMAINS[0]], "x": [1.0]}), "x")
