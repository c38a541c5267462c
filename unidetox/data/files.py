"""Where raw data tables come from: the local data directory (checked CSV reading) or one split on the Hub.

The data directory is ``data.dir``, else ``$UNIDETOX_DATA_DIR``, else ``<repo>/../shared/data``. Every
failure is a :class:`DataError` naming the file or id, what was expected, and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from unidetox.config import DataConfig
from unidetox.errors import UnidetoxError

REPO_ROOT = Path(__file__).resolve().parents[2]  # <repo>/unidetox/data/files.py -> <repo>
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"  # <repo>/../shared/data
DATA_DIR_ENV = "UNIDETOX_DATA_DIR"


class DataError(UnidetoxError, RuntimeError):
    """A data set that cannot be loaded; the message names the file or id, what was expected, and the fix."""


def data_dir_choice(cfg: DataConfig) -> tuple[Path, str]:
    """The local data directory that `cfg` names, and how it was named; not checked (see :func:`resolve_data_dir`)."""
    if cfg.dir:
        path, how = Path(cfg.dir), "data.dir"
    elif os.environ.get(DATA_DIR_ENV):
        path, how = Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}"
    else:
        path, how = DEFAULT_DATA_DIR, "the default <repo>/../shared/data"
    return path.expanduser(), how


def resolve_data_dir(cfg: DataConfig) -> Path:
    """The local data directory: ``cfg.dir``, else ``$UNIDETOX_DATA_DIR``, else ``<repo>/../shared/data``."""
    path, how = data_dir_choice(cfg)
    if not path.is_dir():
        raise DataError(
            f"data directory {path} (from {how}) {_not_a_dir(path)}. Fix: set data.dir (--set data.dir=PATH) or "
            f"${DATA_DIR_ENV} to the folder holding dghs/, toxigen/, mmlu/ and political_compass/, "
            "or use data.source=hub with network access."
        )
    return path


def _not_a_dir(path: Path) -> str:
    """What `path`, which is not a directory, is instead: for the sentence 'data directory X ...'."""
    if path.is_file():
        return "is a file, not a directory"
    if path.exists():
        return "is not a directory"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"does not exist ({parent} is a file)"
    return "does not exist"


def missing_file(path: Path, what: str) -> DataError:
    """The error for a data file that is not there: `what` it should hold, and where the data come from."""
    return DataError(
        f"missing data file {path}: expected {what}. Fix: point data.dir or ${DATA_DIR_ENV} at a complete copy "
        "of the data (its layout is in the data README: dghs/, toxigen/, mmlu/, political_compass/), "
        "or use data.source=hub with network access."
    )


def read_csv_checked(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Read a CSV as strings (no NA guessing: 'None' stays a string) and check it has `columns`."""
    if not path.is_file():
        raise missing_file(path, what)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot read {path} ({what}): {type(e).__name__}: {e}. Fix: restore the file.") from None
    require_columns(frame, columns, str(path))
    return frame


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise DataError naming the `columns` that `frame` (read from `where`) lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where} lacks the column(s) {', '.join(missing)} (expected {', '.join(columns)}; "
            f"found {', '.join(map(str, frame.columns)) or 'none'})"
        )


def numeric_column(series: pd.Series, name: str, where: str) -> pd.Series:
    """`series` as numbers; DataError naming column `name` of `where` when a value is not one."""
    try:
        return pd.to_numeric(series, errors="raise")
    except (ValueError, TypeError) as e:
        raise DataError(f"{where}: column {name!r} must be numeric ({e})") from None


def hub_frame(repo: str, name: str | None, split: str) -> pd.DataFrame:
    """One split of a Hub data set as a DataFrame (ClassLabel columns keep their integer values).

    No token is passed: ``datasets`` reads ``HF_TOKEN`` from the environment.
    """
    import datasets

    try:
        ds = datasets.load_dataset(repo, name, split=split)
    except Exception as e:  # noqa: BLE001 (network, auth, unknown id or split: one message each, see unidetox.models.hub)
        from unidetox.models.hub import explain

        raise DataError(
            f"cannot load {repo} (config {name!r}, split {split!r}) from the Hugging Face Hub ({type(e).__name__}): "
            f"{explain('dataset', repo, e)} Or use data.source=local with data.dir / ${DATA_DIR_ENV} set."
        ) from None
    if isinstance(ds, datasets.DatasetDict):  # a loader that ignored `split`
        if split not in ds:
            raise DataError(f"{repo} (config {name!r}) has no split {split!r}; it has {', '.join(ds)}")
        ds = ds[split]
    return ds.to_pandas()


__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DataError",
    "data_dir_choice",
    "hub_frame",
    "missing_file",
    "numeric_column",
    "read_csv_checked",
    "require_columns",
    "resolve_data_dir",
]
