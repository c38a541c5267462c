"""The notebooks as users open them: jupytext .py files paired with .ipynb files, hidden code in the book,
one shared first cell, and the run store a JupyterLab kernel finds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import pandas as pd
import pytest

from unidetox.config import ConfigError
from unidetox.config.loader import RUNS_DIR_ENV, notebook_profile
from unidetox.report.book import find_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(find_notebooks(NOTEBOOKS).values())
SYNC_FIX = "run `make notebooks` (jupytext --update --to ipynb notebooks/*.py) and commit both files"
FIRST_CELL = 'profile = "tiny"\noverrides = []'  # how every notebook's parameters cell begins
SETUP_CELL = "from unidetox.report.notebook import setup\n\nprof = setup(profile, overrides)"  # every second code cell
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
    assert setup.source == SETUP_CELL, f"{source.name}: the cell after the parameters must be exactly {SETUP_CELL!r}"
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


def test_setup_returns_the_profile_and_quiets_progress_output(monkeypatch):
    import warnings

    from transformers.utils import logging as transformers_logging

    from unidetox.report.notebook import PROGRESS_WARNING, setup

    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    transformers_logging.enable_progress_bar()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof = setup("tiny", json.dumps(["eval.seeds=[7]"]))
        warnings.warn(f"{PROGRESS_WARNING}. Please update jupyter and ipywidgets.")
        warnings.warn("another warning")
    assert prof.name == "tiny" and prof.eval.seeds == (7,)
    assert prof == notebook_profile("tiny", ["eval.seeds=[7]"], environ={})
    assert [str(w.message) for w in caught] == ["another warning"]
    assert not transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    with pytest.raises(ConfigError):
        setup("tiny", ["eval.nope=1"])


# ----------------------------------------------------------------------------- the pages' tables


def test_mean_std_table_of_the_base_and_the_toxic_model():
    from unidetox.report.tables import pages as PT

    rows = pd.DataFrame(
        [
            {
                "target": "t",
                "method": m,
                "lr": None,
                "steps": None,
                "hparam": None,
                "selection": "",
                "seed": seed,
                "domain": d,
                "metric": k,
                "value": v,
            }
            for m, shift in (("none", 0.0), ("toxic", 0.5))
            for seed, v0 in ((0, 0.1), (1, 0.3))
            for (d, k), _ in PT.TOXICITY_COLUMNS
            for v in [v0 + shift]
        ]
    )
    table = PT.mean_std_table(PT.seed_stats(rows), {"none": "base", "toxic": "toxic"})
    assert table.index.tolist() == ["base", "toxic"] and table.index.name == "model"
    assert table.columns.tolist() == [col for _, col in PT.TOXICITY_COLUMNS]
    assert table.loc["base", "TP (in)"] == "0.200 ± 0.100"  # std over seeds with ddof=0
    assert table.loc["toxic", "EMT (out)"] == "0.700 ± 0.100"


def test_text_stats_table_turns_the_statistics_on_their_side():
    from unidetox.analysis.textstats import STATS_COLUMNS
    from unidetox.report.tables import pages as PT

    stats = pd.DataFrame([{k: 0 if k == "set" else 1.23456 for k in STATS_COLUMNS} | {"set": s} for s in "ab"])
    table = PT.text_stats_table(stats)
    assert table.columns.tolist() == ["a", "b"]
    assert table.loc["texts", "a"] == "1" and table.loc["distinct words", "b"] == "1"
    assert table.loc["vocabulary TTR", "a"] == "1.235"
    assert len(table) == len(STATS_COLUMNS) - 1


def test_transfer_gaps_and_distinctive_words():
    from unidetox.report.tables import pages as PT

    transfer = pd.DataFrame({"target": ["x", "y"], "method": ["UniDetox"] * 2, "TP (in) gap": [0.1, 0.0],
                             "EMT (in) gap": [0.2, -0.1]})  # fmt: skip
    long = PT.transfer_gaps(transfer)
    assert long[["row", "gap", "value"]].values.tolist() == [
        ["x: UniDetox", "TP (in) gap", 0.1],
        ["y: UniDetox", "TP (in) gap", 0.0],
        ["x: UniDetox", "EMT (in) gap", 0.2],
        ["y: UniDetox", "EMT (in) gap", -0.1],
    ]
    words = pd.DataFrame({"set": ["b", "b", "a"], "rank": [1, 2, 1], "word": ["vote", "tax", "sun"],
                          "z": [3.14, 2.0, 1.06]})  # fmt: skip
    table = PT.words_side_by_side(words)
    assert table.columns.tolist() == ["b", "a"]  # the sets' order, not sorted
    assert table.loc[1].tolist() == ["vote (3.1)", "sun (1.1)"] and table.loc[2].tolist() == ["tax (2.0)", ""]
