"""Build the companion book: notebooks (jupytext) -> executed notebooks (papermill) -> HTML (Jupyter Book 1.x).

The notebooks of the book's *Results* part live in ``notebooks/`` as jupytext percent-format ``.py`` files
or MyST ``.md`` files. ``_toc.yml`` lists them as ``_generated/<name>`` (relative to ``book/``): that is
where the executed copies go, and the order in which they run. Each notebook's cell tagged ``parameters``
must declare ``profile`` and ``overrides``; papermill replaces them with the run's profile name and its
``--set key=value`` strings (plus any ``-p name=value`` parameters).

:mod:`unidetox.report.notebook_runner` executes each notebook, and skips one whose source, parameters and
resolved profile are unchanged since its last successful run. A failing notebook stops the run before the
HTML is built, so the previously built book stays as it was; the HTML is built into a temporary folder and
swapped in only when ``jupyter-book build book/ -W -n --keep-going`` succeeds.

>>> build_book("tiny")  # doctest: +SKIP
PosixPath('book/_build/html/index.html')
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from unidetox.report.notebook_runner import (
    BUILTIN_PARAMETERS,
    SOURCE_FORMATS,
    BookError,
    execute_notebook,
    parse_params,
    profile_hash,
)
from unidetox.store.run_store import atomic_dir

JUPYTER_BOOK_ARGS = ("-W", "-n", "--keep-going")  # warnings are errors, nitpicky references


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


# ----------------------------------------------------------------------------- HTML


def _jupyter_book(book_dir: str | Path, cwd: Path, staging: Path, build_root: Path) -> Path:
    """Run ``jupyter-book build`` with output under `staging`; return its ``html`` folder, or raise BookError."""
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
    return html


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
    try:
        if log:
            log(f"jupyter-book build {book_dir} {' '.join(JUPYTER_BOOK_ARGS)}")
        with atomic_dir(build_root / "html") as new_html:
            html = _jupyter_book(book_dir, cwd, staging, build_root)
            new_html.rmdir()  # replaced by the built folder, which atomic_dir then swaps in
            os.replace(html, new_html)
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
    "build_book",
    "build_html",
    "find_notebooks",
    "notebook_order",
    "toc_files",
]
