"""Fine-tuning throughput of one model on real text (the toxic-model, expert and detox stages).

    python benchmarks/bench_train.py --model packaged:smollm2-135m --steps 10 --batch 8 --length 64

Trains `--steps` optimizer steps on DGHS hate rows with `unidetox.method.train.train_causal_lm` (no checkpoints)
and prints seconds per step and training tokens per second (after one warm-up step).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from unidetox.config import DataConfig, TrainConfig
from unidetox.data.dghs import load_dghs
from unidetox.method.train import train_causal_lm
from unidetox.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="packaged:smollm2-135m")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts = load_dghs(DataConfig(), ["dev"]).text.tolist()
    lm = load_model(args.model, device="cpu")
    out = {}
    for steps in (1, args.steps + 1):  # the first run measures the warm-up step alone
        cfg = TrainConfig(learning_rate=1e-5, max_steps=steps, batch_size=args.batch, max_length=args.length)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_causal_lm(lm, texts, cfg, tmp, device="cpu", progress=False)
            out[steps] = time.perf_counter() - t0
    per_step = (out[args.steps + 1] - out[1]) / args.steps
    print(json.dumps({"model": args.model, "batch": args.batch, "length": args.length, "threads": args.threads,
                      "seconds_per_step": round(per_step, 3),
                      "tokens_per_second_max": round(args.batch * args.length / per_step, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
