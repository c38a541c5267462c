"""Tables shaped for one page of the book each, built from the frames the pipeline and the analyses return.

The general tables (main table, deltas, transfer, grid) are in :mod:`unidetox.report.tables`; these are the
per-page reshapes the notebooks show: the base against the toxic model, the text statistics with readable
row names, the transfer gaps in long form, and the distinctive words side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from unidetox.analysis.textstats import STATS_COLUMNS
from unidetox.report.tables import COLUMNS, seed_summary

# (domain, metric) -> column of the toxicity columns: TP and EMT, in- and out-of-distribution
TOXICITY_COLUMNS = COLUMNS[:4]
# text statistic -> its row name on the page
STAT_LABELS = {
    "n_texts": "texts",
    "empty_share": "share of empty texts",
    "words_mean": "words per text, mean",
    "words_median": "words per text, median",
    "tokens_mean": "tokens per text, mean",
    "tokens_median": "tokens per text, median",
    "distinct_words": "distinct words",
    "vocab_ttr": "vocabulary TTR",
}
COUNT_STATS = {"n_texts", "distinct_words"}  # shown as whole numbers, the others with 3 decimals


def seed_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of tidy evaluation rows, indexed by (method, domain, metric)."""
    return seed_summary(rows).set_index(["method", "domain", "metric"])


def mean_std_table(
    stats: pd.DataFrame, models: Mapping[str, str], columns: Sequence = TOXICITY_COLUMNS, digits: int = 3
) -> pd.DataFrame:
    """One row per model (`models`: method -> row name), one "mean ± std" text column per `columns` entry.

    `stats`: :func:`seed_stats`; `columns`: ``((domain, metric), column name)`` pairs.
    """

    def cell(m: str, d: str, k: str) -> str:
        return f"{stats.loc[(m, d, k), 'mean']:.{digits}f} ± {stats.loc[(m, d, k), 'std']:.{digits}f}"

    return pd.DataFrame(
        {col: [cell(m, d, k) for m in models] for (d, k), col in columns},
        index=pd.Index(list(models.values()), name="model"),
    )


def text_stats_table(stats: pd.DataFrame) -> pd.DataFrame:
    """A :func:`unidetox.analysis.textstats.stats_table` turned on its side: one column per text set, one row per
    statistic (readable names, STAT_LABELS), values as text (counts whole, shares and means to 3 decimals)."""
    keys = STATS_COLUMNS[1:]
    return pd.DataFrame(
        {
            row.set: [f"{row[k]:.0f}" if k in COUNT_STATS else f"{row[k]:.3f}" for k in keys]
            for _, row in stats.iterrows()
        },
        index=[STAT_LABELS.get(k, k) for k in keys],
    )


def transfer_gaps(transfer: pd.DataFrame) -> pd.DataFrame:
    """A :func:`unidetox.report.tables.transfer_table` in long form for a bar chart: columns target, method,
    gap ("TP (in) gap" or "EMT (in) gap"), value, and row ("<target>: <method>")."""
    long = transfer.melt(id_vars=["target", "method"], value_vars=["TP (in) gap", "EMT (in) gap"], var_name="gap")
    long["row"] = long.target + ": " + long.method
    return long


def words_side_by_side(words: pd.DataFrame) -> pd.DataFrame:
    """Distinctive words (columns set, rank, word, z) as one column per set, in the sets' order: "word (z)" by rank.

    Cells of a set with fewer words than the others are empty strings.
    """
    cells = words.assign(cell=lambda d: d["word"] + " (" + d["z"].round(1).astype(str) + ")")
    return cells.pivot(index="rank", columns="set", values="cell")[list(dict.fromkeys(cells["set"]))].fillna("")


__all__ = [
    "COUNT_STATS",
    "STAT_LABELS",
    "TOXICITY_COLUMNS",
    "mean_std_table",
    "seed_stats",
    "text_stats_table",
    "transfer_gaps",
    "words_side_by_side",
]
