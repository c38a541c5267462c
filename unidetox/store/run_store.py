"""The run store: stage keys, stage directories, atomic writes and completion markers.

A stage's outputs live in ``<runs_dir>/<profile>/<stage>/<key>/`` where ``key`` hashes the stage's
resolved configuration and the keys of the stages it reads. ``config.json`` is written first, the
outputs next, and ``DONE`` last: a directory with ``DONE`` is complete and reused; one without it
is resumed from whatever its stage checkpointed. Every file is written to a temporary name in the
same directory and renamed into place, so a reader never sees a partial file; it gets the permissions
the user's umask allows (as ``open`` would give it), not the 0600 of a temporary file.

``DONE`` records the size and SHA-256 of every output file (``"files"``). Before a finished stage is
reused, :meth:`StageDir.damage` compares the sizes (cheap; hashes too on ``unidetox verify``, and
:func:`check_opened` when a later stage opens weights or texts), and
:meth:`StageDir.discard` removes the damaged outputs and the marker so that the stage runs again.

>>> import tempfile
>>> st = StageDir.create(tempfile.mkdtemp(), "tiny", "distill", {"alpha": 0.1})
>>> st.done
False
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unidetox.errors import UnidetoxError

DONE = "DONE"
#: written by ``unidetox clean`` into a finished stage: ``{"removed": [relative folders]}``, outputs deliberately
#: removed (reproducible weights); they are not damage, and the stage retrains when a reader needs them
CLEANED = "CLEANED"
FILES = "files"  # the key of DONE that records each output file's size and sha256
#: files that describe a model folder and may be rewritten after its stage finished (model cards, scores): not
#: recorded in DONE, so scoring a stage's model never makes the stage look damaged
ANNOTATIONS = frozenset({"README.md", "unidetox_card.json", "unidetox_score.json"})


class StoreError(UnidetoxError, RuntimeError):
    """An output directory that cannot be written; the message says which and why."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stage_key(config: Any, inputs: dict[str, str] | None = None) -> str:
    """16 hex digits identifying a stage run: hash of its configuration and its inputs' keys."""
    payload = canonical_json({"config": config, "inputs": dict(sorted((inputs or {}).items()))})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's umask (from /proc where possible: reading it with os.umask briefly changes it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _default_mode(path: Path) -> None:
    """Give a temporary file (0600) or directory (0700), and all a directory holds, the mode ``open``/``mkdir``
    would: 0666/0777 less the umask (libraries write some files, e.g. ``model.safetensors``, as 0600 too)."""
    mask = _umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        with contextlib.suppress(OSError):
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


