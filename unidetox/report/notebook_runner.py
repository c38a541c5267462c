"""Execute one notebook source with papermill into ``<out_dir>/<name>.ipynb``, unless a cached run is up to date.

A notebook source is a jupytext percent-format ``.py`` or MyST ``.md`` file. Its cell tagged ``parameters``
must declare every parameter papermill injects (``profile`` and ``overrides`` for the book). A run is cached
by a key over the source bytes, its format, the parameters, the resolved profile's hash, the kernel and
RUNNER_VERSION, stored beside the output as ``<name>.run.json``. A failing run leaves the partly executed
notebook in ``<name>.failed.ipynb`` and the previous output untouched.

>>> params = {"profile": "tiny", "overrides": []}
>>> execute_notebook("notebooks/transfer.py", "book/_generated", parameters=params).executed  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from unidetox.errors import UnidetoxError
from unidetox.store.run_store import canonical_json, stage_key, write_json, write_text

SOURCE_FORMATS = {".py": "py:percent", ".md": "md:myst"}  # notebook source suffix -> jupytext format
RUN_SUFFIX = ".run.json"  # cache record beside each executed notebook
FAILED_SUFFIX = ".failed.ipynb"  # the partly executed notebook of a failed run, kept for inspection
BUILTIN_PARAMETERS = ("profile", "overrides")  # injected into every notebook by `build_book`
RUNNER_VERSION = 2  # bump to invalidate every cached execution (2: the injected parameters cell is tagged)
INJECTED_TAGS = ("remove-input",)  # the book hides papermill's injected parameters cell, like the declared one
KERNELSPEC_FIX = "run `.venv/bin/python -m ipykernel install --sys-prefix --name python3` (done by `make`)"


class BookError(UnidetoxError, RuntimeError):
    """The book cannot be built as asked; the message says what is wrong and how to fix it."""


class NotebookError(BookError):
    """A notebook raised an error while papermill executed it.

    Attributes: ``source`` (the notebook source file), ``cell_source`` (the failing cell's code, '' if
    unknown), ``ename``/``evalue`` (the exception's name and message) and ``failed_path`` (the notebook as
    executed up to the error, or None).
    """

    def __init__(
        self,
        message: str,
        *,
        source: Path,
        cell_source: str = "",
        ename: str = "",
        evalue: str = "",
        failed_path: Path | None = None,
    ):
        super().__init__(message)
        self.source = source
        self.cell_source = cell_source
        self.ename = ename
        self.evalue = evalue
        self.failed_path = failed_path


@dataclass(frozen=True)
class NotebookRun:
    """One notebook of a build: where it came from, where its executed copy is, whether it ran now."""

    source: Path
    output: Path
    executed: bool  # False: the cached output was up to date
    seconds: float  # execution time (of the cached run, when not executed now)
    key: str


# ----------------------------------------------------------------------------- parameters


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["name=value", ...]`` -> ``{name: YAML-parsed value}`` (the ``-p`` options of ``unidetox book``)."""
    params: dict[str, Any] = {}
    for text in items:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise BookError(f"notebook parameter {text!r} must look like name=value, e.g. -p n_rows=10")
        try:
            params[name] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise BookError(f"notebook parameter {text!r}: cannot parse the value ({e})") from None
    return params


def profile_hash(profile: str, overrides: Iterable[str] = ()) -> str:
    """Hash (16 hex digits) of the resolved profile, so that a changed setting re-executes the notebooks."""
    from unidetox.config import to_dict
    from unidetox.config.loader import load_profile

    return stage_key(to_dict(load_profile(profile, list(overrides))))


def read_notebook(source: str | Path):
    """Read a jupytext percent ``.py`` or MyST ``.md`` source into an nbformat notebook (kernel python3)."""
    import jupytext

    source = Path(source)
    fmt = _source_format(source)
    try:
        nb = jupytext.read(source, fmt=fmt)
    except Exception as e:  # jupytext raises many kinds of parse errors
        raise BookError(f"{source}: jupytext cannot read it as {fmt}: {e}") from e
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:  # papermill expects every cell to have a tags list
        cell.metadata.setdefault("tags", [])
    return nb


