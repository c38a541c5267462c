"""The notebooks as users open them: jupytext .py files paired with .ipynb files, hidden code in the book,
one shared first cell, and the run store a JupyterLab kernel finds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import pytest

from unidetox.config import RUNS_DIR_ENV, ConfigError, notebook_profile
from unidetox.report.book import find_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(find_notebooks(NOTEBOOKS).values())
SYNC_FIX = "run `make notebooks` (jupytext --update --to ipynb notebooks/*.py) and commit both files"
FIRST_CELL = 'profile = "tiny"\noverrides = []'  # how every notebook's parameters cell begins
HIDDEN = {"hide-input", "remove-input", "remove-cell"}  # the book shows no code cell's source by default


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks_and_every_one_is_a_py_source():
    assert len(SOURCES) >= 6 and all(p.suffix == ".py" for p in SOURCES)
    names = {p.stem for p in SOURCES}
    assert {"explore", "main_results"} <= names


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_paired_ipynb_is_in_sync_with_its_py_source(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: {SYNC_FIX}"
    text_nb = jupytext.read(source)
    assert text_nb.metadata["jupytext"]["formats"] == "ipynb,py:percent", (
        f"{source.name} is not paired: its header needs `formats: ipynb,py:percent` "
        f"(jupytext --set-formats ipynb,py:percent {source.relative_to(ROOT)})"
    )
    nb = jupytext.read(paired)
    assert jupytext.writes(nb, fmt="py:percent") == source.read_text(), (
        f"{paired.name} drifted from {source.name}: {SYNC_FIX}"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"
    executed = [c for c in code_cells(nb) if c.outputs or c.execution_count is not None]
    assert not executed, f"{paired.name} carries outputs: commit it unexecuted ({SYNC_FIX})"


def test_every_ipynb_has_a_py_source():
    orphans = [p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.with_suffix(".py").is_file()]
    assert not orphans, f"notebooks without a jupytext source: {orphans}"


def test_drift_is_detected(tmp_path):
    """The check above fails when the .py changes and the .ipynb does not, and passes again after `make notebooks`."""
    source = tmp_path / "transfer.py"
    shutil.copy2(NOTEBOOKS / "transfer.py", source)
    shutil.copy2(NOTEBOOKS / "transfer.ipynb", tmp_path / "transfer.ipynb")
    source.write_text(source.read_text() + '\n# %% tags=["hide-input"]\nprint("edited")\n')
    assert jupytext.writes(jupytext.read(tmp_path / "transfer.ipynb"), fmt="py:percent") != source.read_text()
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--update", "--to", "ipynb", str(source)])
    assert jupytext.writes(jupytext.read(tmp_path / "transfer.ipynb"), fmt="py:percent") == source.read_text()


def test_jupyterlab_opens_the_text_notebook_and_saving_writes_both_files(tmp_path):
    """jupytext's contents manager (what `make lab` serves): the .py opens as the same notebook as the .ipynb,
    and a notebook saved from JupyterLab updates its .py twin."""
    for suffix in (".py", ".ipynb"):
        shutil.copy2(NOTEBOOKS / f"main_results{suffix}", tmp_path / f"main_results{suffix}")
    cm = jupytext.TextFileContentsManager(root_dir=str(tmp_path))
    from_py = cm.get("main_results.py", type="notebook")["content"]
    from_ipynb = cm.get("main_results.ipynb")["content"]
    assert [c.source for c in from_py.cells] == [c.source for c in from_ipynb.cells]
    from_ipynb.cells.append(jupytext.reads('# %%\nprint("added in JupyterLab")\n', fmt="py:percent").cells[0])
    cm.save({"type": "notebook", "content": from_ipynb}, "main_results.ipynb")
    assert 'print("added in JupyterLab")' in (tmp_path / "main_results.py").read_text()


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_book_hides_code_and_every_notebook_starts_alike(source):
    cells = code_cells(jupytext.read(source))
    params, setup, *rest = cells
    assert params.metadata.get("tags", [])[:1] == ["parameters"], (
        f"{source.name}: the first code cell is not tagged parameters"
    )
    assert params.source.startswith(FIRST_CELL), f"{source.name}: the parameters cell must begin with {FIRST_CELL!r}"
    assert "remove-input" in params.metadata["tags"], f"{source.name}: the parameters cell must be tagged remove-input"
    assert "remove-input" in setup.metadata.get("tags", []), (
        f"{source.name}: the setup cell must be tagged remove-input"
    )
    assert "notebook_profile(profile, overrides)" in setup.source, f"{source.name}: setup must load the profile"
    shown = [c.source.splitlines()[0] for c in rest if not HIDDEN & set(c.metadata.get("tags", []))]
    assert not shown, f"{source.name}: code cells shown in the book (tag them hide-input): {shown}"


def test_notebook_profile_finds_the_run_store_of_make_lab(tmp_path):
    store = tmp_path / "a store: with spaces"
    assert notebook_profile("tiny", [], environ={}).runs_dir == "runs"
    assert notebook_profile("tiny", [], environ={RUNS_DIR_ENV: str(store)}).runs_dir == str(store)
    explicit = notebook_profile("tiny", ['runs_dir="/elsewhere"'], environ={RUNS_DIR_ENV: str(store)})
    assert explicit.runs_dir == "/elsewhere", "an explicit override wins over the environment"
    assert notebook_profile("tiny", json.dumps(["eval.seeds=[7]"]), environ={RUNS_DIR_ENV: ""}).eval.seeds == (7,)
    with pytest.raises(ConfigError):
        notebook_profile("tiny", ["eval.nope=1"], environ={RUNS_DIR_ENV: str(store)})
