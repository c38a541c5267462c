"""SHA-256 of what a stage read: the local data files (provenance) and lists of texts (stage keys)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from unidetox.config import DataConfig
from unidetox.data.files import DataError, resolve_data_dir
from unidetox.store.run_store import sha256_file

# Files each data set reads from the local directory (globs relative to it), for `data_files`.
LOCAL_FILES: dict[str, tuple[str, ...]] = {
    "dghs": ("dghs/dghs_v0.2.3_*.csv",),
    "toxigen": ("toxigen/annotated_*.csv",),
    "mmlu": ("mmlu/dev/*.csv", "mmlu/test/*.csv"),
    "political_compass": ("political_compass/statements.json",),
    "wikitext2": ("wikitext2/valid.txt", "wikitext2/test.txt"),
}


def data_files(cfg: DataConfig, which: Sequence[str] = ()) -> dict[str, str]:
    """Relative path -> sha256 of each local data file the loaders read (of the data sets in `which`,
    default all: dghs, toxigen, mmlu, political_compass, wikitext2). Empty for ``source == "hub"``, except the
    Political Compass, which is always local."""
    kinds = tuple(which) or tuple(LOCAL_FILES)
    unknown = [k for k in kinds if k not in LOCAL_FILES]
    if unknown:
        raise DataError(f"unknown data set(s) {unknown}; choose from {', '.join(LOCAL_FILES)}")
    if cfg.source == "hub":
        kinds = tuple(k for k in kinds if k == "political_compass")
        if not kinds:
            return {}
    root = resolve_data_dir(cfg)
    paths = sorted({p for k in kinds for pattern in LOCAL_FILES[k] for p in root.glob(pattern) if p.is_file()})
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in paths}


def text_fingerprint(texts: Sequence[str]) -> str:
    """sha256 (hex) of a sequence of texts; each text is length-prefixed, so ["ab"] and ["a", "b"] differ."""
    if isinstance(texts, str):
        raise TypeError("text_fingerprint expects a sequence of texts, not a single string")
    h = hashlib.sha256()
    for t in texts:
        b = str(t).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


__all__ = ["LOCAL_FILES", "data_files", "text_fingerprint"]
