"""Facts about what produced a result: software versions, git state, the machine, the environment, data checksums.

Everything here reads the current process, the file system or the run store and returns plain dicts or
DataFrames (:mod:`unidetox.report.provenance.pages` turns them into the book's tables). Nothing secret is ever
returned: environment variables are reported from an allow-list only, and those whose *name* looks like a
credential (``HF_TOKEN``, ``*_API_KEY``, ...) are reported as set or not set, never by value.

>>> sorted(package_versions(("numpy",)))
['numpy', 'python']
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from unidetox.errors import UnidetoxError
from unidetox.store.jsonl import read_jsonl
from unidetox.store.run_store import sha256_file

# distribution names, as pip knows them
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "papermill", "jupyter-book", "numpy", "pandas")
# environment variables that change what a run does; only these are ever reported
ENV_VARS = (
    "UNIDETOX_DATA_DIR", "UNIDETOX_PROFILE", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "HF_TOKEN",
)  # fmt: skip
# a credential-like name has one of these as a whole '_'/'-'/'.'-separated part: HF_TOKEN, hf_token, MY_API_KEY,
# AWS_SECRET_ACCESS_KEY; not max_new_tokens, TOKENIZERS_PARALLELISM or tokens_per_second
SECRET_NAME = re.compile(
    r"(?:^|[_.\-])(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH)(?:$|[_.\-])",
    re.IGNORECASE,
)
HIDDEN = "set (value hidden)"
NOT_SET = "not set"
NOT_INSTALLED = "not installed"


class ProvenanceError(UnidetoxError, RuntimeError):
    """Provenance that cannot be gathered as asked; the message says what is missing and the fix."""


# ----------------------------------------------------------------------------- software


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """``{"python": "3.11.x", <distribution>: version or "not installed", ...}``."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out


def git_state(repo: str | Path) -> dict[str, Any] | None:
    """``{"commit": 40-hex HEAD, "dirty": uncommitted changes to tracked files?}`` of a git checkout, else None.

    None when git is not installed, `repo` is not inside a work tree, or it has no commit yet.
    """

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD")
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)} if status is not None else {"commit": commit, "dirty": None}


# ----------------------------------------------------------------------------- machine


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else ``platform.processor()``, else 'unknown'."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """The machine: OS, CPU model and counts, memory (GiB), torch's threads, and GPUs (name, GiB) if any."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = os.cpu_count()
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        mem_gib = None
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gib": mem_gib,
    }
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        info["gpus"] = []
        return info
    info["torch_threads"] = torch.get_num_threads()
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            gpus.append(f"{prop.name} ({prop.total_memory / 2**30:.1f} GiB)")
    info["gpus"] = gpus
    info["cuda"] = torch.version.cuda or "none (CPU build)"
    return info


def environment(names: Iterable[str] = ENV_VARS, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Value of each allow-listed variable, 'not set', or, for credential-like names, only whether it is set."""
    environ = os.environ if environ is None else environ
    out = {}
    for name in names:
        if name not in environ:
            out[name] = NOT_SET
        elif SECRET_NAME.search(name):
            out[name] = HIDDEN
        else:
            out[name] = environ[name]
    return out


def redact(record: Any, environ: Mapping[str, str] | None = None) -> Any:
    """`record` (nested dicts/lists/strings) with credential-like keys hidden and secret values cut out.

    A value under a key matching SECRET_NAME becomes 'set (value hidden)'; any string containing the
    value of a credential-like environment variable (at least 8 characters) has it replaced by '***'.
    """
    environ = os.environ if environ is None else environ
    secrets = sorted((v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= 8), key=len, reverse=True)

    def walk(x: Any, key: str = "") -> Any:
        if key and SECRET_NAME.search(key) and x not in (None, "", NOT_SET, HIDDEN):
            return HIDDEN
        if isinstance(x, Mapping):
            return {k: walk(v, str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, str):
            for s in secrets:
                x = x.replace(s, "***")
        return x

    return walk(record)


# ----------------------------------------------------------------------------- data


def file_checksums(paths: Iterable[str | Path], root: str | Path | None = None) -> pd.DataFrame:
    """One row per file: file (relative to `root` when given), bytes, sha256 (hex); sorted by file."""
    rows = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise ProvenanceError(f"cannot checksum {p}: no such file")
        name = p.relative_to(root).as_posix() if root is not None else str(p)
        rows.append({"file": name, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return pd.DataFrame(rows, columns=["file", "bytes", "sha256"]).sort_values("file", ignore_index=True)


def datasets_used(profile) -> tuple[str, ...]:
    """The local data sets the book reads for `profile`: DGHS, ToxiGen, MMLU (if scored), Political Compass,
    WikiText-2 (if the scorers' validity is on)."""
    kinds = ["dghs", "toxigen"]
    if profile.study.mmlu:
        kinds.append("mmlu")
    kinds.append("political_compass")
    if profile.validity.enabled:
        kinds.append("wikitext2")
    return tuple(kinds)


def _mmlu_file_used(name: str, subjects: Sequence[str]) -> bool:
    """`name` like 'mmlu/test/anatomy_test.csv': is its subject among `subjects` (all when empty)?"""
    if not name.startswith("mmlu/") or not subjects:
        return True
    stem = Path(name).stem  # <subject>_<split>
    return stem.rsplit("_", 1)[0] in subjects


def data_checksums(profile) -> pd.DataFrame:
    """Checksums of the local data files `profile` reads: data set, file (relative to the data dir), bytes, sha256.

    MMLU files are limited to ``eval.mmlu_subjects`` when that is set. With ``data.source: hub`` only the
    Political Compass statements are local (the other data sets are named by their Hub ids instead).
    """
    from unidetox.data.checksums import data_files
    from unidetox.data.files import resolve_data_dir

    files = data_files(profile.data, datasets_used(profile))
    root = resolve_data_dir(profile.data)
    rows = [
        {"data set": name.split("/", 1)[0], "file": name, "bytes": (root / name).stat().st_size, "sha256": digest}
        for name, digest in files.items()
        if _mmlu_file_used(name, profile.eval.mmlu_subjects)
    ]
    return pd.DataFrame(rows, columns=["data set", "file", "bytes", "sha256"]).sort_values("file", ignore_index=True)


# ----------------------------------------------------------------------------- run records


def training_log(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ``log.jsonl`` of :func:`unidetox.method.train.train_causal_lm` as (training records, validation records).

    Training records: step, loss (mean over the logged window), lr, tokens, elapsed, grad_norm. Validation
    records: step, val_loss (and val_tokens). Both sorted by step; empty frames when nothing was logged.
    """
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"no training log at {path}: run the training stage first (e.g. unidetox toxic-model)")
    from unidetox.method.train import TRAIN_LOG

    recs = read_jsonl(path, schema=TRAIN_LOG)
    train = pd.DataFrame([r for r in recs if "loss" in r])
    val = pd.DataFrame([r for r in recs if "val_loss" in r])
    train = train.sort_values("step", ignore_index=True) if len(train) else pd.DataFrame(columns=["step", "loss"])
    val = val.sort_values("step", ignore_index=True) if len(val) else pd.DataFrame(columns=["step", "val_loss"])
    return train, val


__all__ = [
    "ENV_VARS",
    "PACKAGES",
    "ProvenanceError",
    "cpu_model",
    "data_checksums",
    "datasets_used",
    "environment",
    "file_checksums",
    "git_state",
    "machine_info",
    "package_versions",
    "redact",
    "training_log",
]
