"""The evaluator against the official code's pattern, on the same prompts and model.

    python benchmarks/bench_evaluate.py --models packaged:smollm2-135m packaged:gemma3-270m --prompts 16 --k 10

(a) `unidetox.measure.evaluate.generate_and_score`: prompts batched with left padding (several prompts x k samples per
    forward pass), KV cache, toxicity scored in batches;
(b) the official UniDetox evaluator's pattern: one `pipeline("text-generation")` call per prompt with
    `num_return_sequences=k`, the continuation cut from the text, then one toxicity call per continuation.
Both use the same scorer (default `toxblock`, the offline stand-in for Detoxify) and sampling settings.
Prints, for each model in `--models` (one JSON object per line), wall seconds for each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from unidetox.config import DataConfig, EvalConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.evaluate import generate_and_score
from unidetox.measure.scorers import load_scorer
from unidetox.models.loading import load_model


def official_pattern(lm, prompts, k, tokens, scorer):
    from transformers import pipeline

    pipe = pipeline("text-generation", model=lm.model, tokenizer=lm.tokenizer, batch_size=64)
    out = []
    for prompt in prompts:
        gens = pipe(prompt, max_new_tokens=tokens, temperature=1.0, top_p=0.9, top_k=50, do_sample=True,
                    num_return_sequences=k, pad_token_id=lm.tokenizer.pad_token_id)  # fmt: skip
        for g in gens:
            cont = g["generated_text"].replace(prompt, "")
            out.append(float(scorer.score([cont])[0]))
    return out


def compare(spec: str, args) -> dict:
    """Wall seconds of (a) and (b) on `spec`, and their ratio."""
    lm = load_model(spec)  # fp32: the official code's default, for both unless --ours-dtype says otherwise
    ours_lm = lm if args.ours_dtype == "fp32" else load_model(spec, dtype=torch.bfloat16)
    scorer = load_scorer(args.scorer)
    ps = load_toxigen_prompts(DataConfig(), "validation").head(args.prompts).reset_index(drop=True)
    cfg = EvalConfig(samples_per_prompt=args.k, max_new_tokens=args.tokens, seeds=(42,), batch_size=args.batch,
                     scorer=args.scorer)  # fmt: skip
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        generate_and_score(ours_lm, ps, cfg, scorer, Path(d) / "g.jsonl", progress=False)
        ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    official_pattern(lm, ps.text.tolist(), args.k, args.tokens, scorer)
    theirs = time.perf_counter() - t0
    n = args.prompts * args.k
    return {"model": spec, "scorer": args.scorer, "prompts": args.prompts, "k": args.k, "new_tokens": args.tokens,
            "batch": args.batch, "threads": torch.get_num_threads(), "ours_dtype": args.ours_dtype, "ours_s": round(ours, 2),
            "official_pattern_s": round(theirs, 2), "ours_continuations_per_s": round(n / ours, 1),
            "speedup": round(theirs / ours, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--scorer", default="toxblock")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ours-dtype", choices=["fp32", "bf16"], default="fp32",
                    help="weights of (a); bf16 = what eval.inference_dtype=auto picks on a CPU with native bf16 "
                    "or a GPU; (b) always runs fp32, the official code's default")  # fmt: skip
    args = ap.parse_args()
    for spec in args.models:
        print(json.dumps(compare(spec, args)), flush=True)


if __name__ == "__main__":
    main()
