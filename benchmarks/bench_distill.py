"""Throughput of the contrastive decoder against plain sampling from one model, same batch size.

    python benchmarks/bench_distill.py --model packaged:smollm2-135m --batch 8 --tokens 64 --repeats 2

The 'toxic' model is a copy of the base with its final norm perturbed (the throughput does not depend on
the weights). Prints tokens/second for: the contrastive decoder (two models, two KV caches), plain sampling
through the same loop (one model), and transformers' `generate` (one model) as a reference point.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from unidetox.method.distill import ContrastiveSource
from unidetox.method.sampling import CausalLMSource, SamplingParams, make_generator, sample_loop
from unidetox.models.loading import load_model


def _time(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="packaged:smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_model(args.model)
    toxic = copy.deepcopy(base.model)
    with torch.no_grad():
        for p in toxic.parameters():
            p.mul_(1.01)
    start = torch.full((args.batch, 1), base.start_token_id)
    mask = torch.ones_like(start)
    params = SamplingParams(top_k=50)
    n = args.batch * args.tokens

    def run(source):
        return sample_loop(source, start, mask, max_new_tokens=args.tokens, params=params,
                           generator=make_generator("cpu", 0), eos_token_id=None, pad_token_id=0)  # fmt: skip

    t_cd = _time(lambda: run(ContrastiveSource(base.model, toxic, 0.1)), args.repeats)
    t_plain = _time(lambda: run(CausalLMSource(base.model)), args.repeats)
    with torch.no_grad():
        t_hf = _time(lambda: base.model.generate(start, attention_mask=mask, do_sample=True, top_k=50,
                                                 max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                                 pad_token_id=base.tokenizer.pad_token_id), args.repeats)  # fmt: skip
    out = {
        "model": args.model, "batch": args.batch, "new_tokens": args.tokens, "threads": torch.get_num_threads(),
        "contrastive_tok_s": round(n / t_cd, 1), "plain_tok_s": round(n / t_plain, 1),
        "hf_generate_tok_s": round(n / t_hf, 1), "contrastive_over_plain": round(t_cd / t_plain, 2),
    }  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
