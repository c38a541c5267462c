"""Decode-step attention kernels on CPU: transformers' ``sdpa`` against ``eager``, in the evaluator's path and bare.

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/bench_attention.py --model packaged:smollm2-135m --rounds 6

A profile of a bare KV-cached decode loop (no attention mask) of SmolLM2-135M in bf16 puts about a fifth of the time
in PyTorch's CPU flash-attention kernel, which suggested a cheaper attention for one-token steps. This measures
whether that holds where the time is spent, with bf16 weights, batch 64, 20 new tokens:

* ``evaluator``: `unidetox.method.generate.generate_unit` on 8 ToxiGen validation prompts x 8 samples (left-padded,
  so every step has an attention mask; KV cache filled in place);
* ``bare``: `bench_roofline.bare_decode` on 64 rows of 24 random tokens (no padding, so no mask).

The implementations alternate within one process (order reversed every round, same weights); the script prints
each one's tokens/s per round, the median and the median of the per-round ratios, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

# the roofline benchmark's bare loop (this script's folder is on sys.path when run as a script)
from bench_roofline import bare_decode

from unidetox.config import DataConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.method.generate import GenerationSettings, generate_unit, unit_generator
from unidetox.models.loading import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="packaged:smollm2-135m")
    ap.add_argument("--impls", nargs="+", default=["sdpa", "eager"])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    args = ap.parse_args()
    lm = load_model(args.model, dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype])
    prompts = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=2, seed=0).text.tolist()[:8]
    settings = GenerationSettings(samples_per_prompt=8, max_new_tokens=20, batch_size=64)
    ids = torch.randint(100, 20000, (64, 24), generator=torch.Generator().manual_seed(0))

    def evaluator() -> float:
        t0 = time.perf_counter()
        generate_unit(lm.model, lm.tokenizer, prompts, settings, unit_generator("cpu", 42, 0))
        return 64 * 20 / (time.perf_counter() - t0)

    paths = {"evaluator": evaluator, "bare": lambda: 64 * 20 / bare_decode(lm.model, ids, 20)}
    print(f"{args.model}, {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load before {os.getloadavg()[0]:.2f}")  # fmt: skip
    with torch.no_grad():
        for path, run in paths.items():
            tps = {impl: [] for impl in args.impls}
            for r in range(args.rounds + 1):
                for impl in args.impls if r % 2 == 0 else args.impls[::-1]:
                    lm.model.set_attn_implementation(impl)
                    speed = run()
                    if r > 0:  # round 0 warms every implementation up
                        tps[impl].append(speed)
            base = args.impls[0]
            for impl, v in tps.items():
                ratio = statistics.median(a / b for a, b in zip(v, tps[base]))
                print(f"{path:9s} {impl:6s} tok/s median {statistics.median(v):6.0f}  {impl}/{base} {ratio:.3f}  "
                      f"rounds {[round(x) for x in v]}", flush=True)  # fmt: skip
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
