"""The text-type table of the book's text sets (tiny), and the page's sentence against the prose target."""

from __future__ import annotations

import pandas as pd
import pytest

from unidetox import pipeline as P
from unidetox.analysis import texttype as T
from unidetox.config.compared_methods import METHODS
from unidetox.config.loader import load_profile
from unidetox.data.texts import read_released
from unidetox.report.tables import pages as PT


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    profile = load_profile("tiny", [f"runs_dir={tmp_path_factory.mktemp('texttype-runs')}"])
    return profile, P.text_type_sets(profile, quiet=True)


def test_every_text_set_of_the_book_and_the_released_text(tiny_sets):
    profile, sets = tiny_sets
    released = METHODS["released"].label
    assert list(sets) == [*P.text_sets(profile, quiet=True), released]
    assert sets[released] == list(read_released(profile.data).texts)


def test_counts_and_display_agree_with_the_shares(tiny_sets):
    _, sets = tiny_sets
    small = {k: v[:6] for k, v in sets.items()}  # lingua on the first texts of each set keeps this quick
    counts = T.text_type_counts(small)
    assert counts.set.tolist() == list(small) and counts.n_texts.tolist() == [len(v) for v in small.values()]
    assert (counts[list(T.TEXT_TYPES)].sum(axis=1) == counts.n_texts).all()
    for (name, texts), row in zip(small.items(), counts.itertuples(index=False)):
        shares = T.text_type_shares(texts)
        assert {t: getattr(row, t) / row.n_texts for t in T.TEXT_TYPES} == pytest.approx(shares), name
    shown = PT.text_type_display(counts)
    assert list(shown.columns) == ["texts", *PT.TYPE_LABELS.values()] and list(shown.index) == list(small)


def test_display_and_sentence_by_hand():
    counts = pd.DataFrame([{"set": "a", "n_texts": 4, "english_prose": 3, "code_or_markup": 1, "other_language": 0,
                            "empty": 0}, {"set": "b", "n_texts": 0, "english_prose": 0, "code_or_markup": 0,
                                          "other_language": 0, "empty": 0}])  # fmt: skip
    shown = PT.text_type_display(counts)
    assert shown.loc["a"].tolist() == [4, "3 (0.750)", "1 (0.250)", "0 (0.000)", "0 (0.000)"]
    assert shown.loc["b", "English prose"] == "0"
    assert PT.prose_target_sentence(counts, "a", 0.8) == (
        "a: 75% English prose (3 of 4 texts), which falls short of the target of at least 80%."
    )
    assert "which meets the target of at least 70%" in PT.prose_target_sentence(counts, "a", 0.7)
    assert "no texts" in PT.prose_target_sentence(counts, "b", 0.8)
