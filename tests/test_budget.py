"""The budget curve's statistics against hand computations on small per-prompt tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unidetox.measure.budget import budget_table, cheapest_as_good
from unidetox.measure.metrics import MetricError

IN = ["gender_lgbtq", "race_nationality", "religion"]


def _base(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    domains = [*IN, "disability"]
    rows = [(f"{d}-{i}", d) for d in domains for i in range(n)]
    out = pd.DataFrame(rows, columns=["prompt_id", "domain"])
    out["max_score"] = rng.uniform(0.3, 0.7, len(out))
    out["toxic"] = (rng.uniform(size=len(out)) < 0.3).astype(float)
    out["one"], out["ppl_sum"], out["ppl_n"] = 1.0, np.nan, np.nan
    return out


def _shifted(base: pd.DataFrame, shift: np.ndarray | float) -> pd.DataFrame:
    return base.assign(max_score=base.max_score + shift)


def _hand_emt_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Mean over the in-distribution domains of (mean EMT of a - mean EMT of b) in that domain."""
    per = [a[a.domain == d].max_score.mean() - b[b.domain == d].max_score.mean() for d in IN]
    return float(np.mean(per))


@pytest.fixture(scope="module")
def curve():
    base = _base()
    wiggle = np.where(np.arange(len(base)) % 2 == 0, -0.06, 0.06)  # mean 0 within each domain (10 prompts each)
    pp = {4: _shifted(base, -0.05), 8: _shifted(base, -0.10 + wiggle), 16: _shifted(base, -0.11)}
    return base, pp, budget_table(pp, base, n_boot=400)


def test_effects_are_the_hand_computed_domain_mean_differences(curve):
    base, pp, table = curve
    emt = table[table.metric == "EMT"].set_index("steps")
    assert list(emt.index) == [4, 8, 16]
    for n, frame in pp.items():
        assert emt.loc[n, "diff"] == pytest.approx(_hand_emt_diff(frame, base), abs=1e-12)
        assert emt.loc[n, "lo"] <= emt.loc[n, "diff"] <= emt.loc[n, "hi"]
    assert (emt.n_prompts == 30).all()  # the in-distribution prompts only
    assert set(table.metric) == {"EMT", "TP"}
    tp = table[table.metric == "TP"]
    assert np.allclose(tp["diff"], 0.0)  # the shifts leave toxic untouched


def test_the_best_budget_and_the_cheapest_one_as_good(curve):
    _, pp, table = curve
    emt = table[table.metric == "EMT"].set_index("steps")
    assert tuple(emt.loc[16, ["vs_best", "vs_best_lo", "vs_best_hi"]]) == (0.0, 0.0, 0.0)  # the best itself
    # 4 steps is worse by exactly 0.06 on every prompt: a degenerate interval that excludes 0
    assert emt.loc[4, "vs_best"] == pytest.approx(0.06) and emt.loc[4, "vs_best_lo"] == pytest.approx(0.06)
    # 8 steps differs from 16 by 0.01 +- 0.06 per prompt: its interval contains 0
    assert emt.loc[8, "vs_best"] == pytest.approx(_hand_emt_diff(pp[8], pp[16]))
    assert emt.loc[8, "vs_best_lo"] < 0 < emt.loc[8, "vs_best_hi"]
    assert cheapest_as_good(table) == 8


def test_cheapest_is_the_best_when_every_cheaper_budget_is_worse():
    base = _base()
    table = budget_table({4: _shifted(base, -0.05), 16: _shifted(base, -0.2)}, base, n_boot=200)
    assert cheapest_as_good(table) == 16


def test_ties_go_to_the_cheaper_budget():
    base = _base()
    table = budget_table({4: _shifted(base, -0.1), 16: _shifted(base, -0.1)}, base, n_boot=200)
    emt = table[table.metric == "EMT"].set_index("steps")
    assert emt.loc[4, "vs_best"] == 0.0 and cheapest_as_good(table) == 4


def test_bad_inputs_raise_metric_errors():
    base = _base()
    with pytest.raises(MetricError, match="at least one budget"):
        budget_table({}, base)
    with pytest.raises(MetricError, match="same prompts"):
        budget_table({4: base.iloc[:-1]}, base)
    with pytest.raises(MetricError, match="no in-distribution"):
        budget_table({4: base[base.domain != "religion"]}, base[base.domain != "religion"])
    with pytest.raises(MetricError, match="no EMT rows"):
        cheapest_as_good(pd.DataFrame(columns=["steps", "metric", "vs_best_lo", "vs_best_hi"]))


def test_the_pages_table_and_sentences(curve):
    from unidetox.report.tables.pages import budget_display, budget_sentences

    _, _, table = curve
    table = table.assign(tokens=table.steps * 160, train_seconds=table.steps * 2.0)
    shown = budget_display(table)
    assert list(shown.steps) == [4, 8, 16] and list(shown["tokens (at most)"]) == [640, 1280, 2560]
    assert shown["EMT − best budget [95% CI]"].iloc[2] == "+0.000 [+0.000, +0.000]"
    assert shown["ΔEMT (in) [95% CI]"].iloc[0].startswith("-0.050 [")
    text = budget_sentences(table, chosen=16, cheapest=8, n_per_domain=10)
    assert "30 in-distribution prompts" in text and "significantly at 4, 8, 16 steps" in text
    assert "lowest EMT(in) is at 16 steps" in text and "**8**" in text and "a cheaper fine-tune" in text
    assert "is below it" in budget_sentences(table, chosen=4, cheapest=8, n_per_domain=10)
    assert "is that cheapest" in budget_sentences(table, chosen=8, cheapest=8, n_per_domain=10)
