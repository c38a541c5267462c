"""Evaluation-time inference in fp32, bf16 and int8 weights on CPU: tokens/s of generation and perplexity scoring.

    OMP_NUM_THREADS=2 python benchmarks/bench_dtype.py --models packaged:smollm2-135m packaged:gemma3-270m

Generation: one batch of 64 rows (``--prompts`` ToxiGen validation prompts x ``64 // prompts`` samples each, one
prefill per prompt, KV cache), 20 new tokens, top-k 50 / top-p 0.9, through `unidetox.method.generate.generate_unit`
(the evaluator's own path; logits are upcast to fp32 before sampling). tokens/s = new tokens / wall seconds
(prefill included). Perplexity: the same prompts with 8 fixed 20-token continuations each, scored by
`continuation_logprobs_shared` (the evaluator's path; log-softmax in fp32); tokens/s = continuation tokens / s.
Each figure is the best of `--repeats` runs, the dtypes alternating, each printed with the 1-minute load
average read just after it (the machine may be shared: read ratios with the load beside them).

int8: the fp32 model with every `nn.Linear` (lm_head included unless `--int8-keep-head`) replaced by dynamic int8
quantisation (`torch.ao.quantization.quantize_dynamic`, qint8 weights with one scale per tensor, or per output
channel with `--int8-per-channel`; activations quantised per batch at run time, fp32 in and out; embeddings and
norms stay fp32). Then `--nll-texts` fixed texts (each ToxiGen validation prompt's second half given its first
half: `unidetox.measure.nll_agreement`, as tests/test_inference_dtype.py) are scored in each dtype, and the relative
difference of the mean NLL per token against fp32 is printed (median and max per text, and over all texts).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

# the perplexity benchmark's snippets (this script's folder is on sys.path when run as a script)
from bench_perplexity import fixed_continuations

from unidetox.config import DataConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.likelihood import continuation_logprobs_shared
from unidetox.measure.nll_agreement import nll_agreement
from unidetox.method.generate import GenerationSettings, generate_unit, unit_generator
from unidetox.models.loading import load_model
from unidetox.models.precision import cpu_has_native_bf16

DTYPES = ("fp32", "bf16", "int8")


def load_in(spec: str, name: str, per_channel: bool = False, keep_head: bool = False):
    """`spec` loaded with fp32 or bf16 weights, or (int8) fp32 with its linear layers dynamically quantised: one
    weight scale per tensor, or per output channel with `per_channel`; lm_head left in fp32 with `keep_head`."""
    if name != "int8":
        return load_model(spec, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[name])
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    lm = load_model(spec, dtype=torch.float32)
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    layers = {n: qconfig for n, m in lm.model.named_modules()
              if isinstance(m, torch.nn.Linear) and not (keep_head and n.split(".")[-1] == "lm_head")}  # fmt: skip
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not a dependency)
        warnings.simplefilter("ignore")
        lm.model = quantize_dynamic(lm.model, layers, dtype=torch.qint8)
    return lm


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
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES, help="fp32 is always included")
    ap.add_argument("--rows", type=int, default=64, help="sequences per generation batch")
    ap.add_argument("--prompts", type=int, default=8, help="distinct prompts in the batch (rows // prompts samples)")
    ap.add_argument("--tokens", type=int, default=20, help="new tokens per row")
    ap.add_argument("--k", type=int, default=8, help="continuations per prompt for perplexity scoring")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--int8-per-channel", action="store_true", help="int8: one weight scale per output channel")
    ap.add_argument("--int8-keep-head", action="store_true", help="int8: leave lm_head in fp32")
    ap.add_argument("--nll-texts", type=int, default=24, help="fixed texts for the NLL agreement check (0: skip)")
    args = ap.parse_args()
    names = ["fp32"] + [d for d in args.dtypes if d != "fp32"]
    ps = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=max(1, args.prompts // 4), seed=0)
    prompts = ps.text.tolist()[: args.prompts]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu native bf16: {cpu_has_native_bf16()}, "
          f"quantized engine {torch.backends.quantized.engine}, cores {os.cpu_count()}, "
          f"load before {tuple(round(x, 2) for x in os.getloadavg())}")  # fmt: skip
    print(f"generation: {len(prompts)} prompts x {args.rows // len(prompts)} samples = {args.rows} rows, "
          f"{args.tokens} new tokens; perplexity: {len(prompts)} prompts x {args.k} continuations of {args.tokens} "
          f"tokens; best of {args.repeats}; int8 weights: one scale per "
          f"{'output channel' if args.int8_per_channel else 'tensor'}, lm_head "
          f"{'fp32' if args.int8_keep_head else 'int8'}\n")  # fmt: skip
    print("| model | task | " + " | ".join(f"{n} tok/s | load" for n in names) + " | "
          + " | ".join(f"{n} / fp32" for n in names[1:]) + " |")  # fmt: skip
    print("|---|---|" + "---:|---:|" * len(names) + "---:|" * (len(names) - 1))
    agreement = {}
    for spec in args.models:
        lms = {name: load_in(spec, name, args.int8_per_channel, args.int8_keep_head) for name in names}
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
            cells = " | ".join(f"{best[n][0]:.0f} | {best[n][1]:.2f}" for n in names)
            ratios = " | ".join(f"{best[n][0] / best['fp32'][0]:.2f}" for n in names[1:])
            print(f"| {spec} | {task} | {cells} | {ratios} |", flush=True)
        if args.nll_texts:
            ps_nll = load_toxigen_prompts(
                DataConfig(), "validation", prompts_per_domain=-(-args.nll_texts // 4), seed=0
            )
            agreement[spec] = nll_agreement(lms, ps_nll.text.tolist()[: args.nll_texts])
        del lms
    print(f"\nload after {tuple(round(x, 2) for x in os.getloadavg())}")
    if agreement:
        print(f"\nrelative difference of the mean NLL per token vs fp32, {args.nll_texts} fixed texts\n")
        print("| model | dtype | median per text | max per text | over all texts |\n|---|---|---:|---:|---:|")
        for spec, rows in agreement.items():
            for name in names[1:]:
                med, mx, corpus = rows[name]
                print(f"| {spec} | {name} | {med:.2%} | {mx:.2%} | {corpus:.2%} |")


if __name__ == "__main__":
    main()
