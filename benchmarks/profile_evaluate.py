"""Where an evaluation's time goes: shares of one small cpu-like evaluation run, per part.

    OMP_NUM_THREADS=1 python benchmarks/profile_evaluate.py --models packaged:smollm2-135m packaged:gemma3-270m

Runs `generate_and_score` (one seed; the cpu profile's k = 3, 20 new tokens, top-k 50, top-p 0.9, batch 96) and
`score_perplexity` on the first `--prompts` validation prompts and prints, per model, the share of wall time in:
loading (the three models), the toxicity scorer, the perplexity model, and generation split by torch.profiler's
self CPU time per op into the LM head, log-softmax, top-k/top-p + draw, KV-cache/mask copies and the transformer
body with everything else. Shares, not absolute times, are the point: run it on a shared machine if need be.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as profile_ops

from unidetox.config import DataConfig, EvalConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.evaluate import generate_and_score, score_perplexity
from unidetox.measure.scorers import load_scorer
from unidetox.models.loading import load_model


class _TimedScorer:
    """A scorer that adds its wall seconds to ``seconds``."""

    def __init__(self, scorer):
        self.scorer, self.seconds = scorer, 0.0
        self.name, self.version = scorer.name, scorer.version

    def score(self, texts):
        t0 = time.perf_counter()
        out = self.scorer.score(texts)
        self.seconds += time.perf_counter() - t0
        return out


def _part(name: str, shapes, vocab: int) -> str:
    """The part of generation an aten op belongs to."""
    if name in ("aten::mm", "aten::addmm") and shapes and shapes[-1] and shapes[-1][-1] == vocab:
        return "lm head"
    if name == "aten::_log_softmax":
        return "log-softmax"
    if name in ("aten::topk", "aten::sort", "aten::multinomial", "aten::_softmax", "aten::cumsum", "aten::div"):
        return "top-k/top-p + draw"
    if name in ("aten::cat", "aten::copy_", "aten::index_select", "aten::repeat_interleave"):
        return "cache/mask copies"
    return "transformer body + rest"


def profile(spec: str, ppl_spec: str, n_prompts: int, k: int, tokens: int, batch: int) -> dict:
    """Wall seconds per part of one evaluation of `spec` (one seed), and each part's share of the total."""
    t0 = time.perf_counter()
    lm, ppl_lm, scorer = load_model(spec), load_model(ppl_spec), _TimedScorer(load_scorer("toxblock"))
    parts = {"loading": time.perf_counter() - t0}
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    ps = load_toxigen_prompts(DataConfig(), "validation").head(n_prompts).reset_index(drop=True)
    cfg = EvalConfig(samples_per_prompt=k, max_new_tokens=tokens, seeds=(42,), batch_size=batch, scorer="toxblock")
    with tempfile.TemporaryDirectory() as d:
        with profile_ops(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t0 = time.perf_counter()
            gens = generate_and_score(lm, ps, cfg, scorer, Path(d) / "g.jsonl", progress=False)
            t_gen = time.perf_counter() - t0 - scorer.seconds
        t0 = time.perf_counter()
        score_perplexity(ppl_lm, gens, Path(d) / "p.jsonl", progress=False)
        parts["perplexity model"] = time.perf_counter() - t0
    parts["scorer"] = scorer.seconds
    ops: dict[str, float] = {}
    for e in prof.key_averages(group_by_input_shape=True):
        part = _part(e.key, e.input_shapes, vocab)
        ops[part] = ops.get(part, 0.0) + e.self_cpu_time_total
    total_ops = sum(ops.values())
    for part, us in ops.items():  # generation's wall time split in proportion to the ops' self CPU time
        parts[f"generate: {part}"] = t_gen * us / total_ops
    whole = sum(parts.values())
    shares = {p: round(v / whole, 3) for p, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    return {"model": spec, "perplexity_model": ppl_spec, "seconds": round(whole, 2), "share": shares}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--perplexity-model", default="packaged:gemma3-270m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--batch", type=int, default=96)
    args = ap.parse_args()
    torch.manual_seed(0)
    for spec in args.models:
        print(json.dumps(profile(spec, args.perplexity_model, args.prompts, args.k, args.tokens, args.batch), indent=2))


if __name__ == "__main__":
    main()
