"""`unidetox score` under torchrun with 2 CPU processes: the evaluation is split over the ranks, and the summary
(computed from the merged generations) equals one process's, exactly: each unit of work is computed whole by one
process with the same shapes, kernels and thread count (one: torchrun's default, given to the single process too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.numerics
def test_score_with_two_cpu_processes_equals_one_process(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    common = ["-m", "unidetox.cli", "score", "--profile", "tiny", "--model", "tiny:gpt2", "--quiet"]
    runs, env = {}, {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launch in (("one", [sys.executable]), ("two", [torchrun, "--standalone", "--nproc_per_node", "2"])):
        out = tmp_path / f"{name}.json"
        proc = subprocess.run([*launch, *common, "--set", f"runs_dir={tmp_path / name}", "--json", str(out)],
                              check=False, capture_output=True, text=True, cwd=REPO, env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads(out.read_text().replace(str(tmp_path / name), "RUNS"))
    (stage,) = (tmp_path / "two" / "tiny" / "evaluate").iterdir()
    assert len(list(stage.glob("generations.jsonl.rank*"))) == 2  # the work really was split
    one = (tmp_path / "one" / "tiny" / "evaluate" / stage.name / "generations.jsonl").read_text().splitlines()
    two = (stage / "generations.jsonl").read_text().splitlines()  # merged into one file (ordered by prompt id)
    assert sorted(two) == sorted(one) and len(one) > 2
    assert runs["one"] == runs["two"] and runs["one"]
