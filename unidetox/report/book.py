"""Build the companion book: notebooks (jupytext) -> executed notebooks (papermill) -> HTML (Jupyter Book 1.x).

The notebooks of the book's *Results* part live in ``notebooks/`` as jupytext percent-format ``.py`` files
or MyST ``.md`` files. ``_toc.yml`` lists them as ``_generated/<name>`` (relative to ``book/``): that is
where the executed copies go, and the order in which they run. Each notebook's cell tagged ``parameters``
must declare ``profile`` and ``overrides``; papermill replaces them with the run's profile name and its
``--set key=value`` strings (plus any ``-p name=value`` parameters).

A notebook whose source, parameters and resolved profile are unchanged since its last successful run is
not executed again (the cache key is stored beside the output as ``<name>.run.json``). A failing notebook
stops the run before the HTML is built, so the previously built book stays as it was; the HTML is built
into a temporary folder and swapped in only when ``jupyter-book build book/ -W -n --keep-going`` succeeds.

>>> build_book("tiny")  # doctest: +SKIP
PosixPath('book/_build/html/index.html')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from unidetox.errors import UnidetoxError
from unidetox.store import canonical_json, stage_key, write_json

SOURCE_FORMATS = {".py": "py:percent", ".md": "md:myst"}  # notebook source suffix -> jupytext format
RUN_SUFFIX = ".run.json"  # cache record beside each executed notebook
FAILED_SUFFIX = ".failed.ipynb"  # the partly executed notebook of a failed run, kept for inspection
BUILTIN_PARAMETERS = ("profile", "overrides")  # injected into every notebook by `build_book`
RUNNER_VERSION = 2  # bump to invalidate every cached execution (2: the injected parameters cell is tagged)
INJECTED_TAGS = ("remove-input",)  # the book hides papermill's injected parameters cell, like the declared one
JUPYTER_BOOK_ARGS = ("-W", "-n", "--keep-going")  # warnings are errors, nitpicky references
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


# ----------------------------------------------------------------------------- table of contents


def toc_files(toc: str | Path) -> list[str]:
    """Every ``root``/``file`` entry of a Jupyter Book ``_toc.yml``, in reading order."""
    toc = Path(toc)
    try:
        tree = yaml.safe_load(toc.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BookError(f"no table of contents at {toc}: run from the repository root, which holds _toc.yml") from None
    except yaml.YAMLError as e:
        raise BookError(f"{toc} is not valid YAML: {e}") from None
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree)
    return files


def find_notebooks(notebooks_dir: str | Path) -> dict[str, Path]:
    """Notebook sources in `notebooks_dir` by name: ``*.py`` and ``*.md``, except ``_*``, ``.*`` and README."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(notebooks_dir.iterdir()):
        if path.suffix not in SOURCE_FORMATS or path.name[0] in "_." or path.stem.upper() == "README":
            continue
        if path.stem in found:
            raise BookError(f"two sources for notebook {path.stem!r}: {found[path.stem]} and {path}; keep one")
        found[path.stem] = path
    return found


def notebook_order(
    notebooks_dir: str | Path = "notebooks",
    *,
    toc: str | Path = "_toc.yml",
    book_dir: str | Path = "book",
    out_dir: str | Path = "book/_generated",
) -> list[Path]:
    """The notebook sources in the order ``_toc.yml`` lists their outputs (``_generated/<name>``).

    Every source must be listed and every listed output must have a source, so that no notebook is
    silently left out of the book.
    """
    try:
        prefix = PurePosixPath(Path(os.path.relpath(out_dir, book_dir)).as_posix())
    except ValueError:  # pragma: no cover - different drives on Windows
        raise BookError(f"out_dir {out_dir} must be inside the book folder {book_dir}") from None
    if ".." in prefix.parts:
        raise BookError(f"out_dir {out_dir} must be inside the book folder {book_dir}")
    listed = []
    for entry in toc_files(toc):
        path = PurePosixPath(entry)
        if path.parent == prefix:
            name = path.stem if path.suffix in (".ipynb", ".md", ".py") else path.name
            if name not in listed:
                listed.append(name)
    sources = find_notebooks(notebooks_dir)
    missing = [name for name in listed if name not in sources]
    if missing:
        raise BookError(
            f"{toc} lists {', '.join(f'{prefix}/{m}' for m in missing)} but {notebooks_dir} has no "
            f"{' / '.join(f'{m}.py or {m}.md' for m in missing)}: add the notebook or remove the entry"
        )
    unlisted = [str(sources[name]) for name in sources if name not in listed]
    if unlisted:
        hint = "; ".join(f"- file: {prefix}/{Path(u).stem}" for u in unlisted)
        raise BookError(f"{', '.join(unlisted)} not listed in {toc}: add `{hint}` to its Results part")
    return [sources[name] for name in listed]


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
    from unidetox.config import load_profile, to_dict

    return stage_key(to_dict(load_profile(profile, list(overrides))))


