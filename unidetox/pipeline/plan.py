"""``unidetox plan``: memory, FLOPs, GPU-hours and disk of every main stage of a profile, before anything runs.

Stage by stage: training (:func:`unidetox.scale.memory.plan_training`), contrastive decoding and evaluation, on the
hardware named on the command line or found here. The tables are :mod:`unidetox.report.tables.plan`.
"""

from __future__ import annotations

import math
from dataclasses import replace

from unidetox.config import Profile
from unidetox.method.batches import num_training_steps
from unidetox.scale import costs as C
from unidetox.scale.errors import PlanError
from unidetox.scale.hardware import Hardware
from unidetox.scale.memory import StagePlan, gib, plan_training
from unidetox.scale.shapes import arch_of, lora_params_of
from unidetox.store.registry import DETOX, DISTILL, EVALUATE, TOXIC_MODEL

# The paper's toxic-model training set (DGHS train split, hate rows of the 34 targets) is not available offline:
# the released toxic checkpoint is step 15126 of 3 epochs at batch 4, i.e. 5042 batches of 4 per epoch.
PAPER_TOXIC_TEXTS = 5042 * 4
PROMPTS = {"validation": 896, "test": 940, "report": 8064}  # ToxiGen prompt rows per split (unidetox.data.prompts)
PROMPT_TOKENS = 32  # assumed mean ToxiGen prompt length in tokens (decoding-time estimate only)


def _decode_seconds(arch: C.Arch, hw: Hardware, sequences: int, batch: int, context: int, new: int) -> float:
    if not hw.cuda or math.isnan(hw.gpu.bf16_tflops):
        return math.nan
    steps = math.ceil(sequences / batch) * new
    return steps * C.decode_step_seconds(arch, batch, context + new // 2, hw.gpu) / hw.sharding.devices


def plan_distill(profile: Profile, arch: C.Arch, hw: Hardware) -> StagePlan:
    """Contrastive decoding: base and toxic models side by side, each with its KV cache."""
    d = profile.distill
    dtype = 2 if hw.cuda else 4
    batch = min(d.batch_size, d.num_texts)
    mem = 2 * C.decode_memory(arch, batch=batch, seq=1 + d.max_new_tokens, dtype_bytes=dtype)
    flops = 2 * d.num_texts * d.max_new_tokens * C.forward_flops_per_token(arch, d.max_new_tokens)
    secs = 2 * _decode_seconds(arch, hw, d.num_texts, batch, 1, d.max_new_tokens)
    fix = "" if mem <= hw.usable_bytes else (f"needs ~{gib(mem)} GiB per device, {gib(hw.usable_bytes)} GiB usable. "
                                             f"Fix: --set distill.batch_size={max(1, batch // 2)} (or smaller)")  # fmt: skip
    parts = f"2 models x (weights + KV cache of {batch} x {1 + d.max_new_tokens} tokens); {d.num_texts} texts"
    return StagePlan(DISTILL.name, profile.toxic.base_model, C.param_count(arch), 1, mem, parts, flops, secs, 0, fix,
                     devices=hw.sharding.devices)  # fmt: skip


def n_prompts(profile: Profile) -> int:
    e = profile.eval
    n = PROMPTS[e.prompt_split]
    return min(n, 4 * e.prompts_per_domain) if e.prompts_per_domain else n


def plan_evaluate(profile: Profile, spec: str, arch: C.Arch, ppl_arch: C.Arch, hw: Hardware, runs: int) -> StagePlan:
    """`runs` candidates of one target: continuations (memory-bound decoding) and their perplexity."""
    e = profile.eval
    dtype = 2 if hw.cuda else 4
    seqs = n_prompts(profile) * e.samples_per_prompt * len(e.seeds)
    ctx = PROMPT_TOKENS + e.max_new_tokens
    mem = max(C.decode_memory(arch, batch=e.batch_size, seq=ctx, dtype_bytes=dtype),
              C.decode_memory(ppl_arch, batch=e.batch_size, seq=ctx, dtype_bytes=dtype))  # fmt: skip
    gen_flops = seqs * ctx * C.forward_flops_per_token(arch, ctx)
    ppl_flops = seqs * ctx * C.forward_flops_per_token(ppl_arch, ctx)
    secs = _decode_seconds(arch, hw, seqs, e.batch_size, PROMPT_TOKENS, e.max_new_tokens)
    if hw.cuda and not math.isnan(secs):
        secs += ppl_flops / (hw.gpu.bf16_tflops * 1e12 * C.MFU)  # perplexity: main process only
    fix = "" if mem <= hw.usable_bytes else (f"needs ~{gib(mem)} GiB per device, {gib(hw.usable_bytes)} GiB usable. "
                                             f"Fix: --set eval.batch_size={max(1, e.batch_size // 2)} (or smaller)")  # fmt: skip
    parts = (f"max(generator, perplexity model) with KV cache of {e.batch_size} x {ctx} tokens; "
             f"{seqs} continuations per candidate")  # fmt: skip
    return StagePlan(EVALUATE.name, spec, C.param_count(arch), runs, mem, parts, runs * (gen_flops + ppl_flops),
                     runs * secs, 0, fix, devices=hw.sharding.devices)  # fmt: skip


def toxic_text_count(profile: Profile) -> int:
    t = profile.toxic
    if profile.data.source == "hub":
        n = PAPER_TOXIC_TEXTS
    else:
        from unidetox.pipeline.toxic import toxic_texts

        n = len(toxic_texts(profile)[0])
    return min(n, t.max_texts) if t.max_texts else n


def plan_profile(profile: Profile, hw: Hardware) -> list[StagePlan]:
    """The main stages of `profile` (toxic-model, distill, detox per target, evaluate per target)."""
    tr = profile.trust_remote_code
    base = arch_of(profile.toxic.base_model, trust_remote_code=tr)
    toxic_steps = num_training_steps(profile.toxic.train, toxic_text_count(profile))
    out = [plan_training(TOXIC_MODEL.name, profile.toxic.base_model, base, profile.toxic.train, toxic_steps,
                         profile.scale, hw, profile=profile.name)]  # fmt: skip
    out.append(plan_distill(profile, base, hw))
    dt = profile.detox
    ppl = arch_of(profile.eval.perplexity_model, trust_remote_code=tr)
    for target in dt.targets:
        arch = arch_of(target, trust_remote_code=tr)
        cfg = replace(dt.train, max_steps=max(dt.steps))
        steps = num_training_steps(cfg, profile.distill.num_texts)
        lora = dt.lora_settings
        trainable = None if lora is None else lora_params_of(target, arch, lora, trust_remote_code=tr)
        out.append(plan_training(DETOX.name, target, arch, cfg, steps, profile.scale, hw, runs=len(dt.learning_rates),
                                 saves=len(dt.steps), profile=profile.name, trainable=trainable))  # fmt: skip
    for target in dt.targets:
        arch = arch_of(target, trust_remote_code=tr)
        out.append(plan_evaluate(profile, target, arch, ppl, hw, 1 + len(dt.learning_rates) * len(dt.steps)))
    return out


def check(plans: list[StagePlan]) -> None:
    """Raise PlanError naming the first stage that does not fit and its fix."""
    bad = [p for p in plans if not p.fits]
    if bad:
        p = bad[0]
        more = f" ({len(bad) - 1} more stage(s) too)" if len(bad) > 1 else ""
        raise PlanError(f"stage {p.stage} of {p.model} cannot fit{more}: {p.fix}")


__all__ = ["check", "plan_profile"]
