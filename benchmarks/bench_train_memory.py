"""Peak resident memory of one full fine-tune on a CPU, with AdamW's fused and foreach implementations.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train_memory.py [--target packaged:gemma3-270m] [--steps 4]

Each variant runs ``unidetox detox --target T --texts <released text> --steps N`` (batch 4 x 40 tokens, the cpu
profile's detox shape) in a fresh process and a fresh run store, and prints its peak RSS (``ru_maxrss`` of the
child) and wall seconds, beside the process after loading the model alone and the fp32 training state that no
implementation avoids: weights + gradients + AdamW's two moments = 16 bytes per parameter. ``foreach`` (torch's
default on a CPU) takes a temporary of every parameter's size for the update; ``fused`` (what unidetox uses)
takes none. The rest of the peak is the process (torch, tokenizer), the bf16 autocast copies of the weights kept
for backward, the logits of the 262k-token head and the tied embedding's second gradient.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, torch
impl = sys.argv[1]
if impl != "fused":  # unidetox passes fused=True; the baseline is torch's default
    class AdamW(torch.optim.AdamW):
        def __init__(self, *a, **k):
            k["fused"] = None
            super().__init__(*a, **k)
    torch.optim.AdamW = AdamW
if impl == "load-only":
    from unidetox.models.loading import load_model
    lm = load_model(sys.argv[2])
    raise SystemExit(0)
from unidetox.cli import main
sys.argv = ["unidetox", "detox", "--profile", "cpu", "--quiet", "--target", sys.argv[2], "--texts", sys.argv[3],
            "--steps", sys.argv[4], "--batch-size", "4", "--max-length", "40", "--learning-rate", "5e-5",
            "--out", sys.argv[5]]
main()
"""


def run(impl: str, target: str, texts: str, steps: int) -> tuple[float, float]:
    """(peak RSS GiB, wall seconds) of one child process (its own rusage, from wait4)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", CHILD, impl, target, texts, str(steps),
                                  str(Path(tmp) / "out")], cwd=tmp, env={**os.environ, "PYTHONPATH": str(Path.cwd())})  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
    if child.returncode:
        raise SystemExit(f"error: the {impl} child failed with status {child.returncode}")
    return usage.ru_maxrss / 2**20, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="packaged:gemma3-270m")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--impls", nargs="+", default=["fused", "foreach"], choices=["fused", "foreach"])
    args = ap.parse_args()
    data = Path(os.environ.get("UNIDETOX_DATA_DIR", "../shared/data"))
    texts = str(next((data / "unidetox_released").glob("*.csv")))

    from unidetox.models.loading import load_model

    params = sum(p.numel() for p in load_model(args.target).model.parameters())
    state = 16 * params / 2**30
    print(f"{args.target}: {params / 1e6:.0f}M parameters; fp32 weights + grads + AdamW moments = {state:.2f} GiB; "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    load_peak, _ = run("load-only", args.target, texts, args.steps)
    print(f"{'load the model only':22s} peak {load_peak:5.2f} GiB")
    for impl in args.impls:
        peak, wall = run(impl, args.target, texts, args.steps)
        print(f"{'detox, AdamW ' + impl:22s} peak {peak:5.2f} GiB  wall {wall:6.1f} s  "
              f"(above the training state and the loaded process: {peak - state - load_peak + 4 * params / 2**30:.2f} GiB)")  # fmt: skip
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
