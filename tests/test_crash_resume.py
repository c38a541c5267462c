"""Crash and resume, end to end: every long stage as a subprocess, killed with SIGKILL, rerun, compared.

The stages (toxic-model training, distillation, detox fine-tuning, evaluation with MMLU, the papermill book
runner) run through the CLI on the tiny profile in forked children of a pre-imported server (tests/harness.py).
Each child dies with SIGKILL, with its whole process group, at a deterministic point: after the n-th record of a
stream, in the middle of a stream write (a torn line), just before an atomically written file or checkpoint
directory is renamed into place, or inside a checkpoint swap. One more kill is external (the test kills the book
runner's process group while a notebook executes). After every kill the next command reruns on the same runs_dir.

Before every rerun, garbage is planted under temporary names (``.texts.jsonl.decoy.tmp``, ``.DONE.decoy.tmp`` ...)
in every unfinished stage directory, as interrupted atomic writes leave them; reading one would show in the end.

Asserted: every kill point is reached; every rerun finishes; no finished unit of work is done again (a stream
unit with a complete record, a stage with DONE, a training step at or below the last checkpoint, a notebook whose
output and record exist); no file visible under its final name is partial; and the final artifacts equal those
of an uninterrupted run in another runs_dir (texts, generations, scores, tables byte for byte, JSON without
timing fields, weights bit-identical or within 1e-6). The number of kill points survived is printed
(``pytest -s``) and checked.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from harness import (
    ChildResult,
    ForkServer,
    KillPoint,
    Snapshot,
    compare_trees,
    complete_records,
    pid_alive,
    redone_work,
    reference_run,
    snapshot,
    stage_dirs,
    temporary_leftovers,
    tiny_args,
    visible_files,
    wait_until,
)

#: (command, kill point, what the kill interrupts). Run in this order on one runs_dir, then `evaluate` to the end.
CHAIN = [
    ("toxic-model", KillPoint("append", "tiny/toxic-model/*/log.jsonl", 1), "training, step 1 of 6, no checkpoint yet"),
    ("toxic-model", KillPoint("after-replace", "tiny/toxic-model/*/.checkpoint.old", 1),
     "training, inside the step-4 checkpoint swap (old checkpoint moved aside, new one not in place)"),
    ("toxic-model", KillPoint("torn", "tiny/toxic-model/*/log.jsonl", 2),
     "training, half-written log line of step 4 after resuming at step 2"),
    ("distill", KillPoint("append", "tiny/distill/*/stream.jsonl", 1), "distillation, after batch 1 of 2"),
    ("distill", KillPoint("torn", "tiny/distill/*/stream.jsonl", 1), "distillation, half of the first line of batch 2"),
    ("distill", KillPoint("before-replace", "tiny/distill/*/texts.jsonl", 1),
     "distillation, texts.jsonl complete under its temporary name, not renamed"),
    ("detox", KillPoint("before-replace", "tiny/detox/*/steps/2", 1),
     "detox, writing the step-2 weights, before the first checkpoint"),
    ("detox", KillPoint("append", "tiny/detox/*/log.jsonl", 3), "detox, step 3, after the step-2 checkpoint"),
    ("detox", KillPoint("before-replace", "tiny/detox/*/DONE", 1), "detox, trained, completion marker not in place"),
    ("detox", KillPoint("after-replace", "tiny/detox/*/final", 1),
     "detox, next run's final weights in place, no completion marker"),
    ("evaluate", KillPoint("append", "tiny/evaluate/*/generations.jsonl", 2), "evaluation, 2 of 4 generation units"),
    ("evaluate", KillPoint("torn", "tiny/evaluate/*/perplexity.jsonl", 1), "evaluation, half-written perplexity line"),
    ("evaluate", KillPoint("before-replace", "tiny/evaluate/*/metrics.csv", 2),
     "evaluation, second candidate's metrics.csv not renamed"),
    ("evaluate", KillPoint("before-replace", "tiny/results-validation.csv", 1),
     "evaluation, results table complete under its temporary name"),
    ("evaluate", KillPoint("after-replace", "tiny/mmlu/*/mmlu.csv", 1), "MMLU, per-question file written, summary not"),
]  # fmt: skip

EXPECTED_OUTPUTS = {  # what a stage directory with DONE must hold
    "toxic-model": ["config.json", "final/model.safetensors", "final/train_result.json", "log.jsonl"],
    "detox": ["config.json", "final/model.safetensors", "log.jsonl"],
    "distill": ["config.json", "texts.jsonl", "texts.csv"],
    "evaluate": ["config.json", "generations.jsonl", "perplexity.jsonl", "metrics.csv", "settings.json"],
    "mmlu": ["config.json", "mmlu.csv", "summary.csv"],
}


def partial_files(runs: Path, seen: dict | None = None) -> list[str]:
    """Files visible under their final name that are not complete (should be empty at any moment).

    `seen`: files already found complete, by (inode, mtime, size); they are not read again.
    """
    from safetensors import safe_open

    bad = []
    seen = {} if seen is None else seen
    for rel, p in visible_files(runs).items():
        st = p.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen.get(rel) == stamp:
            continue
        try:
            if p.name == "DONE" or p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".safetensors":
                with safe_open(str(p), "pt"):  # checks that the header's tensors cover the whole file
                    pass
            elif p.suffix == ".csv":
                pd.read_csv(p)
            elif p.suffix == ".parquet":
                pd.read_parquet(p)
            elif p.suffix == ".jsonl":
                if p.name in ("texts.jsonl",) and not p.read_bytes().endswith(b"\n"):
                    bad.append(f"{rel}: atomically written file ends in a torn line")
                complete_records(p)
        except Exception as e:  # noqa: BLE001 - any failure to read is the finding
            bad.append(f"{rel}: {type(e).__name__}: {e}")
        else:
            seen[rel] = stamp
    for d in stage_dirs(runs):
        rel = d.relative_to(runs)
        for sub in [*d.glob("steps/[0-9]*"), d / "final"]:
            if sub.is_dir() and not ((sub / "model.safetensors").is_file() and (sub / "config.json").is_file()):
                bad.append(f"{rel}/{sub.relative_to(d)} is in place but lacks its weights or config")
        if (d / "checkpoint").is_dir() and not (d / "checkpoint" / "trainer_state.json").is_file():
            bad.append(f"{rel}/checkpoint is in place but lacks trainer_state.json")
        if (d / "DONE").exists():
            missing = [f for f in EXPECTED_OUTPUTS.get(d.parent.name, []) if not (d / f).exists()]
            if missing:
                bad.append(f"{rel} has DONE but lacks {missing}")
    return bad


DECOY_NAMES = ("DONE", "texts.jsonl", "metrics.csv", "mmlu.csv", "summary.csv", "config.json")


def plant_decoys(runs: Path) -> int:
    """Put garbage under temporary names (``.<name>.decoy.tmp``) in every unfinished stage directory.

    Interrupted atomic writes leave such files; a run that read one as complete would change the outputs,
    which the final comparison with the uninterrupted run would show. Returns the number planted.
    """
    n = 0
    for d in stage_dirs(runs):
        if (d / "DONE").exists():
            continue
        for name in DECOY_NAMES:
            decoy = d / f".{name}.decoy.tmp"
            if not decoy.exists():
                decoy.write_text('{"decoy": true, "value": 123456}\nnot,a,result\n')
                n += 1
    return n


@dataclass
class ChainResult:
    """Findings of the kill-and-rerun chain (collected, so that each property is its own test)."""

    runs: Path
    not_reached: list[str] = field(default_factory=list)
    failed_reruns: list[str] = field(default_factory=list)
    redone: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    leftovers_after_kill: list[str] = field(default_factory=list)
    survived: int = 0
    traced: int = 0  # stream appends and renames the checks looked at
    decoys: int = 0  # garbage files planted under temporary names


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    fs = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield fs
    fs.close()


@pytest.fixture(scope="module")
def chain(server, tmp_path_factory) -> ChainResult:
    runs = tmp_path_factory.mktemp("crash") / "runs"
    out = ChainResult(runs)
    seen: dict = {}
    for command, kill, what in CHAIN:
        out.decoys += plant_decoys(runs)
        before = snapshot(runs)
        res = server.run(tiny_args(command, runs), root=runs, kill=kill)
        where = f"{command} killed at {kill.describe()} ({what})"
        if not res.killed:
            out.not_reached.append(f"{where}: exit {res.returncode}, no kill\n{res.stderr[-2000:]}")
            continue
        out.survived += 1
        out.traced += len(res.events("append")) + len(res.events("replace"))
        out.redone += [f"{where}: {p}" for p in redone_work(before, res)]
        out.partial += [f"after {where}: {p}" for p in partial_files(runs, seen)]
        out.leftovers_after_kill += temporary_leftovers(runs)
    out.decoys += plant_decoys(runs)
    before = snapshot(runs)
    final = server.run(tiny_args("evaluate", runs), root=runs)
    if final.returncode != 0:
        out.failed_reruns.append(f"final evaluate exit {final.returncode}:\n{final.stderr[-3000:]}")
    out.redone += [f"final evaluate: {p}" for p in redone_work(before, final)]
    out.partial += [f"at the end: {p}" for p in partial_files(runs, seen)]
    print(f"\ncrash/resume chain: {out.survived} of {len(CHAIN)} kill points survived")
    return out


def test_every_kill_point_is_reached_and_survived(chain):
    assert not chain.not_reached, "\n".join(chain.not_reached)
    assert chain.survived == len(CHAIN) == 15


def test_every_rerun_finishes(chain):
    assert not chain.failed_reruns, "\n".join(chain.failed_reruns)


def test_no_finished_unit_of_work_is_redone(chain):
    assert chain.traced > 100  # the runs' traces were read, not empty
    assert not chain.redone, "\n".join(chain.redone)


def test_the_redone_work_check_catches_redone_work():
    """The checker itself, on a hand-made trace: each kind of redone work is reported, resumed work is not."""
    before = Snapshot(
        done={"tiny/distill/k": b"{}"},
        units={"tiny/distill/k2/stream.jsonl": [0]},
        checkpoint_step={"tiny/detox/d": 2},
        finals={"tiny/toxic-model/t"},
        step_dirs={"tiny/detox/d/steps/2"},
    )
    trace = [
        {"event": "append", "path": "tiny/distill/k2/stream.jsonl", "units": [0, 0, 1]},  # batch 0 again
        {"event": "append", "path": "tiny/detox/d/log.jsonl", "units": [2]},  # step 2 is checkpointed
        {"event": "append", "path": "tiny/toxic-model/t/log.jsonl", "units": [5]},  # training had finished
        {"event": "replace", "path": "tiny/distill/k/texts.jsonl"},  # its stage had DONE
        {"event": "replace", "path": "tiny/detox/d/steps/2"},  # saved at the checkpoint step already
        {"event": "append", "path": "tiny/detox/d/log.jsonl", "units": [3, 4]},  # resumed work: fine
        {"event": "append", "path": "tiny/distill/k2/stream.jsonl", "units": [1]},  # new batch: fine
        {"event": "replace", "path": "tiny/detox/d/steps/4"},  # new step: fine
    ]
    problems = redone_work(before, ChildResult(0, "", "", trace))
    assert len(problems) == 5, problems
    assert [p.split(":")[0].split(" ")[0] for p in problems] == [
        "tiny/distill/k2/stream.jsonl",
        "tiny/detox/d",
        "tiny/toxic-model/t",
        "tiny/distill/k/texts.jsonl",
        "tiny/detox/d/steps/2",
    ]


def test_no_partial_file_is_ever_visible_as_complete(chain):
    assert not chain.partial, "\n".join(chain.partial)


def test_resumed_artifacts_equal_an_uninterrupted_run(chain, reference):
    """Texts, generations, scores, tables and weights of the killed-and-resumed run equal the reference run's."""
    runs = chain.runs
    dirs = [str(d.relative_to(runs)) for d in stage_dirs(runs)]
    assert {d.split("/")[1] for d in dirs} == set(EXPECTED_OUTPUTS), dirs
    assert len(dirs) >= 1 + 1 + 4 + 10 + 10, dirs  # toxic model, distill, 4 detox runs, 10 evaluations, 10 MMLU
    only = [*dirs, "tiny/results-validation.csv", "tiny/results-validation.parquet"]
    diffs = compare_trees(runs, reference, only=only, skip_content=frozenset({"DONE"}))
    assert not diffs, "\n".join(diffs[:40])
    assert chain.decoys > 30  # garbage under temporary names was there to be misread, and was not
    # and the comparison is not vacuous: the texts and tables really are there
    texts = next(runs.glob("tiny/distill/*/texts.jsonl")).read_text().splitlines()
    assert len(texts) == 8
    assert len(pd.read_csv(runs / "tiny" / "results-validation.csv").query("metric == 'TP'")) > 0


