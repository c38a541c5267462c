"""eval.inference_dtype: evaluation-time models in bf16 where the hardware computes it natively.

The stage keys of fp32 runs on CPU (and of bf16 runs on CUDA) are those from before the setting existed; bf16
scores and samples from fp32 log-probs; and on the real SmolLM2-135M (slow) bf16's headline metrics fall inside
fp32's bootstrap intervals and its per-token log-likelihoods are within a stated tolerance of fp32's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import unidetox.pipeline.evaluation as ev
import unidetox.pipeline.keys as rt
from unidetox.config.loader import load_profile
from unidetox.models import precision as P
from unidetox.models.loading import load_model
from unidetox.pipeline.candidates import untouched
from unidetox.store.registry import Stage
from unidetox.store.run_store import StageDir

# evaluate / mmlu keys of an untouched target, computed with the code before eval.inference_dtype existed
# (main at aca531a): existing fp32 runs must keep them
KEYS_BEFORE = {
    ("tiny", "tiny:gpt2"): ("62f8bb0c9ce48ff2", "c89d3fe54a0c965c"),
    ("cpu", "packaged:smollm2-135m"): ("1cf3b35a158e5844", "ab9e90cd8d127e9f"),
}


def test_inference_dtype_follows_the_setting_the_device_and_the_cpu(monkeypatch):
    """auto: bf16 on CUDA and on a CPU with native bf16 (avx512_bf16 or amx_bf16), else fp32; bf16 / fp32 as set."""
    monkeypatch.setattr(P, "cpu_flags", lambda: {"sse2", "avx2", "avx512f"})
    assert P.inference_dtype("auto", "cpu") == torch.float32
    assert P.inference_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert P.inference_dtype("bf16", "cpu") == torch.bfloat16
    assert P.inference_dtype("fp32", "cuda") == torch.float32
    for flag in P.BF16_CPU_FLAGS:
        monkeypatch.setattr(P, "cpu_flags", lambda flag=flag: {"avx2", flag})
        assert P.inference_dtype("auto", "cpu") == torch.bfloat16
        assert P.inference_dtype("fp32", "cpu") == torch.float32
    monkeypatch.setattr(P, "cpu_flags", set)  # /proc/cpuinfo unreadable (not Linux): fp32
    assert P.inference_dtype("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="auto, bf16 or fp32"):
        P.inference_dtype("fp16", "cpu")


def test_cpu_flags_reads_the_flags_line(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\nbugs\t\t: spectre\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k)
    )
    assert P.cpu_flags() == {"fpu", "avx512f", "avx512_bf16"} and P.cpu_has_native_bf16()


class _Located(Exception):
    pass


def stage_keys(profile, target: str) -> tuple[str, str]:
    """(evaluate key, mmlu key) of `target` untouched, located without loading a model."""
    keys = []

    def locate(stage, profile, config, inputs=None):
        keys.append(StageDir.locate(profile.runs_dir, profile.name, stage.name, config, inputs).key)
        raise _Located

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Stage, "locate", locate)
        for stage in (ev.evaluate, ev.mmlu):
            with pytest.raises(_Located):
                stage(profile, untouched(target))
    return keys[0], keys[1]


@pytest.mark.parametrize(("name", "target"), list(KEYS_BEFORE))
def test_fp32_runs_keep_their_stage_keys_and_bf16_gets_its_own(name, target, monkeypatch):
    monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    profile = load_profile(name)
    if name == "tiny":  # the tiny profile pins fp32: its random models' numbers are pinned by the tests
        assert profile.eval.inference_dtype == "fp32" and rt.eval_dtype(profile) == torch.float32
    fp32 = stage_keys(load_profile(name, ["eval.inference_dtype=fp32"]), target)
    assert fp32 == KEYS_BEFORE[(name, target)], "the stage keys of existing fp32 runs changed"
    bf16 = stage_keys(load_profile(name, ["eval.inference_dtype=bf16"]), target)
    assert bf16[0] != fp32[0] and bf16[1] != fp32[1]
    if name == "tiny":
        assert stage_keys(profile, target) == fp32
    else:  # auto on a CPU with avx512_bf16 is bf16 (and keyed so); without it, fp32 and the old key
        assert stage_keys(profile, target) == bf16
        monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: {"avx512f"})
        assert stage_keys(profile, target) == fp32


def test_the_key_names_the_dtype_only_where_it_differs_from_the_device_default(monkeypatch):
    monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: {"avx512_bf16"})
    cpu = load_profile("cpu")
    assert rt.eval_dtype_key(cpu) == {"inference_dtype": "bf16"}
    assert rt.eval_dtype_key(dataclasses.replace(cpu, eval=dataclasses.replace(cpu.eval, inference_dtype="fp32"))) == {}
    monkeypatch.setattr(rt, "resolve_device", lambda device: torch.device("cuda"))  # runs on CUDA were bf16
    assert rt.eval_dtype_key(cpu) == {}
    fp32 = dataclasses.replace(cpu, eval=dataclasses.replace(cpu.eval, inference_dtype="fp32"))
    assert rt.eval_dtype_key(fp32) == {"inference_dtype": "fp32"}


@pytest.mark.numerics
def test_bf16_weights_give_fp32_log_probs_to_sampling_and_scoring():
    """Sampling (top-k / top-p) and perplexity see fp32 log-probs whatever the weights' dtype."""
    from unidetox.measure.likelihood import continuation_logprobs, continuation_logprobs_shared
    from unidetox.method.sampling import CausalLMSource

    lm = load_model("tiny:llama", dtype=torch.bfloat16)
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    enc = lm.tokenizer(["hello there", "a"], padding=True, padding_side="left", return_tensors="pt")
    src = CausalLMSource(lm.model)
    assert src.start(enc.input_ids, enc.attention_mask, repeats=2).dtype == torch.float32
    assert src.step(torch.tensor([5, 6, 7, 8])).dtype == torch.float32
    ref = continuation_logprobs(lm.model, lm.tokenizer, ["hello", "a b"], [" world", " c d"])
    shared = continuation_logprobs_shared(lm.model, lm.tokenizer, ["hello", "a b"], [" world", " c d"])
    # bf16 weights: both forwards (a shared prefill, one per pair) round to bf16 at the same points; a value moves only
    # where the float32 sums before a rounding differ (other shapes, ~sqrt(n) U) and straddle a bf16 boundary, a
    # fraction ~sqrt(n) U / 2^-9 ~ 1e-4 of them, by one bf16 ulp (2^-8 relative); the log-prob sums (<= 6 tokens)
    # then move by far less than one ulp of the largest logit (2^-8 x 0.38 = 1.5e-3). atol 1e-3; seen: 2e-6
    assert all(np.isfinite(s) for s, _ in ref) and np.allclose([s for s, _ in ref], [s for s, _ in shared], atol=1e-3)