def read_notebook(source: str | Path):
    """Read a jupytext percent ``.py`` or MyST ``.md`` source into an nbformat notebook (kernel python3)."""
    import jupytext

    source = Path(source)
    fmt = SOURCE_FORMATS.get(source.suffix)
    if fmt is None:
        raise BookError(f"{source}: notebook sources must end in {' or '.join(SOURCE_FORMATS)}")
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


def _tag_injected_parameters(path: Path) -> None:
    """Add INJECTED_TAGS to the cell papermill injected (tagged ``injected-parameters``), in place."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:
            tags.extend(t for t in INJECTED_TAGS if t not in tags)
    nbformat.write(nb, path)


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
    from papermill.exceptions import PapermillExecutionError

    source, out_dir = Path(source), Path(out_dir)
    fmt = SOURCE_FORMATS.get(source.suffix)
    if fmt is None:
        raise BookError(f"{source}: notebook sources must end in {' or '.join(SOURCE_FORMATS)}")
    try:
        source_bytes = source.read_bytes()
    except OSError as e:
        raise BookError(f"cannot read notebook source {source}: {e.strerror or e}") from None
    parameters = json.loads(canonical_json(dict(parameters)))  # plain JSON values, as papermill injects them
    output = out_dir / f"{source.stem}.ipynb"
    record_path = out_dir / f"{source.stem}{RUN_SUFFIX}"
    key = _run_key(source_bytes, fmt, parameters, config_hash, kernel_name)

    record = _read_record(record_path)
    if not force and record is not None and record.get("key") == key and output.is_file():
        return NotebookRun(source, output, executed=False, seconds=float(record.get("seconds", 0.0)), key=key)

    nb = read_notebook(source)
    check_parameters(source, nb, parameters)
    check_kernel(kernel_name)

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{source.stem}.*.tmp.ipynb"):  # left by a runner that was killed
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{source.stem}.", suffix=".tmp.ipynb", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    failed = out_dir / f"{source.stem}{FAILED_SUFFIX}"
    start = time.monotonic()
    try:
        papermill.execute_notebook(
            nb,
            str(tmp),
            parameters=parameters,
            kernel_name=kernel_name,
            language="python",
            cwd=str(Path(cwd)),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as e:
        os.replace(tmp, failed)
        cell = textwrap.indent(e.source.rstrip() or "(empty)", "    ")
        raise NotebookError(
            f"notebook {source} failed in cell In [{e.exec_count}]:\n{cell}\n{e.ename}: {e.evalue}\n"
            f"The notebook as executed up to the error is in {failed}; "
            + (f"the previous output {output} is unchanged." if output.exists() else f"{output} was not written."),
            source=source,
            cell_source=e.source,
            ename=e.ename,
            evalue=e.evalue,
            failed_path=failed,
        ) from e
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise NotebookError(
            f"notebook {source} could not be executed: {type(e).__name__}: {e}",
            source=source,
            ename=type(e).__name__,
            evalue=str(e),
        ) from e
    seconds = time.monotonic() - start
    _tag_injected_parameters(tmp)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    record_path.unlink(missing_ok=True)  # no record may vouch for an output it did not describe
    os.replace(tmp, output)
    failed.unlink(missing_ok=True)
    write_json(
        record_path,
        {
            "key": key,
            "source": str(source),
            "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
            "parameters": parameters,
            "config_hash": config_hash,
            "kernel": kernel_name,
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "papermill": papermill.__version__,
        },
    )
    return NotebookRun(source, output, executed=True, seconds=seconds, key=key)


# ----------------------------------------------------------------------------- HTML


def _swap_dir(new: Path, target: Path) -> None:
    """Put directory `new` at `target`, replacing what was there (the old one is removed after the rename)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def build_html(
    book_dir: str | Path = "book", *, cwd: str | Path = ".", log: Callable[[str], None] | None = None
) -> Path:
    """Run ``jupyter-book build <book_dir> -W -n --keep-going`` and return ``<book_dir>/_build/html/index.html``.

    The build goes to a temporary folder inside ``<book_dir>/_build`` and replaces ``_build/html`` only
    when it succeeds; on any warning BookError carries the warnings and the previous HTML is untouched.
    """
    cwd = Path(cwd)
    book = cwd / book_dir
    if not (book / "_toc.yml").exists() or not (book / "_config.yml").exists():
        raise BookError(f"{book} needs _config.yml and _toc.yml (links to the repository's top-level files)")
    build_root = book / "_build"
    build_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=build_root))
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())",
        "build",
        str(book_dir),
        *JUPYTER_BOOK_ARGS,
        "--path-output",
        str(staging),
    ]
    try:
        if log:
            log(f"jupyter-book build {book_dir} {' '.join(JUPYTER_BOOK_ARGS)}")
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        html = staging / "_build" / "html"
        if proc.returncode != 0 or not (html / "index.html").is_file():
            out = proc.stdout + proc.stderr
            problems = [line for line in out.splitlines() if "WARNING" in line or "ERROR" in line]
            detail = "\n".join(problems) or out[-4000:]
            raise BookError(
                f"jupyter-book build {book_dir} {' '.join(JUPYTER_BOOK_ARGS)} failed (exit {proc.returncode}); "
                f"the previous book in {build_root / 'html'} was left as it was:\n{detail}"
            )
        _swap_dir(html, build_root / "html")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return build_root / "html" / "index.html"