def declared_parameters(nb, source: str | Path = "notebook") -> list[str] | None:
    """Names assigned at top level in the notebook's first cell tagged ``parameters`` (None: no such cell)."""
    import ast

    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return None
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as e:
        raise BookError(f"{source}: the `parameters` cell is not valid Python: {e}") from None
    names: list[str] = []
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store) and name.id not in names:
                    names.append(name.id)
    return names


def check_parameters(source: Path, nb, parameters: Mapping[str, Any]) -> None:
    """Raise BookError if `parameters` names something the notebook's ``parameters`` cell does not declare."""
    declared = declared_parameters(nb, source)
    if declared is None:
        raise BookError(
            f"{source}: no cell tagged `parameters`; start the notebook with one that declares "
            f'{", ".join(BUILTIN_PARAMETERS)} (jupytext: `# %% tags=["parameters"]`)'
        )
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        fix = "; ".join(f"add `{n} = ...` to that cell" for n in unknown if n in BUILTIN_PARAMETERS)
        raise BookError(
            f"{source}: unknown notebook parameter(s) {names}; its `parameters` cell declares "
            f"{', '.join(declared) or 'nothing'}" + (f" ({fix})" if fix else "")
        )


def check_kernel(kernel_name: str = "python3") -> None:
    """Raise BookError unless `kernel_name` starts this interpreter (so notebooks see the installed packages)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise BookError(f"no Jupyter kernel named {kernel_name!r}: {KERNELSPEC_FIX}") from None
    exe = spec.argv[0] if spec.argv else ""
    # jupyter_client replaces these names by sys.executable when it starts the kernel
    if exe in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
        return
    if Path(exe).absolute().parent != Path(sys.executable).absolute().parent:
        raise BookError(
            f"Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {exe}, not this environment's "
            f"interpreter {sys.executable}: the notebooks would not see the installed packages; {KERNELSPEC_FIX}"
        )


# ----------------------------------------------------------------------------- execution


def _run_key(source_bytes: bytes, fmt: str, parameters: Mapping[str, Any], config_hash: str, kernel: str) -> str:
    payload = {
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "format": fmt,
        "parameters": dict(parameters),
        "config_hash": config_hash,
        "kernel": kernel,
        "runner": RUNNER_VERSION,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _source_format(source: Path) -> str:
    fmt = SOURCE_FORMATS.get(source.suffix)
    if fmt is None:
        raise BookError(f"{source}: notebook sources must end in {' or '.join(SOURCE_FORMATS)}")
    return fmt


def _tag_injected_parameters(nb) -> None:
    """Add INJECTED_TAGS to the cell papermill injected (tagged ``injected-parameters``), in place."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:
            tags.extend(t for t in INJECTED_TAGS if t not in tags)


def _papermill(
    nb, scratch: Path, *, parameters: Mapping[str, Any], kernel_name: str, cwd: Path, timeout: float | None
) -> None:
    """Execute `nb` into the `scratch` file; a failing cell raises papermill's PapermillExecutionError."""
    import papermill

    papermill.execute_notebook(
        nb,
        str(scratch),
        parameters=parameters,
        kernel_name=kernel_name,
        language="python",
        cwd=str(cwd),
        progress_bar=False,
        log_output=False,
        execution_timeout=timeout,
    )


