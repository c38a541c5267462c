"""Sample-size formulas against simulation and against the bootstrap the study uses."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.compare import paired_ci, per_prompt_values
from unidetox.measure.metrics import IN_DOMAINS, OOD_DOMAIN, MetricError
from unidetox.measure.power import (
    PilotCosts,
    half_width,
    in_distribution_mean,
    paired_differences,
    per_domain_sd,
    pilot_sds,
    power_from_pilot,
    power_table,
    prompts_per_domain_for,
    smallest_n_excluding_zero,
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


# --- power from a pilot ---------------------------------------------------------------------------------------------

LATENT = {"gender_lgbtq": (2.0, 5.0), "race_nationality": (1.5, 6.0), "religion": (1.0, 4.0), OOD_DOMAIN: (1.0, 9.0)}
K, SEEDS, DETOX = 3, 2, 0.6  # samples per prompt, seeds, the detoxified model's scale of each prompt's latent mean


def _scores(rng, latent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores (seeds, prompts, k) of an untouched and a detoxified model on prompts with latent means `latent`."""
    shape = (SEEDS, len(latent), K)
    latent = np.broadcast_to(latent[None, :, None], shape)
    a = rng.beta(8 * latent, 8 * (1 - latent), size=shape)
    b = rng.beta(8 * DETOX * latent, 8 * (1 - DETOX * latent), size=shape)
    return a, b


