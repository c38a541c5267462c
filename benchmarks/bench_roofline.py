"""How close generation runs to this machine's two limits, compute and memory bandwidth: the roofline of decoding.

    .venv/bin/python benchmarks/bench_roofline.py [--models packaged:smollm2-135m packaged:gemma3-270m]
        [--batches 1 32 64 128] [--prompt-tokens 24] [--new-tokens 20] [--dtypes fp32 bf16] [--json out.json]

1. Compute roof: GFLOP/s of a square matmul (n = 1024 and 2048; best of 5) in fp32 and bf16, with torch's threads.
2. Bandwidth roof: GB/s of a STREAM-like copy of a 512 MiB buffer (bytes read + bytes written over the best of 5
   runs, torch's threads), the rate at which a decode step can stream the weights from memory.
3. Per model: FLOPs per generated token with a KV cache, from the model's shapes: ``2 x`` the weights of every
   linear layer (output head included) plus attention's ``4 x layers x context x attention width``; and bytes per
   decode step: every linear weight read once (the head included; the input embedding reads only the batch's rows)
   plus the KV cache read by attention, ``2 x layers x kv heads x head dim x context x batch`` elements.
4. Per model, dtype and batch: tokens/s of (a) a bare KV-cached greedy decode loop (``model(...)`` only) and
   (b) the project's sampler (`unidetox.method.sampling.sample_loop`: top-k, top-p, multinomial) on the same rows.
   Each row gets both roofs in tokens/s (compute: peak / FLOPs per token; bandwidth: batch x GB/s / bytes per
   step), the one that binds (the lower), and its fraction of it.

Benchmarks are meaningless on a shared machine: run it alone and report ``uptime``'s load with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from unidetox.method.sampling import CausalLMSource, SamplingParams, make_generator, sample_loop
from unidetox.models.loading import load_model

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


def copy_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """GB/s of ``dst.copy_(src)`` over `mib` MiB buffers (bytes read + written), best of `repeats` after a warm-up."""
    src = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * src.element_size() / best / 1e9


def _shape(cfg, *names: str) -> int:
    for n in names:
        if getattr(cfg, n, None):
            return int(getattr(cfg, n))
    raise ValueError(f"config has none of {names}")


def bytes_per_step(model: torch.nn.Module, context: int, batch: int) -> float:
    """Bytes one decode step reads: each linear weight once (output head included) plus the KV cache at `context`."""
    linear = sum(m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    layers = _shape(cfg, "num_hidden_layers", "n_layer")
    heads = _shape(cfg, "num_attention_heads", "n_head")
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    itemsize = next(model.parameters()).element_size()
    return linear + 2 * layers * kv_heads * head_dim * context * batch * itemsize


def roofs(peak_gflops: float, bandwidth_gbs: float, fpt: float, step_bytes: float, batch: int) -> dict:
    """Tokens/s under each roof, which one binds (the lower), and that lower bound."""
    compute = peak_gflops * 1e9 / fpt
    memory = batch * bandwidth_gbs * 1e9 / step_bytes
    return {"compute_roof": compute, "bandwidth_roof": memory, "binds": "compute" if compute <= memory else "bandwidth",
            "roof": min(compute, memory)}  # fmt: skip


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
    source = CausalLMSource(lm.model, log_probs=False)  # as the evaluator's plain sampling
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
    bandwidth = copy_bandwidth()
    print("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()) +
          f"; copy bandwidth {bandwidth:.1f} GB/s")  # fmt: skip
    rows = []
    for spec in args.models:
        for dname in args.dtypes:
            lm = load_model(spec, dtype=DTYPES[dname])
            ctx = args.prompt_tokens + args.new_tokens // 2  # mean context over the generated tokens
            fpt = flops_per_token(lm.model, ctx)
            for b in args.batches:
                roof = roofs(peak[dname], bandwidth, fpt, bytes_per_step(lm.model, ctx, b), b)
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
                                 "gflop_per_token": fpt / 1e9, "fraction_of_peak": frac, **roof,
                                 "fraction_of_roof": tps / roof["roof"]})  # fmt: skip
                    print(f"{spec:24s} {dname:5s} batch {b:4d} {how:17s} {tps:8.1f} tok/s  "
                          f"roofs: compute {roof['compute_roof']:7.0f}, bandwidth {roof['bandwidth_roof']:7.0f} tok/s; "
                          f"{roof['binds']} binds: {100 * tps / roof['roof']:5.1f}% of it", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"peak_gflops": peak, "copy_bandwidth_gbs": bandwidth, "load": os.getloadavg(), "rows": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
