"""What produced a result: software versions, the machine, stage timings, data checksums, commands.

Everything here reads the current process, the file system or the run store and returns plain
dicts or DataFrames for the book's reproducibility page. Nothing secret is ever returned: environment
variables are reported from an allow-list only, and those whose *name* looks like a credential
(``HF_TOKEN``, ``*_API_KEY``, ...) are reported as set or not set, never by value.

>>> sorted(package_versions(("numpy",)))
['numpy', 'python']
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from unidetox.config import ConfigError, parse_overrides
from unidetox.errors import UnidetoxError
from unidetox.store import read_jsonl, sha256_file

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


def software_table(versions: Mapping[str, str], git: Mapping[str, Any] | None) -> pd.DataFrame:
    """Two columns, component and version: the packages, then the unidetox commit (or why there is none)."""
    rows = [{"component": k, "version": v} for k, v in versions.items()]
    if git is None:
        commit = "unknown (not a git checkout, or git missing)"
    else:
        commit = git["commit"] + (" + uncommitted changes" if git.get("dirty") else "")
    rows.append({"component": "unidetox commit", "version": commit})
    return pd.DataFrame(rows, columns=["component", "version"])


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


def sha256sum_text(checksums: pd.DataFrame) -> str:
    """A :func:`file_checksums` table in ``sha256sum`` format (``<hex>  <file>`` per line), for ``sha256sum -c``."""
    return "".join(f"{h}  {f}\n" for h, f in zip(checksums["sha256"], checksums["file"]))


def datasets_used(profile) -> tuple[str, ...]:
    """The local data sets the book reads for `profile`: DGHS, ToxiGen, MMLU (if scored), Political Compass."""
    kinds = ["dghs", "toxigen"]
    if profile.study.mmlu:
        kinds.append("mmlu")
    kinds.append("political_compass")
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


def stage_time_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """Per stage type: runs, total and longest seconds, largest peak RSS (MiB) and CUDA memory (MiB) if recorded.

    `summaries`: one row per finished stage run with columns stage and, where recorded, seconds,
    peak_rss_mb, peak_cuda_mb (:func:`unidetox.pipeline.stage_summaries`). Stages without timings get nan.
    """
    if "stage" not in summaries.columns:
        if len(summaries):
            raise ProvenanceError("stage summaries need a 'stage' column (see unidetox.pipeline.stage_summaries)")
        return pd.DataFrame(columns=["stage", "runs", "seconds_total", "seconds_max", "peak_rss_mb_max"])
    df = summaries.copy()
    for col in ("seconds", "peak_rss_mb"):
        if col not in df.columns:
            df[col] = float("nan")
    agg = {"runs": ("stage", "size"), "seconds_total": ("seconds", lambda s: s.sum(min_count=1)),
           "seconds_max": ("seconds", "max"), "peak_rss_mb_max": ("peak_rss_mb", "max")}  # fmt: skip
    if "peak_cuda_mb" in df.columns:
        agg["peak_cuda_mb_max"] = ("peak_cuda_mb", "max")
    out = df.groupby("stage", sort=False).agg(**agg).reset_index()
    return out.sort_values(["seconds_total", "stage"], ascending=[False, True], na_position="last", ignore_index=True)


def training_log(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ``log.jsonl`` of :func:`unidetox.method.train.train_causal_lm` as (training records, validation records).

    Training records: step, loss (mean over the logged window), lr, tokens, elapsed, grad_norm. Validation
    records: step, val_loss (and val_tokens). Both sorted by step; empty frames when nothing was logged.
    """
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"no training log at {path}: run the training stage first (e.g. unidetox toxic-model)")
    recs = read_jsonl(path)
    train = pd.DataFrame([r for r in recs if "loss" in r])
    val = pd.DataFrame([r for r in recs if "val_loss" in r])
    train = train.sort_values("step", ignore_index=True) if len(train) else pd.DataFrame(columns=["step", "loss"])
    val = val.sort_values("step", ignore_index=True) if len(val) else pd.DataFrame(columns=["step", "val_loss"])
    return train, val