DISK_FIX = "Fix: free disk space or choose a writable runs_dir (--set runs_dir=/path/with/space)"


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files and folders left in `directory` by atomic writes a crash interrupted.

    Only call this where no other process is writing (a stage that is starting); returns what was removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, on error remove it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create output directory {path.parent}: {e.strerror}. {DISK_FIX}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        _default_mode(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file (UTF-8)."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}. {DISK_FIX}") from None


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _default_mode(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass(frozen=True)
class StageDir:
    """One stage run's directory."""

    path: Path
    stage: str
    key: str
    record: dict | None = field(default=None, compare=False, repr=False)  # what config.json will hold

    @classmethod
    def locate(
        cls, runs_dir: str | Path, profile: str, stage: str, config: Any, inputs: dict[str, str] | None = None
    ) -> StageDir:
        """The directory this configuration maps to, without touching the disk (see :meth:`begin`)."""
        key = stage_key(config, inputs)
        record = {"stage": stage, "key": key, "config": config, "inputs": inputs or {}}
        return cls(path=Path(runs_dir) / profile / stage / key, stage=stage, key=key, record=record)

    @classmethod
    def create(
        cls, runs_dir: str | Path, profile: str, stage: str, config: Any, inputs: dict[str, str] | None = None
    ) -> StageDir:
        """Make (or find) the directory for this configuration and write its config.json."""
        return cls.locate(runs_dir, profile, stage, config, inputs).begin()

    def begin(self, clean: bool = True) -> StageDir:
        """Create the directory and its config.json, once the stage's inputs are known to be good.

        With `clean` (pass it on one process only), temporary files that an interrupted earlier run of this
        stage left behind are removed. A directory created here is removed again when its config.json cannot
        be written (e.g. a full disk).
        """
        if (self.path / "config.json").exists():
            if clean:
                remove_stale_temporaries(self.path)
            return self
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {self.path}: {e.strerror}. {DISK_FIX}") from None
        try:
            write_json(self.path / "config.json", self.record or {"stage": self.stage, "key": self.key})
        except StoreError:
            if created:
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    @property
    def done(self) -> bool:
        return (self.path / DONE).exists()

    def mark_done(self, summary: dict | None = None) -> None:
        """Write the completion marker last; `summary` (timings, counts) goes inside it, with each output file's
        size and sha256 under ``"files"``."""
        write_json(self.path / DONE, {**(summary or {}), FILES: file_records(self.path)})

    @property
    def cleaned(self) -> list[str]:
        """Folders (relative paths) that ``unidetox clean`` removed from this finished stage; [] if none."""
        try:
            return list(read_json(self.path / CLEANED).get("removed", []))
        except (OSError, ValueError, AttributeError):
            return []

    def summary(self) -> dict:
        """What the stage recorded in DONE (timings, counts), without its file records."""
        if not self.done:
            return {}
        return {k: v for k, v in read_json(self.path / DONE).items() if k != FILES}

    def damage(self, hashes: bool = False, under: str = "") -> dict[str, str]:
        """What is wrong with a finished stage's outputs: ``{relative path: what}`` (empty: intact).

        Sizes are always compared with those DONE recorded; with `hashes`, contents too (reads every byte).
        With `under` (a relative path), only that file or the files of that folder are checked.
        A DONE written before file records existed has nothing to compare: it is taken as intact. Files under the
        folders :attr:`cleaned` lists were removed on purpose and are not checked.
        """
        try:
            recorded = read_json(self.path / DONE).get(FILES, {})
        except (OSError, ValueError, AttributeError):
            return {DONE: "unreadable"}
        problems, removed = {}, tuple(f"{c}/" for c in self.cleaned)
        for rel, rec in sorted(recorded.items()):
            if (under and rel != under and not rel.startswith(under + "/")) or rel.startswith(removed):
                continue
            p = self.path / rel
            if not p.is_file():
                problems[rel] = "missing"
            elif (size := p.stat().st_size) != rec["size"]:
                problems[rel] = f"{size} bytes, {rec['size']} recorded"
            elif hashes and sha256_file(p) != rec["sha256"]:
                problems[rel] = "contents changed (sha256 differs)"
        return problems

    def discard(self, damaged: list[str] | dict[str, str]) -> None:
        """Make a damaged stage run again: remove DONE, then every damaged output (relative paths); damage to a
        trained model (``final/``, ``steps/<n>/``, ``log.jsonl``) removes ``final/`` too, so that training reruns."""
        (self.path / DONE).unlink(missing_ok=True)
        _fsync_dir(self.path)
        trained = (self.path / "final").is_dir()
        for rel in damaged:
            parts = Path(rel).parts
            if rel == DONE or not parts:
                continue
            if parts[0] == "steps" and len(parts) > 2:
                target = self.path / "steps" / parts[1]
            elif parts[0] == "final":
                target = self.path / "final"
            else:
                target = self.path / rel
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
            if trained and parts[0] in ("final", "steps", "log.jsonl"):
                shutil.rmtree(self.path / "final", ignore_errors=True)

    def __truediv__(self, name: str) -> Path:
        return self.path / name


def describe_damage(problems: dict[str, str], most: int = 3) -> str:
    """``"texts.jsonl missing; final/model.safetensors 10 bytes, 20 recorded"`` (the first `most`, then a count)."""
    items = [f"{rel} {what}" for rel, what in problems.items()]
    more = f"; and {len(items) - most} more" if len(items) > most else ""
    return "; ".join(items[:most]) + more


def file_records(root: str | Path) -> dict[str, dict]:
    """``{relative path: {"size": bytes, "sha256": hex}}`` of every file under `root` but DONE, hidden names and
    :data:`ANNOTATIONS`."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (p.is_file() and rel.as_posix() not in (DONE, CLEANED) and p.name not in ANNOTATIONS
                and not any(part.startswith(".") for part in rel.parts)):  # fmt: skip
            out[rel.as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def check_opened(path: str | Path) -> None:
    """Before a later stage reads `path` (a stage's file or folder, e.g. ``<stage>/final``): compare the SHA-256 of
    every file under it with what its stage's DONE recorded, and raise :class:`StoreError` on a mismatch.

    A path outside any finished stage (a user's own folder, a packaged model) is not checked. Cost: reading the
    bytes once (about 0.4 s for a 540 MB safetensors file from the page cache).
    """
    path = Path(path)
    if not path.exists():  # a Hub id, or a file whose absence the caller reports
        return
    path = path.resolve()
    stage = next((d for d in (path, *path.parents[:2]) if (d / DONE).is_file()), None)
    if stage is None:
        return
    rel = path.relative_to(stage).as_posix()
    damaged = StageDir(path=stage, stage=stage.parent.name, key=stage.name).damage(
        hashes=True, under="" if rel == "." else rel
    )
    damaged.pop(DONE, None)  # an unreadable DONE has no record to check against
    if damaged:
        raise StoreError(
            f"{stage} is damaged ({describe_damage(damaged)}). Fix: delete {stage / DONE} and rerun the same command "
            "(the stage is recomputed), or run `unidetox verify` to list every damaged stage"
        )


def verify_store(
    root: str | Path, stages: Iterable[str] = ("*",), progress: bool = False
) -> dict[Path, dict[str, str]]:
    """Check every finished run under `root` (``<runs_dir>/<profile>``) of the stages named `stages` (default: any
    folder) by size and SHA-256.

    Returns ``{stage directory: damage}`` for each directory with DONE (empty damage: intact); reads every byte.
    """
    from tqdm.auto import tqdm

    dirs = sorted(d.parent for name in stages for d in Path(root).glob(f"{name}/*/DONE"))
    out = {}
    for d in tqdm(dirs, desc="verify", unit="stage", disable=not progress):
        out[d] = StageDir(path=d, stage=d.parent.name, key=d.name).damage(hashes=True)
    return out
