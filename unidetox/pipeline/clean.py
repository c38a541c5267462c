"""``unidetox clean``: free the run store of model weights that are reproducible and no longer needed.

Almost all of a run store is weights: the folders of the stages the registry declares with reproducible weights
(:data:`unidetox.store.registry.WEIGHT_STAGES`): ``detox/<key>/final/`` and ``steps/<n>/`` (one fine-tuned model per
learning rate, method and target) and the ``final/`` of ``toxic-model`` and ``expert-model``. Once the stages that read a
model (evaluate, mmlu, distill, samples, ...) are finished, its weights are read again only by the book's
notebooks (the study's chosen configuration: explore, political bias) or by a new evaluation. Clean

- removes (``--what weights``) each weights folder of a finished fine-tuning stage that some finished stage has
  read and no unfinished stage reads (its resume would need it), except those the book loads: ``steps/<chosen>`` of
  the study's chosen (lr, steps) for UniDetox and base samples, and the toxic model's ``final/``. The folders
  removed are listed in the stage's ``CLEANED`` file (written before anything is removed); the stage stays
  finished and its outputs' records in DONE stay, so a later ``pipeline``/``book`` reuses it and everything that
  read it, and retrains it (identically: same seed) only when a reader asks for the removed weights
  (:func:`unidetox.store.registry.restore`);
- links (``--what dedup``) each file of a kept ``steps/<n>/`` that is byte-identical to ``final/`` (the last step)
  to that file, so the bytes are stored once (new runs do this as they train, :mod:`unidetox.store.links`);
- ``--what all`` (the default): both.

Stages fine-tuned on a user's text file (``unidetox detox --texts``) are the user's deliverable: never removed.
Run it under the run store's lock (the CLI holds it), after a pipeline has finished.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from unidetox.config import Profile
from unidetox.processes import log
from unidetox.store.links import link_identical
from unidetox.store.registry import DETOX, STUDY, TOXIC_MODEL, WEIGHT_STAGES
from unidetox.store.run_store import ANNOTATIONS, CLEANED, DONE, FILES, StageDir, read_json, write_json

WHAT = ("all", "weights", "dedup")
BOOK_METHODS = ("unidetox", "base-samples")  # fine-tuned models the book's notebooks load at the chosen config


@dataclass(frozen=True)
class Item:
    """One thing clean does: remove (or link) the folder `folder` of stage `stage`, freeing `size` bytes."""

    stage: Path
    folder: str
    action: str  # "remove" | "link"
    size: int


def human(n: float) -> str:
    """``1.1 GB`` style size (powers of 1000, like ``du -h --si``)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def _configs(root: Path) -> dict[Path, str]:
    """Every stage directory under `root` (``<runs_dir>/<profile>``) -> the text of its config.json."""
    return {p.parent: p.read_text(encoding="utf-8") for p in sorted(root.glob("*/*/config.json"))}


def _chosen(root: Path) -> list[dict]:
    """``selection.json`` of every finished study stage: the chosen (lr, steps) and the selection target."""
    return [read_json(d / "selection.json") for d in sorted(root.glob(f"{STUDY.name}/*")) if (d / DONE).is_file()
            and (d / "selection.json").is_file()]  # fmt: skip


def book_folders(stage: Path, config: dict, studies: list[dict]) -> set[str]:
    """Weights folders of `stage` (config.json's ``config``) that the book's notebooks load."""
    if stage.parent.name == TOXIC_MODEL.name:
        return {"final"} if studies else set()
    if stage.parent.name != DETOX.name or config.get("method") not in BOOK_METHODS:
        return set()
    out = set()
    lr = config.get("train", {}).get("learning_rate")
    for sel in studies:
        chosen = sel["chosen"]
        wanted = config["method"] == "unidetox" or config.get("target") == sel.get("select_target")
        if wanted and chosen["lr"] == lr and chosen["steps"] in config.get("steps", []):
            out.add(f"steps/{chosen['steps']}")
    return out


def _weight_folders(stage: Path) -> list[str]:
    steps = sorted((p for p in (stage / "steps").glob("*") if p.is_dir()), key=lambda p: (len(p.name), p.name))
    return [f for f in ["final", *(f"steps/{p.name}" for p in steps)] if (stage / f).is_dir()]