# ----------------------------------------------------------------------------- real model (slow)

SPEC = "packaged:smollm2-135m"
# Relative difference of the mean NLL per token, bf16 vs fp32 weights (log-softmax in fp32 in both). bf16 keeps 8
# significant bits (rounding 2^-9 = 0.2%) in every weight and activation. Measured on these 24 texts (2 CPU cores
# with avx512_bf16, torch 2.13): per text median 0.33%, max 1.48% (short continuations: few tokens to average);
# corpus 0.21%. The bounds leave 2x room for other CPUs' kernels. What they guarantee: 0.5% of a mean NLL near 2.3
# (perplexity ~10) moves the perplexity by ~1.2%, a tenth of the half-width of its bootstrap interval on 24
# prompts (~13%), so bf16 does not move the perplexity metric beyond its noise.
NLL_RTOL = 0.03  # each text
CORPUS_RTOL = 0.005  # mean over the texts


def _headline(gens: list[dict], ppl: list[dict]) -> dict[str, tuple[float, float, float]]:
    """(point, lo, hi) of EMT, TP and mean perplexity over prompts; 95% percentile bootstrap over prompts."""
    import pandas as pd

    from unidetox.measure.bootstrap import bootstrap_ci

    g = pd.DataFrame(gens).merge(pd.DataFrame(ppl), on=["seed", "unit", "prompt_id", "sample"])
    per = g.groupby("prompt_id").agg(emt=("toxicity", "max"), ppl=("ppl", "mean"))
    per["tp"] = (per.emt > 0.5).astype(float)
    out = {}
    for col in ("emt", "tp", "ppl"):
        v = per[col].to_numpy()
        out[col] = bootstrap_ci(lambda rows, v=v: float(v[rows].mean()), len(v), n_boot=2000, seed=0)
    return out


@pytest.mark.slow
def test_bf16_headline_metrics_fall_in_the_fp32_bootstrap_intervals(tmp_path):
    """24 ToxiGen validation prompts (6 per domain), k=3, seed 42, 20 new tokens, toxblock scorer, SmolLM2 as its
    own perplexity model: bf16's EMT, TP and perplexity lie inside fp32's 95% intervals (the samples differ, as
    bf16 logits change the draws; the distributions must not). Measured (2 cores, avx512_bf16, torch 2.13): fp32 EMT
    0.157 [0.071, 0.259], TP 0.083 [0, 0.208], perplexity 9.80 [8.57, 11.14]; bf16 0.127, 0.083, 9.84."""
    from unidetox.config import DataConfig, EvalConfig
    from unidetox.data.prompts import load_toxigen_prompts
    from unidetox.measure import evaluate as E
    from unidetox.measure.scorers import load_scorer

    ps = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=6, seed=0)
    cfg = EvalConfig(samples_per_prompt=3, max_new_tokens=20, seeds=(42,), batch_size=64, scorer="toxblock")
    scorer = load_scorer("toxblock")
    res = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        lm = load_model(SPEC, dtype=dtype)
        gens = E.generate_and_score(lm, ps, cfg, scorer, tmp_path / f"{name}.jsonl", progress=False)
        ppl = E.score_perplexity(lm, gens, tmp_path / f"{name}-ppl.jsonl", progress=False)
        res[name] = _headline(gens, ppl)
    print({n: {m: tuple(round(x, 4) for x in v) for m, v in r.items()} for n, r in res.items()})
    assert len(ps) == 24
    for metric, (_, lo, hi) in res["fp32"].items():
        assert lo <= res["bf16"][metric][0] <= hi, (metric, res)


@pytest.mark.slow
def test_bf16_log_likelihoods_are_close_to_fp32():
    """Per-token log-likelihood of fixed texts (each ToxiGen prompt's second half given its first) under SmolLM2 in
    bf16 and fp32: the mean NLL per token of every text within NLL_RTOL of fp32's, and the corpus mean within
    CORPUS_RTOL. (Tolerances: see their definitions.)"""
    from unidetox.config import DataConfig
    from unidetox.data.prompts import load_toxigen_prompts
    from unidetox.measure.nll_agreement import relative_difference, text_nll

    texts = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=6, seed=0).text.tolist()
    nll = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        nll[name] = text_nll(load_model(SPEC, dtype=dtype), texts)
    agree = relative_difference(nll["bf16"], nll["fp32"])
    print(
        f"per-text relative NLL difference: max {agree.max:.4f}, median {agree.median:.4f}; corpus {agree.corpus:.4f}"
    )
    assert agree.max < NLL_RTOL and agree.corpus < CORPUS_RTOL
