"""One real evaluation as 1 process x N threads vs N processes x 1 thread on one CPU machine.

    PYTHONPATH=. python benchmarks/bench_processes.py --processes 2

Runs ``unidetox score --profile cpu --model MODEL`` (the ordinary evaluate stage: generation, toxicity, perplexity)
in a fresh temporary run store for each layout:

(a) one process with ``OMP_NUM_THREADS=N``;
(b) ``torchrun --standalone --nproc-per-node N -m unidetox.cli score ...`` with ``OMP_NUM_THREADS=1`` in each
    process (accelerate's PartialState sees the torchrun ranks: gloo backend; the evaluate stage splits its units
    of work over the ranks, then rank 0 merges them and scores perplexity alone). Not ``accelerate launch --cpu
    --num_processes N``: on one machine without MPI it starts a single process (accelerate 1.15's simple launcher).

Defaults: SmolLM2-135M, 12 ToxiGen validation prompts (3 per domain), k = 3, seed 42, 20 new tokens, toxblock,
SmolLM2 as its own perplexity model, ``eval.batch_size`` 9 (3 prompts per unit: 4 units to share out). Prints the
wall seconds of each layout (model loading and process start included; (a) runs first, so it pays any cold
file cache; ``--b-first`` swaps them) and whether the two evaluations are identical: the same stage key, the same records (seed, unit,
prompt, sample, continuation, toxicity, perplexity) and the same ``metrics.csv``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from unidetox.measure.evaluate import merge
from unidetox.store.jsonl import read_jsonl


def score_command(args, runs_dir: Path) -> list[str]:
    return [
        "-m", "unidetox.cli", "score", "--profile", "cpu", "--model", args.model, "--quiet",
        "--k", str(args.k), "--seeds", "42", "--scorer", "toxblock", "--prompts-per-domain", str(args.per_domain),
        "--set", f"runs_dir={runs_dir}", "--set", f"eval.batch_size={args.batch}",
        "--set", f"eval.perplexity_model={args.model}", "--set", f"eval.max_new_tokens={args.tokens}",
    ]  # fmt: skip


def run(cmd: list[str], threads: int) -> float:
    """Wall seconds of `cmd` with OMP_NUM_THREADS=`threads` (it must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dt


def evaluation(runs_dir: Path) -> tuple[str, pd.DataFrame, str, int]:
    """(stage key, records with their perplexity, metrics.csv text, ranks that generated) of the one evaluate stage
    in `runs_dir`."""
    (st,) = [p for p in (runs_dir / "cpu" / "evaluate").iterdir() if (p / "metrics.csv").is_file()]
    ranks = len(list(st.glob("generations.jsonl.rank*")))
    gens = pd.DataFrame(merge(st / "generations.jsonl", max(ranks, 1)))
    ppl = pd.DataFrame(read_jsonl(st / "perplexity.jsonl"))
    keys = ["seed", "unit", "prompt_id", "sample"]
    recs = gens[[*keys, "continuation", "toxicity"]].merge(ppl[[*keys, "ppl"]], on=keys, how="left")
    return st.name, recs.sort_values(keys).reset_index(drop=True), (st / "metrics.csv").read_text(), max(ranks, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="packaged:smollm2-135m")
    ap.add_argument("--processes", type=int, default=2, help="N: threads of (a), processes of (b)")
    ap.add_argument("--per-domain", type=int, default=3, help="ToxiGen validation prompts per domain (4 domains)")
    ap.add_argument("--k", type=int, default=3, help="continuations per prompt")
    ap.add_argument("--tokens", type=int, default=20, help="new tokens per continuation")
    ap.add_argument("--batch", type=int, default=9, help="eval.batch_size: rows per unit of work")
    ap.add_argument("--b-first", action="store_true", help="run (b) before (a)")
    args = ap.parse_args()
    n = args.processes
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
    print(f"{args.model}, {4 * args.per_domain} prompts x k={args.k}, {args.tokens} new tokens, seed 42, "
          f"eval.batch_size {args.batch}; cores {os.cpu_count()}, load before "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_processes-") as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        layouts = {"a": ([sys.executable], n, a), "b": (launch, 1, b)}
        secs, loads = {}, {}
        for name in ("b", "a") if args.b_first else ("a", "b"):  # the first pays any cold file cache
            cmd, threads, runs_dir = layouts[name]
            secs[name] = run([*cmd, *score_command(args, runs_dir)], threads=threads)
            loads[name] = os.getloadavg()[0]
        print(f"(a) 1 process x {n} threads: {secs['a']:.1f} s (load {loads['a']:.2f})")
        print(f"(b) {n} processes x 1 thread (torchrun): {secs['b']:.1f} s (load {loads['b']:.2f}); "
              f"(a) / (b) = {secs['a'] / secs['b']:.2f}")  # fmt: skip
        (key_a, recs_a, csv_a, _), (key_b, recs_b, csv_b, ranks_b) = evaluation(a), evaluation(b)
    if ranks_b != n:
        sys.exit(f"(b) generated on {ranks_b} process(es), not {n}: the launcher did not start {n} ranks")
    same_recs = recs_a.equals(recs_b)
    print(f"same stage key: {key_a == key_b}; same records ({len(recs_a)} continuations, toxicity, perplexity): "
          f"{same_recs}; same metrics.csv: {csv_a == csv_b}")  # fmt: skip
    if not same_recs and len(recs_a) == len(recs_b):
        diff = (recs_a != recs_b).any(axis=0)
        print(f"columns that differ: {', '.join(diff[diff].index)}")


if __name__ == "__main__":
    main()
