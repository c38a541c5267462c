"""Where an evaluation's time goes: shares of one small cpu-like evaluation run, per part.

    OMP_NUM_THREADS=1 python benchmarks/profile_evaluate.py --models packaged:smollm2-135m packaged:gemma3-270m

Runs `generate_and_score` (one seed) and `score_perplexity` on the first `--prompts` validation prompts under
cProfile and prints, per model, the share of wall time in: loading, the transformer body, the LM head,
log-softmax, top-k/top-p sampling, tokenizing/decoding, the toxicity scorer and the perplexity model. Shares,
not absolute times, are the point: run it on a shared machine if need be.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

import torch

from unidetox.config import DataConfig, EvalConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.evaluate import generate_and_score, score_perplexity
from unidetox.measure.scorers import load_scorer
from unidetox.models import load_model


def _head_timer(model, store: list[float]):
    """Hooks adding the LM head's wall seconds to ``store[0]``."""
    head = model.get_output_embeddings()
    t: list[float] = [0.0]
    head.register_forward_pre_hook(lambda *_: t.__setitem__(0, time.perf_counter()))
    head.register_forward_hook(lambda *_: store.__setitem__(0, store[0] + time.perf_counter() - t[0]))


def _seconds(stats: pstats.Stats, names: tuple[str, ...]) -> float:
    """Cumulative seconds of the profiled functions whose qualified name ends with one of `names`."""
    total = 0.0
    for (file, _, func), (_, _, _, cum, _) in stats.stats.items():
        if any(f"{Path(file).stem}.{func}".endswith(n) for n in names):
            total += cum
    return total


def _tokenizer_seconds(stats: pstats.Stats) -> float:
    """Cumulative seconds in tokenizers' ``__call__`` and ``decode`` (the outermost calls of each)."""
    return sum(
        v[3]
        for (file, _, func), v in stats.stats.items()
        if Path(file).stem.startswith("tokenization_utils") and func in ("__call__", "decode")
    )


def profile(spec: str, ppl_spec: str, n_prompts: int, k: int, tokens: int) -> dict:
    """Wall seconds per part of one evaluation of `spec` (one seed), and each part's share of the total."""
    t0 = time.perf_counter()
    lm, ppl_lm, scorer = load_model(spec), load_model(ppl_spec), load_scorer("toxblock")
    load = time.perf_counter() - t0
    head, ppl_head = [0.0], [0.0]
    _head_timer(lm.model, head)
    _head_timer(ppl_lm.model, ppl_head)
    ps = load_toxigen_prompts(DataConfig(), "validation").head(n_prompts).reset_index(drop=True)
    cfg = EvalConfig(samples_per_prompt=k, max_new_tokens=tokens, seeds=(42,), batch_size=96, scorer="toxblock")
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        prof.enable()
        gens = generate_and_score(lm, ps, cfg, scorer, Path(d) / "g.jsonl", progress=False)
        t_gen = time.perf_counter() - t0
        score_perplexity(ppl_lm, gens, Path(d) / "p.jsonl", progress=False)
        prof.disable()
        total = time.perf_counter() - t0
    st = pstats.Stats(prof)
    model_fwd = _seconds(st, ("sampling._forward",))
    softmax = _seconds(st, ("log_softmax",))
    parts = {
        "loading": load,
        "transformer body": model_fwd - softmax - head[0],
        "lm head": head[0],
        "log-softmax": softmax,
        "top-k/top-p + draw": _seconds(st, ("sampling.sample",)),
        "tokenize/decode/pad": _tokenizer_seconds(st),
        "scorer": _seconds(st, ("evaluate.checked_scores",)),
        "perplexity model": total - t_gen,
    }
    parts["other"] = load + total - sum(parts.values())
    whole = load + total
    return {"model": spec, "seconds": round(whole, 2), "share": {k: round(v / whole, 3) for k, v in parts.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["packaged:smollm2-135m", "packaged:gemma3-270m"])
    ap.add_argument("--perplexity-model", default="packaged:gemma3-270m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    for spec in args.models:
        print(json.dumps(profile(spec, args.perplexity_model, args.prompts, args.k, args.tokens), indent=2))


if __name__ == "__main__":
    main()