def _execution_error(e: BaseException, source: Path, output: Path, failed: Path) -> NotebookError:
    """The NotebookError for a papermill run of `source` that raised `e` (`failed`: the partial notebook)."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(e, PapermillExecutionError):
        return NotebookError(
            f"notebook {source} could not be executed: {type(e).__name__}: {e}",
            source=source,
            ename=type(e).__name__,
            evalue=str(e),
        )
    cell = textwrap.indent(e.source.rstrip() or "(empty)", "    ")
    return NotebookError(
        f"notebook {source} failed in cell In [{e.exec_count}]:\n{cell}\n{e.ename}: {e.evalue}\n"
        f"The notebook as executed up to the error is in {failed}; "
        + (f"the previous output {output} is unchanged." if output.exists() else f"{output} was not written."),
        source=source,
        cell_source=e.source,
        ename=e.ename,
        evalue=e.evalue,
        failed_path=failed,
    )


def _run_in_scratch(nb, source: Path, out_dir: Path, **options: Any) -> Path:
    """Execute `nb` into a scratch notebook in `out_dir` and return it; on error raise NotebookError.

    `options`: the keyword arguments of :func:`_papermill` (parameters, kernel_name, cwd, timeout). The scratch file (``.<name>.*.tmp.ipynb``,
    an ``.ipynb`` name as papermill expects) is the caller's to remove; a failed run is moved to
    ``<name>.failed.ipynb`` instead.
    """
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{source.stem}.*.tmp.ipynb"):  # left by a runner that was killed
        stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{source.stem}.", suffix=".tmp.ipynb", dir=out_dir)
    os.close(fd)
    scratch = Path(name)
    failed = out_dir / f"{source.stem}{FAILED_SUFFIX}"
    try:
        _papermill(nb, scratch, **options)
    except BaseException as e:
        if isinstance(e, PapermillExecutionError):
            os.replace(scratch, failed)
        else:
            scratch.unlink(missing_ok=True)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
        raise _execution_error(e, source, out_dir / f"{source.stem}.ipynb", failed) from e
    return scratch


def _publish(scratch: Path, output: Path, record_path: Path, record: Mapping[str, Any]) -> None:
    """Tag the injected parameters cell of `scratch`, write it to `output` and then its cache `record`."""
    import nbformat

    nb = nbformat.read(scratch, as_version=4)
    _tag_injected_parameters(nb)
    text = nbformat.writes(nb)
    record_path.unlink(missing_ok=True)  # no record may vouch for an output it did not describe
    write_text(output, text if text.endswith("\n") else text + "\n")
    output.with_name(f"{output.stem}{FAILED_SUFFIX}").unlink(missing_ok=True)
    write_json(record_path, dict(record))


def execute_notebook(
    source: str | Path,
    out_dir: str | Path,
    *,
    parameters: Mapping[str, Any],
    config_hash: str = "",
    cwd: str | Path = ".",
    kernel_name: str = "python3",
    force: bool = False,
    timeout: float | None = None,
) -> NotebookRun:
    """Execute one notebook source with papermill into ``out_dir/<name>.ipynb``, unless cached.

    `parameters` are injected after the ``parameters`` cell; each must be declared there. `config_hash`
    (e.g. `profile_hash`) enters the cache key with the source and the parameters. The output and its
    ``<name>.run.json`` record are replaced only after a successful run. On error, the partly executed
    notebook is left in ``out_dir/<name>.failed.ipynb`` and NotebookError names the failing cell.
    `timeout`: seconds per cell (None: no limit).
    """
    import papermill

    source, out_dir = Path(source), Path(out_dir)
    fmt = _source_format(source)
    try:
        source_bytes = source.read_bytes()
    except OSError as e:
        raise BookError(f"cannot read notebook source {source}: {e.strerror or e}") from None
    parameters = json.loads(canonical_json(dict(parameters)))  # plain JSON values, as papermill injects them
    output, record_path = out_dir / f"{source.stem}.ipynb", out_dir / f"{source.stem}{RUN_SUFFIX}"
    key = _run_key(source_bytes, fmt, parameters, config_hash, kernel_name)
    record = _read_record(record_path)
    if not force and record is not None and record.get("key") == key and output.is_file():
        return NotebookRun(source, output, executed=False, seconds=float(record.get("seconds", 0.0)), key=key)

    nb = read_notebook(source)
    check_parameters(source, nb, parameters)
    check_kernel(kernel_name)
    start = time.monotonic()
    scratch = _run_in_scratch(
        nb, source, out_dir, parameters=parameters, kernel_name=kernel_name, cwd=Path(cwd), timeout=timeout
    )
    seconds = time.monotonic() - start
    record = {
        "key": key,
        "source": str(source),
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "parameters": parameters,
        "config_hash": config_hash,
        "kernel": kernel_name,
        "seconds": round(seconds, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "papermill": papermill.__version__,
    }
    try:
        _publish(scratch, output, record_path, record)
    finally:
        scratch.unlink(missing_ok=True)
    return NotebookRun(source, output, executed=True, seconds=seconds, key=key)


__all__ = [
    "BUILTIN_PARAMETERS",
    "FAILED_SUFFIX",
    "RUN_SUFFIX",
    "SOURCE_FORMATS",
    "BookError",
    "NotebookError",
    "NotebookRun",
    "check_kernel",
    "check_parameters",
    "declared_parameters",
    "execute_notebook",
    "parse_params",
    "profile_hash",
    "read_notebook",
]
