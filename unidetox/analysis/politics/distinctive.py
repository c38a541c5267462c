"""Distinctive words of each text set: weighted log-odds with an informative Dirichlet prior.

Each set is compared with the union of the other sets by the weighted log-odds ratio with an informative
Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' words"), the prior proportional to word frequencies
in the union of all sets; words are ranked by the z-score.

>>> distinctive_words({"a": ["the cat sat", "a cat"], "b": ["the dog ran"]}, n=1)["word"].tolist()
['cat', 'dog']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.text import STOPWORDS, check_sets, content_words


def log_odds_dirichlet(
    counts_i: Mapping[str, int], counts_j: Mapping[str, int], prior: Mapping[str, float]
) -> pd.DataFrame:
    """Weighted log-odds of each word in corpus i vs corpus j with Dirichlet prior `prior` (Monroe et al. 2008).

    For word w with counts y_i, y_j, totals n_i, n_j, prior a_w and a_0 = sum(prior):
    ``delta = log((y_i + a_w) / (n_i + a_0 - y_i - a_w)) - log((y_j + a_w) / (n_j + a_0 - y_j - a_w))``,
    ``var = 1 / (y_i + a_w) + 1 / (y_j + a_w)``, ``z = delta / sqrt(var)``. Words: those of `prior` (each needs
    a_w > 0). Returns columns ``word, delta, var, z, count_i, count_j``, sorted by z descending, then word.
    """
    vocab = list(prior)
    a = np.array([prior[w] for w in vocab], dtype=float)
    if a.size == 0 or np.any(a <= 0):
        raise PoliticalError("the prior needs at least one word and a positive pseudo-count for every word")
    missing = [w for w in list(counts_i) + list(counts_j) if w not in prior]
    if missing:
        raise PoliticalError(f"word {missing[0]!r} is counted but has no prior; use a prior over the union vocabulary")
    yi = np.array([counts_i.get(w, 0) for w in vocab], dtype=float)
    yj = np.array([counts_j.get(w, 0) for w in vocab], dtype=float)
    a0, ni, nj = a.sum(), sum(counts_i.values()), sum(counts_j.values())
    delta = np.log((yi + a) / (ni + a0 - yi - a)) - np.log((yj + a) / (nj + a0 - yj - a))
    var = 1 / (yi + a) + 1 / (yj + a)
    frame = pd.DataFrame(
        {
            "word": vocab,
            "delta": delta,
            "var": var,
            "z": delta / np.sqrt(var),
            "count_i": yi.astype(int),
            "count_j": yj.astype(int),
        }
    )
    return frame.sort_values(["z", "word"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def distinctive_words(
    text_sets: Mapping[str, Sequence[str]],
    n: int = 15,
    *,
    alpha0: float | None = None,
    min_count: int = 1,
    stopwords: frozenset[str] = STOPWORDS,
) -> pd.DataFrame:
    """Top-`n` words of each set against the union of the others (:func:`log_odds_dirichlet`, :func:`content_words`).

    The prior is a_w = alpha0 * (frequency of w in all sets together); `alpha0=None` means alpha0 = total word
    count (a_w = w's count in all sets). Only words seen at least `min_count` times in the set are listed.
    Returns columns ``set, rank, word, z, delta, count_set, count_rest`` (rank from 1); fewer than `n` rows
    for a set with fewer qualifying words.
    """
    if n < 1:
        raise PoliticalError(f"n must be >= 1, got {n}")
    sets = check_sets(text_sets)
    if len(sets) < 2:
        raise PoliticalError("distinctive words compare each set with the others: pass at least two text sets")
    counts = {k: Counter(w for t in v for w in content_words(t, stopwords)) for k, v in sets.items()}
    total = sum(counts.values(), Counter())
    n_total = sum(total.values())
    scale = 1.0 if alpha0 is None else alpha0 / max(n_total, 1)
    if alpha0 is not None and alpha0 <= 0:
        raise PoliticalError(f"alpha0 must be > 0, got {alpha0}")
    prior = {w: c * scale for w, c in total.items()}
    rows = []
    for name, c in counts.items():
        if not c or not prior:
            continue
        rest = total - c
        table = log_odds_dirichlet(c, rest, prior)
        table = table[table["count_i"] >= min_count].head(n)
        for r, row in enumerate(table.itertuples(index=False), start=1):
            rows.append(
                {
                    "set": name,
                    "rank": r,
                    "word": row.word,
                    "z": row.z,
                    "delta": row.delta,
                    "count_set": row.count_i,
                    "count_rest": row.count_j,
                }
            )
    return pd.DataFrame(rows, columns=["set", "rank", "word", "z", "delta", "count_set", "count_rest"])


__all__ = ["distinctive_words", "log_odds_dirichlet"]
