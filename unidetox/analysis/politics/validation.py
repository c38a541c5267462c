"""Accuracy of a political classifier on labelled texts, by default the shipped validation set.

The set (``resources/political_validation.csv``) is split ``dev`` and ``holdout``; see
:mod:`unidetox.analysis.politics.classifiers` for how each split was used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.classifiers import as_classifier
from unidetox.analysis.politics.text import check_texts

VALIDATION_CSV = Path(__file__).resolve().parents[2] / "resources" / "political_validation.csv"


def validation_set(split: str | None = None) -> pd.DataFrame:
    """Labelled texts of ``resources/political_validation.csv``: ``split, text, political`` (bool), ``topic``.

    `split`: ``"dev"``, ``"holdout"`` or None (all).
    """
    frame = pd.read_csv(VALIDATION_CSV)
    frame["political"] = frame["political"].astype(bool)
    if split is not None:
        if split not in set(frame["split"]):
            raise PoliticalError(f"unknown validation split {split!r}; choose one of {sorted(set(frame['split']))}")
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


@dataclass(frozen=True)
class Validation:
    """Accuracy of a classifier on labelled texts; `confusion` is 2x2 (rows: true, columns: predicted)."""

    classifier: str
    accuracy: float
    confusion: pd.DataFrame
    predictions: pd.DataFrame  # text, political (truth), predicted, topic
    split: str = ""

    def row(self) -> dict:
        c = self.confusion
        return {
            "classifier": self.classifier,
            "split": self.split or "given",
            "n": int(c.to_numpy().sum()),
            "accuracy": self.accuracy,
            "true political, predicted political": int(c.loc["political", "political"]),
            "true political, predicted other": int(c.loc["political", "other"]),
            "true other, predicted political": int(c.loc["other", "political"]),
            "true other, predicted other": int(c.loc["other", "other"]),
        }


def confusion(truth: Sequence[bool], predicted: Sequence[bool]) -> pd.DataFrame:
    """2x2 counts, index = true label, columns = predicted label, both ordered ("political", "other")."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if t.shape != p.shape:
        raise PoliticalError(f"{t.size} true labels but {p.size} predictions; pass one prediction per text")
    counts = [[int(np.sum(t & p)), int(np.sum(t & ~p))], [int(np.sum(~t & p)), int(np.sum(~t & ~p))]]
    names = ["political", "other"]
    return pd.DataFrame(counts, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))


def validate_classifier(
    classifier="minilm",
    texts: Sequence[str] | None = None,
    labels: Sequence[bool] | None = None,
    *,
    split: str | None = None,
) -> Validation:
    """Accuracy and confusion of `classifier` (a name or object) on `texts`/`labels`.

    Without texts and labels, the shipped :func:`validation_set` (`split`: "dev", "holdout" or None = all).
    """
    if (texts is None) != (labels is None):
        raise PoliticalError("pass both texts and labels, or neither (to use the shipped validation set)")
    given = texts
    if texts is None:
        vs = validation_set(split)
        texts, labels = vs["text"].tolist(), vs["political"].to_numpy()
    texts = check_texts(texts)
    labels = np.asarray(labels, dtype=bool)
    if len(texts) == 0 or len(texts) != len(labels):
        raise PoliticalError(
            f"need a non-empty set with one label per text; got {len(texts)} texts, {len(labels)} labels"
        )
    clf = as_classifier(classifier)
    pred = clf.classify(texts)
    predicted = pred["political"].to_numpy()
    preds = pd.DataFrame({"text": texts, "political": labels, "predicted": predicted, "topic": pred["topic"]})
    name = (split or "all") if given is None else ""
    return Validation(clf.name, float(np.mean(predicted == labels)), confusion(labels, predicted), preds, name)


__all__ = ["VALIDATION_CSV", "Validation", "confusion", "validate_classifier", "validation_set"]
