"""Evaluation-time inference in fp32 vs bf16 weights on CPU: tokens/s of generation and of perplexity scoring.

    OMP_NUM_THREADS=2 python benchmarks/bench_dtype.py --models packaged:smollm2-135m packaged:gemma3-270m

Generation: one batch of 64 rows (``--prompts`` ToxiGen validation prompts x ``64 // prompts`` samples each, one
prefill per prompt, KV cache), 20 new tokens, top-k 50 / top-p 0.9, through `unidetox.method.generate.generate_unit`
(the evaluator's own path; logits are upcast to fp32 before sampling). tokens/s = new tokens / wall seconds
(prefill included). Perplexity: the same prompts with 8 fixed 20-token continuations each, scored by
`continuation_logprobs_shared` (the evaluator's path; log-softmax in fp32); tokens/s = continuation tokens / s.
Each figure is the best of `--repeats` runs, fp32 and bf16 alternating, each printed with the 1-minute load
average read just after it (the machine may be shared: read ratios with the load beside them).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

# the perplexity benchmark's snippets (this script's folder is on sys.path when run as a script)
from bench_perplexity import fixed_continuations

from unidetox.config import DataConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.likelihood import continuation_logprobs_shared
from unidetox.method.generate import GenerationSettings, generate_unit, unit_generator
from unidetox.models import load_model
from unidetox.precision import cpu_has_native_bf16

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def time_generation(lm, prompts: list[str], rows: int, tokens: int) -> tuple[float, int]:
    k = rows // len(prompts)
    settings = GenerationSettings(samples_per_prompt=k, max_new_tokens=tokens, batch_size=rows)
    t0 = time.perf_counter()
    out = generate_unit(lm.model, lm.tokenizer, prompts, settings, unit_generator("cpu", 42, 0))
    dt = time.perf_counter() - t0
    assert sum(len(cs) for cs in out) == len(prompts) * k
    return dt, len(prompts) * k * tokens  # every row runs all steps unless all rows stop early (rare)


def time_perplexity(lm, prompts: list[str], conts: list[list[str]]) -> tuple[float, int]:
    ps = [p for p, cs in zip(prompts, conts) for _ in cs]
    cs = [c for group in conts for c in group]
    t0 = time.perf_counter()
    res = continuation_logprobs_shared(lm.model, lm.tokenizer, ps, cs, batch_size=64)
    return time.perf_counter() - t0, sum(n for _, n in res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--rows", type=int, default=64, help="sequences per generation batch")
    ap.add_argument("--prompts", type=int, default=8, help="distinct prompts in the batch (rows // prompts samples)")
    ap.add_argument("--tokens", type=int, default=20, help="new tokens per row")
    ap.add_argument("--k", type=int, default=8, help="continuations per prompt for perplexity scoring")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ps = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=max(1, args.prompts // 4), seed=0)
    prompts = ps.text.tolist()[: args.prompts]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu native bf16: {cpu_has_native_bf16()}, "
          f"cores {os.cpu_count()}, load before {tuple(round(x, 2) for x in os.getloadavg())}")  # fmt: skip
    print(f"generation: {len(prompts)} prompts x {args.rows // len(prompts)} samples = {args.rows} rows, "
          f"{args.tokens} new tokens; perplexity: {len(prompts)} prompts x {args.k} continuations of {args.tokens} "
          f"tokens; best of {args.repeats}\n")  # fmt: skip
    print("| model | task | fp32 tok/s | load | bf16 tok/s | load | bf16 / fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for spec in args.models:
        lms = {name: load_model(spec, dtype=dt) for name, dt in DTYPES.items()}
        conts = fixed_continuations(lms["fp32"].tokenizer, prompts, args.k, args.tokens)
        tasks = {
            "generate": lambda lm: time_generation(lm, prompts, args.rows, args.tokens),
            "perplexity": lambda lm, conts=conts: time_perplexity(lm, prompts, conts),
        }
        for task, fn in tasks.items():
            best: dict[str, tuple[float, float]] = {}
            for name, lm in lms.items():  # warm-up (first call allocates, builds kernels)
                fn(lm)
            for _ in range(args.repeats):
                for name, lm in lms.items():
                    dt, n = fn(lm)
                    rate, load = n / dt, os.getloadavg()[0]
                    if name not in best or rate > best[name][0]:
                        best[name] = (rate, load)
            (f, fl), (b, bl) = best["fp32"], best["bf16"]
            print(f"| {spec} | {task} | {f:.0f} | {fl:.2f} | {b:.0f} | {bl:.2f} | {b / f:.2f} |", flush=True)
        del lms
    print(f"\nload after {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
