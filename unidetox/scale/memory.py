"""Will a training run fit its devices? Memory, FLOPs and time of fine-tuning a model, before it starts.

The estimate (:mod:`unidetox.scale.costs` formulas on :mod:`unidetox.scale.hardware`) is printed when a training
stage starts and refuses a run that cannot fit, with the smallest change that makes it fit. The profile-wide
plan (``unidetox plan``) is :mod:`unidetox.pipeline.plan`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from unidetox.config import ScaleConfig, TrainConfig
from unidetox.scale import costs as C
from unidetox.scale.errors import PlanError
from unidetox.scale.hardware import Hardware, act_bytes
from unidetox.scale.shapes import arch_from_config
from unidetox.store.registry import DETOX, STAGES


def gib(x: float) -> str:
    """Bytes as GiB: one decimal, three below 0.05 GiB."""
    return f"{x / C.GIB:.1f}" if x >= 0.05 * C.GIB else f"{x / C.GIB:.3f}"


def num(x: float, unit: str = "") -> str:
    """A count with an SI prefix and three significant digits (``6.74 G``); ``?`` for nan."""
    if math.isnan(x):
        return "?"
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def hours(s: float) -> str:
    """Seconds as ``1.25 h`` (from 0.1 h) or ``42 s``; ``?`` for nan."""
    return "?" if math.isnan(s) else (f"{s / 3600:.2f} h" if s >= 360 else f"{s:.0f} s")


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


def _command(stage: str) -> str:
    """The command that runs training stage `stage` alone; ``detox`` (with --target --texts) for any other run."""
    declared = STAGES.get(stage)
    return stage if declared is not None and declared.command else DETOX.name


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
                    cmd = _command(stage)
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


def plan_training(stage: str, spec: str, arch: C.Arch, cfg: TrainConfig, steps: int, sc: ScaleConfig,
                  hw: Hardware, *, runs: int = 1, saves: int = 1, profile: str = "...",
                  trainable: int | None = None, process_bytes: float = C.CPU_PROCESS_BYTES) -> StagePlan:  # fmt: skip
    """A fine-tuning stage: `runs` trainings of `spec`, `steps` optimizer steps each, each saving `saves` models;
    `trainable`: the parameter count of a LoRA adapter trained instead of every weight (its base frozen as loaded:
    bf16 on CUDA, fp32 on CPU; each save is the fp32 adapter alone). On a CPU the estimate is the process's peak
    resident memory: the parts of :func:`~unidetox.scale.costs.train_memory`, the CPU's extras
    (:func:`~unidetox.scale.costs.cpu_training_extra`) and `process_bytes` (what the process holds besides its
    weights), against the memory the process may reach (:func:`~unidetox.scale.hardware.host_memory_available`)."""

    n = hw.sharding.devices
    micro = max(1, math.ceil(cfg.batch_size / (cfg.grad_accum * n)))
    loaded = 2 if hw.cuda else 4  # bytes per weight as unidetox.models.loading loads them
    act = act_bytes(hw, sc.mixed_precision)
    mem = C.train_memory(arch, micro_batch=micro, seq=cfg.max_length, act_bytes=act,
                         gradient_checkpointing=sc.gradient_checkpointing, sharding=hw.sharding, trainable=trainable,
                         weight_bytes=loaded)  # fmt: skip
    cpu = 0.0
    if not hw.cuda:
        cpu = process_bytes + C.cpu_training_extra(arch, micro_batch=micro, seq=cfg.max_length, act_bytes=act,
                                                   trainable=trainable)  # fmt: skip
    need, have = mem.total + cpu, hw.usable_bytes
    tokens = steps * cfg.batch_size * cfg.max_length  # upper bound: every sequence at max_length
    flops = runs * tokens * C.train_flops_per_token(arch, cfg.max_length,
                                                    gradient_checkpointing=sc.gradient_checkpointing)  # fmt: skip
    seconds = C.train_seconds(flops, hw.gpu, n) if hw.cuda else math.nan
    p = C.param_count(arch)
    disk = runs * saves * (p * loaded if trainable is None else 4 * trainable)  # saved in the loading dtype
    lora = "" if trainable is None else f"LoRA: {num(trainable)} trainable; "
    parts = (f"{lora}weights {gib(mem.weights)} + grads {gib(mem.gradients)} + AdamW {gib(mem.optimizer)} + "
             f"activations {gib(mem.activations)} + logits {gib(mem.logits)}; {steps} steps x {cfg.batch_size} x "
             f"{cfg.max_length} tokens (micro-batch {micro})")  # fmt: skip
    if not hw.cuda:
        parts += f"; on a CPU also the process, autocast copies, the head's gradient and the loss: {gib(cpu)}"
    fix = ""
    if need > have and trainable is not None:
        fix = (
            f"needs ~{gib(need)} GiB per device, {gib(have)} GiB usable. Fix: "
            + ("--set scale.gradient_checkpointing=true, or " if not sc.gradient_checkpointing else "")
            + "a smaller micro-batch (batch_size, grad_accum, max_length) or a device with more memory"
        )
    elif need > have:
        fix = _fix_training(stage, arch, cfg, hw, sc.gradient_checkpointing, sc.mixed_precision, need, profile)
    return StagePlan(stage, spec, p, runs, need, parts, flops, seconds, disk, fix, devices=n)


def training_line(spec: str, model, cfg: TrainConfig, steps: int, scale: ScaleConfig, hw: Hardware,
                  lora=None) -> str:  # fmt: skip
    """One line with the estimate of training `model` (the loaded module; `lora`: a LoRA adapter's settings);
    raises PlanError when it cannot fit (unless scale.memory_check is off)."""
    from unidetox.models.adapters import lora_param_count, lora_targets
    from unidetox.scale.hardware import own_rss

    numel = sum(p.numel() for p in model.parameters())
    arch = arch_from_config(model.config, "the loaded model's config", numel=numel)
    trainable = None
    if lora is not None:
        trainable = lora_param_count(model, lora.r, lora_targets(model.config.model_type, lora.target_modules))
    process = 0.0
    if not hw.cuda:  # what the process holds now besides the loaded weights (the plan counts those itself)
        process = max(0.0, own_rss() - sum(t.numel() * t.element_size() for t in model.parameters()))
    p = plan_training("train", spec, arch, cfg, steps, scale, hw, trainable=trainable, process_bytes=process)
    line = (f"plan: train {spec} ({num(p.params)} params) on {hw.sharding.devices} x "
            f"{hw.gpu.name if hw.gpu else 'CPU'} ({hw.sharding.strategy}): ~{gib(p.memory)} GiB per device of "
            f"{gib(hw.usable_bytes)} usable ({p.parts}); {num(p.flops)}FLOPs, ~{hours(p.seconds)}")  # fmt: skip
    if not p.fits and scale.memory_check:
        raise PlanError(f"training {spec} would run out of memory: {p.fix} (or --set scale.memory_check=false "
                        "to try anyway)")  # fmt: skip
    return line


__all__ = ["StagePlan", "gib", "hours", "num", "plan_training", "training_line"]