# ----------------------------------------------------------------------------- the whole book


def build_book(
    profile: str,
    *,
    notebooks_dir: str | Path = "notebooks",
    out_dir: str | Path = "book/_generated",
    overrides: Iterable[str] = (),
    params: Mapping[str, Any] | Iterable[str] | None = None,
    html: bool = True,
    force: bool = False,
    book_dir: str | Path = "book",
    toc: str | Path = "_toc.yml",
    root: str | Path = ".",
    kernel_name: str = "python3",
    log: Callable[[str], None] | None = print,
) -> Path:
    """Execute the book's notebooks for `profile` in ``_toc.yml`` order, then build the HTML book.

    `overrides` are ``--set key=value`` strings (checked against the profile first; passed to every notebook
    as its ``overrides`` parameter); `params` are extra notebook parameters, a mapping or ``-p`` style
    ``"name=value"`` strings, which every notebook must declare. Relative paths are taken from `root` (the repository root), which is also the notebooks'
    working directory. Returns ``<book_dir>/_build/html/index.html``, or the out_dir when `html` is False.
    Raises BookError (NotebookError for a failing notebook) before building any HTML.
    """
    root = Path(root).absolute()
    overrides = list(overrides)
    params = dict(params) if isinstance(params, Mapping) else parse_params(params or ())
    clash = [name for name in params if name in BUILTIN_PARAMETERS]
    if clash:
        raise BookError(f"notebook parameter(s) {', '.join(clash)} are set by the runner: use --profile / --set")
    config_hash = profile_hash(profile, overrides)  # raises ConfigError on a bad profile or override
    sources = notebook_order(root / notebooks_dir, toc=root / toc, book_dir=root / book_dir, out_dir=root / out_dir)
    parameters = {"profile": profile, "overrides": overrides, **params}
    for source in sources:
        run = execute_notebook(
            source,
            root / out_dir,
            parameters=parameters,
            config_hash=config_hash,
            cwd=root,
            kernel_name=kernel_name,
            force=force,
        )
        if log:
            what = f"executed in {run.seconds:.1f} s" if run.executed else "unchanged, not re-executed"
            log(f"{source.relative_to(root) if source.is_relative_to(root) else source}: {what}")
    if not html:
        return root / out_dir
    return build_html(book_dir, cwd=root, log=log)


__all__ = [
    "BookError",
    "NotebookError",
    "NotebookRun",
    "build_book",
    "build_html",
    "check_kernel",
    "check_parameters",
    "declared_parameters",
    "execute_notebook",
    "find_notebooks",
    "notebook_order",
    "parse_params",
    "profile_hash",
    "read_notebook",
    "toc_files",
]
