"""Read a set of training texts from a file or a saved ``datasets`` dataset, with its content hash.

Sources (chosen by what the path is):

* ``*.csv``: a UTF-8 CSV with a text column; by default ``Text`` (the paper's released distilled text,
  ``unidetox_released/*.csv``) or else ``text``.
* ``*.jsonl``: one JSON object per line with a ``text`` field.
* ``*.parquet``: a Parquet file with a ``text`` column (what ``unidetox export-texts`` writes).
* a directory written by ``datasets``' ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict`` with a ``train``
  split or a single split), with a ``text`` column by default.

Empty and whitespace-only texts are dropped (counted in ``n_dropped``); a source with no text left is an
error, and so is a text holding a lone surrogate (:func:`lone_surrogate`: JSON can escape one, no tokenizer reads
it), which is refused with its row rather than replaced. ``sha256`` hashes the bytes of the file (of every file of a dataset directory, with their relative
names), so a stage keyed by it sees any change of the source, and nothing else.

>>> src = read_texts(DEFAULT_RELEASED)  # doctest: +SKIP
>>> len(src.texts), src.column
(640, 'Text')
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from unidetox.config.compared_methods import BASELINES
from unidetox.data.files import DataError, data_dir_choice, resolve_data_dir
from unidetox.store.run_store import sha256_file

#: the paper's released distilled text, relative to the data directory
RELEASED_CSV = "unidetox_released/generated_texts_alpha=0.1_beta=inf_checkpoint-15126.csv"
CSV_COLUMNS = ("Text", "text")  # tried in this order when no column is named
TEXT_COLUMN = "text"


class TextSourceError(DataError):
    """A text source that cannot be used for training; the message names the file and the fix."""


@dataclass(frozen=True)
class TextSource:
    """Texts read from one source.

    path: the file or directory as given; kind: csv | jsonl | dataset; column: the field read; texts: the
    non-empty texts in file order; n_dropped: empty texts skipped; sha256: hex digest of the source's bytes.
    """

    path: str
    kind: str
    column: str
    texts: tuple[str, ...] = field(repr=False)
    n_dropped: int
    sha256: str

    @property
    def key(self) -> str:
        """Identity for stage keys: the content hash and the column read."""
        return f"{self.kind}:{self.column}:{self.sha256}"

    def describe(self) -> dict:
        """JSON-able description (no texts) for configs, cards and summaries."""
        return {"path": self.path, "name": Path(self.path).name, "kind": self.kind, "column": self.column,
                "n_texts": len(self.texts), "n_dropped": self.n_dropped, "sha256": self.sha256}  # fmt: skip


def released_csv(data_cfg) -> Path:
    """Path of the paper's released distilled text in the local data directory."""
    return resolve_data_dir(data_cfg) / RELEASED_CSV


def read_released(data_cfg) -> TextSource:
    """The paper's released distilled text (all its texts), the training set of the study's method ``released``.

    A missing file is one :class:`TextSourceError` that names it and the fixes, whether the data directory lacks
    ``unidetox_released/`` or does not exist at all (the Hub data of the ``paper`` profile do not hold this file).
    """
    path, how = data_dir_choice(data_cfg)
    if path.exists() and not path.is_dir():
        resolve_data_dir(data_cfg)  # says what the data directory is instead
    path = path / RELEASED_CSV
    if not path.is_file():
        others = ",".join(b for b in BASELINES if b != "released")
        raise TextSourceError(f"missing {path}: the authors' released distilled text, which the method 'released' of "
                              f"study.baselines fine-tunes on (data directory from {how}). Fix: copy unidetox_released/ "
                              "(github EminLU/UniDetox, distilled_text/) into the data directory, point data.dir or "
                              "$UNIDETOX_DATA_DIR at a data directory that has it, or drop released from "
                              f"study.baselines (e.g. --set study.baselines=[{others}])")  # fmt: skip
    return read_texts(path)