# ----------------------------------------------------------------------------- commands


def override_list(overrides: Any) -> list[str]:
    """A notebook's ``overrides`` parameter as a list of ``key=value`` strings (see ``config.parse_overrides``)."""
    try:
        return parse_overrides(overrides)
    except ConfigError as e:
        raise ProvenanceError(str(e)) from None


def _set_args(overrides: Sequence[str]) -> str:
    return "".join(f" --set {shlex.quote(o)}" for o in overrides)


def pipeline_command(profile: str, overrides: Sequence[str] = ()) -> str:
    """The shell command that (re)computes every run-store table of `profile`."""
    return f"unidetox pipeline --profile {shlex.quote(profile)}{_set_args(overrides)}"


def book_command(profile: str, overrides: Sequence[str] = ()) -> str:
    """The shell command that executes every notebook and builds the HTML book."""
    return f"unidetox book --profile {shlex.quote(profile)}{_set_args(overrides)}"


def notebook_command(source: str | Path, profile: str, overrides: Sequence[str] = ()) -> str:
    """Shell command that re-executes one notebook source (jupytext percent .py or MyST .md) with papermill.

    Run from the repository root. A ``.py`` source is paired with an ``.ipynb`` twin beside it (kept in sync,
    tested), which papermill runs directly; a ``.md`` source is converted by jupytext first. The list-valued
    ``overrides`` goes through ``-y`` (YAML), because papermill's ``-p`` passes a list as a plain string; the
    output is ``<name>.out.ipynb`` in the current folder.
    """
    source = Path(source)
    name = source.stem
    params = json.dumps({"overrides": list(overrides)})
    run = (f"{shlex.quote(f'{name}.out.ipynb')} -p profile {shlex.quote(profile)} "
           f"-y {shlex.quote(params)}")  # fmt: skip
    if source.suffix == ".py":
        return f"papermill {shlex.quote(source.with_suffix('.ipynb').as_posix())} {run}"
    return (f"jupytext --to ipynb -o {shlex.quote(f'/tmp/{name}.ipynb')} {shlex.quote(source.as_posix())} && "
            f"papermill {shlex.quote(f'/tmp/{name}.ipynb')} {run}")  # fmt: skip


def notebook_title(source: str | Path) -> str:
    """The first Markdown heading of a notebook source, else its file name."""
    source = Path(source)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        return source.stem
    pattern = r"^# #{1,6} +(.+?)\s*$" if source.suffix == ".py" else r"^#{1,6} +(.+?)\s*$"
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1) if match else source.stem


def regeneration_commands(
    profile: str, overrides: Sequence[str], notebooks: Sequence[str | Path], tables: Sequence[str | Path] = ()
) -> pd.DataFrame:
    """What to run to regenerate each output of the book: columns output, where, command.

    `tables`: run-store files written by the pipeline, one row per folder (output: their names); `notebooks`:
    the notebook sources of the book in reading order, one row each. The last row is the whole book.
    """
    folders: dict[str, list[str]] = {}
    for t in tables:
        folders.setdefault(str(Path(t).parent), []).append(Path(t).name)
    pipeline = pipeline_command(profile, overrides)
    rows = [{"output": ", ".join(names), "where": folder, "command": pipeline} for folder, names in folders.items()]
    for nb in notebooks:
        rows.append({"output": f"page: {notebook_title(nb)}", "where": f"book/_generated/{Path(nb).stem}.ipynb",
                     "command": f"{pipeline} && {notebook_command(nb, profile, overrides)}"})  # fmt: skip
    rows.append({"output": "the whole book", "where": "book/_build/html/index.html",
                 "command": f"{pipeline} && {book_command(profile, overrides)}"})  # fmt: skip
    return pd.DataFrame(rows, columns=["output", "where", "command"])