def test_interrupted_atomic_writes_leave_no_temporary_files_after_resume(chain):
    assert not temporary_leftovers(chain.runs), temporary_leftovers(chain.runs)


# ----------------------------------------------------------------------------- torn multi-record appends


@pytest.mark.parametrize(
    "command, kill, stage",
    [
        (["distill"], KillPoint("torn", "tiny/distill/*/stream.jsonl", 2, keep=2), "distill"),
        (["evaluate", "--model", "tiny:gpt2", "--no-mmlu"],
         KillPoint("torn", "tiny/evaluate/*/generations.jsonl", 1, keep=5), "evaluate"),
    ],
    ids=["distill-batch", "generation-unit"],
)  # fmt: skip
def test_append_cut_after_whole_lines_is_not_taken_as_a_finished_unit(command, kill, stage, server, reference,
                                                                      tmp_path):  # fmt: skip
    runs = tmp_path / "runs"
    first = server.run(tiny_args(command[0], runs, *command[1:]), root=runs, kill=kill)
    assert first.killed, first.stderr[-2000:]
    again = server.run(tiny_args(command[0], runs, *command[1:]), root=runs)
    assert again.returncode == 0, again.stderr[-2000:]
    (d,) = [str(p.relative_to(runs)) for p in runs.glob(f"tiny/{stage}/*")]
    diffs = compare_trees(runs, reference, only=[d], skip_content=frozenset({"DONE"}))
    assert not diffs, "\n".join(diffs)


