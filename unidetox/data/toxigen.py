r"""ToxiGen ``annotated`` rows (train: 8,960; test: 940) with decoded ``text``.

The local CSV stores ``text`` as a Python bytes literal ``b'...'``, decoded here with a parser that accepts
bytes literals only (nothing is evaluated); the Hub's copy keeps the literal's escapes, undone the same way.
"""

from __future__ import annotations

import ast
import codecs
import warnings

import pandas as pd

from unidetox.config import DataConfig
from unidetox.data.files import (
    DataError,
    hub_frame,
    missing_file,
    numeric_column,
    read_csv_checked,
    require_columns,
    resolve_data_dir,
)

TOXIGEN_SPLITS = ("train", "test")
TOXIGEN_COLUMNS = ("text", "target_group", "toxicity_human")  # required; `label` is optional (absent on the Hub)


def decode_bytes_literal(value: str, where: str = "value") -> str:
    r"""``b'caf\xc3\xa9'`` -> ``café``: parse one Python bytes literal (nothing is evaluated), decode UTF-8."""
    s = value.strip() if isinstance(value, str) else ""
    if len(s) < 3 or s[0] != "b" or s[1] not in "'\"" or s[-1] != s[1]:
        raise DataError(f"{where}: expected a Python bytes literal like b'...', got {str(value)[:60]!r}")
    try:
        node = ast.parse(s, mode="eval").body
    except (SyntaxError, ValueError) as e:
        raise DataError(f"{where}: not a valid bytes literal ({e.__class__.__name__}): {s[:60]!r}") from None
    if not (isinstance(node, ast.Constant) and isinstance(node.value, bytes)):
        raise DataError(f"{where}: expected a bytes literal only, got {s[:60]!r}")
    raw = ast.literal_eval(node)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: bytes literal is not valid UTF-8 ({e})") from None


def decode_hub_toxigen_text(value: str) -> str:
    """Text from the Hub's ``annotated`` config -> the same string the local CSV decodes to.

    The Hub loading script strips the ``b'``/``'`` wrapper but leaves the escapes (``\\\\'``, ``\\\\xe2...``)
    in place; undo them the way the bytes literal would. A full literal is decoded strictly; plain text
    without backslashes is returned unchanged.
    """
    s = "" if value is None else str(value)
    if len(s) >= 3 and s[0] == "b" and s[1] in "'\"" and s[-1] == s[1]:
        return decode_bytes_literal(s, "ToxiGen Hub text")
    if "\\" not in s or not s.isascii():
        return s
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "invalid escape sequence" for e.g. \u, which stays as is
            return codecs.escape_decode(s.encode("ascii"))[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return s


def normalise_toxigen(frame: pd.DataFrame, where: str, *, bytes_literals: bool) -> pd.DataFrame:
    """Raw ToxiGen ``annotated`` rows -> the same rows with decoded ``text``, float ``toxicity_human``
    and a string ``label`` (hate|neutral; '' where the source has no label column, as on the Hub)."""
    require_columns(frame, TOXIGEN_COLUMNS, where)
    out = frame.copy()
    if bytes_literals:
        out["text"] = [decode_bytes_literal(v, f"{where}, text of row {i}") for i, v in enumerate(frame["text"])]
    else:
        out["text"] = [decode_hub_toxigen_text(v) for v in frame["text"]]
    out["target_group"] = out["target_group"].fillna("").astype(str)
    out["toxicity_human"] = numeric_column(out["toxicity_human"], "toxicity_human", where).astype(float)
    if "label" in out.columns:
        out["label"] = out["label"].fillna("").astype(str)
    else:
        out["label"] = ""
    return out.reset_index(drop=True)


def load_toxigen(cfg: DataConfig, split: str) -> pd.DataFrame:
    """ToxiGen human-annotated rows of `split` (train: 8,960; test: 940), every column, decoded ``text``.

    Local: ``toxigen/annotated_{split}.csv``; the test split is not in the offline copy, so without that
    file it comes from the Hub (an error when offline).
    """
    if split not in TOXIGEN_SPLITS:
        raise DataError(f"ToxiGen split must be one of {', '.join(TOXIGEN_SPLITS)}, got {split!r}")
    if cfg.source == "local":
        path = resolve_data_dir(cfg) / "toxigen" / f"annotated_{split}.csv"
        if path.is_file():
            raw = read_csv_checked(path, TOXIGEN_COLUMNS, f"the ToxiGen annotated {split} split")
            return normalise_toxigen(raw, str(path), bytes_literals=True)
        if split == "train":
            raise missing_file(path, "the ToxiGen annotated train split (8,960 rows)")
        try:
            raw = hub_frame(cfg.toxigen_hub_id, "annotated", split)
        except DataError as e:
            raise DataError(
                f"the ToxiGen annotated test split is not in the local data ({path} does not exist) and the Hub "
                f"copy could not be loaded (offline?). Fix: use the disjoint held-out prompts "
                f"(--set eval.prompt_split=report), put annotated_test.csv there, or run with network access. "
                f"Hub error: {e}"
            ) from None
    else:
        raw = hub_frame(cfg.toxigen_hub_id, "annotated", split)
    return normalise_toxigen(raw, f"{cfg.toxigen_hub_id} annotated/{split} (Hub)", bytes_literals=False)


__all__ = [
    "TOXIGEN_COLUMNS",
    "TOXIGEN_SPLITS",
    "decode_bytes_literal",
    "decode_hub_toxigen_text",
    "load_toxigen",
    "normalise_toxigen",
]
