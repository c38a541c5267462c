"""Where a sampling step's time goes outside the model: each operation of the sampler timed on real logits.

    OMP_NUM_THREADS=2 PYTHONPATH=. .venv/bin/python benchmarks/profile_sampler.py
        [--models packaged:smollm2-135m packaged:gemma3-270m] [--batches 64 128] [--dtype bf16] [--repeats 20]

For each model and batch: one forward of ``batch`` rows of 24 random tokens (``logits_to_keep=1``) gives real
next-token logits ``(B, V)`` in the evaluation dtype; then each step of a sampler is timed on them (median of
`repeats` runs, milliseconds): the bare loop's ``argmax``; the float conversion, ``log_softmax`` and ``topk``
over the whole vocabulary; the top-p filter, softmax and draw on the k candidates; and the whole
:func:`unidetox.method.sampling.sample` on the raw logits (what plain sampling now does) and on float log-probs
(what it did before). The model's own decode step at that batch is timed beside them, for scale.

Benchmarks are meaningless on a shared machine: run it alone and report ``uptime``'s load with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from bench_roofline import DTYPES, bare_decode

from unidetox.method.sampling import SamplingParams, make_generator, sample, top_p_filter
from unidetox.models.loading import load_model


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@torch.no_grad()
def timings(lm, batch: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of the model's decode step and of each sampler operation at `batch` rows."""
    ids = torch.randint(100, 1000, (batch, 24), generator=torch.Generator().manual_seed(0))
    logits = lm.model(input_ids=ids, use_cache=True, logits_to_keep=1).logits[:, -1, :]
    logp = torch.log_softmax(logits.float(), dim=-1)
    vals = torch.topk(logits, 50, dim=-1).values.float()
    params, g = SamplingParams(1.0, 50, 0.9), make_generator("cpu", 0)
    steps = 10
    rows = {
        "model decode step (bare loop / steps)": lambda: bare_decode(lm.model, ids, steps) / steps * 1000,
        "argmax (the bare loop)": lambda: logits.argmax(-1),
        "float()": lambda: logits.float(),
        "log_softmax(float)": lambda: torch.log_softmax(logits.float(), dim=-1),
        "topk 50 (raw logits)": lambda: torch.topk(logits, 50, dim=-1),
        "topk 50 (float log-probs)": lambda: torch.topk(logp, 50, dim=-1),
        "top-p + softmax + draw on 50": lambda: torch.multinomial(top_p_filter(vals, 0.9).softmax(-1), 1, generator=g),
        "sample(raw logits) (now)": lambda: sample(logits, params, g),
        "sample(log_softmax(float)) (before)": lambda: sample(torch.log_softmax(logits.float(), dim=-1), params, g),
    }
    out = {}
    for name, fn in rows.items():
        if name.startswith("model"):
            fn()
            out[name] = statistics.median(fn() for _ in range(max(1, repeats // 5)))
        else:
            out[name] = median_ms(fn, repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 128])
    ap.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for spec in args.models:
        lm = load_model(spec, dtype=DTYPES[args.dtype])
        for b in args.batches:
            print(f"\n{spec} {args.dtype} batch {b}, vocabulary {lm.model.config.vocab_size}:")
            for name, ms in timings(lm, b, args.repeats).items():
                print(f"  {name:40s} {ms:8.2f} ms", flush=True)
    print(f"\nload {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