# ----------------------------------------------------------------------------- the papermill book runner

NOTEBOOK_A = """\
# %% tags=["parameters"]
profile = "unset"
overrides = []

# %%
with open("executions.log", "a") as f:
    f.write("a\\n")
from unidetox.config.loader import load_profile

p = load_profile(profile, overrides)
print("alpha", p.distill.alpha, "targets", list(p.detox.targets))
"""

NOTEBOOK_B = """\
# %% tags=["parameters"]
profile = "unset"
overrides = []

# %%
import os
import time

with open("executions.log", "a") as f:
    f.write("b\\n")
with open("kernel-b.pid", "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(os.environ.get("UNIDETOX_TEST_SLEEP", "0")))
print(sum(i * i for i in range(10)))
"""

TOC = """\
format: jb-book
root: intro
chapters:
  - file: _generated/a
  - file: _generated/b
"""


def book_dir(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "a.py").write_text(NOTEBOOK_A)
    (root / "notebooks" / "b.py").write_text(NOTEBOOK_B)
    (root / "_toc.yml").write_text(TOC)
    return root


def cell_outputs(path: Path) -> list:
    """Code cells' sources and outputs of an executed notebook (no timing metadata)."""
    nb = json.loads(path.read_text())
    return [(c["source"], c.get("outputs")) for c in nb["cells"] if c["cell_type"] == "code"]


