"""The study's method ``released``: the authors' released distilled text, fine-tuned like ours (tiny profile)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from harness import DATA_DIR

from unidetox import pipeline as P
from unidetox.cli import run
from unidetox.config.compared_methods import BASELINES, FINETUNED, FINETUNED_BASELINES, METHODS
from unidetox.config.loader import load_profile
from unidetox.data.texts import RELEASED_CSV, TextSourceError
from unidetox.pipeline.detox import training_texts
from unidetox.report.tables import main as T

RELEASED = DATA_DIR / RELEASED_CSV


def _data_copy(root, *, released: bool = True):
    """A data directory under `root`: links to the shared data's folders (never written), and, unless
    `released` is false, a private copy of the released CSV (so the test may edit it)."""
    root.mkdir()
    for d in DATA_DIR.iterdir():
        if d.is_dir() and d.name != "unidetox_released":
            (root / d.name).symlink_to(d, target_is_directory=True)
    if released:
        (root / RELEASED_CSV).parent.mkdir()
        shutil.copyfile(RELEASED, root / RELEASED_CSV)
    return root


def test_registry_lists_released_as_a_finetuning_baseline():
    m = METHODS["released"]
    assert m.finetunes and m.baseline and m.main_selection == "transferred" and "Released" in m.label
    assert "released" in BASELINES and "released" in FINETUNED and "released" in FINETUNED_BASELINES
    assert "released" in load_profile("cpu").study.baselines and "released" in load_profile("paper").study.baselines
    assert "released" not in load_profile("tiny").study.baselines  # pinned tiny study: see tiny.yaml


def test_training_texts_are_all_released_texts_keyed_by_the_file_hash(tmp_path):
    profile = load_profile("tiny", [f"runs_dir={tmp_path / 'runs'}"])
    texts, key = training_texts(profile, "released")
    assert len(texts) == 640 and texts[0].strip()  # all of them, not distill.num_texts
    digest = hashlib.sha256(RELEASED.read_bytes()).hexdigest()
    assert digest in key and str(DATA_DIR) not in key

    copy = _data_copy(tmp_path / "data")  # same bytes elsewhere: same key (the path is no part of it)
    moved = load_profile("tiny", [f"runs_dir={tmp_path / 'runs'}", f"data.dir={copy}"])
    assert training_texts(moved, "released") == (texts, key)

    csv = copy / RELEASED_CSV  # one more text: another key
    csv.write_bytes(csv.read_bytes() + b'"One more released text."\n')
    texts2, key2 = training_texts(moved, "released")
    assert len(texts2) == 641 and texts2[-1] == "One more released text."
    assert key2 != key and hashlib.sha256(csv.read_bytes()).hexdigest() in key2


def test_missing_released_file_is_one_error_before_any_work(tmp_path, capsys):
    data = _data_copy(tmp_path / "data", released=False)
    runs = tmp_path / "runs"
    sets = [f"runs_dir={runs}", f"data.dir={data}", "study.baselines=[released]"]
    with pytest.raises(TextSourceError, match="study.baselines") as e:
        P.study(load_profile("tiny", sets))
    assert str(data / RELEASED_CSV) in str(e.value) and "\n" not in str(e.value)
    assert not runs.exists() or not any(runs.rglob("DONE"))

    argv = ["pipeline", "--profile", "tiny", "--quiet"] + [a for s in sets for a in ("--set", s)]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing ") and "drop released from study.baselines" in err[0]
    assert not any(runs.rglob("DONE"))


@pytest.fixture(scope="module")
def released_study(tmp_path_factory):
    """The tiny study with the released text as its only baseline (one learning rate: fewer grid fine-tunes)."""
    runs = tmp_path_factory.mktemp("released-runs")
    return P.study(load_profile("tiny", [f"runs_dir={runs}", "study.baselines=[released]",
                                         "detox.learning_rates=[1e-3]"]), quiet=True)  # fmt: skip


def test_study_reports_released_with_the_transferred_configuration(released_study):
    st = released_study
    rel = st.report[st.report.method == "released"]
    assert set(rel.target) == {"tiny:gpt2", "tiny:llama"}  # any target: it is text
    assert set(rel.selection) == {"transferred"}
    assert set(zip(rel.lr, rel.steps)) == {st.chosen}
    assert set(st.mmlu.method) == {"none", "unidetox", "released"}
    main = T.main_table(st.report, st.cis, st.mmlu, st.applicability)
    rows = main[main.method == METHODS["released"].label]
    assert len(rows) == 2 and rows["ΔTP (in)"].notna().all() and rows["MMLU"].notna().all()
    assert (rows.config == f"lr={st.chosen[0]:g}, {st.chosen[1]} steps").all()
