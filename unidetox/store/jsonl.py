"""JSON Lines files of the run store: append-only streams that survive a crash, and whole files written atomically.

A stream declares the :class:`Schema` of its records once (beside the code that writes it); what is read back is
checked against it. On resume (:class:`JsonlWriter`) the stream is kept up to its first damaged line (not UTF-8,
not JSON, or a record of the wrong shape), which one line reports, and the work after it is done again; a finished
file read with a schema (:func:`read_jsonl`) raises :class:`StoreError` naming the line instead.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
>>> write_jsonl(p, [{"b": 1, "a": "x"}]); read_jsonl(p)
[{'a': 'x', 'b': 1}]
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unidetox.store.run_store import DISK_FIX, StoreError, write_text


class JsonlWriter:
    """Append-only JSONL stream that survives a crash: on open, a torn last line is cut off.

    Each `append` writes whole lines and fsyncs, so after a SIGKILL the file holds a prefix of
    complete records (plus at most one partial line, removed on the next open). With a `schema`, a damaged line
    (changed on disk since) and everything after it are removed on open too, saying so in one line.
    """

    def __init__(self, path: str | Path, schema: Schema | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_jsonl(self.path, repair=True, schema=schema)

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {e.strerror or e}. {DISK_FIX}") from None
        self.records.extend(records)

    def complete_units(self, unit, expected: dict) -> set:
        """Units of work whose records are all in the stream; the records of any other unit are dropped.

        `unit` maps a record to its unit key; `expected` maps a unit key to its number of records. A unit whose
        write was cut short (a kill inside a multi-record append, a full disk) is removed atomically, so the
        caller redoes it whole. Returns the keys of the complete units.
        """
        counts = Counter(unit(r) for r in self.records)
        done = {key for key, n in counts.items() if n == expected.get(key)}
        kept = [r for r in self.records if unit(r) in done]
        if len(kept) < len(self.records):
            write_text(self.path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in kept))
            self.records = kept
        return done


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """`records` as one JSON object per line (UTF-8, sorted keys), atomically."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records))


def read_jsonl(path: str | Path, repair: bool = False, schema: Schema | None = None) -> list[dict]:
    """Complete records of a JSONL file; with `repair`, truncate a torn trailing line in place.

    With `schema`, every record is checked: a damaged line (not UTF-8, not JSON, or not a record of `schema`) raises
    :class:`StoreError` naming it, or with `repair` is cut off with the lines after it (one line says so).
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if repair and end < len(raw):
        with open(path, "r+b") as f:
            f.truncate(end)
    if schema is None:
        return [json.loads(line) for line in raw[:end].decode("utf-8").splitlines() if line.strip()]
    records: list[dict] = []
    for n, line in enumerate(raw[:end].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        rec, problem = _parse(line, schema)
        if problem is None:
            records.append(rec)
            continue
        where = f"{path}, line {n}: {problem}"
        if not repair:
            raise StoreError(f"{where}. Fix: delete the stage's DONE and rerun the same command (the stage is "
                             "recomputed), or run `unidetox verify` to list every damaged stage")  # fmt: skip
        print(f"{where}: the stream is kept up to line {n - 1} ({len(records)} records) and the rest recomputed",
              flush=True)  # fmt: skip
        write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records))
        break
    return records


# ----------------------------------------------------------------------------- record schemas


def finite(v) -> bool:
    """`v` is a JSON number (not a boolean) and finite."""
    return type(v) in (int, float) and math.isfinite(v)


#: checks of a field's value: (what it must be, test)
INT = ("an integer >= 0", lambda v: type(v) is int and v >= 0)
TEXT = ("a text", lambda v: isinstance(v, str))
NUMBER = ("a finite number", finite)
PROBABILITY = ("a number in [0, 1]", lambda v: finite(v) and 0 <= v <= 1)
ID = ("a text or an integer", lambda v: isinstance(v, str) or type(v) is int)


@dataclass(frozen=True)
class Schema:
    """The fields every record of a stream has, each with its check, and fields it may have (checked when present).

    >>> Schema("text", {"index": INT, "text": TEXT}).problem({"index": 0, "text": 1.5})
    "field 'text' is a number (1.5), not a text"
    """

    what: str
    fields: dict[str, tuple[str, Callable]]
    optional: dict[str, tuple[str, Callable]] = field(default_factory=dict)

    def problem(self, rec) -> str | None:
        """Why `rec` is not a record of this schema (one phrase), or None."""
        if not isinstance(rec, dict):
            return f"a JSON {type(rec).__name__}, not a {self.what} record"
        missing = [k for k in self.fields if k not in rec]
        if missing:
            return f"a {self.what} record without {', '.join(repr(k) for k in missing)}"
        for name, (want, ok) in (*self.fields.items(), *self.optional.items()):
            if name in rec and not ok(rec[name]):
                return f"field {name!r} is {_describe(rec[name])}, not {want}"
        return None


def _describe(v) -> str:
    """A value as the message shows it: its kind and (the start of) its JSON."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a text", list: "a list", dict: "an object"}
    return "null" if v is None else f"{kinds.get(type(v), 'a ' + type(v).__name__)} ({json.dumps(v)[:40]})"


def _parse(line: bytes, schema: Schema) -> tuple[dict | None, str | None]:
    """(record, None) for a good line of `schema`, else (None, what is wrong with it)."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 (byte {e.start}: {e.reason})"
    except json.JSONDecodeError as e:
        return None, f"not JSON ({e.msg} at column {e.colno})"
    problem = schema.problem(rec)
    return (rec, None) if problem is None else (None, problem)
