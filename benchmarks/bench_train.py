"""Fine-tuning throughput of one model on real text (the toxic-model, expert and detox stages), fp32 or bf16 autocast.

    python benchmarks/bench_train.py --model packaged:smollm2-135m --steps 30 --batch 8 --length 40 \
        --precision fp32 bf16 --lr 1e-4

Trains `--steps` optimizer steps on DGHS dev hate rows with `unidetox.method.train.train_causal_lm` (no
checkpoints), once per `--precision` (``scale.mixed_precision``: fp32, or bf16 autocast of the forward pass with
fp32 weights and AdamW state), from the same weights and seed. Prints per precision: seconds per step and training
tokens per second (a 1-step run is timed first and subtracted, so loading and the first step's warm-up do not
count), the load average after the run, and the loss curve; then, against fp32, the largest and the mean absolute
difference of the per-step training losses and the difference of the validation loss on `--val` held-out rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from unidetox.config import DataConfig, ScaleConfig, TrainConfig
from unidetox.data.dghs import load_dghs
from unidetox.method.train import train_causal_lm
from unidetox.models.loading import load_model


def run(args, precision: str, texts: list[str], val: list[str]) -> dict:
    """Time `args.steps` steps in `precision` (minus a 1-step run); the full run's losses and validation loss."""
    scale = ScaleConfig(mixed_precision=precision, memory_check=False)
    out = {}
    for steps in (1, args.steps + 1):
        lm = load_model(args.model, device="cpu")  # fresh weights: both runs start from the same point
        cfg = TrainConfig(learning_rate=args.lr, max_steps=steps, batch_size=args.batch, max_length=args.length,
                          seed=args.seed, checkpoint_every=0)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train_causal_lm(lm, texts, cfg, tmp, device="cpu", progress=False, scale=scale,
                                  val_texts=val if steps > 1 else ())  # fmt: skip
            out[steps] = (time.perf_counter() - t0, res)
    per_step = (out[args.steps + 1][0] - out[1][0]) / args.steps
    res = out[args.steps + 1][1]
    return {"precision": precision, "seconds_per_step": round(per_step, 3),
            "tokens_per_second_max": round(args.batch * args.length / per_step, 1),
            "load_after": round(os.getloadavg()[0], 2), "losses": [round(x, 4) for x in res.losses],
            "val_loss": round(res.val_loss, 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="packaged:smollm2-135m")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--val", type=int, default=64, help="held-out DGHS rows for the validation loss")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16"))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = load_dghs(DataConfig(), ["dev"]).text.tolist()
    texts, val = rows[args.val :], rows[: args.val]
    print(f"torch {torch.__version__}, {args.threads} threads, load before {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for precision in args.precision:
        results.append(run(args, precision, texts, val))
        print(json.dumps({"model": args.model, "batch": args.batch, "length": args.length, **results[-1]}),
              flush=True)  # fmt: skip
    ref = results[0]
    for r in results[1:]:
        diff = np.abs(np.array(r["losses"]) - np.array(ref["losses"]))
        print(f"{r['precision']} vs {ref['precision']}: speed {ref['seconds_per_step'] / r['seconds_per_step']:.2f}x; "
              f"per-step training loss |diff| max {diff.max():.4f}, mean {diff.mean():.4f} nats/token; "
              f"validation loss {r['val_loss']:.4f} vs {ref['val_loss']:.4f} "
              f"({(r['val_loss'] - ref['val_loss']) / ref['val_loss']:+.2%})")  # fmt: skip


if __name__ == "__main__":
    main()