def dir_sha256(path: Path) -> str:
    """sha256 over (relative name, sha256 of content) of every file under `path`, in name order."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (U+D800..U+DFFF: what ``json.loads('"\\ud800"')`` gives, and what
    cannot be written as UTF-8), or None when `text` is all characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def _clean(values, where: str) -> tuple[tuple[str, ...], int]:
    texts, dropped = [], 0
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):  # None / NaN: an empty cell
            dropped += 1
            continue
        if not isinstance(v, str):
            kind = {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "an object"}
            raise TextSourceError(f"{where}: row {i + 1} holds {kind.get(type(v), 'a ' + type(v).__name__)} "
                                  f"({str(v)[:40]}), not a text. Fix: give one string per row in the text column")  # fmt: skip
        if (at := lone_surrogate(v)) is not None:
            raise TextSourceError(f"{where}: row {i + 1} holds a lone surrogate (U+{ord(v[at]):04X}, character "
                                  f"{at + 1}), half of a UTF-16 pair and not a character: no tokenizer can read it. Fix: "
                                  "remove it, or give the whole pair (a JSON escape such as \\ud83d\\ude00 is one "
                                  "character)")  # fmt: skip
        if v.strip():
            texts.append(v)
        else:
            dropped += 1
    if not texts:
        raise TextSourceError(f"{where} holds no non-empty text ({dropped} empty rows). Fix: give a source with at "
                              "least one text")  # fmt: skip
    return tuple(texts), dropped


def _pick_column(columns, column: str | None, candidates: tuple[str, ...], where: str) -> str:
    names = [str(c) for c in columns]
    wanted = (column,) if column else candidates
    for c in wanted:
        if c in names:
            return c
    found = ", ".join(names) or "none"
    hint = "--text-column NAME" if not column else "another --text-column"
    raise TextSourceError(f"{where} has no column {' or '.join(repr(c) for c in wanted)} (found: {found}). "
                          f"Fix: name the text column with {hint}")  # fmt: skip


def _utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextSourceError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}). Fix: re-save it as UTF-8, "
                              "e.g. iconv -f latin1 -t utf-8 in > out") from None  # fmt: skip
    except OSError as e:
        raise TextSourceError(f"cannot read {path}: {e.strerror or e}") from None


def _read_csv(path: Path, column: str | None) -> tuple[str, tuple[str, ...], int]:
    import io

    import pandas as pd

    raw = _utf8(path)
    if not raw.strip():
        raise TextSourceError(f"{path} is empty. Fix: give a CSV with a header and at least one text")
    try:
        frame = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TextSourceError(f"cannot read {path} as CSV: {' '.join(str(e).split())}. Fix: give a valid CSV") from None
    col = _pick_column(frame.columns, column, CSV_COLUMNS, str(path))
    return col, *_clean(frame[col].tolist(), str(path))


def _read_jsonl(path: Path, column: str | None) -> tuple[str, tuple[str, ...], int]:
    col = column or TEXT_COLUMN
    values = []
    for n, line in enumerate(_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise TextSourceError(f"{path}, line {n}: not JSON ({e.msg}). Fix: one JSON object per line") from None
        if not isinstance(rec, dict):
            raise TextSourceError(f"{path}, line {n}: a JSON {type(rec).__name__}, not an object with a {col!r} field")
        if col not in rec:
            raise TextSourceError(f"{path}, line {n} has no field {col!r} (found: {', '.join(rec) or 'none'}). Fix: "
                                  "name the text field with --text-column NAME")  # fmt: skip
        values.append(rec[col])
    if not values:
        raise TextSourceError(f'{path} is empty. Fix: give a JSONL file with one {{"{col}": ...}} object per line')
    return col, *_clean(values, str(path))


def _read_parquet(path: Path, column: str | None) -> tuple[str, tuple[str, ...], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise TextSourceError(f"cannot read {path} as Parquet: {' '.join(str(e).split())}") from None
    col = _pick_column(table.column_names, column, (TEXT_COLUMN, "Text"), str(path))
    if table.num_rows == 0:
        raise TextSourceError(f"{path} has no rows. Fix: give a file with at least one text")
    return col, *_clean(table.column(col).to_pylist(), str(path))


def _read_dataset(path: Path, column: str | None) -> tuple[str, tuple[str, ...], int]:
    from datasets import Dataset, DatasetDict, load_from_disk

    where = f"dataset {path}"
    try:
        ds = load_from_disk(str(path))
    except IndexError:  # datasets 5.x cannot open a dataset saved with no rows (no Arrow shard)
        raise TextSourceError(f"{where} has no rows. Fix: give a dataset with at least one text") from None
    except (FileNotFoundError, ValueError, OSError) as e:
        raise TextSourceError(f"{path} is a directory but not a dataset saved by datasets' save_to_disk "
                              f"({' '.join(str(e).split())}). Fix: give a .csv, a .jsonl, or such a directory") from None  # fmt: skip
    if isinstance(ds, DatasetDict):
        splits = list(ds)
        if "train" in ds:
            ds = ds["train"]
        elif len(splits) == 1:
            ds = ds[splits[0]]
        else:
            raise TextSourceError(f"{path} holds the splits {splits} and none is 'train'. Fix: save the split to "
                                  "train on alone (ds[split].save_to_disk(dir))")  # fmt: skip
    assert isinstance(ds, Dataset)
    if len(ds) == 0:
        raise TextSourceError(f"{where} has no rows. Fix: give a dataset with at least one text")
    col = _pick_column(ds.column_names, column, (TEXT_COLUMN, "Text"), where)
    return col, *_clean(ds[col], where)


def read_texts(path: str | Path, column: str | None = None) -> TextSource:
    """The texts of a CSV, JSONL or saved-dataset source (see the module docstring), with its content hash."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TextSourceError(f"text source {p} does not exist. Fix: give the path of a .csv, a .jsonl, or a dataset "
                              "directory written by datasets' save_to_disk")  # fmt: skip
    if p.is_dir():
        kind, (col, texts, dropped), digest = "dataset", _read_dataset(p, column), dir_sha256(p)
    elif p.suffix.lower() == ".csv":
        kind, (col, texts, dropped), digest = "csv", _read_csv(p, column), sha256_file(p)
    elif p.suffix.lower() == ".parquet":
        kind, (col, texts, dropped), digest = "parquet", _read_parquet(p, column), sha256_file(p)
    elif p.suffix.lower() in (".jsonl", ".ndjson"):
        kind, (col, texts, dropped), digest = "jsonl", _read_jsonl(p, column), sha256_file(p)
    else:
        raise TextSourceError(f"{p}: unknown text source type {p.suffix or '(no suffix)'!r}. Fix: give a .csv, a "
                              ".jsonl, a .parquet, or a dataset directory written by datasets' save_to_disk")  # fmt: skip
    return TextSource(str(p), kind, col, texts, dropped, digest)


__all__ = [
    "RELEASED_CSV",
    "TextSource",
    "TextSourceError",
    "dir_sha256",
    "lone_surrogate",
    "read_released",
    "read_texts",
    "released_csv",
]
