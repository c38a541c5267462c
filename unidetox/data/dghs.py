"""DGHS v0.2.3, the toxic-model corpus: rows ``text, label, target, split``; locally only ``dev`` and ``test``."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from unidetox.config import DGHS_TARGETS, DataConfig
from unidetox.data.files import DataError, hub_frame, read_csv_checked, require_columns, resolve_data_dir

DGHS_SPLITS = ("train", "dev", "test")
DGHS_LOCAL_SPLITS = ("dev", "test")  # the offline copy has no train split
DGHS_LABELS = ("hate", "nothate")
DGHS_COLUMNS = ("text", "label", "target", "split")


def normalise_dghs(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Raw DGHS rows (local CSV or Hub) -> columns ``text, label, target, split`` (strings)."""
    require_columns(frame, DGHS_COLUMNS, where)
    out = pd.DataFrame({c: frame[c].fillna("").astype(str).to_numpy() for c in DGHS_COLUMNS})
    bad = sorted(set(out["label"]) - set(DGHS_LABELS))
    if bad:
        raise DataError(f"{where}: DGHS label values must be hate or nothate, found {bad[:5]}")
    return out


def _read_local(cfg: DataConfig, splits: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """The normalised local rows of `splits` (in that order) and the folder they come from."""
    absent = [s for s in splits if s not in DGHS_LOCAL_SPLITS]
    if absent:
        raise DataError(
            f"DGHS split(s) {', '.join(absent)} are not in the local data: the offline copy has only "
            f"{' and '.join(DGHS_LOCAL_SPLITS)} (dghs/dghs_v0.2.3_{{dev,test}}.csv). Fix: train on the local "
            "splits (--set toxic.train_splits=[dev] --set toxic.val_splits=[test]) or use data.source=hub."
        )
    root = resolve_data_dir(cfg)
    parts = []
    for s in splits:
        path = root / "dghs" / f"dghs_v0.2.3_{s}.csv"
        parts.append(normalise_dghs(read_csv_checked(path, DGHS_COLUMNS, f"the DGHS {s} split"), str(path)))
    return pd.concat(parts, ignore_index=True), f"{root / 'dghs'}"


def load_dghs(
    cfg: DataConfig,
    splits: Sequence[str],
    *,
    label: str | None = "hate",
    targets: Sequence[str] = DGHS_TARGETS,
) -> pd.DataFrame:
    """DGHS v0.2.3 rows of `splits` with `label` (None: both) and `target` in `targets` (empty: all).

    Returns columns ``text, label, target, split``, in file order (splits in the order asked).
    The official code keeps ``label == "hate"`` and exact matches of the 34 target codes.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits or any(s not in DGHS_SPLITS for s in splits):
        raise DataError(f"DGHS splits must be a non-empty list of {', '.join(DGHS_SPLITS)}, got {splits!r}")
    if label is not None and label not in DGHS_LABELS:
        raise DataError(f"DGHS label must be 'hate', 'nothate' or None, got {label!r}")
    if cfg.source == "hub":
        frame = normalise_dghs(hub_frame(cfg.dghs_hub_id, None, "train"), cfg.dghs_hub_id)
        where = f"{cfg.dghs_hub_id} (Hub)"
    else:
        frame, where = _read_local(cfg, splits)
    keep = frame["split"].isin(splits)
    if label is not None:
        keep &= frame["label"] == label
    if targets:
        keep &= frame["target"].isin(tuple(targets))
    out = frame[keep].reset_index(drop=True)
    if out.empty:
        raise DataError(
            f"no DGHS rows in {where} for splits={list(splits)}, label={label!r} and {len(targets)} target codes "
            "(targets=() keeps every target). Fix: check the splits and target codes."
        )
    return out


__all__ = ["DGHS_COLUMNS", "DGHS_LABELS", "DGHS_LOCAL_SPLITS", "DGHS_SPLITS", "load_dghs", "normalise_dghs"]
