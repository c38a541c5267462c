"""The evaluation of a whole study, timed from cold: every evaluation stage of a finished run store redone, nothing else.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_eval_stages.py --store runs-copy [--profile cpu]
        [--cli .venv/bin/unidetox] [--set KEY=VALUE ...] [--json out.json]

`--store` is a copy of a run store whose training stages are finished (a cold `make book` with ``CLEAN=none``
leaves one): the script deletes its evaluation stages (:data:`REDONE`: evaluations, re-scoring, MMLU, scorer validity) and the
stages computed from them (``study``, ``budget``), runs ``unidetox pipeline`` with `--cli` (another checkout's
console script measures that checkout: the same store, settings and machine, back to back), and prints the wall
time of the whole command, the seconds its evaluation stages recorded (their ``DONE`` summaries, summed per stage
type), and the peak resident memory of the largest process (``getrusage``). The training stages are reused, so
their keys must be the same under both checkouts; the script refuses to go on when the command trained anything.

Benchmarks are meaningless on a shared machine: run it alone and report ``uptime``'s load with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REDONE = ("evaluate", "rescore", "mmlu", "validity-continuations", "scorer-validity", "study", "budget")
TRAINING = ("toxic-model", "expert-model", "distill", "samples", "detox")


def child_env() -> dict[str, str]:
    """This environment without PYTHONPATH: a `PYTHONPATH=.` meant for this script would make another checkout's
    console script import this checkout's package, and the comparison would time one commit twice."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def commit_of(cli: str) -> str:
    """The git commit of the checkout whose package `cli` (a console script) imports, as that script's Python sees it
    (run from the script's own folder, without PYTHONPATH), so the figures say which code they timed."""
    code = "import pathlib, unidetox; print(pathlib.Path(unidetox.__file__).resolve().parent.parent)"
    python = Path(cli).absolute().with_name("python")  # the venv's python: absolute, not resolved (a link)
    root = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=child_env(), cwd="/",
                          check=True)  # fmt: skip
    rev = subprocess.run(["git", "-C", root.stdout.strip(), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    return rev.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, type=Path, help="runs_dir of a copy of a finished run store")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--cli", default=str(Path(sys.executable).with_name("unidetox")), help="unidetox console script")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    root = args.store / args.profile
    for stage in REDONE:
        shutil.rmtree(root / stage, ignore_errors=True)
    trained_before = {p.parent for s in TRAINING for p in (root / s).glob("*/DONE")}
    cmd = [args.cli, "pipeline", "--profile", args.profile, "--quiet", "--set", f"runs_dir={args.store}"]
    for o in args.overrides:
        cmd += ["--set", o]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, env=child_env())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    trained = {p.parent for s in TRAINING for p in (root / s).glob("*/DONE")} - trained_before
    if trained:
        sys.exit(f"the command trained {len(trained)} stage(s) ({sorted(map(str, trained))[:3]}): the checkouts' "
                 "training keys differ, so this is not an evaluation-only comparison")  # fmt: skip
    per_stage: dict[str, float] = {}
    for stage in REDONE:
        for done in (root / stage).glob("*/DONE"):
            per_stage[stage] = per_stage.get(stage, 0.0) + float(json.loads(done.read_text()).get("seconds", 0.0))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    out = {"cli": args.cli, "commit": commit_of(args.cli), "overrides": args.overrides, "wall_s": wall,
           "stage_seconds": per_stage, "peak_rss_mib": peak, "load_before": load, "load_after": os.getloadavg()[0]}  # fmt: skip
    print(f"{args.cli} (commit {out['commit']}): pipeline {wall:.1f} s wall; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in per_stage.items())
          + f"; peak RSS {peak:.0f} MiB; load {load:.2f} -> {out['load_after']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
