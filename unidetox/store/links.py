"""One copy of identical model files: a step snapshot equal to the final model shares its bytes (hard links).

A fine-tuning stage saves ``steps/<n>/`` for every requested step and ``final/`` at the end; when n is the last
step the two hold byte-identical weights (GBs each). :func:`link_identical` makes each file of one folder that is
byte-identical to the same-named file of another a hard link to it, so the store holds one copy; names, sizes
and contents (hence the SHA-256 that DONE records) stay as they were. Where the file system cannot link, the copy
is kept. Annotations (model cards, scores) are rewritten atomically (a new file), which never touches the other
folder's file.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
from pathlib import Path


def same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` are one file (hard links to one inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def linkable(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Names of the files directly in `dst` that `src` holds with the same size, not yet linked (contents are
    compared by :func:`link_identical`)."""
    if not (src.is_dir() and dst.is_dir()):
        return []
    out = []
    for p in sorted(dst.iterdir()):
        q = src / p.name
        if p.name in skip or not p.is_file() or p.is_symlink() or not q.is_file() or same_file(p, q):
            continue
        if p.stat().st_size == q.stat().st_size:
            out.append(p.name)
    return out


def link_identical(src: str | Path, dst: str | Path, skip: frozenset[str] = frozenset()) -> int:
    """Replace each file of `dst` that is byte-identical to the same-named file of `src` by a hard link to it.

    Returns the bytes freed. Each replacement is atomic (link to a temporary name, then rename over the file), so
    a reader sees either the old copy or the link; on a file system without hard links nothing changes.
    """
    src, dst = Path(src), Path(dst)
    freed = 0
    for name in linkable(src, dst, skip):
        a, b = src / name, dst / name
        if not filecmp.cmp(a, b, shallow=False):
            continue
        tmp = dst / f".{name}.link.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(a, tmp)
            os.replace(tmp, b)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            continue
        freed += a.stat().st_size
    return freed