def removable(root: Path) -> list[tuple[Path, str]]:
    """(stage, folder) pairs that ``--what weights`` removes (see the module docstring)."""
    configs, studies = _configs(root), _chosen(root)
    finished = {d: text for d, text in configs.items() if (d / DONE).is_file()}
    unfinished = [text for d, text in configs.items() if d not in finished]
    out = []
    for stage in sorted(d for d in finished if d.parent.name in WEIGHT_STAGES):
        config = json.loads(finished[stage]).get("config", {})
        if config.get("method") == "texts":
            continue
        key = stage.name
        if any(key in text for text in unfinished):
            continue
        if not any(key in text for d, text in finished.items() if d != stage):
            continue
        keep = book_folders(stage, config, studies)
        out += [(stage, f) for f in _weight_folders(stage) if f not in keep]
    return out


def _freed(paths: list[Path]) -> dict[Path, int]:
    """Bytes each folder of `paths` frees when all of them are removed (a file hard-linked from outside frees
    nothing; one shared between two removed folders counts once, for the first)."""
    files = {p: [f for f in p.rglob("*") if f.is_file() and not f.is_symlink()] for p in paths}
    links = Counter((s.st_dev, s.st_ino) for fs in files.values() for s in map(Path.stat, fs))
    seen, out = set(), {}
    for p, fs in files.items():
        out[p] = 0
        for f in fs:
            s = f.stat()
            inode = (s.st_dev, s.st_ino)
            if inode not in seen and links[inode] >= s.st_nlink:
                out[p] += s.st_size
            seen.add(inode)
    return out


def duplicates(root: Path, skip: set[tuple[Path, str]]) -> list[Item]:
    """``steps/<n>`` folders of finished weight stages whose files DONE records as identical to ``final/``'s."""
    out = []
    for done in sorted(root.glob("*/*/DONE")):
        stage = done.parent
        if stage.parent.name not in WEIGHT_STAGES or (stage, "final") in skip:
            continue
        records = read_json(done).get(FILES, {})
        for folder in _weight_folders(stage)[1:]:
            if (stage, folder) in skip:
                continue
            size = 0
            for rel, rec in records.items():
                name = rel.rsplit("/", 1)[-1]
                mine, final = stage / rel, stage / "final" / name
                if (rel.startswith(folder + "/") and name not in ANNOTATIONS and records.get(f"final/{name}") == rec
                        and mine.is_file() and final.is_file() and not mine.samefile(final)):  # fmt: skip
                    size += rec["size"]
            if size:
                out.append(Item(stage, folder, "link", size))
    return out


def plan_clean(root: str | Path, what: str = "all") -> list[Item]:
    """What :func:`clean_store` would do in the run store `root` (``<runs_dir>/<profile>``)."""
    if what not in WHAT:
        raise ValueError(f"unknown --what {what!r}; choose among {list(WHAT)}")
    root = Path(root)
    gone = removable(root) if what in ("all", "weights") else []
    sizes = _freed([stage / folder for stage, folder in gone])
    items = [Item(stage, folder, "remove", sizes[stage / folder]) for stage, folder in gone]
    if what in ("all", "dedup"):
        items += duplicates(root, set(gone))
    return items


def _apply(item: Item) -> int:
    """Do `item`; bytes freed."""
    import shutil

    if item.action == "link":
        return link_identical(item.stage / "final", item.stage / item.folder, skip=ANNOTATIONS)
    st = StageDir(path=item.stage, stage=item.stage.parent.name, key=item.stage.name)
    if item.folder not in st.cleaned:  # recorded first: a kill mid-removal leaves a finished stage, not a damaged one
        write_json(item.stage / CLEANED, {"removed": sorted({*st.cleaned, item.folder})})
    shutil.rmtree(item.stage / item.folder)
    return item.size


def clean_store(profile: Profile, *, what: str = "all", dry_run: bool = False, quiet: bool = False) -> int:
    """Remove/link what :func:`plan_clean` lists in the profile's run store, printing each path, its size and the
    total; with `dry_run` only print. Returns the bytes freed (or that would be). Call under the store's lock."""
    root = Path(profile.runs_dir) / profile.name
    items = plan_clean(root, what)
    verb = {"remove": "would remove" if dry_run else "removed", "link": "would link" if dry_run else "linked"}
    total = 0
    for item in tqdm(items, desc="clean", unit="folder", disable=quiet or dry_run or not items):
        freed = item.size if dry_run else _apply(item)
        total += freed
        extra = " to final (identical files)" if item.action == "link" else ""
        log(f"{verb[item.action]} {item.stage / item.folder}{extra}: {human(freed)}")
    log(f"clean: {'would free' if dry_run else 'freed'} {human(total)} in {root} ({len(items)} folders)")
    return total
