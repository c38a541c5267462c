"""torch.compile of the decode step: a bare KV-cached greedy loop, eager against compiled, tokens/s.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_compile.py [--models packaged:smollm2-135m]
        [--batch 64] [--prompt-tokens 24] [--new-tokens 20] [--dtype bf16] [--repeats 3]

The loop is `bench_roofline.bare_decode` (``model(...)`` only, no sampling); the compiled model is
``torch.compile(model, dynamic=True)`` (inductor). The first compiled run includes the compilation and is timed
on its own; so is the first compiled run at another batch size and prompt length (a recompilation shows there).
Run it twice with ``TORCHINDUCTOR_CACHE_DIR`` set (and ``TORCHINDUCTOR_FX_GRAPH_CACHE=1``): the second process
finds inductor's caches warm, as every process after the first on one machine would. The project's sampler does not compile anything: this measures the lever before building it.
Benchmarks are meaningless on a shared machine: run it alone and report ``uptime``'s load with the table.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from bench_roofline import DTYPES, bare_decode

from unidetox.models.loading import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=24)
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    tokens = args.batch * args.new_tokens
    for spec in args.models:
        lm = load_model(spec, dtype=DTYPES[args.dtype])
        ids = torch.randint(100, 1000, (args.batch, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
        bare_decode(lm.model, ids[:, :4], 2)  # warm-up
        eager = [tokens / bare_decode(lm.model, ids, args.new_tokens) for _ in range(args.repeats)]
        compiled = torch.compile(lm.model, dynamic=True)
        t0 = time.perf_counter()
        bare_decode(compiled, ids, args.new_tokens)
        first = time.perf_counter() - t0
        fast = [tokens / bare_decode(compiled, ids, args.new_tokens) for _ in range(args.repeats)]
        # another batch and prompt length: does the one dynamic graph serve it, or does it compile again?
        other = ids[: args.batch // 2, : args.prompt_tokens - 7]
        t0 = time.perf_counter()
        bare_decode(compiled, other, args.new_tokens)
        second = time.perf_counter() - t0
        plain = bare_decode(lm.model, other, args.new_tokens)
        print(f"{spec} {args.dtype} batch {args.batch}: eager {' '.join(f'{x:.1f}' for x in eager)} tok/s; "
              f"compile + first run {first:.1f} s; compiled {' '.join(f'{x:.1f}' for x in fast)} tok/s; "
              f"best compiled / best eager {max(fast) / max(eager):.2f}x; another shape (batch {other.shape[0]}, "
              f"{other.shape[1]} prompt tokens): first compiled run {second:.1f} s, eager {plain:.1f} s",
              flush=True)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
