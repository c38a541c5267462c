"""The cells of the book's tables and of the claims' sentences: a model's display name, a signed value with its
interval, a ratio with its interval (pure formatting; every table module and :mod:`unidetox.report.claims` read
them from here).

>>> ci_cell(-0.1234, -0.2, -0.05)
'-0.123 [-0.200, -0.050]'
>>> ratio_cell(1.111, 0.85, 1.43)
'1.11 [0.85, 1.43]'
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def short_name(spec: str) -> str:
    """A display name for a model spec: 'packaged:smollm2-135m' -> 'smollm2-135m', 'org/name' -> 'name'."""
    return spec.split(":")[-1].rstrip("/").split("/")[-1]


def ratio_cell(v: float, lo: float = np.nan, hi: float = np.nan) -> str:
    """``'1.11 [0.85, 1.43]'``: an unsigned ratio and its interval, 2 decimals ('' without a value, no brackets
    without an interval)."""
    if pd.isna(v):
        return ""
    return f"{v:.2f}" if pd.isna(lo) else f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def ci_cell(v: float, lo: float = np.nan, hi: float = np.nan, digits: int = 3) -> str:
    """``'-0.123 [-0.200, -0.050]'``: a signed value and its interval ('' without a value, no brackets without an
    interval)."""
    if pd.isna(v):
        return ""
    text = f"{v:+.{digits}f}"
    return text if pd.isna(lo) else f"{text} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def ci_text(table: pd.DataFrame, col: str, digits: int = 3) -> pd.Series:
    """``'-0.123 [-0.2, -0.05]'`` strings of a difference column and its ``lo``/``hi`` bounds ('' when absent)."""
    if col not in table:
        return pd.Series([""] * len(table), index=table.index)

    def fmt(r):
        if pd.isna(r[col]):
            return ""
        return f"{r[col]:+.{digits}f} [{r[f'{col} lo']:+.{digits}f}, {r[f'{col} hi']:+.{digits}f}]"

    return table.apply(fmt, axis=1)
