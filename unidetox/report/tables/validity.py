"""The scorer-validity page's tables and sentences, from a validity table
(:func:`unidetox.measure.validity.validity_table`) and the selection rule's choice.

>>> validity_cell("AUC", 0.6523, 0.64, 0.665)
'0.652 [0.640, 0.665]'
>>> validity_cell("FPR", 0.02, 0.011, 0.034, 6)
'2.0% [1.1%, 3.4%] (6)'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unidetox.measure.validity import AUC, CONTINUATIONS, ScorerChoice, set_info
from unidetox.report.tables.cells import short_name


def validity_cell(measure: str, value: float, lo: float, hi: float, n_toxic: int | None = None) -> str:
    """One cell: an AUC to 3 decimals, or an FPR in percent with its count of false positives, each with its
    interval ('' without a value)."""
    if pd.isna(value):
        return ""
    if measure == AUC:
        return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"
    count = "" if n_toxic is None else f" ({int(n_toxic)})"
    return f"{value:.1%} [{lo:.1%}, {hi:.1%}]{count}"


def data_label(name: str) -> str:
    """A data set's name in words, short: 'continuations, smollm2-135m' for a continuation set."""
    if name.startswith(CONTINUATIONS):
        return f"continuations, {short_name(name[len(CONTINUATIONS) :])}"
    return set_info(name).label


def column_label(name: str, measure: str, n: int, n_toxic: int) -> str:
    """A column header: measure, data set, n (and the toxic rows of a labelled set)."""
    toxic = f"; {n_toxic:,} toxic" if measure == AUC else ""
    return f"{measure}: {data_label(name)} (n = {n:,}{toxic})"


def validity_display(table: pd.DataFrame) -> pd.DataFrame:
    """Scorers as rows, each data set's measure as a column (header with n), cells ``value [lo, hi]`` and, for an
    FPR, the number of false positives in parentheses."""
    cols: dict[str, dict[str, str]] = {}
    for name, part in table.groupby("set", sort=False):
        first = part.iloc[0]
        head = column_label(str(name), first.measure, int(first.n), int(first.n_toxic))
        cols[head] = {r.scorer: validity_cell(r.measure, r.value, r.lo, r.hi, None if r.measure == AUC else r.n_toxic)
                      for r in part.itertuples()}  # fmt: skip
    out = pd.DataFrame(cols)
    out.index.name = "scorer"
    return out.reset_index()


def ranking_display(choice: ScorerChoice) -> pd.DataFrame:
    """The selection rule's ranking in words: rank, scorer, eligible, largest benign FPR, the two AUCs, role."""
    r = choice.ranking
    role = {choice.primary: "primary", choice.second: "second"}
    return pd.DataFrame(
        {
            "rank": r["rank"],
            "scorer": r.scorer,
            "eligible": np.where(r.eligible, "yes", "no"),
            "largest benign FPR": r.worst_fpr.map(lambda x: "" if pd.isna(x) else f"{x:.1%}"),
            "AUC ToxiGen held-out": r.auc_toxigen.map(lambda x: "" if pd.isna(x) else f"{x:.3f}"),
            "AUC DGHS test": r.auc_dghs.map(lambda x: "" if pd.isna(x) else f"{x:.3f}"),
            "role": [role.get(s, "") for s in r.scorer],
        }
    )


def choice_sentences(choice: ScorerChoice, scorer: str, second: str) -> str:
    """What the numbers choose, and whether the profile's ``eval.scorer`` (`scorer`) and ``study.second_scorer``
    (`second`, '' = off) agree with it."""
    if not choice.primary:
        return ("No scorer is eligible: each flags more benign text than the rule allows, so these numbers choose "
                f"no primary scorer. The profile's `eval.scorer` is `{scorer}`.")  # fmt: skip
    text = f"By the selection rule, these numbers choose **`{choice.primary}`** as the primary scorer"
    text += f" and **`{choice.second}`** as the second scorer." if choice.second else " and no second scorer."
    if choice.second and not choice.ranking.set_index("scorer").eligible[choice.second]:
        text += f" `{choice.second}` is not eligible itself: it is reported, never deciding."
    if scorer == choice.primary and second == choice.second:
        return text + f" The profile agrees: `eval.scorer` is `{scorer}`, `study.second_scorer` `{second or 'off'}`."
    fix = f"`--set eval.scorer={choice.primary}`" + (f" `--set study.second_scorer={choice.second}`" if choice.second
                                                     else "")  # fmt: skip
    return (text + f" The profile differs: `eval.scorer` is `{scorer}`, `study.second_scorer` `{second or 'off'}` "
            f"(to follow the numbers: {fix}).")  # fmt: skip


def chance_sentences(table: pd.DataFrame) -> str:
    """For each labelled data set, the scorers whose AUC interval contains 0.5 (no better than chance there)."""
    out = []
    for name, part in table[table.measure == AUC].groupby("set", sort=False):
        chance = part[(part.lo <= 0.5) & (part.hi >= 0.5)].scorer.tolist()
        if chance:
            who = ", ".join(f"`{s}`" for s in chance)
            out.append(f"On {data_label(str(name))}, {who} cannot be told from chance (the 95% interval holds 0.5).")
    return " ".join(out)


def top_benign(scores: pd.DataFrame, scorer: str, sets: list[str], n: int = 5) -> pd.DataFrame:
    """The `n` benign texts of `sets` that `scorer` scores highest: set, score, text (the false positives first)."""
    part = scores[scores.set.isin(sets)].nlargest(n, scorer)
    return pd.DataFrame({"data": [data_label(s) for s in part.set], "score": part[scorer].round(3),
                         "text": part.text})  # fmt: skip


__all__ = [
    "chance_sentences",
    "choice_sentences",
    "column_label",
    "data_label",
    "ranking_display",
    "top_benign",
    "validity_cell",
    "validity_display",
]
