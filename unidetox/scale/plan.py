"""The plan of a profile before it runs: per stage, memory per device, FLOPs, time, disk; refusals with the fix.

``unidetox plan --profile paper --gpu H100-80GB --gpus 8 --strategy fsdp`` prints it offline in seconds
(:mod:`~unidetox.scale.plan_tables`); model shapes come from :mod:`~unidetox.scale.shapes`, the hardware from
:mod:`~unidetox.scale.hardware`, the formulas from :mod:`~unidetox.scale.costs`. The same estimate is printed at
the start of every training stage (:func:`training_line`), which refuses a run that cannot fit its device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from unidetox.config import Profile, ScaleConfig, TrainConfig
from unidetox.scale import costs as C
from unidetox.scale.errors import PlanError
from unidetox.scale.hardware import Hardware, act_bytes
from unidetox.scale.plan_tables import gib, hours, num
from unidetox.scale.shapes import arch_from_config, arch_of

# The paper's toxic-model training set (DGHS train split, hate rows of the 34 targets) is not available offline:
# the released toxic checkpoint is step 15126 of 3 epochs at batch 4, i.e. 5042 batches of 4 per epoch.
PAPER_TOXIC_TEXTS = 5042 * 4
PROMPTS = {"validation": 896, "test": 940, "report": 8064}  # ToxiGen prompt rows per split (unidetox.data.prompts)
PROMPT_TOKENS = 32  # assumed mean ToxiGen prompt length in tokens (decoding-time estimate only)


@dataclass(frozen=True)
class StagePlan:
    """One stage on the planned hardware. memory: peak bytes per device; seconds: wall time (nan: unknown);
    disk: bytes the stage leaves in the run store; fix: '' when it fits."""

    stage: str
    model: str
    params: int
    runs: int
    memory: float
    parts: str
    flops: float
    seconds: float
    disk: float
    fix: str = ""

    @property
    def fits(self) -> bool:
        return not self.fix

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.devices / 3600

    devices: int = 1  # GPUs the time is spread over (GPU-hours = seconds x devices)


def _fix_training(stage: str, arch: C.Arch, cfg: TrainConfig, hw: Hardware, gc: bool, mp: str, need: float,
                  profile: str = "...") -> str:  # fmt: skip
    """The smallest change that makes a training stage fit: checkpointing, then FSDP over enough GPUs."""
    have = hw.usable_bytes
    head = f"needs ~{gib(need)} GiB per device, {gib(have)} GiB usable"
    if not hw.cuda:
        return (f"{head} (CPU host RAM). Fix: run it on GPUs (plan for them with --gpu NAME [--gpus N]), or make the "
                "stage smaller (batch_size, max_length)")  # fmt: skip
    n0 = hw.sharding.devices
    for ckpt in (gc,) if gc else (False, True):
        for n in range(max(2, n0), 65):
            for strategy in ("fsdp", "zero2"):
                mem = C.train_memory(arch, micro_batch=max(1, math.ceil(cfg.batch_size / (cfg.grad_accum * n))),
                                     seq=cfg.max_length, act_bytes=act_bytes(hw, mp), gradient_checkpointing=ckpt,
                                     sharding=C.Sharding(strategy, n))  # fmt: skip
                if mem.total <= have:
                    extra = "" if ckpt == gc else " --set scale.gradient_checkpointing=true"
                    gpu = f" --gpu {hw.gpu.name}" if hw.gpu is not None else ""
                    cmd = "toxic-model" if stage == "toxic-model" else "detox"
                    return (f"{head}. Fix: shard it over {n} GPUs: accelerate launch --config_file "
                            f"$(unidetox accelerate-config {strategy}) --num_processes {n} -m unidetox.cli {cmd} "
                            f"--profile {profile}{extra} (check: unidetox plan --profile {profile}{gpu} --gpus {n} "
                            f"--strategy {strategy}{extra})")  # fmt: skip
    if not gc:
        mem = C.train_memory(arch, micro_batch=math.ceil(cfg.batch_size / (cfg.grad_accum * n0)), seq=cfg.max_length,
                             act_bytes=act_bytes(hw, mp), gradient_checkpointing=True, sharding=hw.sharding)  # fmt: skip
        if mem.total <= have:
            return f"{head}. Fix: --set scale.gradient_checkpointing=true"
    return f"{head}. Fix: use GPUs with more memory, or raise grad_accum to shrink the micro-batch"


def plan_training(stage: str, spec: str, arch: C.Arch, cfg: TrainConfig, n_texts: int, sc: ScaleConfig,
                  hw: Hardware, *, runs: int = 1, saves: int = 1, profile: str = "...") -> StagePlan:  # fmt: skip
    """A fine-tuning stage: `runs` trainings of `spec` on `n_texts` texts, each saving `saves` models."""
    from unidetox.method.batches import num_training_steps

    n = hw.sharding.devices
    micro = max(1, math.ceil(cfg.batch_size / (cfg.grad_accum * n)))
    mem = C.train_memory(arch, micro_batch=micro, seq=cfg.max_length, act_bytes=act_bytes(hw, sc.mixed_precision),
                         gradient_checkpointing=sc.gradient_checkpointing, sharding=hw.sharding)  # fmt: skip
    steps = num_training_steps(cfg, n_texts)
    tokens = steps * cfg.batch_size * cfg.max_length  # upper bound: every sequence at max_length
    flops = runs * tokens * C.train_flops_per_token(arch, cfg.max_length,
                                                    gradient_checkpointing=sc.gradient_checkpointing)  # fmt: skip
    seconds = C.train_seconds(flops, hw.gpu, n) if hw.cuda else math.nan
    p = C.param_count(arch)
    disk = runs * (saves * p * (2 if hw.cuda else 4))  # saved in the loading dtype (bf16 on CUDA)
    parts = (f"weights {gib(mem.weights)} + grads {gib(mem.gradients)} + AdamW {gib(mem.optimizer)} + activations "
             f"{gib(mem.activations)} + logits {gib(mem.logits)}; {steps} steps x {cfg.batch_size} x "
             f"{cfg.max_length} tokens (micro-batch {micro})")  # fmt: skip
    fix = ""
    if mem.total > hw.usable_bytes:
        fix = _fix_training(stage, arch, cfg, hw, sc.gradient_checkpointing, sc.mixed_precision, mem.total, profile)
    return StagePlan(stage, spec, p, runs, mem.total, parts, flops, seconds, disk, fix, devices=n)


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
    return StagePlan("distill", profile.toxic.base_model, C.param_count(arch), 1, mem, parts, flops, secs, 0, fix,
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
    return StagePlan("evaluate", spec, C.param_count(arch), runs, mem, parts, runs * (gen_flops + ppl_flops),
                     runs * secs, 0, fix, devices=hw.sharding.devices)  # fmt: skip


def toxic_text_count(profile: Profile) -> int:
    t = profile.toxic
    if profile.data.source == "hub":
        n = PAPER_TOXIC_TEXTS
    else:
        from unidetox.pipeline import toxic_texts

        n = len(toxic_texts(profile)[0])
    return min(n, t.max_texts) if t.max_texts else n


def plan_profile(profile: Profile, hw: Hardware) -> list[StagePlan]:
    """The main stages of `profile` (toxic-model, distill, detox per target, evaluate per target)."""
    tr = profile.trust_remote_code
    base = arch_of(profile.toxic.base_model, trust_remote_code=tr)
    out = [plan_training("toxic-model", profile.toxic.base_model, base, profile.toxic.train, toxic_text_count(profile),
                         profile.scale, hw, profile=profile.name)]  # fmt: skip
    out.append(plan_distill(profile, base, hw))
    dt = profile.detox
    ppl = arch_of(profile.eval.perplexity_model, trust_remote_code=tr)
    for target in dt.targets:
        arch = arch_of(target, trust_remote_code=tr)
        cfg = replace(dt.train, max_steps=max(dt.steps))
        out.append(plan_training("detox", target, arch, cfg, profile.distill.num_texts, profile.scale, hw,
                                 runs=len(dt.learning_rates), saves=len(dt.steps), profile=profile.name))  # fmt: skip
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


def training_line(spec: str, model, cfg: TrainConfig, n_texts: int, scale: ScaleConfig, hw: Hardware) -> str:
    """One line with the estimate of training `model` (the loaded module); raises PlanError when it cannot fit
    (unless scale.memory_check is off)."""
    numel = sum(p.numel() for p in model.parameters())
    arch = arch_from_config(model.config, "the loaded model's config", numel=numel)
    p = plan_training("train", spec, arch, cfg, n_texts, scale, hw)
    line = (f"plan: train {spec} ({num(p.params)} params) on {hw.sharding.devices} x "
            f"{hw.gpu.name if hw.gpu else 'CPU'} ({hw.sharding.strategy}): ~{gib(p.memory)} GiB per device of "
            f"{gib(hw.usable_bytes)} usable ({p.parts}); {num(p.flops)}FLOPs, ~{hours(p.seconds)}")  # fmt: skip
    if not p.fits and scale.memory_check:
        raise PlanError(f"training {spec} would run out of memory: {p.fix} (or --set scale.memory_check=false "
                        "to try anyway)")  # fmt: skip
    return line


__all__ = ["StagePlan", "check", "plan_profile", "plan_training", "training_line"]