def command_steps(command: str) -> list[str]:
    """Split a shell command at its top-level `` && `` (not inside quotes): ``"a && b '&&'"`` -> ``["a", "b '&&'"]``."""
    steps, start, i, quote = [], 0, 0, ""
    while i < len(command):
        c = command[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1  # the next character is escaped (outside single quotes)
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif command.startswith(" && ", i):
            steps.append(command[start:i])
            start = i = i + 4
            continue
        i += 1
    steps.append(command[start:])
    return steps


def commands_markdown(commands: pd.DataFrame) -> str:
    """Markdown for a :func:`regeneration_commands` table: consecutive rows with the same command share one block.

    A command of several steps is shown one step per line (each line but the last ends in ``&&``).
    """
    parts: list[str] = []
    i = 0
    rows = list(commands.itertuples(index=False))
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1].command == rows[i].command:
            j += 1
        items = [f"- {r.output} (`{r.where}`)" for r in rows[i : j + 1]]
        command = " &&\n  ".join(command_steps(rows[i].command))  # bash continues a line that ends in &&
        parts.append("\n".join(items) + "\n\n" + code_block(command, "bash"))
        i = j + 1
    return "\n".join(parts)


def book_notebooks(root: str | Path = ".") -> list[Path]:
    """Sources (``notebooks/<name>.py|.md``, relative to `root`) of the ``_generated/<name>`` pages that
    ``_toc.yml`` lists, in its order; entries without a source are skipped (``unidetox book`` reports them)."""
    from unidetox.report.book import find_notebooks, toc_files

    root = Path(root)
    if not (root / "_toc.yml").is_file():
        return []
    sources = find_notebooks(root / "notebooks")
    out: list[Path] = []
    for entry in toc_files(root / "_toc.yml"):
        path = Path(entry)
        if path.parent.as_posix() == "_generated" and path.stem in sources:
            rel = sources[path.stem].relative_to(root)
            if rel not in out:
                out.append(rel)
    return out


# ----------------------------------------------------------------------------- configuration


def flatten_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping (e.g. ``config.to_dict(profile)``) -> ``{"a.b.c": leaf}``; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def show_value(value: Any, max_items: int = 6) -> str:
    """A configuration value as short text: lists joined by ', ' (longer than `max_items`: count and first items)."""
    if isinstance(value, (list, tuple)):
        items = [show_value(v) for v in value]
        if len(items) > max_items:
            return f"{len(items)} items: {', '.join(items[:3])}, …"
        return "[" + ", ".join(items) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def profile_differences(
    profile, reference, sections: Sequence[str] = ("data", "toxic", "distill"), name: str = "reference"
) -> pd.DataFrame:
    """Settings of `sections` where `profile` differs from `reference` (two Profile objects).

    Columns: setting (dotted key), the profile's name, `name`; values as :func:`show_value` text.
    """
    from unidetox.config import to_dict

    a, b = flatten_config(to_dict(profile)), flatten_config(to_dict(reference))
    label = profile.name if profile.name != name else f"{profile.name} (this run)"
    rows = [
        {"setting": key, label: show_value(a[key]), name: show_value(b.get(key))}
        for key in a
        if key.split(".", 1)[0] in sections and a[key] != b.get(key)
    ]
    return pd.DataFrame(rows, columns=["setting", label, name])


def code_block(text: str, lang: str = "") -> str:
    """`text` as a Markdown fenced code block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip(chr(10))}\n{fence}\n"


__all__ = [
    "ENV_VARS",
    "PACKAGES",
    "ProvenanceError",
    "book_command",
    "book_notebooks",
    "code_block",
    "command_steps",
    "commands_markdown",
    "cpu_model",
    "data_checksums",
    "datasets_used",
    "environment",
    "file_checksums",
    "flatten_config",
    "git_state",
    "machine_info",
    "notebook_command",
    "notebook_title",
    "override_list",
    "package_versions",
    "pipeline_command",
    "profile_differences",
    "redact",
    "regeneration_commands",
    "sha256sum_text",
    "show_value",
    "software_table",
    "stage_time_table",
    "training_log",
]
