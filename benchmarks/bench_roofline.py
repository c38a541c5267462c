"""How close generation runs to this machine's limit: matmul peak, FLOPs per generated token, tokens/s.

    .venv/bin/python benchmarks/bench_roofline.py [--models packaged:smollm2-135m packaged:gemma3-270m]
        [--batches 1 32 64 128] [--prompt-tokens 24] [--new-tokens 20] [--dtypes fp32 bf16] [--json out.json]

1. Peak: GFLOP/s of a square matmul (n = 1024 and 2048; best of 5) in fp32 and bf16, with torch's threads.
2. Per model: FLOPs per generated token with a KV cache, from the model's shapes: ``2 x`` the weights of every
   linear layer (output head included) plus attention's ``4 x layers x context x attention width``.
3. Per model, dtype and batch: tokens/s of (a) a bare KV-cached greedy decode loop (``model(...)`` only) and
   (b) the project's sampler (`unidetox.method.sampling.sample_loop`: top-k, top-p, multinomial) on the same rows;
   each printed with its fraction of the dtype's matmul peak.

Benchmarks are meaningless on a shared machine: run it alone and report ``uptime``'s load with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from unidetox.method.sampling import CausalLMSource, SamplingParams, make_generator, sample_loop
from unidetox.models import load_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """GFLOP/s of ``(n, n) @ (n, n)``: best of `repeats` timed runs after one warm-up."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_token(model: torch.nn.Module, context: int) -> float:
    """Forward FLOPs of one generated token at `context` cached positions (multiply-add = 2 FLOPs)."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    return 2 * linear + 4 * layers * context * heads * head_dim


@torch.no_grad()
def bare_decode(model, ids: torch.Tensor, new: int) -> float:
    """Seconds for a greedy KV-cached loop of `new` steps over the batch `ids` ``(B, P)``."""
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    cache, tok = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(new - 1):
        out = model(input_ids=tok, cache=cache, use_cache=True, logits_to_keep=1)
        cache, tok = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
    return time.perf_counter() - t0


@torch.no_grad()
def project_sampler(lm, ids: torch.Tensor, new: int) -> float:
    """Seconds for `unidetox.method.sampling.sample_loop` (top-k 50, top-p 0.9) on the same rows, EOS ignored."""
    source = CausalLMSource(lm.model)
    mask = torch.ones_like(ids)
    t0 = time.perf_counter()
    sample_loop(source, ids, mask, max_new_tokens=new, params=SamplingParams(1.0, 50, 0.9),
                generator=make_generator("cpu", 0), eos_token_id=None, pad_token_id=0)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32, 64, 128])
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    ap.add_argument("--prompt-tokens", type=int, default=24)
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    peak = {name: max(matmul_peak(dt, n) for n in (1024, 2048)) for name, dt in DTYPES.items()}
    print("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    rows = []
    for spec in args.models:
        for dname in args.dtypes:
            lm = load_model(spec, dtype=DTYPES[dname])
            ctx = args.prompt_tokens + args.new_tokens // 2  # mean context over the generated tokens
            fpt = flops_per_token(lm.model, ctx)
            for b in args.batches:
                g = torch.Generator().manual_seed(0)
                ids = torch.randint(100, 1000, (b, args.prompt_tokens), generator=g)
                bare_decode(lm.model, ids[:, :4], 2)  # warm-up
                tokens = b * args.new_tokens
                runs = (("bare loop", bare_decode, lm.model), ("unidetox sampler", project_sampler, lm))
                for how, fn, model in runs:
                    secs = fn(model, ids, args.new_tokens)
                    tps = tokens / secs
                    frac = tps * fpt / 1e9 / peak[dname]
                    rows.append({"model": spec, "dtype": dname, "batch": b, "how": how, "tokens_per_s": tps,
                                 "gflop_per_token": fpt / 1e9, "fraction_of_peak": frac})  # fmt: skip
                    print(f"{spec:24s} {dname:5s} batch {b:4d} {how:17s} {tps:8.1f} tok/s  "
                          f"{fpt / 1e9:.3f} GFLOP/token  {100 * frac:5.1f}% of {dname} peak", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "load": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