def executions(root: Path) -> list[str]:
    log = root / "executions.log"
    return log.read_text().split() if log.exists() else []


BOOK = ["book", "--profile", "tiny", "--no-html"]


@pytest.fixture(scope="module")
def book_chain(server, tmp_path_factory):
    """Reference book run; then a run killed from outside while notebook b executes, one killed right after b's
    output is renamed into place (its run record not yet written), and a final run."""
    ref = book_dir(tmp_path_factory.mktemp("book-ref"))
    r = server.run(BOOK, cwd=ref, root=ref)
    assert r.returncode == 0, r.stderr[-3000:]

    root = book_dir(tmp_path_factory.mktemp("book-crash"))
    gen = root / "book" / "_generated"
    found = {"survived": 0, "root": root, "ref": ref}
    pid = server.start(BOOK, cwd=root, root=root, env={"UNIDETOX_TEST_SLEEP": "120"})
    assert wait_until(lambda: executions(root) == ["a", "b"] and (root / "kernel-b.pid").exists(), timeout=120)
    kernel = int((root / "kernel-b.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # the job is killed from outside, as a scheduler does
    first = server.wait()
    assert first.killed
    found["survived"] += 1
    found["kernel_exited"] = wait_until(lambda: not pid_alive(kernel), timeout=20, interval=0.1)
    if not found["kernel_exited"]:
        os.kill(kernel, signal.SIGKILL)  # do not leave it running; the test below fails
    found["after_first"] = sorted(p.name for p in gen.iterdir())
    found["a_bytes"] = (gen / "a.ipynb").read_bytes()

    second = server.run(BOOK, cwd=root, root=root, kill=KillPoint("after-replace", "book/_generated/b.ipynb", 1))
    assert second.killed, second.stderr[-3000:]
    found["survived"] += 1
    found["after_second"] = executions(root)

    last = server.run(BOOK, cwd=root, root=root)
    found["last"] = last
    print(f"\nbook runner: {found['survived']} kill points survived")
    return found


def test_book_runner_killed_mid_notebook_resumes_without_redoing_finished_notebooks(book_chain):
    root, ref = book_chain["root"], book_chain["ref"]
    gen, ref_gen = root / "book" / "_generated", ref / "book" / "_generated"
    assert book_chain["survived"] == 2
    # killed while b ran: a is complete with its record, b has no output under its final name
    visible = [n for n in book_chain["after_first"] if not n.startswith(".")]
    assert visible == ["a.ipynb", "a.run.json"]
    # the second run did not execute a again
    assert book_chain["after_second"] == ["a", "b", "b"]
    last = book_chain["last"]
    assert last.returncode == 0, last.stderr[-3000:]
    assert "a.py: unchanged, not re-executed" in last.stdout
    assert executions(root) == ["a", "b", "b", "b"]  # b's output had no record after the second kill: rerun
    assert (gen / "a.ipynb").read_bytes() == book_chain["a_bytes"]  # never rewritten
    for name in ("a.ipynb", "b.ipynb"):
        assert cell_outputs(gen / name) == cell_outputs(ref_gen / name)
    assert "285" in json.dumps(cell_outputs(gen / "b.ipynb"))


def test_killed_book_runner_takes_its_kernel_with_it(book_chain):
    """A kernel left running after its runner is killed would hold the GPU of a shared machine."""
    assert book_chain["kernel_exited"]


def test_killed_book_runner_leaves_no_temporary_notebook_after_resume(book_chain):
    assert book_chain["last"].returncode == 0
    assert not temporary_leftovers(book_chain["root"] / "book")
