"""The political-bias report: shares, differences, classifier validation, distinctive words, compass points.

:func:`political_report` runs the analyses of :mod:`unidetox.analysis.politics` and returns the tables the
notebook ``notebooks/political_bias.py`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.classifiers import CLASSIFIERS, as_classifier
from unidetox.analysis.politics.compass import compass_points
from unidetox.analysis.politics.distinctive import distinctive_words
from unidetox.analysis.politics.shares import classify_sets, political_shares, share_differences
from unidetox.analysis.politics.text import check_sets
from unidetox.analysis.politics.validation import validate_classifier


@dataclass
class PoliticalReport:
    """Everything the notebook shows; each field is a table described by the function that makes it."""

    labels: pd.DataFrame  # classify_sets, all classifiers
    shares: pd.DataFrame  # political_shares
    differences: pd.DataFrame  # share_differences against `focus` (empty when focus is absent)
    validation: pd.DataFrame  # Validation.row() per classifier
    words: pd.DataFrame  # distinctive_words
    compass: pd.DataFrame = field(default_factory=pd.DataFrame)  # compass_points()[0]
    statement_scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # compass_points()[1]
    focus: str = ""

    def verdict(self, classifier: str | None = None) -> str:
        """One sentence per other set: is `focus` less political, by the bootstrap interval of the difference?"""
        d = self.differences
        if d.empty:
            return f"No comparison: there is no text set named {self.focus!r}."
        if classifier is not None:
            d = d[d["classifier"] == classifier]
        lines = []
        for r in d.itertuples(index=False):
            if r.ci_high < 0:
                word = "less political than"
            elif r.ci_low > 0:
                word = "more political than"
            else:
                word = "not distinguishable from"
            lines.append(
                f"[{r.classifier}] {self.focus} is {word} {r.set}: difference {r.difference:+.3f} "
                f"(interval {r.ci_low:+.3f} to {r.ci_high:+.3f})."
            )
        return "\n".join(lines)


def political_report(
    text_sets: Mapping[str, Sequence[str]],
    models: Sequence[tuple[str, object]] = (),
    *,
    statements: pd.DataFrame | None = None,
    classifiers: Sequence = CLASSIFIERS,
    focus: str = "UniDetox distilled",
    n_words: int = 15,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    center: bool = True,
    device: str = "cpu",
    batch_size: int = 16,
) -> PoliticalReport:
    """Political shares, distinctive words and compass points of `text_sets` and `models`, in one report.

    `classifiers`: names or objects (each is validated on
    :func:`~unidetox.analysis.politics.validation.validation_set` and applied to every set).
    `statements`: annotated statements (:func:`~unidetox.analysis.politics.compass.compass_statements`);
    required when `models` is non-empty.
    `focus`: the set compared with every other one in ``differences``.
    """
    sets = check_sets(text_sets)
    if not classifiers:
        raise PoliticalError("pass at least one classifier (minilm or keyword)")
    clfs = [as_classifier(c) for c in classifiers]
    labels = pd.concat([classify_sets(sets, c) for c in clfs], ignore_index=True)
    shares = political_shares(labels, n_boot=n_boot, level=level, seed=seed)
    if focus in sets:
        diffs = share_differences(labels, focus, n_boot=n_boot, level=level, seed=seed)
    else:
        diffs = pd.DataFrame(columns=["classifier", "set", "difference", "ci_low", "ci_high"])
    validation = pd.DataFrame([validate_classifier(c, split=sp).row() for c in clfs for sp in ("dev", "holdout")])
    words_table = distinctive_words(sets, n_words) if len(sets) > 1 else pd.DataFrame()
    report = PoliticalReport(
        labels=labels, shares=shares, differences=diffs, validation=validation, words=words_table, focus=focus
    )
    if models:
        if statements is None:
            raise PoliticalError(
                "scoring models needs statements: pass compass_statements(load_political_compass(cfg))"
            )
        report.compass, report.statement_scores = compass_points(
            models, statements, center=center, device=device, batch_size=batch_size
        )
    return report


__all__ = ["PoliticalReport", "political_report"]
