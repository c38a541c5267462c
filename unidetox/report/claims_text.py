"""The claims table in words: a Markdown table narrow enough for a page, one line per claim, and claim (f) as a
sentence chosen by its verdict (numbers from :func:`unidetox.report.claims.claims_table`'s rows)."""

from __future__ import annotations

import pandas as pd

from unidetox.report.claims import CLAIMS, FAILS, HOLDS, NOT_MEASURED, NOT_RUN
from unidetox.report.tables.cells import ci_cell, ratio_cell, short_name


def claims_markdown(table: pd.DataFrame, first: str, second: str = "", digits: int = 3) -> str:
    """The claims table as a Markdown table narrow enough for a page: claim letter, target, measure, value [interval]
    under the primary and the second scorer, the verdict and the scorers' agreement (the claims' statements and the
    rows' notes are in :func:`claims_summary`)."""
    head = ["claim", "target", "measure", f"primary `{first}`", f"second `{second}`" if second else "second (off)",
            "verdict", "agree"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        two = ci_cell(r["second value"], r["second lo"], r["second hi"], digits)
        agree = r["scorers agree"] if r["scorers agree"] in ("yes",) or str(r["scorers agree"]).startswith("no") else ""
        cells = [f"({r['claim']})", _target(r), r["measure"], _value_cell(r, digits), two, f"**{r['verdict']}**", agree]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _target(r: pd.Series) -> str:
    """A row's target: a model spec shortened to its name, anything else (e.g. the distilled text) as it is."""
    return short_name(r["target"]) if ":" in r["target"] or "/" in r["target"] else r["target"]


def _value_cell(r: pd.Series, digits: int) -> str:
    """A row's primary value [interval]: a ratio cell for a PPL ratio, else a difference with `digits` decimals."""
    if r["measure"].startswith("PPL ratio") and not pd.isna(r["value"]):
        return ratio_cell(r["value"], r["lo"], r["hi"])
    return ci_cell(r["value"], r["lo"], r["hi"], digits)


def _row_text(r: pd.Series, digits: int) -> str:
    note = f" ({r['note']})" if isinstance(r.get("note"), str) and r["note"] else ""
    if pd.isna(r["value"]):
        return f"{r['measure']} on {_target(r)}: **{r['verdict']}**{note}"
    return f"{r['measure']} on {_target(r)} {_value_cell(r, digits)}: **{r['verdict']}**{note}"


def contrast_sentence(table: pd.DataFrame, digits: int = 3) -> str:
    """What claim (f)'s row says, in words chosen by its verdict (numbers from the row)."""
    f = table[table.claim == "f"]
    if f.empty:
        return ""
    r = f.iloc[0]
    v = r["verdict"]
    if v == NOT_RUN:
        return ("Whether the contrast matters is not measured here: the base-samples baseline (fine-tuning on the "
                "base model's plain samples) is not among `study.baselines`.")  # fmt: skip
    if v == NOT_MEASURED:
        return "Whether the contrast matters could not be measured: the contrast's intervals are missing."
    value = ci_cell(r["value"], r["lo"], r["hi"], digits)
    if not pd.isna(r["second value"]):
        value += f" (second scorer: {ci_cell(r['second value'], r['second lo'], r['second hi'], digits)})"
    agree = r["scorers agree"]
    second = (
        ""
        if pd.isna(r["second value"])
        else (" The second scorer agrees." if agree == "yes" else f" The second scorer does not agree ({agree}).")
    )
    if v == HOLDS:
        return (f"The contrast matters: UniDetox lowers in-distribution EMT more than fine-tuning on plain base-model "
                f"samples does (UniDetox minus base samples {value}), under the primary scorer.{second}")  # fmt: skip
    text = (f"At this scale, plain base-model samples detoxify as much as the distilled text: UniDetox minus base "
            f"samples is {value} in in-distribution EMT")  # fmt: skip
    if v == FAILS:
        return text + f", and the plain samples lower it more (the primary scorer's interval is above 0).{second}"
    bound = (f" An advantage of UniDetox larger than {-r['lo']:.{digits}f} is excluded at 95% (the interval's lower "
             "bound).") if r["lo"] < 0 else ""  # fmt: skip
    return (
        f"{text}; the primary scorer's interval contains 0: no measurable advantage of the contrastive score."
        f"{bound}{second}"
    )


def claims_summary(table: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown list, one item per claim: each row's measure, value [interval] and verdict, then (f) in words."""
    lines = []
    for claim, g in table.groupby("claim", sort=True):
        kinds = g["verdict"].value_counts()
        counts = ", ".join(f"{n} {v}" for v, n in kinds.items())
        parts = "; ".join(_row_text(r, digits) for _, r in g.iterrows())
        lines.append(f"- **({claim})** {CLAIMS[claim]} ({len(g)} row{'s' * (len(g) > 1)}: {counts}): {parts}.")
    sentence = contrast_sentence(table, digits)
    return "\n".join(lines) + (f"\n\n{sentence}" if sentence else "")
