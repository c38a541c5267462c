"""Scorer validity: ROC AUC and false-positive rates against hand computations and independent references, the
selection rule, the WikiText-2 cleaning, the held-out rows, and the scorer-validity stages on the tiny profile."""

from __future__ import annotations

import itertools
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from unidetox.config import DataConfig
from unidetox.config.loader import load_profile
from unidetox.data.wikitext import detokenize, wikitext_sentences
from unidetox.measure import validity as V
from unidetox.measure.metrics import MetricError


def brute_force_auc(scores, labels) -> float:
    """Share of (toxic, non-toxic) pairs the scorer orders right, a tie counting one half: the definition."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# ----------------------------------------------------------------------------- ROC AUC


def test_auc_of_a_hand_computed_case_with_a_tie():
    # pairs (toxic, non-toxic): (0.9, 0.4) right, (0.9, 0.1) right, (0.4, 0.4) tie = 1/2, (0.4, 0.1) right: 3.5 / 4
    assert V.roc_auc([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == 0.875


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),  # perfect
        ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 0.0),  # perfectly wrong
        ([0.5, 0.5, 0.5], [1, 0, 0], 0.5),  # all tied
        ([0.3, 0.7, 0.2, 0.6, 0.9], [0, 1, 1, 0, 1], 4 / 6),  # 4 of 6 pairs right
    ],
)
def test_auc_of_small_cases(scores, labels, expected):
    assert V.roc_auc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert brute_force_auc(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_auc_equals_the_pairwise_count_on_random_cases_with_many_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 25))
        labels = rng.integers(0, 2, size=n)
        labels[:2] = [0, 1]  # both classes
        scores = rng.integers(0, 5, size=n) / 4  # 5 values: ties are common
        # both are sums of at most 24 * 24 halves divided once: exact in binary, so equal to the last bit but for
        # the rank sum's float division; 1e-12 is far above that rounding and far below any 1 / (n_pos n_neg) step
        assert V.roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels), abs=1e-12)


def test_auc_refuses_one_class_and_bad_labels():
    with pytest.raises(MetricError, match="toxic and non-toxic"):
        V.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(MetricError, match="labels must be 0"):
        V.roc_auc([0.1, 0.2], [1, 2])
    with pytest.raises(MetricError, match="one length"):
        V.roc_auc([0.1, 0.2], [1])
    with pytest.raises(MetricError, match="finite"):
        V.roc_auc([np.nan, 0.2], [1, 0])


def test_auc_interval_holds_the_estimate_and_keeps_both_classes():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(30, int), np.zeros(70, int)]
    scores = rng.normal(size=100) + labels
    auc, lo, hi = V.auc_interval(scores, labels, n_boot=300, seed=1)
    assert auc == V.roc_auc(scores, labels)
    assert lo <= auc <= hi and hi - lo > 0.05
    # one toxic row among many: a resample without it would have no AUC; the class-stratified bootstrap keeps it
    one = np.r_[1, np.zeros(20, int)]
    assert V.auc_interval(np.arange(21.0)[::-1], one, n_boot=50) == (1.0, 1.0, 1.0)


# ----------------------------------------------------------------------------- false-positive rate


def test_false_positive_rate_counts_scores_strictly_above_the_threshold():
    assert V.false_positive_rate([0.5, 0.50001, 0.2, 0.9], 0.5) == (2, 4)
    with pytest.raises(MetricError):
        V.false_positive_rate([], 0.5)


def _binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _bisect(f, lo=0.0, hi=1.0) -> float:
    """The root of a function increasing on [lo, hi] from negative to positive, to 1e-12."""
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 20), (1, 300)])
def test_binomial_interval_is_clopper_pearson(k, n):
    lo, hi = V.binomial_interval(k, n, 0.95)
    # Clopper-Pearson from its definition: P(X >= k | lo) = 0.025 and P(X <= k | hi) = 0.025 (0 and 1 at the ends)
    ref_lo = 0.0 if k == 0 else _bisect(lambda p: (1 - _binom_cdf(k - 1, n, p)) - 0.025)
    ref_hi = 1.0 if k == n else _bisect(lambda p: 0.025 - _binom_cdf(k, n, p))
    # scipy inverts the beta distribution, the reference bisects a sum of n + 1 terms; both are accurate to ~1e-10
    assert lo == pytest.approx(ref_lo, abs=1e-8) and hi == pytest.approx(ref_hi, abs=1e-8)
    if k == 0:  # the closed form of the upper end with no success: 1 - (alpha / 2)^(1 / n)
        assert hi == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-10)


# ----------------------------------------------------------------------------- the table and the selection rule


def test_validity_table_of_a_hand_made_frame():
    frame = pd.DataFrame(
        {
            "set": ["toxigen"] * 4 + ["wikitext"] * 4 + [V.continuation_set("m")] * 2,
            "label": [1, 1, 0, 0] + [0] * 6,
            "a": [0.9, 0.4, 0.4, 0.1, 0.6, 0.1, 0.2, 0.3, 0.5, 0.7],
            "b": [0.1, 0.2, 0.8, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    t = V.validity_table(frame, ["a", "b"], threshold=0.5, n_boot=50).set_index(["scorer", "set"])
    assert t.loc[("a", "toxigen"), "value"] == 0.875 and t.loc[("b", "toxigen"), "value"] == 0.0
    assert t.loc[("a", "toxigen"), ["n", "n_toxic"]].tolist() == [4, 2]
    assert t.loc[("a", "wikitext"), ["value", "n", "n_toxic"]].tolist() == [0.25, 4, 1]
    assert t.loc[("a", "continuations:m"), ["value", "n_toxic"]].tolist() == [0.5, 1]  # 0.5 itself is not > 0.5
    assert t.loc[("b", "wikitext"), "lo"] == 0.0
    assert (t.loc[("a", "wikitext"), ["lo", "hi"]].tolist()) == pytest.approx(list(V.binomial_interval(1, 4)))
    assert set(t.measure) == {"AUC", "FPR"}


def test_validity_table_gives_nan_for_a_labelled_set_with_one_class():
    frame = pd.DataFrame({"set": ["dghs"] * 3, "label": [1, 1, 1], "a": [0.1, 0.2, 0.3]})
    row = V.validity_table(frame, ["a"], threshold=0.5).iloc[0]
    assert np.isnan(row.value) and row.n_toxic == 3


def _table(rows):
    return pd.DataFrame(rows, columns=["scorer", "set", "measure", "value"])


def test_choose_scorers_follows_the_declared_rule():
    rows = []
    for spec, auc_t, auc_d, fpr in [("weak", 0.60, 0.70, 0.01), ("best", 0.65, 0.60, 0.02), ("noisy", 0.83, 0.9, 0.88),
                                    ("tie", 0.60, 0.75, 0.10)]:  # fmt: skip
        rows += [(spec, "toxigen", "AUC", auc_t), (spec, "dghs", "AUC", auc_d), (spec, "wikitext", "FPR", 0.0),
                 (spec, V.continuation_set("m"), "FPR", fpr)]  # fmt: skip
    choice = V.choose_scorers(_table(rows))
    # 'noisy' has the best AUC but flags 88% of benign continuations: ineligible, ranked last
    assert choice.ranking.scorer.tolist() == ["best", "tie", "weak", "noisy"]  # 'tie' beats 'weak' on DGHS AUC
    assert (choice.primary, choice.second) == ("best", "tie")
    assert choice.ranking.eligible.tolist() == [True, True, True, False]
    assert choice.ranking.worst_fpr.tolist() == [0.02, 0.10, 0.01, 0.88]


def test_choose_scorers_with_no_eligible_scorer_and_with_one():
    rows = [("x", "toxigen", "AUC", 0.7), ("x", "wikitext", "FPR", 0.5)]
    assert (V.choose_scorers(_table(rows)).primary, V.choose_scorers(_table(rows)).second) == ("", "")
    rows += [("y", "toxigen", "AUC", 0.6), ("y", "wikitext", "FPR", 0.0)]
    choice = V.choose_scorers(_table(rows))
    assert (choice.primary, choice.second) == ("y", "x")


def test_set_info_names_continuation_sets_and_refuses_unknown_ones():
    assert V.set_info(V.continuation_set("packaged:smollm2-135m")).measure == V.FPR
    assert V.set_info("dghs").measure == V.AUC
    with pytest.raises(MetricError, match="unknown validity data set"):
        V.set_info("nope")


# ----------------------------------------------------------------------------- WikiText-2 sentences


def test_detokenize_undoes_wikitext_tokenization():
    assert detokenize('The 1 @,@ 000 @-@ year " old " tree , it \'s said , grew ( slowly ) .') == (
        'The 1,000-year "old" tree, it\'s said, grew (slowly).'
    )
    assert detokenize("It cost $ 2 @.@ 5 million ; they did n't pay .") == "It cost $2.5 million; they didn't pay."


def test_wikitext_sentences_split_paragraphs_and_drop_headings_unk_and_short_ones(tmp_path):
    (tmp_path / "wikitext2").mkdir()
    lines = [
        " ",
        " = Heading = ",
        (
            " The first sentence has seven words in it . A <unk> sentence is dropped here entirely . Too short . "
            "The last one , with a comma , stays in ."
        ),
        " = = Sub heading = = ",
        " Another paragraph starts with this sentence here . ",
    ]
    (tmp_path / "wikitext2" / "valid.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = wikitext_sentences(DataConfig(dir=str(tmp_path)), "valid")
    assert out.text.tolist() == [
        "The first sentence has seven words in it.",
        "The last one, with a comma, stays in.",
        "Another paragraph starts with this sentence here.",
    ]
    assert out.paragraph.tolist() == [2, 2, 4] and out.position.tolist() == [0, 3, 0]


def test_wikitext_errors_name_the_file(tmp_path):
    from unidetox.data.files import DataError

    with pytest.raises(DataError, match="wikitext2/test.txt"):
        wikitext_sentences(DataConfig(dir=str(tmp_path)), "test")
    with pytest.raises(DataError, match="split must be"):
        wikitext_sentences(DataConfig(dir=str(tmp_path)), "train")


# ----------------------------------------------------------------------------- held-out rows and the stages


def test_held_out_toxigen_rows_exclude_every_prompt_the_profile_uses():
    from unidetox.data.toxigen import load_toxigen
    from unidetox.pipeline import prompts
    from unidetox.pipeline.validity import labelled_sets, prompt_rows

    prof = load_profile("tiny", ["validity.max_texts=0", "study.report_prompts_per_domain=30"])
    raw = load_toxigen(prof.data, "train")
    used = set(prompt_rows(prof, raw).tolist())
    report_rows = {int(p.rsplit("-", 1)[1]) for p in prompts(prof, "report").prompt_id}
    assert len(report_rows) == 4 * 30 and report_rows <= used  # the report prompts under the profile's settings
    assert len(used) == 896 + 120  # the whole validation split besides them (disjoint from report)
    held = labelled_sets(prof)
    rows = {int(i.split("-")[1]) for i in held[held.set == "toxigen"].item}
    assert not rows & used and len(rows) == len(raw) - len(used)
    assert len(held[held.set == "dghs"]) == 3571  # all DGHS test rows, hate and nothate
    more = prompt_rows(load_profile("tiny", ["study.report_prompts_per_domain=40"]), raw)
    assert len(more) == 896 + 160  # follows the setting, nothing hard-coded


@pytest.fixture(scope="module")
def tiny_validity(tmp_path_factory, one_torch_thread):
    from unidetox.pipeline.validity import scorer_validity

    prof = load_profile("tiny", [f"runs_dir={tmp_path_factory.mktemp('runs')}"])
    return prof, scorer_validity(prof, quiet=True)


def test_the_stage_on_tiny_scores_every_set_with_every_scorer(tiny_validity):
    prof, v = tiny_validity
    assert v.scorers == ["tiny", "hatesonar"]
    sets = ["toxigen", "dghs", "wikitext", "released", *(V.continuation_set(t) for t in prof.detox.targets)]
    assert v.table.set.unique().tolist() == sets
    assert len(v.table) == len(sets) * 2 and v.table.value.notna().all()
    assert (v.table.lo <= v.table.value).all() and (v.table.value <= v.table.hi).all()
    n = v.scores.groupby("set").size()
    assert n["toxigen"] == n["dghs"] == n["wikitext"] == n["released"] == 32
    assert n[V.continuation_set("tiny:gpt2")] == 8
    assert v.settings["scorer_versions"].keys() == {"tiny", "hatesonar"}
    # the table is what the measures give on the stored scores
    again = V.validity_table(v.scores, v.scorers, threshold=prof.eval.threshold, n_boot=prof.study.bootstrap)
    pd.testing.assert_frame_equal(again, v.table, check_dtype=False)


def test_the_stage_is_reused_and_its_continuations_resume(tiny_validity, capsys):
    from unidetox.pipeline.validity import openings as make_openings
    from unidetox.pipeline.validity import scorer_validity, validity_continuations

    prof, v = tiny_validity
    again = scorer_validity(prof)
    assert again.path == v.path and "scorer-validity: reusing" in capsys.readouterr().out
    # a run killed after its first unit: the stream holds that unit only and there is no DONE
    prof2 = load_profile("tiny", [f"runs_dir={v.path.parents[2]}", "eval.batch_size=4"])  # two units of 4 openings
    opens = make_openings(prof2)
    st = validity_continuations(prof2, "tiny:gpt2", opens, quiet=True)
    full = (st / "generations.jsonl").read_text()
    lines = full.splitlines(keepends=True)
    assert len(lines) == 8 and {r.count('"unit": 0') for r in lines[:4]} == {1}
    (st / "DONE").unlink()
    (st / "generations.jsonl").write_text("".join(lines[:4]) + lines[4][:10])  # plus a torn line
    resumed = validity_continuations(prof2, "tiny:gpt2", opens, quiet=True)
    assert resumed.path == st.path and (st / "generations.jsonl").read_text() == full
    shutil.rmtree(st.path)


def test_validity_settings_check_their_values():
    from unidetox.config import ConfigError

    with pytest.raises(ConfigError, match="validity.openings"):
        load_profile("tiny", ["validity.openings=-1"])
    with pytest.raises(ConfigError, match="repeat"):
        load_profile("tiny", ["validity.scorers=[hatesonar, hatesonar]"])


def test_a_misspelt_validity_scorer_fails_before_anything_is_written(tmp_path, capsys):
    from unidetox.cli import run

    runs = tmp_path / "runs"
    argv = ["pipeline", "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}", "--set", "validity.scorers=[nope]"]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "validity.scorers[0]: unknown scorer spec 'nope'" in err[0]
    assert not runs.exists()  # checked with the study's specs, before any stage


def test_page_sentences_and_cells():
    from unidetox.report.tables import validity as VT

    assert VT.validity_cell("AUC", 0.6523, 0.64, 0.665) == "0.652 [0.640, 0.665]"
    assert VT.validity_cell("FPR", 0.02, 0.011, 0.034, 6) == "2.0% [1.1%, 3.4%] (6)"
    assert VT.validity_cell("AUC", np.nan, np.nan, np.nan) == ""
    table = pd.DataFrame(
        {"scorer": ["a", "b", "a"], "set": ["dghs", "dghs", "toxigen"], "measure": "AUC", "value": [0.5, 0.6, 0.7],
         "lo": [0.48, 0.55, 0.6], "hi": [0.52, 0.65, 0.8]}
    )  # fmt: skip
    assert (
        VT.chance_sentences(table)
        == "On DGHS test (hate vs nothate), `a` cannot be told from chance (the 95% interval holds 0.5)."
    )
    rows = [("p", "toxigen", "AUC", 0.7), ("p", "wikitext", "FPR", 0.0), ("s", "toxigen", "AUC", 0.6),
            ("s", "wikitext", "FPR", 0.5)]  # fmt: skip
    choice = V.choose_scorers(_table(rows))
    agree = VT.choice_sentences(choice, "p", "s")
    assert "choose **`p`** as the primary scorer and **`s`** as the second" in agree and "not eligible" in agree
    assert "The profile agrees" in agree
    assert "--set eval.scorer=p" in VT.choice_sentences(choice, "s", "")
    assert VT.ranking_display(choice).role.tolist() == ["primary", "second"]
