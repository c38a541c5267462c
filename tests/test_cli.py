"""The tiny pipeline end to end through the CLI, reuse of finished stages, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from unidetox.cli import run

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, runs):
    return run([*args, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"])


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert _cli("toxic-model", runs=runs) == 0
    assert _cli("distill", runs=runs) == 0
    assert _cli("detox", runs=runs) == 0
    assert _cli("evaluate", runs=runs) == 0
    return runs


def _done_dirs(runs):
    return sorted(p.parent for p in Path(runs).glob("tiny/*/*/DONE"))


def test_pipeline_writes_every_stage(tiny_runs):
    stages = {p.parent.name for p in _done_dirs(tiny_runs)}
    assert stages == {"toxic-model", "distill", "detox", "evaluate", "mmlu"}
    texts = [
        json.loads(x)["text"] for x in next(Path(tiny_runs).glob("tiny/distill/*/texts.jsonl")).read_text().splitlines()
    ]
    assert len(texts) == 8
    table = pd.read_parquet(Path(tiny_runs) / "tiny" / "results-validation.parquet")
    # 2 targets x (untouched + 2 lrs x 2 steps) = 10 candidates, 2 seeds
    assert table.groupby(["target", "method", "lr", "steps"], dropna=False).ngroups == 10
    assert set(table.seed) == {42, 43}
    assert {"TP", "EMT", "PPL", "Dist-1", "Dist-2", "Dist-3"} <= set(table.metric)
    tp = table[table.metric == "TP"].value
    assert tp.between(0, 1).all()


def test_rerun_reuses_every_output(tiny_runs, capsys):
    before = {p: (p / "DONE").stat().st_mtime_ns for p in _done_dirs(tiny_runs)}
    assert _cli("evaluate", runs=tiny_runs) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "wrote" not in out.replace("results:", "")
    assert {p: (p / "DONE").stat().st_mtime_ns for p in _done_dirs(tiny_runs)} == before


def test_changed_setting_recomputes_only_downstream(tiny_runs, capsys):
    assert run(["distill", "--profile", "tiny", "--quiet", "--set", f"runs_dir={tiny_runs}",
                "--set", "distill.alpha=0.5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "toxic-model: reusing" in out and "distill: wrote" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["distill", "--profile", "nope"], "unknown profile"),
        (["distill", "--set", "distill.alfa=0.1"], "did you mean 'alpha'"),
        (["distill", "--set", "distill.alpha=2"], "alpha must be in"),
        (["detox", "--set", "detox.steps=[0]"], "must all be > 0"),
        (["evaluate", "--model", "/nonexistent/model/dir"], "cannot load"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(args, message, tmp_path, capsys):
    assert run([*args, "--quiet", "--set", f"runs_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not any(tmp_path.glob("*/*/*/DONE"))


def test_console_script_help():
    cmd = [sys.executable, "-m", "unidetox.cli", "--help"]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "toxic-model" in out.stdout and "evaluate" in out.stdout


def test_settings_lists_every_key_with_its_values_and_help(capsys):
    assert run(["settings"]) == 0
    out = capsys.readouterr().out
    assert "distill.alpha (float) = 0.1; tiny 0.1, cpu 0.1, paper 0.1\n    keep token v only if" in out
    assert "\ndetox.steps (list[int]) = " in out and "detox.train.max_steps" not in out
    assert run(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == (REPO / "book" / "settings.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        run(["distill", "--help"])
    assert "`unidetox settings` lists every key" in " ".join(capsys.readouterr().out.split())


def test_custom_profile_writes_into_a_run_store_named_after_its_file(tmp_path, capsys):
    mine = tmp_path / "exp.yaml"
    mine.write_text((REPO / "unidetox" / "profiles" / "tiny.yaml").read_text())
    assert run(["plan", "--profile", str(mine), "--set", f"runs_dir={tmp_path / 'runs'}"]) == 0
    assert "plan: profile exp on " in capsys.readouterr().out
    named = tmp_path / "named.yaml"
    named.write_text("name: cpu\n" + mine.read_text())
    assert run(["distill", "--profile", str(named), "--set", f"runs_dir={tmp_path / 'runs'}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: profile {named} has a 'name:' line: remove it;")
    assert not (tmp_path / "runs").exists()


@pytest.mark.numerics
def test_two_cpu_processes_give_the_single_process_results(tmp_path):
    """torchrun with 2 CPU processes shards the evaluation; the merged metrics equal one process's, to the byte.

    Exact, on any CPU: a unit of work (a few prompts x k samples x one seed, with its own generator) is computed whole
    by one process, with the same shapes and kernels in both runs, and one thread each (torchrun gives each worker
    OMP_NUM_THREADS=1; the single process gets the same, since a thread count changes how a kernel splits a sum)."""
    import os
    import shutil

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    common = ["-m", "unidetox.cli", "evaluate", "--profile", "tiny", "--model", "tiny:gpt2", "--no-mmlu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *common, "--set", f"runs_dir={tmp_path / 'one'}"], check=False,
                         capture_output=True, text=True, cwd=REPO, env=env)  # fmt: skip
    two = subprocess.run([torchrun, "--nproc_per_node", "2", *common, "--set", f"runs_dir={tmp_path / 'two'}"],
                         check=False, capture_output=True, text=True, cwd=REPO, env=env)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    shards = list((tmp_path / "two").glob("tiny/evaluate/*/generations.jsonl.rank*"))
    assert len(shards) == 2  # the work really was split
    a = (tmp_path / "one" / "tiny" / "results-validation.csv").read_text()
    b = (tmp_path / "two" / "tiny" / "results-validation.csv").read_text()
    assert a == b
