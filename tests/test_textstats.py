"""Text-set statistics against hand computations and a naive re-implementation."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from unidetox.analysis.textstats import (
    STATS_COLUMNS,
    TextStatsError,
    distinct_n_set,
    examples_table,
    length_frame,
    preview,
    stats_table,
    text_set_stats,
    token_counts,
    vocab_words,
    vocabulary,
    word_counts,
)

SET = ["the cat sat", "the cat", "", "Sat, the   dog\nran"]
# raw words: [the cat sat] [the cat] [] [Sat, the dog ran]  -> counts 3, 2, 0, 4; total 9
# distinct unigrams: the cat sat Sat, dog ran -> 6
# bigrams: (the cat)(cat sat) | (the cat) | - | (Sat, the)(the dog)(dog ran) -> distinct 5
# trigrams: (the cat sat) | - | - | (Sat, the dog)(the dog ran) -> 3
# vocabulary words: the cat sat | the cat | - | sat the dog ran -> 9 total, distinct {the cat sat dog ran} = 5


def test_word_counts_and_distinct_n_by_hand():
    assert word_counts(SET).tolist() == [3, 2, 0, 4]
    assert distinct_n_set(SET, 1) == pytest.approx(6 / 9)
    assert distinct_n_set(SET, 2) == pytest.approx(5 / 9)
    assert distinct_n_set(SET, 3) == pytest.approx(3 / 9)
    assert distinct_n_set(SET, 5) == 0.0  # no text has 5 words; the denominator is still 9 words


def test_ngrams_never_cross_text_boundaries():
    # "a b" + "c" would give the bigram (b c) if texts were concatenated
    assert distinct_n_set(["a b", "c"], 2) == pytest.approx(1 / 3)


def test_vocabulary_words_lowercase_and_apostrophes():
    assert vocab_words("Don't STOP, don't!  42_x café") == ["don't", "stop", "don't", "42", "x", "café"]
    assert vocabulary(SET) == (5, 9)


def test_text_set_stats_by_hand():
    s = text_set_stats(SET, token_lengths=[5, 3, 0, 6])
    assert s["n_texts"] == 4
    assert s["empty_share"] == pytest.approx(0.25)
    assert s["words_mean"] == pytest.approx(9 / 4)
    assert s["words_median"] == pytest.approx(2.5)  # median of 0, 2, 3, 4
    assert s["tokens_mean"] == pytest.approx(14 / 4)
    assert s["tokens_median"] == pytest.approx(4.0)  # median of 0, 3, 5, 6
    assert s["distinct_words"] == 5
    assert s["vocab_ttr"] == pytest.approx(5 / 9)
    assert s["Dist-1"] == pytest.approx(6 / 9)
    assert set(s) == set(STATS_COLUMNS) - {"set"}


def test_whitespace_only_texts_are_empty_and_missing_tokens_are_nan():
    s = text_set_stats([" \n\t", "x"])
    assert s["empty_share"] == pytest.approx(0.5)
    assert math.isnan(s["tokens_mean"]) and math.isnan(s["tokens_median"])


def test_all_empty_and_no_texts_give_nan_not_errors():
    s = text_set_stats(["", ""])
    assert s["empty_share"] == 1.0 and s["words_mean"] == 0.0
    assert math.isnan(s["Dist-1"]) and math.isnan(s["vocab_ttr"]) and s["distinct_words"] == 0
    s = text_set_stats([])
    assert s["n_texts"] == 0 and math.isnan(s["empty_share"]) and math.isnan(s["words_mean"])


def _naive_dist(texts, n):
    grams, total = [], 0
    for t in texts:
        w = t.split()
        total += len(w)
        for i in range(len(w) - n + 1):
            gram = " ".join(w[i : i + n])
            if gram not in grams:
                grams.append(gram)
    return len(grams) / total


def test_distinct_n_matches_naive_reimplementation_on_random_texts():
    rng = random.Random(0)
    words = ["a", "b", "c", "dd", "E", "f!"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(30)]
    for n in (1, 2, 3, 4):
        assert distinct_n_set(texts, n) == pytest.approx(_naive_dist(texts, n))


def test_bad_input_is_named():
    with pytest.raises(TextStatsError, match="single string"):
        word_counts("a b c")
    with pytest.raises(TextStatsError, match=r"texts\[1\] is int"):
        word_counts(["a", 3])
    with pytest.raises(TextStatsError, match="n must be >= 1"):
        distinct_n_set(["a"], 0)
    with pytest.raises(TextStatsError, match="one count per text"):
        text_set_stats(["a", "b"], token_lengths=[1])
    with pytest.raises(TextStatsError, match="'S'"):
        stats_table({"S": "oops"})


class _SpaceTokenizer:
    """Stand-in for a Hugging Face tokenizer: one id per character that is not a space."""

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [[ord(c) for c in t if c != " "] for t in texts]}


def test_token_counts_and_stats_table_rows():
    tok = _SpaceTokenizer()
    assert token_counts(["ab c", "", "x"], tok).tolist() == [3, 0, 1]
    assert token_counts([], tok).tolist() == []
    sets = {"first": SET, "second": ["x y", "x"]}
    table = stats_table(sets, lambda t: token_counts(t, tok))
    assert list(table.columns) == STATS_COLUMNS
    assert table["set"].tolist() == ["first", "second"]
    row = table.set_index("set").loc["second"]
    assert row["n_texts"] == 2 and row["words_mean"] == pytest.approx(1.5)
    assert row["tokens_mean"] == pytest.approx(1.5) and row["Dist-1"] == pytest.approx(2 / 3)
    # the first row agrees with text_set_stats given the same token counts
    direct = text_set_stats(SET, token_counts(SET, tok))
    for key, value in direct.items():
        assert table.set_index("set").loc["first", key] == pytest.approx(value, nan_ok=True)


def test_length_frame_long_format():
    tok = _SpaceTokenizer()
    frame = length_frame({"A": ["a b", ""], "B": ["c"]}, lambda t: token_counts(t, tok))
    assert frame.to_dict("list") == {"set": ["A", "A", "B"], "words": [2, 0, 1], "tokens": [2, 0, 1]}
    assert list(length_frame({"A": ["a"]}).columns) == ["set", "words"]
    assert list(length_frame({}).columns) == ["set", "words"]


def test_preview_flattens_and_truncates():
    assert preview("line one\n\n  line\ttwo  ") == "line one ⏎ line two"
    assert preview("  \n ") == "(empty)"
    assert preview("abcdef", width=4) == "abc…"
    assert len(preview("x" * 500)) == 200
    assert preview("abcd", width=4) == "abcd"
    with pytest.raises(TextStatsError, match="width"):
        preview("a", width=1)


def test_examples_table_pads_and_escapes_in_html():
    table = examples_table({"A": ["<script>alert(1)</script>", "b", "c"], "B": ["x"]}, n=2)
    assert table.index.tolist() == [1, 2]
    assert table["A"].tolist() == ["<script>alert(1)</script>", "b"]
    assert table["B"].tolist() == ["x", ""]
    html = table.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>" not in table._repr_html_()  # what a notebook (and the book) shows
    assert examples_table({"A": ["a"]}, n=0).shape == (0, 1)


def test_stats_are_invariant_to_text_order():
    rng = np.random.default_rng(1)
    texts = ["a b c", "b c d e", "", "a a a", "e f"]
    shuffled = [texts[i] for i in rng.permutation(len(texts))]
    a, b = text_set_stats(texts), text_set_stats(shuffled)
    assert pd.Series(a).equals(pd.Series(b))
