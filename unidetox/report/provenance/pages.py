"""The book's provenance pages as tables and Markdown: software, machine, stage timings, checksums, commands.

The facts come from :mod:`unidetox.report.provenance.facts` (versions, machine, environment, data checksums) and the
run store (stage summaries); this module only shapes them into DataFrames and Markdown for the notebooks.

>>> code_block("x = 1", "python")
'```python\\nx = 1\\n```\\n'
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from unidetox.config import ConfigError
from unidetox.config.loader import parse_overrides
from unidetox.report.book import find_notebooks, toc_files
from unidetox.report.provenance.facts import ProvenanceError

# ----------------------------------------------------------------------------- software and machine


def software_table(versions: Mapping[str, str], git: Mapping[str, Any] | None) -> pd.DataFrame:
    """Two columns, component and version: the packages, then the unidetox commit (or why there is none)."""
    rows = [{"component": k, "version": v} for k, v in versions.items()]
    if git is None:
        commit = "unknown (not a git checkout, or git missing)"
    else:
        commit = git["commit"] + (" + uncommitted changes" if git.get("dirty") else "")
    rows.append({"component": "unidetox commit", "version": commit})
    return pd.DataFrame(rows, columns=["component", "version"])


def machine_table(info: Mapping[str, Any]) -> pd.DataFrame:
    """Two columns, property and value (text): a :func:`unidetox.report.provenance.facts.machine_info` record as a table."""
    memory = f"{info['memory_gib']:g}" if info["memory_gib"] is not None else "unknown"
    rows = {
        "platform": info["platform"],
        "CPU": info["cpu"],
        "CPU cores (usable)": f"{info['cpu_count']} ({info['cpus_usable']})",
        "memory (GiB)": memory,
        "torch threads": str(info.get("torch_threads", "?")),
        "GPUs": ", ".join(info["gpus"]) or "none",
        "CUDA": info.get("cuda", "?"),
    }
    return pd.DataFrame({"property": list(rows), "value": list(rows.values())})


def environment_table(environ: Mapping[str, str]) -> pd.DataFrame:
    """Two columns, variable and value: a :func:`unidetox.report.provenance.facts.environment` record as a table."""
    return pd.DataFrame(list(environ.items()), columns=["variable", "value"])


# ----------------------------------------------------------------------------- data


def sha256sum_text(checksums: pd.DataFrame) -> str:
    """A :func:`file_checksums` table in ``sha256sum`` format (``<hex>  <file>`` per line), for ``sha256sum -c``."""
    return "".join(f"{h}  {f}\n" for h, f in zip(checksums["sha256"], checksums["file"]))


def data_summary(checksums: pd.DataFrame, data_dir: str | Path) -> str:
    """One Markdown sentence: the data directory, then files and MB per data set of a ``data_checksums`` table."""
    sizes = checksums.groupby("data set", sort=False)["bytes"].agg(["size", "sum"])
    per_set = "; ".join(
        f"{name}: {n} file{'s' if n != 1 else ''}, {b / 1e6:.2f} MB" for name, (n, b) in sizes.iterrows()
    )
    return f"Data directory `{data_dir}`; " + per_set + "."


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


# ----------------------------------------------------------------------------- commands


def override_list(overrides: Any) -> list[str]:
    """A notebook's ``overrides`` parameter as a list of ``key=value`` strings (see ``profile_loader.parse_overrides``)."""
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
    "book_command",
    "book_notebooks",
    "code_block",
    "command_steps",
    "commands_markdown",
    "data_summary",
    "environment_table",
    "flatten_config",
    "machine_table",
    "notebook_command",
    "notebook_title",
    "override_list",
    "pipeline_command",
    "profile_differences",
    "regeneration_commands",
    "sha256sum_text",
    "show_value",
    "software_table",
    "stage_time_table",
]
