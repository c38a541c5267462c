"""Metrics against hand computations and naive re-implementations on small inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.metrics import (
    DOMAINS,
    FLUENCY_METRICS,
    METRICS,
    TOXICITY_METRICS,
    Metric,
    MetricError,
    dist_texts,
    distinct_n,
    distinct_table,
    expected_max_toxicity,
    mean_perplexity,
    mmlu_accuracy,
    per_prompt_toxicity,
    perplexity_table,
    summarize_over_seeds,
    toxicity_probability,
    toxicity_table,
)

# ----------------------------------------------------------------------------- TP / EMT


def test_tp_strict_and_non_strict_ties_at_threshold():
    scores = np.array([[0.5, 0.1], [0.2, 0.3], [0.7, 0.5]])
    # strict '>': only prompt 2 is toxic; '>=': prompts 0 and 2
    assert toxicity_probability(scores) == pytest.approx(1 / 3)
    assert toxicity_probability(scores, strict=False) == pytest.approx(2 / 3)
    assert toxicity_probability(scores, threshold=0.25) == pytest.approx(1.0)
    assert expected_max_toxicity(scores) == pytest.approx((0.5 + 0.3 + 0.7) / 3)


def test_tp_emt_reject_bad_shapes():
    with pytest.raises(MetricError, match="shape"):
        toxicity_probability(np.array([0.1, 0.2]))
    with pytest.raises(MetricError, match="NaN"):
        expected_max_toxicity(np.array([[0.1, np.nan]]))


def _continuations(scores_by_seed: dict) -> pd.DataFrame:
    """{seed: {domain: (n_prompts, k) scores}} -> one row per continuation."""
    rows = []
    for seed, by_domain in scores_by_seed.items():
        for domain, arr in by_domain.items():
            for p, row in enumerate(arr):
                for s in row:
                    rows.append({"seed": seed, "prompt_id": f"{domain}-{p}", "domain": domain, "score": s})
    return pd.DataFrame(rows)


SCORES = {
    42: {
        "gender_lgbtq": [[0.9, 0.1], [0.2, 0.3]],  # TP 1/2, EMT (0.9+0.3)/2 = 0.6
        "race_nationality": [[0.5, 0.4], [0.1, 0.0]],  # TP 0 (tie not toxic), EMT 0.3
        "religion": [[0.6, 0.7], [0.8, 0.2]],  # TP 1, EMT 0.75
        "disability": [[0.3, 0.2], [0.55, 0.1]],  # TP 1/2, EMT 0.425
    },
    43: {
        "gender_lgbtq": [[0.1, 0.1], [0.2, 0.3]],  # TP 0, EMT 0.2
        "race_nationality": [[0.51, 0.4], [0.1, 0.0]],  # TP 1/2, EMT 0.305
        "religion": [[0.6, 0.7], [0.1, 0.2]],  # TP 1/2, EMT 0.45
        "disability": [[0.3, 0.2], [0.45, 0.1]],  # TP 0, EMT 0.375
    },
}


def _value(tidy, seed, domain, metric):
    sel = tidy[(tidy["seed"] == seed) & (tidy["domain"] == domain) & (tidy["metric"] == metric)]
    assert len(sel) == 1, (seed, domain, metric)
    return float(sel["value"].iloc[0])


def test_toxicity_table_by_hand():
    tidy = toxicity_table(_continuations(SCORES))
    hand = {
        (42, "TP"): {"gender_lgbtq": 0.5, "race_nationality": 0.0, "religion": 1.0, "disability": 0.5},
        (42, "EMT"): {"gender_lgbtq": 0.6, "race_nationality": 0.3, "religion": 0.75, "disability": 0.425},
        (43, "TP"): {"gender_lgbtq": 0.0, "race_nationality": 0.5, "religion": 0.5, "disability": 0.0},
        (43, "EMT"): {"gender_lgbtq": 0.2, "race_nationality": 0.305, "religion": 0.45, "disability": 0.375},
    }
    for (seed, metric), by_domain in hand.items():
        for domain, v in by_domain.items():
            assert _value(tidy, seed, domain, metric) == pytest.approx(v)
        in_dist = (by_domain["gender_lgbtq"] + by_domain["race_nationality"] + by_domain["religion"]) / 3
        assert _value(tidy, seed, "in_distribution", metric) == pytest.approx(in_dist)
        assert _value(tidy, seed, "out_of_distribution", metric) == pytest.approx(by_domain["disability"])
    assert len(tidy) == 2 * 6 * 2  # seeds x (4 domains + in + out) x metrics
    # the table agrees with the array functions
    for seed, by_domain in SCORES.items():
        for domain, arr in by_domain.items():
            assert _value(tidy, seed, domain, "TP") == pytest.approx(toxicity_probability(np.array(arr)))
            assert _value(tidy, seed, domain, "EMT") == pytest.approx(expected_max_toxicity(np.array(arr)))


def test_toxicity_table_non_strict_counts_ties():
    tidy = toxicity_table(_continuations(SCORES), strict=False)
    assert _value(tidy, 42, "race_nationality", "TP") == pytest.approx(0.5)


def test_toxicity_table_in_distribution_needs_all_three_domains():
    only = {42: {"gender_lgbtq": [[0.9]], "disability": [[0.2]]}}
    tidy = toxicity_table(_continuations(only))
    assert "in_distribution" not in set(tidy["domain"])
    assert _value(tidy, 42, "out_of_distribution", "EMT") == pytest.approx(0.2)


def test_toxicity_table_rejects_unknown_domain_and_missing_columns():
    df = _continuations({1: {"gender_lgbtq": [[0.1]]}})
    with pytest.raises(MetricError, match="unknown domain"):
        toxicity_table(df.assign(domain="sports"))
    with pytest.raises(MetricError, match="missing"):
        toxicity_table(df.drop(columns="score"))


def test_per_prompt_toxicity_ragged_k():
    df = pd.DataFrame({"seed": 1, "domain": "religion", "prompt_id": [0, 0, 0, 1], "score": [0.2, 0.6, 0.1, 0.4]})
    pp = per_prompt_toxicity(df)
    assert pp["max_score"].tolist() == [0.6, 0.4]
    assert pp["toxic"].tolist() == [1.0, 0.0]
    assert pp["k"].tolist() == [3, 1]


def test_summarize_over_seeds_mean_and_population_std():
    tidy = toxicity_table(_continuations(SCORES))
    summary = summarize_over_seeds(tidy)
    row = summary[(summary["domain"] == "gender_lgbtq") & (summary["metric"] == "EMT")].iloc[0]
    assert row["mean"] == pytest.approx((0.6 + 0.2) / 2)
    assert row["std"] == pytest.approx(0.2)  # ddof=0: |0.6 - 0.2| / 2
    assert row["n_seeds"] == 2
    ind = summary[(summary["domain"] == "in_distribution") & (summary["metric"] == "TP")].iloc[0]
    vals = np.array([(0.5 + 0.0 + 1.0) / 3, (0.0 + 0.5 + 0.5) / 3])
    assert ind["mean"] == pytest.approx(vals.mean())
    assert ind["std"] == pytest.approx(np.sqrt(((vals - vals.mean()) ** 2).mean()))
    assert list(summary["domain"].unique()) == [*DOMAINS, "in_distribution", "out_of_distribution"]


def test_summarize_rejects_duplicates():
    tidy = pd.DataFrame({"seed": [1, 1], "domain": ["all", "all"], "metric": ["PPL", "PPL"], "value": [1.0, 2.0]})
    with pytest.raises(MetricError, match="repeated"):
        summarize_over_seeds(tidy)


# ----------------------------------------------------------------------------- perplexity


def test_mean_perplexity_drops_at_and_above_max():
    ppl = np.array([10.0, 1e4, 20.0, np.nan, np.inf, 9999.5])
    mean, dropped = mean_perplexity(ppl)
    assert mean == pytest.approx((10 + 20 + 9999.5) / 3)
    assert dropped == 2  # 1e4 itself and inf; NaN is ignored, not dropped
    mean, dropped = mean_perplexity(np.array([2e4, np.nan]))
    assert np.isnan(mean) and dropped == 1


def test_perplexity_table_pools_domains_per_seed():
    df = pd.DataFrame({"seed": [1, 1, 1, 2, 2], "ppl": [10.0, 30.0, 5e4, 4.0, 6.0]})
    tidy = perplexity_table(df)
    assert _value(tidy, 1, "all", "PPL") == pytest.approx(20.0)
    assert _value(tidy, 1, "all", "PPL_dropped") == 1
    assert _value(tidy, 2, "all", "PPL") == pytest.approx(5.0)
    s = summarize_over_seeds(tidy)
    row = s[s["metric"] == "PPL"].iloc[0]
    assert row["mean"] == pytest.approx(12.5) and row["std"] == pytest.approx(7.5)


# ----------------------------------------------------------------------------- Dist-n


def test_distinct_n_by_hand():
    prompts = [["a b a", "a b c"], ["x"]]
    # prompt 0: 6 words; unigrams {a,b,c}; bigrams {ab, ba, bc}; trigrams {aba, abc}. prompt 1: 1 word.
    assert distinct_n(prompts, 1) == pytest.approx((3 / 6 + 1 / 1) / 2)
    assert distinct_n(prompts, 2) == pytest.approx((3 / 6 + 0 / 1) / 2)
    assert distinct_n(prompts, 3) == pytest.approx((2 / 6 + 0) / 2)


def test_distinct_n_plain_space_split():
    # "a  b" splits into ['a', '', 'b']; "" into [''] (one empty word), as str.split(' ') does
    assert distinct_n([["a  b"]], 1) == pytest.approx(3 / 3)
    assert distinct_n([["a  b", ""]], 1) == pytest.approx(3 / 4)


def _official_style_distinct(texts_per_prompt, n):
    """Independent re-implementation in the official code's style (n-grams joined with '_')."""
    vals = []
    for texts in texts_per_prompt:
        grams, total = set(), 0
        for t in texts:
            toks = t.split(" ")
            total += len(toks)
            grams.update("_".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
        vals.append(len(grams) / total)
    return float(np.mean(vals))


def test_distinct_n_matches_official_style_on_random_texts():
    rng = np.random.default_rng(0)
    vocab = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat"]
    data = [[" ".join(rng.choice(vocab, size=rng.integers(1, 9))) for _ in range(5)] for _ in range(7)]
    for n in (1, 2, 3):
        assert distinct_n(data, n) == pytest.approx(_official_style_distinct(data, n))


def test_dist_texts_and_table_include_prompt_flag():
    assert dist_texts(["I am"], [" here now"], include_prompt=True) == ["I am here now"]
    assert dist_texts(["I am"], [" here now"], include_prompt=False) == ["here now"]
    df = pd.DataFrame(
        {
            "seed": [7, 7, 7],
            "prompt_id": [0, 0, 1],
            "prompt": ["I am", "I am", "go"],
            "continuation": [" here now", " here", " go go"],
        }
    )
    ours = distinct_table(df, ns=(1, 2), include_prompt=False)
    # continuation only: p0 [here now],[here] -> 2/3 uni, 1/3 bi; p1 [go go] -> 1/2 uni, 1/2 bi
    assert _value(ours, 7, "all", "Dist-1") == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert _value(ours, 7, "all", "Dist-2") == pytest.approx((1 / 3 + 1 / 2) / 2)
    official = distinct_table(df, ns=(1,), include_prompt=True)
    # with prompt: p0 [I am here now],[I am here] -> {I, am, here, now}/7; p1 [go go go] -> 1/3
    assert _value(official, 7, "all", "Dist-1") == pytest.approx((4 / 7 + 1 / 3) / 2)


def test_distinct_n_rejects_bad_input():
    with pytest.raises(MetricError):
        distinct_n([], 1)
    with pytest.raises(MetricError):
        distinct_n([[]], 1)
    with pytest.raises(MetricError):
        distinct_n([["a"]], 0)


# ----------------------------------------------------------------------------- MMLU accuracy


def test_mmlu_accuracy_micro_and_macro_by_hand():
    correct = [True, True, False, False, True]
    subjects = ["anatomy", "anatomy", "anatomy", "virology", "astronomy"]
    per, micro, macro = mmlu_accuracy(correct, subjects)
    assert micro == pytest.approx(3 / 5)
    assert macro == pytest.approx((2 / 3 + 1 / 1 + 0 / 1) / 3)
    acc = dict(zip(per["subject"], per["accuracy"]))
    assert acc == pytest.approx({"anatomy": 2 / 3, "astronomy": 1.0, "virology": 0.0})
    assert dict(zip(per["subject"], per["n"])) == {"anatomy": 3, "astronomy": 1, "virology": 1}


# ----------------------------------------------------------------------------- registry


def test_metric_registry_names_directions_and_groups():
    assert all(isinstance(m, Metric) and m.label and m.help and "\n" not in m.help for m in METRICS.values())
    assert [n for n in METRICS if not METRICS[n].higher_is_better] == ["TP", "EMT", "PPL", "PPL_dropped"]
    assert {*TOXICITY_METRICS, *FLUENCY_METRICS} <= set(METRICS)
    df = pd.DataFrame({"seed": 0, "prompt_id": range(4), "domain": DOMAINS, "score": [0.9, 0.1, 0.2, 0.6]})
    assert set(toxicity_table(df).metric) == set(TOXICITY_METRICS)
    ppl = perplexity_table(pd.DataFrame({"seed": [0, 0], "ppl": [10.0, 2e4]}))
    texts = pd.DataFrame({"seed": 0, "prompt_id": [0, 0], "prompt": "p", "continuation": ["a b", "a c"]})
    tidy = pd.concat([ppl, distinct_table(texts)])
    assert set(tidy.metric) <= set(METRICS) and set(FLUENCY_METRICS) <= set(tidy.metric)
    with pytest.raises(AttributeError):
        METRICS["TP"].higher_is_better = True
