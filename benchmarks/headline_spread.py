"""How far the pinned tiny headline numbers move across machines, and how far a real method change moves them.

Runs ``unidetox pipeline`` + ``unidetox evaluate`` on the tiny profile (as tests/test_determinism.py does) under

- *machine variations* a user's computer brings: 1 or 2 threads, ATen's vector kernels forced to another
  instruction set (``ATEN_CPU_CAPABILITY=default|avx2|avx512``), oneDNN limited to AVX2
  (``ONEDNN_MAX_CPU_ISA``), oneDNN switched off, float32 matmul precision ``high``;
- *method changes*, the smallest a developer would make: alpha 0.10 -> 0.11, one more toxic training step,
  the detox learning-rate grid scaled by 1.01;

and prints, for each run, the largest absolute and relative difference of any pinned number (TP, EMT, PPL)
from the plain run, and whether the distilled texts and the generations are byte-identical.

    .venv/bin/python benchmarks/headline_spread.py [--only NAME ...] [--json out.json]

Each run takes about a minute on 2 cores. State the machine's load next to the figures it prints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import cli_env
from test_determinism import KEY, headline_rows

#: name -> (extra environment, Python run before the CLI, extra CLI arguments)
VARIATIONS: dict[str, tuple[dict[str, str], str, list[str]]] = {
    "plain (1 thread)": ({}, "", []),
    "2 threads": ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, "", []),
    "ATen kernels: default (no SIMD)": ({"ATEN_CPU_CAPABILITY": "default"}, "", []),
    "ATen kernels: avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, "", []),
    "oneDNN max ISA avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "", []),
    "oneDNN off": ({}, "import torch; torch.backends.mkldnn.enabled = False", []),
    "fp32 matmul precision high": ({}, "import torch; torch.set_float32_matmul_precision('high')", []),
    "avx2 + 2 threads + oneDNN avx2": (
        {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "2"},
        "",
        [],
    ),
}
METHOD_CHANGES: dict[str, tuple[dict[str, str], str, list[str]]] = {
    "method: alpha 0.10 -> 0.30": ({}, "", ["--set", "distill.alpha=0.3"]),
    "method: toxic steps 6 -> 7": ({}, "", ["--set", "toxic.train.max_steps=7"]),
    "method: detox lrs x1.01": ({}, "", ["--set", "detox.learning_rates=[1.01e-3,1.01e-4]"]),
    "method: detox max_length 32 -> 31": ({}, "", ["--set", "detox.train.max_length=31"]),
    "method: eval top_p 0.90 -> 0.89": ({}, "", ["--set", "eval.top_p=0.89"]),
}


def run(name: str, env: dict[str, str], pre: str, extra: list[str], root: Path) -> dict:
    runs = root / "runs"
    code = f"import sys; {pre + ';' if pre else ''} from unidetox.cli import main; sys.argv[0] = 'unidetox'; main()"
    for command in ("pipeline", "evaluate"):
        argv = [
            sys.executable,
            "-c",
            code,
            command,
            "--profile",
            "tiny",
            "--quiet",
            "--set",
            f"runs_dir={runs}",
            *extra,
        ]
        proc = subprocess.run(argv, cwd=REPO, env=cli_env(env), capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"{name}: `unidetox {command}` failed:\n{proc.stderr[-2000:]}")
    return {"rows": headline_rows(runs), "texts": _digest(runs, "distill", "texts.jsonl"),
            "generations": _digest(runs, "evaluate", "generations.jsonl")}  # fmt: skip


def _digest(runs: Path, stage: str, name: str) -> str:
    """SHA-256 (16 hex) of the text fields of every stage's stream, records sorted (stage keys and scores left out)."""
    recs = []
    for path in runs.glob(f"*/{stage}/*/{name}"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            recs.append(json.dumps([r.get(k) for k in ("text", "continuation", "prompt_id", "seed", "sample")]))
    return hashlib.sha256("\n".join(sorted(recs)).encode()).hexdigest()[:16]


def _by_key(rows: list[dict]) -> dict:
    """Row key -> value, with each learning rate replaced by its rank in the grid (so a scaled grid still pairs)."""
    lrs = sorted({r["lr"] for r in rows if r["lr"] is not None})
    return {tuple(lrs.index(r[k]) if k == "lr" and r[k] is not None else r[k] for k in KEY): r["value"] for r in rows}


def compare(base: dict, other: dict) -> dict:
    a, b = _by_key(base["rows"]), _by_key(other["rows"])
    common = a.keys() & b.keys()
    diffs = [abs(a[k] - b[k]) for k in common]
    rels = [abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in common]
    return {
        "rows_compared": len(common),
        "rows_only_one_side": len(a.keys() ^ b.keys()),
        "rows_moved": sum(d > 0 for d in diffs),
        "max_abs": max(diffs, default=0.0),
        "max_rel": max(rels, default=0.0),
        "texts_identical": base["texts"] == other["texts"],
        "generations_identical": base["generations"] == other["generations"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="names (substrings) of the runs to make besides the plain one")
    ap.add_argument("--json", type=Path, help="write the comparison table here")
    args = ap.parse_args()
    todo = {**VARIATIONS, **METHOD_CHANGES}
    if args.only:
        todo = {k: v for k, v in todo.items() if k == "plain (1 thread)" or any(s in k for s in args.only)}
    results, table = {}, {}
    with tempfile.TemporaryDirectory(prefix="headline-spread-") as tmp:
        for i, (name, (env, pre, extra)) in enumerate(todo.items()):
            results[name] = run(name, env, pre, extra, Path(tmp) / str(i))
            if name != "plain (1 thread)":
                table[name] = compare(results["plain (1 thread)"], results[name])
                t = table[name]
                print(f"{name:36s} rows moved {t['rows_moved']:4d}/{t['rows_compared']:<4d} max|d| {t['max_abs']:.3e} "
                      f"max rel {t['max_rel']:.3e}  texts {'same' if t['texts_identical'] else 'DIFFER'}  "
                      f"generations {'same' if t['generations_identical'] else 'DIFFER'}"
                      + (f"  ({t['rows_only_one_side']} rows on one side only)" if t["rows_only_one_side"] else ""),
                      flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "runs": table}, indent=1))


if __name__ == "__main__":
    main()