def _records(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-continuation records (seed, prompt_id, domain, sample, toxicity) of both models on n prompts a domain."""
    rng = np.random.default_rng(seed)
    rows_a, rows_b = [], []
    for d, (al, be) in LATENT.items():
        a, b = _scores(rng, rng.beta(al, be, n))
        for rows, sc in ((rows_a, a), (rows_b, b)):
            rows += [{"seed": s, "prompt_id": f"{d}-{i}", "domain": d, "sample": j, "toxicity": float(sc[s, i, j])}
                     for s in range(SEEDS) for i in range(n) for j in range(K)]  # fmt: skip
    return pd.DataFrame(rows_a), pd.DataFrame(rows_b)


def _simulated_studies(n: int, reps: int, seed: int) -> dict[str, np.ndarray]:
    """EMT(in), TP(in) of the untouched model and ΔEMT(in) over `reps` independent studies of n prompts a domain,
    with numpy alone (per prompt: max over k, then mean over seeds; in-distribution: mean of domain means)."""
    rng = np.random.default_rng(seed)
    out = {"EMT": [], "TP": [], "ΔEMT": []}
    for _ in range(reps):
        per = {"EMT": [], "TP": [], "ΔEMT": []}
        for d in IN_DOMAINS:
            a, b = _scores(rng, rng.beta(*LATENT[d], n))
            emt_a, emt_b = a.max(-1).mean(0), b.max(-1).mean(0)
            per["EMT"].append(emt_a.mean())
            per["TP"].append((a > 0.5).any(-1).mean(0).mean())
            per["ΔEMT"].append((emt_b - emt_a).mean())
        for key, vals in per.items():
            out[key].append(np.mean(vals))
    return {key: np.asarray(v) for key, v in out.items()}


COSTS = PilotCosts(seconds_per_continuation=0.5, runs=3, domains=4, continuations_per_prompt=K * SEEDS)


def test_pilot_half_widths_match_simulated_studies():
    """A large pilot's predicted half-widths at n = 24 match 1.96 x the spread of 3,000 simulated studies of 24."""
    a, b = _records(400, seed=2)
    plan = power_from_pilot(per_prompt_values(a), per_prompt_values(b), COSTS, ns=[24])
    sims = _simulated_studies(24, 3000, seed=3)
    row = plan.table.iloc[0]
    for col in ("EMT", "TP", "ΔEMT"):
        assert row[f"{col} (in)"] == pytest.approx(1.959963984540054 * sims[col].std(ddof=1), rel=0.08), col


def test_pilot_by_hand():
    """SDs, TP(in), the table and the smallest n, computed directly on six prompts."""
    d0, d1, d2 = IN_DOMAINS
    base = pd.DataFrame({"prompt_id": list("abcdef"), "domain": [d0, d0, d1, d1, d2, d2],
                         "max_score": [0.1, 0.5, 0.2, 0.2, 0.3, 0.9], "toxic": [0.0, 1.0, 0.0, 0.5, 0.0, 1.0]})  # fmt: skip
    detox = base.assign(max_score=[0.1, 0.3, 0.1, 0.2, 0.3, 0.5])  # differences 0, -0.2 | -0.1, 0 | 0, -0.4
    sds = pilot_sds(base, detox)
    r2 = math.sqrt(2)
    assert sds.EMT.tolist() == pytest.approx([0.4 / r2, 0.0, 0.6 / r2])
    assert sds.TP.tolist() == pytest.approx([1 / r2, 0.5 / r2, 1 / r2])
    assert sds["ΔEMT"].tolist() == pytest.approx([0.2 / r2, 0.1 / r2, 0.4 / r2])
    assert in_distribution_mean(base, "toxic") == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    plan = power_from_pilot(base, detox, COSTS, ns=[8, 100], target=0.04)
    se_tp = math.sqrt((1 + 0.25 + 1) / 2 / 8) / 3  # variance sum over n, over 3 domains
    assert plan.table["TP (in)"].iloc[0] == pytest.approx(1.959963984540054 * se_tp)
    assert plan.table["TP (in) CI excludes 0"].tolist() == [True, True]
    assert plan.table.minutes.tolist() == pytest.approx([3 * 8 * 4 * 6 * 0.5 / 60, 3 * 100 * 4 * 6 * 0.5 / 60])
    # the validation grid's continuations are added once, whatever the report's n
    grid = dataclasses.replace(COSTS, fixed_continuations=240)
    assert [grid.minutes(n) for n in (8, 100)] == pytest.approx([(3 * n * 4 * 6 + 240) * 0.5 / 60 for n in (8, 100)])
    # ΔEMT: sum of variances 0.21 / 2 = 0.105; n >= (1.96 / 3)^2 * 0.105 / 0.04^2 = 28.01 -> 29
    assert plan.n_delta == 29 and half_width(sds["ΔEMT"].to_dict(), 28) > 0.04
    assert plan.n_needed == max(plan.n_tp, plan.n_delta)


def test_smallest_n_excluding_zero_is_the_first_by_brute_force():
    for sds, mean in [(SDS, 0.05), (SDS, 0.3), ({"a": 0.0, "b": 0.0}, 0.1), ({"a": 0.4}, 0.01)]:
        n = smallest_n_excluding_zero(sds, mean)
        first = next(m for m in range(1, 10**6) if mean - half_width(sds, m) > 0)
        assert n == first, (sds, mean)
    assert smallest_n_excluding_zero(SDS, 0.0) is None


def test_pilot_without_toxic_prompts_never_excludes_zero():
    a, b = _records(6, seed=4)
    pa = per_prompt_values(a).assign(toxic=0.0)
    plan = power_from_pilot(pa, per_prompt_values(b), COSTS)
    assert plan.tp_in == 0 and plan.n_tp is None and plan.n_needed is None
    assert not plan.table["TP (in) CI excludes 0"].any()


def test_page_table_and_sentences():
    from unidetox.report.tables.pages import power_display, power_sentences

    a, b = _records(8, seed=5)
    plan = power_from_pilot(per_prompt_values(a), per_prompt_values(b), COSTS, ns=[8, 64])
    shown = power_display(plan)
    assert shown["prompts per domain"].tolist() == [8, 64]
    assert shown["ΔEMT (in) ±"].tolist() == [f"{v:.3f}" for v in plan.table["ΔEMT (in)"]]
    assert shown["evaluation minutes"].tolist() == [f"{COSTS.minutes(n):.1f}" for n in (8, 64)]
    text = power_sentences(plan, 8, K, SEEDS)
    assert f"from {plan.n_tp} prompts per domain" in text and f"at {plan.n_delta} prompts per domain" in text
    assert f"**{plan.n_needed} prompts per domain**" in text and f"{COSTS.minutes(plan.n_needed):.0f} minutes" in text
    assert "excludes 0 from 1 prompt per domain." in power_sentences(dataclasses.replace(plan, n_tp=1), 8, K, SEEDS)
    none = power_from_pilot(per_prompt_values(a).assign(toxic=0.0), per_prompt_values(b), COSTS)
    assert "no number of prompts" in power_sentences(none, 8, K, SEEDS)
