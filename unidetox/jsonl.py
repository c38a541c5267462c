"""JSON Lines files of the run store: append-only streams that survive a crash, and whole files written atomically.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
>>> write_jsonl(p, [{"b": 1, "a": "x"}]); read_jsonl(p)
[{'a': 'x', 'b': 1}]
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from unidetox.store import DISK_FIX, StoreError, write_text


class JsonlWriter:
    """Append-only JSONL stream that survives a crash: on open, a torn last line is cut off.

    Each `append` writes whole lines and fsyncs, so after a SIGKILL the file holds a prefix of
    complete records (plus at most one partial line, removed on the next open).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_jsonl(self.path, repair=True)

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


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict]:
    """Complete records of a JSONL file; with `repair`, truncate a torn trailing line in place."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if repair and end < len(raw):
        with open(path, "r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in raw[:end].decode("utf-8").splitlines() if line.strip()]
