"""Political content share of each text set, and share differences, with percentile-bootstrap intervals.

Each text is labelled political or not by a classifier (:mod:`unidetox.analysis.politics.classifiers`); a
set's share gets a percentile-bootstrap interval over its texts (:mod:`unidetox.measure.bootstrap`), and the
difference of two sets' shares one from resampling each set separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.classifiers import as_classifier
from unidetox.analysis.politics.text import check_sets
from unidetox.measure.bootstrap import bootstrap_ci, percentile_interval, resample_indices


def _labels01(labels) -> np.ndarray:
    """`labels` (booleans or 0/1) as a float array of shape (n,), n >= 1."""
    x = np.asarray(labels, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise PoliticalError(f"need a non-empty 1-d sequence of 0/1 labels, got shape {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise PoliticalError("labels must be booleans or 0/1")
    return x


def bootstrap_share(
    labels: Sequence[bool], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(share, low, high): the share of true labels and its percentile-bootstrap interval over texts.

    Resamples the n labels with replacement `n_boot` times (``numpy.random.default_rng(seed)``, one
    ``integers(0, n, size=(n_boot, n))`` draw, :func:`~unidetox.measure.bootstrap.bootstrap_ci`); the bounds
    are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's default linear interpolation) of
    the resampled shares.
    """
    x = _labels01(labels)
    return bootstrap_ci(lambda rows: x[rows].mean(), x.size, n_boot=n_boot, level=level, seed=seed)


def bootstrap_share_difference(
    a: Sequence[bool], b: Sequence[bool], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(share(a) - share(b), low, high), resampling the two independent sets separately (a first, same rng)."""
    xa, xb = _labels01(a), _labels01(b)
    rng = np.random.default_rng(seed)
    rows_a = resample_indices(xa.size, n_boot, rng)  # (n_boot, len(a))
    rows_b = resample_indices(xb.size, n_boot, rng)  # (n_boot, len(b))
    lo, hi = percentile_interval(xa[rows_a].mean(axis=1) - xb[rows_b].mean(axis=1), level)
    return float(xa.mean() - xb.mean()), lo, hi


def classify_sets(text_sets: Mapping[str, Sequence[str]], classifier="minilm") -> pd.DataFrame:
    """Per-text labels: columns ``set, index, text, classifier, political, topic, score``; one classify call."""
    sets = check_sets(text_sets)
    clf = as_classifier(classifier)
    names = [k for k, v in sets.items() for _ in v]
    texts = [t for v in sets.values() for t in v]
    pred = clf.classify(texts).reset_index(drop=True)
    index = [i for v in sets.values() for i in range(len(v))]
    frame = pd.DataFrame({"set": names, "index": index, "text": texts, "classifier": clf.name})
    return pd.concat([frame, pred], axis=1)


def political_shares(labels: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of political texts per (classifier, set) with bootstrap bounds, from :func:`classify_sets` rows.

    Columns ``classifier, set, n, n_political, share, ci_low, ci_high``; sets keep their first-seen order.
    """
    rows = []
    for (clf, name), g in labels.groupby(["classifier", "set"], sort=False):
        share, lo, hi = bootstrap_share(g["political"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
        rows.append(
            {
                "classifier": clf,
                "set": name,
                "n": len(g),
                "n_political": int(g["political"].sum()),
                "share": share,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows)


def share_differences(
    labels: pd.DataFrame, focus: str, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """share(`focus`) - share(other) with bootstrap bounds, per classifier and other set.

    Columns ``classifier, set, difference, ci_low, ci_high``: a negative upper bound means `focus` is
    significantly less political than that set at the chosen level.
    """
    if focus not in set(labels["set"]):
        raise PoliticalError(f"no text set named {focus!r}; sets: {sorted(set(labels['set']))}")
    rows = []
    for clf, g in labels.groupby("classifier", sort=False):
        a = g.loc[g["set"] == focus, "political"].to_numpy()
        for name in dict.fromkeys(g["set"]):
            if name == focus:
                continue
            b = g.loc[g["set"] == name, "political"].to_numpy()
            d, lo, hi = bootstrap_share_difference(a, b, n_boot=n_boot, level=level, seed=seed)
            rows.append({"classifier": clf, "set": name, "difference": d, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["classifier", "set", "difference", "ci_low", "ci_high"])


__all__ = ["bootstrap_share", "bootstrap_share_difference", "classify_sets", "political_shares", "share_differences"]
