"""Conditional-perplexity scoring: one forward pass per (prompt, continuation) pair against a shared prompt prefill.

    python benchmarks/bench_perplexity.py --model packaged:gemma3-270m --prompts 24 --k 8

Pairs are built as in an evaluation: ToxiGen validation prompts (``prompts_per_domain = prompts / 4``, seed 0),
k continuations each, scored one unit (``64 // k`` prompts x k continuations, as `unidetox.measure.evaluate` plans
them) per call. Continuations are either sampled from SmolLM2 (``--source smollm2``, 20 new tokens, top-p 0.9) or
``--source fixed``: k different 20-token snippets of other prompts' text per prompt.

(a) `continuation_logprobs`: every pair's prompt + continuation in one padded forward pass;
(b) `continuation_logprobs_shared`: each distinct prompt prefilled once, its KV cache repeated for its pairs.
Checks that both give the same (sum of log-probs, token count) per pair and prints the max abs difference and the
wall seconds of each path, each run `--repeats` times (alternating), with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from unidetox.config import DataConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.likelihood import continuation_logprobs, continuation_logprobs_shared
from unidetox.models.loading import load_model


def fixed_continuations(tokenizer, prompts: list[str], k: int, tokens: int) -> list[list[str]]:
    """k snippets of `tokens` tokens per prompt, cut from the text of the other prompts (realistic words)."""
    pool = [tokenizer.encode(" " + p, add_special_tokens=False) for p in prompts]
    pool = [ids for ids in pool if len(ids) >= 4] or pool
    out = []
    for i in range(len(prompts)):
        conts = []
        for j in range(k):
            ids: list[int] = []
            n = 0
            while len(ids) < tokens:
                ids += pool[(i + j + 1 + n) % len(pool)][j % 3 :]
                n += 1
            conts.append(tokenizer.decode(ids[:tokens]))
        out.append(conts)
    return out


def sampled_continuations(prompts: list[str], k: int, tokens: int) -> list[list[str]]:
    from unidetox.method.generate import GenerationSettings, generate_unit, unit_generator

    gen = load_model("packaged:smollm2-135m")
    settings = GenerationSettings(samples_per_prompt=k, max_new_tokens=tokens)
    out = []
    for s in range(0, len(prompts), settings.prompts_per_unit):
        batch = prompts[s : s + settings.prompts_per_unit]
        out += generate_unit(gen.model, gen.tokenizer, batch, settings, unit_generator("cpu", 0, s))
    return out


def run(fn, lm, units, batch_size: int) -> tuple[float, list[tuple[float, int]]]:
    t0 = time.perf_counter()
    res = []
    for ps, cs in units:
        res += fn(lm.model, lm.tokenizer, ps, cs, batch_size=batch_size)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="packaged:gemma3-270m")
    ap.add_argument("--prompts", type=int, default=24, help="multiple of 4 (prompts per domain x 4 domains)")
    ap.add_argument("--k", type=int, default=8, help="continuations per prompt")
    ap.add_argument("--tokens", type=int, default=20, help="continuation length in tokens")
    ap.add_argument("--source", choices=["fixed", "smollm2"], default="fixed")
    ap.add_argument("--batch", type=int, default=16, help="batch_size of both paths (rows per forward pass)")
    ap.add_argument("--unit", type=int, default=0, help="prompts per scoring call (default 64 // k, as evaluate)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    lm = load_model(args.model)
    ps = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=max(1, args.prompts // 4), seed=0)
    prompts = ps.text.tolist()[: args.prompts]
    if args.source == "fixed":
        conts = fixed_continuations(lm.tokenizer, prompts, args.k, args.tokens)
    else:
        conts = sampled_continuations(prompts, args.k, args.tokens)
    per_unit = args.unit or max(1, 64 // args.k)
    units = []
    for s in range(0, len(prompts), per_unit):
        pairs = [(p, c) for p, cs in zip(prompts[s : s + per_unit], conts[s : s + per_unit]) for c in cs]
        units.append(([p for p, _ in pairs], [c for _, c in pairs]))
    times: dict[str, list[float]] = {"per_pair": [], "shared": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("per_pair", continuation_logprobs), ("shared", continuation_logprobs_shared)):
            t, results[name] = run(fn, lm, units, args.batch)
            times[name].append(round(t, 2))
    old, new = results["per_pair"], results["shared"]
    assert [n for _, n in old] == [n for _, n in new], "token counts differ"
    diff = float(np.max(np.abs(np.array([s for s, _ in old]) - np.array([s for s, _ in new]))))
    n_tokens = sum(n for _, n in new)
    print(json.dumps({"model": args.model, "source": args.source, "prompts": len(prompts), "k": args.k,
                      "pairs": len(old), "continuation_tokens": n_tokens, "units": len(units), "batch": args.batch,
                      "threads": torch.get_num_threads(), "max_abs_diff_logprob_sum": diff,
                      "per_pair_s": times["per_pair"], "shared_s": times["shared"],
                      "speedup_best": round(min(times["per_pair"]) / min(times["shared"]), 2),
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
