"""Disk: a step snapshot equal to final/ is stored once; ``unidetox clean`` removes consumed weights under the run
store's lock, leaves the store valid (reused as it is) and a removed model is retrained only when read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unidetox.cli import run
from unidetox.config.loader import load_profile
from unidetox.pipeline.clean import human, removable
from unidetox.store.links import link_identical
from unidetox.store.lock import store_lock
from unidetox.store.run_store import CLEANED, DONE, StageDir, read_json, sha256_file


def _cli(*args, runs):
    return run([*args, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"])


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _du(root: Path) -> int:
    """Bytes under `root`, each inode once (``du -sb``)."""
    seen, total = set(), 0
    for p in root.rglob("*"):
        s = p.stat()
        if p.is_file() and (s.st_dev, s.st_ino) not in seen:
            seen.add((s.st_dev, s.st_ino))
            total += s.st_size
    return total


def _detox(runs: Path, method: str, lr: float, target: str = "tiny:gpt2") -> Path:
    """The detox stage of (method, lr, target); for UniDetox the grid's run (not the budget curve's)."""
    grid = list(load_profile("tiny").detox.steps)
    for d in sorted(runs.glob("tiny/detox/*")):
        c = read_json(d / "config.json")["config"]
        same = (c["method"], c["train"]["learning_rate"], c["target"]) == (method, lr, target)
        if same and (method != "unidetox" or c["steps"] == grid):
            return d
    raise AssertionError(f"no detox stage {method} {lr} {target}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("clean-runs")
    assert _cli("pipeline", runs=runs) == 0
    return runs


def test_link_identical_links_equal_files_only(tmp_path):
    a, b = tmp_path / "final", tmp_path / "steps" / "4"
    a.mkdir()
    b.mkdir(parents=True)
    for d in (a, b):
        (d / "model.safetensors").write_bytes(b"\x01" * 1000)
        (d / "README.md").write_text("card")
    (a / "config.json").write_text('{"x": 1}')
    (b / "config.json").write_text('{"x": 2}')  # same size, other bytes: kept as it is
    freed = link_identical(a, b, skip=frozenset({"README.md"}))
    assert freed == 1000
    assert os.path.samefile(a / "model.safetensors", b / "model.safetensors")
    assert (b / "config.json").read_text() == '{"x": 2}'
    assert not os.path.samefile(a / "README.md", b / "README.md")
    assert link_identical(a, b) == 4  # now the identical README too; the weights are already one file
    assert human(999) == "999 B" and human(1_100_000_000) == "1.1 GB"


def test_every_stage_writes_what_the_registry_declares(runs):
    """Each file of each stage run of a whole pipeline is one of its stage's declared outputs (or the store's own:
    config.json, DONE, model cards)."""
    from fnmatch import fnmatch

    from unidetox.store.registry import STAGES
    from unidetox.store.run_store import ANNOTATIONS

    runs_seen = set()
    for d in sorted((runs / "tiny").glob("*/*/")):
        stage = STAGES[d.parent.name]
        runs_seen.add(stage.name)
        patterns = [o.replace("<n>", "*") + ("*" if o.endswith("/") else "") for o in stage.outputs]
        for f in (f for f in d.rglob("*") if f.is_file()):
            rel = f.relative_to(d).as_posix()
            assert (
                rel in ("config.json", DONE, CLEANED) or f.name in ANNOTATIONS or any(fnmatch(rel, p) for p in patterns)
            ), f"{d}: {rel} is not among {stage.name}'s declared outputs {stage.outputs}"
    # the tiny profile has no second scorer; the lm-eval task is written by its own command, not by the pipeline
    assert runs_seen == set(STAGES) - {"rescore", "lm-eval-task"}


def test_last_step_snapshot_shares_the_final_weights(runs):
    st = _detox(runs, "unidetox", 1e-4)
    records = read_json(st / DONE)["files"]
    assert records["steps/4/model.safetensors"] == records["final/model.safetensors"]
    assert os.path.samefile(st / "steps/4/model.safetensors", st / "final/model.safetensors")
    assert not os.path.samefile(st / "steps/2/model.safetensors", st / "final/model.safetensors")


def test_clean_refuses_while_the_store_is_locked(runs, capsys):
    before = _files(runs / "tiny")
    with store_lock(runs, "tiny", command="a running pipeline"):
        assert _cli("clean", "--no-wait", runs=runs) == 2
    assert "in use by" in capsys.readouterr().err
    assert _files(runs / "tiny") == before


def test_dry_run_removes_nothing_and_lists_sizes(runs, capsys):
    before = _files(runs / "tiny")
    assert _cli("clean", "--dry-run", runs=runs) == 0
    out = capsys.readouterr().out.splitlines()
    assert _files(runs / "tiny") == before
    removed = [line for line in out if line.startswith("would remove ")]
    assert removed and all(line.endswith(("B", "kB", "MB", "GB")) for line in removed)
    assert out[-1].startswith("clean: would free ")


def test_clean_removes_consumed_weights_and_keeps_what_the_book_loads(runs, capsys):
    size_before = _du(runs / "tiny")
    assert _cli("clean", runs=runs) == 0
    out = capsys.readouterr().out
    sel = read_json(next(runs.glob("tiny/study/*/selection.json")))
    lr, steps = sel["chosen"]["lr"], sel["chosen"]["steps"]
    for target in ("tiny:gpt2", "tiny:llama"):  # explore and political bias load the chosen model
        chosen = _detox(runs, "unidetox", lr, target)
        assert (chosen / "steps" / str(steps) / "model.safetensors").is_file()
        assert not (chosen / "final").exists() and "final" in read_json(chosen / CLEANED)["removed"]
    other = _detox(runs, "nothate", 1e-3)
    assert not (other / "final").exists() and not (other / "steps/2").exists()
    assert (other / "log.jsonl").is_file() and (other / DONE).is_file()
    assert next(runs.glob("tiny/toxic-model/*/final/model.safetensors")).is_file()  # political bias reads it
    assert not next(runs.glob("tiny/expert-model/*/final"), None)
    assert f"removed {other / 'final'}: " in out and "clean: freed " in out
    assert _du(runs / "tiny") < size_before / 2
    assert _cli("verify", runs=runs) == 0  # removed on purpose: not damage


def test_pipeline_after_clean_recomputes_nothing(runs, capsys):
    before = {p: (p / DONE).stat().st_mtime_ns for p in runs.glob("tiny/*/*") if (p / DONE).is_file()}
    assert _cli("pipeline", runs=runs) == 0
    out = capsys.readouterr().out
    assert "wrote" not in out.replace("results:", "") and "recomputing" not in out
    assert {p: (p / DONE).stat().st_mtime_ns for p in before} == before


def test_a_removed_model_is_retrained_identically_when_read(runs, capsys):
    from unidetox import pipeline as P
    from unidetox.config.loader import load_profile

    st = _detox(runs, "unidetox", 1e-4)
    recorded = read_json(st / DONE)["files"]["steps/2/model.safetensors"]
    profile = load_profile("tiny", [f"runs_dir={runs}"])
    cand = P.finetuned(profile, "tiny:gpt2", "unidetox", 1e-4, 2, grid=True, quiet=True)
    assert not Path(cand.path).exists()  # reused: nothing retrained until a reader needs the weights
    P.mmlu(profile, cand, quiet=True)  # not run for this candidate: it needs the weights
    out = capsys.readouterr().out
    assert "was removed by `unidetox clean` and is needed" in out
    assert not (st / CLEANED).exists() and StageDir(st, "detox", st.name).damage() == {}
    assert sha256_file(Path(cand.path) / "model.safetensors") == recorded["sha256"]


def test_weights_that_an_unfinished_stage_reads_are_kept(tmp_path):
    model = StageDir.create(tmp_path, "tiny", "toxic-model", {"x": 1})
    (model.path / "final").mkdir()
    (model.path / "final" / "model.safetensors").write_bytes(b"w")
    model.mark_done()
    reader = StageDir.create(tmp_path, "tiny", "distill", {"y": 1}, {"toxic-model": model.key})
    assert removable(tmp_path / "tiny") == []  # its reader is unfinished: it will resume from these weights
    reader.mark_done()
    assert removable(tmp_path / "tiny") == [(model.path, "final")]
    (model.path / CLEANED).write_text(json.dumps({"removed": ["final"]}))
    (model.path / "final" / "model.safetensors").unlink()
    assert model.damage() == {}


@pytest.mark.parametrize(
    ("method", "lr", "setting"),
    [("nothate", 1e-3, "detox.train.seed=7"), ("unidetox", 1e-3, "distill.seed=7")],  # the stage's own; upstream
)
def test_a_removed_model_read_with_another_profile_is_refused(runs, method, lr, setting):
    from unidetox.config.loader import load_profile
    from unidetox.store.registry import restore
    from unidetox.store.run_store import StoreError

    st = _detox(runs, method, lr)
    removed = read_json(st / CLEANED)["removed"]
    before = _files(runs / "tiny")
    profile = load_profile("tiny", [f"runs_dir={runs}", setting])
    with pytest.raises(StoreError, match=r"removed by `unidetox clean`, and profile 'tiny' .* differs"):
        restore(profile, str(st / removed[0]))
    assert _files(runs / "tiny") == before  # refused before anything was removed or run (no stage of the setting)
    same = load_profile("tiny", [f"runs_dir={runs}"])
    assert restore(same, str(st / "log.jsonl")) == str(st / "log.jsonl")  # not removed: nothing to do
    assert restore(same, "tiny:gpt2") == "tiny:gpt2"


def test_a_removed_expert_model_is_retrained_identically_from_the_profile(runs, capsys):
    from unidetox.config.loader import load_profile
    from unidetox.pipeline.loading import load_lm

    st = next(runs.glob("tiny/expert-model/*"))
    assert read_json(st / CLEANED)["removed"] == ["final"]
    recorded = read_json(st / DONE)["files"]["final/model.safetensors"]
    load_lm(load_profile("tiny", [f"runs_dir={runs}"]), str(st / "final"))  # a fresh process would do the same
    assert "was removed by `unidetox clean` and is needed" in capsys.readouterr().out
    assert not (st / CLEANED).exists() and StageDir(st, "expert-model", st.name).damage() == {}
    assert sha256_file(st / "final" / "model.safetensors") == recorded["sha256"]


def test_a_stage_trained_on_a_users_file_is_not_recomputed_from_a_profile(tmp_path):
    from unidetox.config.loader import load_profile
    from unidetox.store.registry import recompute_call
    from unidetox.store.run_store import StoreError

    st = StageDir.create(tmp_path, "tiny", "detox", {"target": "tiny:gpt2", "method": "texts"})
    with pytest.raises(StoreError, match="method 'texts' cannot be recomputed from a profile"):
        recompute_call(load_profile("tiny", [f"runs_dir={tmp_path}"]), st.path)
