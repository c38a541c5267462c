"""Length and vocabulary statistics of text sets (the distilled text, model samples, DGHS rows).

Two notions of *word* are used, each stated where it matters:

* **raw words**: ``text.split()`` (runs of non-whitespace). Words per text and Dist-n use them, so
  Dist-1 is the type-token ratio of raw words ("The" and "the," are different words).
* **vocabulary words**: lowercased runs of letters and digits, with inner apostrophes kept
  (``"Don't stop!"`` -> ``["don't", "stop"]``). The vocabulary size and its type-token ratio use them.

Dist-n of a *set* is the number of distinct n-grams (taken inside each text, never across two texts)
divided by the total number of raw words of the set; the evaluation's Dist-n (:mod:`unidetox.measure.metrics`)
averages the same ratio over prompts and splits words on single spaces instead.

>>> text_set_stats(["a b a", ""])["empty_share"]
0.5
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from unidetox.errors import UnidetoxError

VOCAB_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # letters/digits, inner apostrophes kept
STATS_COLUMNS = [
    "set", "n_texts", "empty_share", "words_mean", "words_median", "tokens_mean", "tokens_median",
    "distinct_words", "vocab_ttr", "Dist-1", "Dist-2", "Dist-3",
]  # fmt: skip


class TextStatsError(UnidetoxError, ValueError):
    """Input that the text statistics cannot use; the message says what was expected."""


def _check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TextStatsError(f"{what}: expected a sequence of texts, got a single string; wrap it in a list")
    out = list(texts)
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise TextStatsError(f"{what}[{bad}] is {type(out[bad]).__name__}, not str")
    return out


def raw_words(text: str) -> list[str]:
    """Raw words of one text: ``text.split()``."""
    return text.split()


def vocab_words(text: str) -> list[str]:
    """Vocabulary words of one text: lowercased letter/digit runs, inner apostrophes kept."""
    return VOCAB_WORD.findall(text.lower())


def word_counts(texts: Sequence[str]) -> np.ndarray:
    """Raw words per text, shape [n_texts], int."""
    return np.array([len(raw_words(t)) for t in _check_texts(texts)], dtype=int)


def token_counts(texts: Sequence[str], tokenizer) -> np.ndarray:
    """Tokens per text under a Hugging Face `tokenizer`, without special tokens; shape [n_texts], int."""
    texts = _check_texts(texts)
    if not texts:
        return np.zeros(0, dtype=int)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.array([len(x) for x in ids], dtype=int)


def distinct_n_set(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams of raw words over the whole set / total raw words of the set (nan without words)."""
    if n < 1:
        raise TextStatsError(f"n must be >= 1, got {n}")
    grams: set[tuple[str, ...]] = set()
    total = 0
    for text in _check_texts(texts):
        words = raw_words(text)
        total += len(words)
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(grams) / total if total else float("nan")


def vocabulary(texts: Sequence[str]) -> tuple[int, int]:
    """(distinct vocabulary words, total vocabulary words) of the set."""
    words = [w for t in _check_texts(texts) for w in vocab_words(t)]
    return len(set(words)), len(words)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else float("nan")


def text_set_stats(texts: Sequence[str], token_lengths: Sequence[int] | None = None) -> dict[str, float]:
    """Statistics of one text set (keys: STATS_COLUMNS less ``set``).

    ``empty_share``: share of texts without any raw word; ``words_*``/``tokens_*``: mean and median per text
    (tokens: nan unless `token_lengths`, one count per text, is given); ``distinct_words``/``vocab_ttr``: size of
    the vocabulary and distinct/total vocabulary words; ``Dist-n``: :func:`distinct_n_set`.
    """
    texts = _check_texts(texts)
    words = word_counts(texts)
    if token_lengths is None:
        tokens = None
    else:
        tokens = np.asarray(token_lengths, dtype=int)
        if tokens.shape != (len(texts),):
            raise TextStatsError(f"token_lengths has shape {tokens.shape}; expected one count per text ({len(texts)})")
    distinct, total = vocabulary(texts)
    return {
        "n_texts": len(texts),
        "empty_share": float(np.mean(words == 0)) if len(texts) else float("nan"),
        "words_mean": _mean(words),
        "words_median": _median(words),
        "tokens_mean": _mean(tokens) if tokens is not None else float("nan"),
        "tokens_median": _median(tokens) if tokens is not None else float("nan"),
        "distinct_words": distinct,
        "vocab_ttr": distinct / total if total else float("nan"),
        **{f"Dist-{n}": distinct_n_set(texts, n) for n in (1, 2, 3)},
    }


TokenCounter = Callable[[Sequence[str]], Sequence[int]]


def stats_table(sets: Mapping[str, Sequence[str]], count_tokens: TokenCounter | None = None) -> pd.DataFrame:
    """One row of :func:`text_set_stats` per text set, in the mapping's order (columns STATS_COLUMNS).

    `count_tokens`: texts -> tokens per text (e.g. ``lambda t: token_counts(t, tokenizer)``); None leaves
    the token columns nan.
    """
    rows = []
    for name, texts in sets.items():
        texts = _check_texts(texts, f"text set {name!r}")
        lengths = count_tokens(texts) if count_tokens is not None else None
        rows.append({"set": name, **text_set_stats(texts, lengths)})
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def length_frame(sets: Mapping[str, Sequence[str]], count_tokens: TokenCounter | None = None) -> pd.DataFrame:
    """Long table for length histograms: one row per text with columns set, words (and tokens if counted)."""
    parts = []
    for name, texts in sets.items():
        texts = _check_texts(texts, f"text set {name!r}")
        part = pd.DataFrame({"set": name, "words": word_counts(texts)})
        if count_tokens is not None:
            part["tokens"] = np.asarray(count_tokens(texts), dtype=int)
        parts.append(part)
    columns = ["set", "words"] + (["tokens"] if count_tokens is not None else [])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def preview(text: str, width: int = 200) -> str:
    """One-line preview of a text: line breaks shown as ' ⏎ ', whitespace runs as one space, cut to `width` chars.

    A cut text ends in '…' (counted in `width`); an empty text becomes '(empty)'. Nothing is escaped here:
    show the result through an escaping renderer (a pandas table's HTML escapes '<', '>' and '&').
    """
    if width < 2:
        raise TextStatsError(f"width must be >= 2, got {width}")
    lines = [re.sub(r"\s+", " ", line).strip() for line in re.split(r"\r\n|\r|\n", text)]
    flat = " ⏎ ".join(line for line in lines if line)
    if not flat:
        return "(empty)"
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def examples_table(sets: Mapping[str, Sequence[str]], n: int, width: int = 200) -> pd.DataFrame:
    """The first `n` texts of each set side by side: rows 1..n, one column per set, :func:`preview` of each.

    A set with fewer than `n` texts leaves its remaining cells empty ('').
    """
    if n < 0:
        raise TextStatsError(f"n must be >= 0, got {n}")
    cols = {}
    for name, texts in sets.items():
        texts = _check_texts(texts, f"text set {name!r}")[:n]
        cols[name] = [preview(t, width) for t in texts] + [""] * (n - len(texts))
    return pd.DataFrame(cols, index=pd.RangeIndex(1, n + 1))


__all__ = [
    "STATS_COLUMNS",
    "TextStatsError",
    "distinct_n_set",
    "examples_table",
    "length_frame",
    "preview",
    "raw_words",
    "stats_table",
    "text_set_stats",
    "token_counts",
    "vocab_words",
    "vocabulary",
    "word_counts",
]
