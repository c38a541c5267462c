"""The 62 Political Compass statements (``id, statement``); always local, there is no Hub id.

>>> cfg = DataConfig(source="local")
>>> len(load_political_compass(cfg))
62
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from unidetox.config import DataConfig
from unidetox.data.files import DataError, missing_file, numeric_column, require_columns, resolve_data_dir


def load_political_compass(cfg: DataConfig) -> pd.DataFrame:
    """The 62 Political Compass statements: columns ``id`` (int), ``statement``. Always local (no Hub id)."""
    path = resolve_data_dir(cfg) / "political_compass" / "statements.json"
    if not path.is_file():
        raise missing_file(path, "the 62 Political Compass statements (JSON list of {statement, response, id})")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}. Fix: restore the file.") from None
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise DataError(f"{path}: expected a JSON list of objects with keys statement and id")
    frame = pd.DataFrame(items)
    require_columns(frame, ("id", "statement"), str(path))
    if frame.empty:
        raise DataError(f"{path}: no statements")
    ids = numeric_column(frame["id"], "id", str(path)).astype(np.int64)
    return pd.DataFrame({"id": ids.to_numpy(), "statement": frame["statement"].astype(str).to_numpy()})


__all__ = ["load_political_compass"]
