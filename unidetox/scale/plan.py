"""The plan of a profile before it runs: models, parameters, memory per device, FLOPs, time, disk; refusals.

``unidetox plan --profile paper --gpu H100-80GB --gpus 8 --strategy fsdp`` prints it offline in seconds:
architectures come from the model's own config (tiny, packaged and local models; nothing is loaded but the
config) or, for the paper's Hub models, from the table `HUB_ARCHS` (numbers copied from each model's
``config.json`` on the Hub). Formulas: `unidetox.scale.costs`. The same estimate is printed at the start of every
training stage (:func:`training_line`), which refuses a run that cannot fit its device.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from unidetox.config import Profile, ScaleConfig, TrainConfig
from unidetox.errors import UnidetoxError
from unidetox.scale import costs as C

# config.json of each model on the Hugging Face Hub (main revision): layers, hidden, heads, KV heads, MLP width,
# vocabulary, positions, tied output. Parameter counts follow from the formulas (checked against numel in tests).
HUB_ARCHS = {
    "gpt2-xl": C.Arch("gpt2", 48, 1600, 25, 25, 6400, 50257, 1024, True, "config.json of gpt2-xl (openai-community)"),
    "facebook/opt-6.7b": C.Arch("opt", 32, 4096, 32, 32, 16384, 50272, 2048, True, "config.json of facebook/opt-6.7b"),
    "tiiuae/falcon-7b": C.Arch("falcon", 32, 4544, 71, 1, 18176, 65024, 2048, True, "config.json of tiiuae/falcon-7b"),
    "meta-llama/Llama-2-7b-hf": C.Arch(
        "llama", 32, 4096, 32, 32, 11008, 32000, 4096, False, "config.json of meta-llama/Llama-2-7b-hf"
    ),
}
HUB_ARCHS["openai-community/gpt2-xl"] = HUB_ARCHS["gpt2-xl"]
# The paper's toxic-model training set (DGHS train split, hate rows of the 34 targets) is not available offline:
# the released toxic checkpoint is step 15126 of 3 epochs at batch 4, i.e. 5042 batches of 4 per epoch.
PAPER_TOXIC_TEXTS = 5042 * 4
PROMPTS = {"validation": 896, "test": 940, "report": 8064}  # ToxiGen prompt rows per split (unidetox.data)
PROMPT_TOKENS = 32  # assumed mean ToxiGen prompt length in tokens (decoding-time estimate only)


class PlanError(UnidetoxError, RuntimeError):
    """A stage that cannot run on the planned hardware, or a model whose shape is unknown; with the fix."""


def _arch_from_config(cfg, source: str, numel: int = 0) -> C.Arch:
    """An Arch from a transformers config; families without a formula are counted by instantiating on `meta`
    (or given their `numel` when the model is at hand)."""
    mt = cfg.model_type

    def g(*names, default=None):
        return next((getattr(cfg, n) for n in names if getattr(cfg, n, None)), default)

    layers, hidden = g("num_hidden_layers", "n_layer"), g("hidden_size", "n_embd")
    heads = g("num_attention_heads", "n_head")
    kv = g("num_key_value_heads", "num_kv_heads", default=heads)
    if mt == "falcon" and not cfg.new_decoder_architecture:
        kv = 1 if cfg.multi_query else heads
    inter = g("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", default=4 * hidden)
    positions = g("max_position_embeddings", "n_positions", default=2048)
    tied = bool(getattr(cfg, "tie_word_embeddings", True))
    arch = C.Arch(mt, layers, hidden, heads, kv, inter, cfg.vocab_size, positions, tied, source)
    formula_ok = mt in ("gpt2", "llama", "opt") or (
        mt == "falcon" and not cfg.new_decoder_architecture and not cfg.bias
    )
    if formula_ok and not (mt == "opt" and cfg.word_embed_proj_dim != hidden):
        return arch
    if numel:
        return replace(arch, params=numel)
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return replace(arch, params=sum(p.numel() for p in model.parameters()))


def arch_of(spec: str, *, trust_remote_code: bool = False) -> C.Arch:
    """The shape of model `spec` without loading weights: tiny (built config), packaged/local (config.json),
    the paper's Hub models (`HUB_ARCHS`), other Hub ids (their config from the local cache or the Hub)."""
    from unidetox import models as M

    if M.is_tiny(spec) or spec.startswith("tiny:"):
        kind = spec.split(":", 1)[1]
        if spec not in M.TINY_SPECS:
            raise PlanError(f"unknown tiny model {spec!r}; known: {', '.join(M.TINY_SPECS)}")
        return _arch_from_config(M.tiny_config(kind), f"built in code ({spec})")
    if spec in HUB_ARCHS:
        return HUB_ARCHS[spec]
    if spec.startswith("packaged:"):
        try:
            return _arch_from_config(M.packaged_config(spec.split(":", 1)[1]), f"GGUF metadata of {spec}")
        except M.ModelLoadError as e:
            raise PlanError(str(e)) from None
    from transformers import AutoConfig

    try:
        path = M._resolve(spec)
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, M.ModelLoadError) as e:
        raise PlanError(
            f"the shape of {spec!r} is not known offline ({M._hub_error(spec, e) if isinstance(e, OSError) else e}); "
            f"the plan knows {', '.join(sorted(HUB_ARCHS))}, the tiny and packaged models and local directories"
        ) from None
    where = f"config.json in {path}" if Path(path).is_dir() else f"config of {spec} (Hub cache)"
    return _arch_from_config(cfg, where)


# ----------------------------------------------------------------------------- the hardware


@dataclass(frozen=True)
class Hardware:
    """What the plan is for: `devices` GPUs of model `gpu` (None: the CPU host) trained with `sharding`."""

    gpu: C.GPU | None
    memory_bytes: float  # per device
    sharding: C.Sharding = field(default_factory=C.Sharding)

    @property
    def cuda(self) -> bool:
        return self.gpu is not None

    @property
    def usable_bytes(self) -> float:
        return self.memory_bytes * (C.USABLE if self.cuda else 1.0)

    def describe(self) -> str:
        n = self.sharding.devices
        if self.gpu is None:
            return f"{n} x CPU host ({self.memory_bytes / C.GIB:.0f} GiB RAM; no GPU: name one with --gpu for times)"
        g = self.gpu
        peak = "unknown FLOP/s" if math.isnan(g.bf16_tflops) else f"bf16 {g.bf16_tflops:g} TFLOP/s dense"
        return (f"{n} x {g.name} ({peak}, {g.memory_gib:.0f} GiB, {C.USABLE:.0%} usable; {g.source}), "
                f"strategy {self.sharding.strategy}")  # fmt: skip


def host_memory() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return math.inf


def hardware(gpu: str | None = None, gpus: int = 1, strategy: str | None = None, device: str = "auto") -> Hardware:
    """The named GPU, else the detected one (when `device` allows CUDA), else the CPU host."""
    strategy = strategy or ("single" if gpus == 1 else "ddp")
    try:
        sharding = C.Sharding(strategy, gpus)
    except ValueError as e:
        raise PlanError(f"{e}; use --strategy single with --gpus 1, or ddp/fsdp/zero2/zero3 with --gpus N") from None
    if gpu:
        try:
            g = C.gpu_from_name(gpu)
        except KeyError:
            raise PlanError(f"unknown GPU {gpu!r}; known: {', '.join(C.GPUS)}") from None
        return Hardware(g, g.memory_gib * C.GIB, sharding)
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            g = C.detected_gpu(props.name, props.total_memory)
            return Hardware(g, props.total_memory, sharding)
    return Hardware(None, host_memory(), sharding)


# ----------------------------------------------------------------------------- stages


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


def _gib(x: float) -> str:
    return f"{x / C.GIB:.1f}" if x >= 0.05 * C.GIB else f"{x / C.GIB:.3f}"


def act_bytes(hw: Hardware, mixed_precision: str) -> int:
    """Bytes per activation element: 2 under bf16 autocast (auto on CUDA, or bf16), else 4."""
    return 2 if mixed_precision == "bf16" or (mixed_precision == "auto" and hw.cuda) else 4


def _fix_training(stage: str, arch: C.Arch, cfg: TrainConfig, hw: Hardware, gc: bool, mp: str, need: float,
                  profile: str = "...") -> str:  # fmt: skip
    """The smallest change that makes a training stage fit: checkpointing, then FSDP over enough GPUs."""
    have = hw.usable_bytes
    head = f"needs ~{_gib(need)} GiB per device, {_gib(have)} GiB usable"
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
    from unidetox.method.train import num_training_steps

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
    parts = (f"weights {_gib(mem.weights)} + grads {_gib(mem.gradients)} + AdamW {_gib(mem.optimizer)} + activations "
             f"{_gib(mem.activations)} + logits {_gib(mem.logits)}; {steps} steps x {cfg.batch_size} x "
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
    fix = "" if mem <= hw.usable_bytes else (f"needs ~{_gib(mem)} GiB per device, {_gib(hw.usable_bytes)} GiB usable. "
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
    fix = "" if mem <= hw.usable_bytes else (f"needs ~{_gib(mem)} GiB per device, {_gib(hw.usable_bytes)} GiB usable. "
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


def _num(x: float, unit: str = "") -> str:
    if math.isnan(x):
        return "?"
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def _hours(s: float) -> str:
    return "?" if math.isnan(s) else (f"{s / 3600:.2f} h" if s >= 360 else f"{s:.0f} s")


def format_plan(profile: Profile, hw: Hardware, plans: list[StagePlan]) -> str:
    """The plan as text: one table row per stage, the parts of each memory estimate, totals and refusals."""
    precision = "bf16" if act_bytes(hw, profile.scale.mixed_precision) == 2 else "fp32"
    ckpt = "on" if profile.scale.gradient_checkpointing else "off"
    lines = [
        f"plan: profile {profile.name} on {hw.describe()}",
        (
            f"      training activations {precision}, gradient checkpointing {ckpt}; times assume {C.MFU:.0%} of "
            "peak FLOP/s for training and memory-bandwidth-bound decoding (unidetox.scale.costs)"
        ),
    ]
    head = (f"{'stage':<12} {'model':<26} {'params':>9} {'runs':>4} {'GiB/device':>10} {'FLOPs':>9} {'time':>9} "
            f"{'GPU-h':>7} {'disk GiB':>8}  fits")  # fmt: skip
    lines += [head, "-" * len(head)]
    for p in plans:
        lines.append(f"{p.stage:<12} {p.model[-26:]:<26} {_num(p.params):>9} {p.runs:>4} {_gib(p.memory):>10} "
                     f"{_num(p.flops):>9} {_hours(p.seconds):>9} "
                     f"{'?' if math.isnan(p.gpu_hours) else f'{p.gpu_hours:.2f}':>7} {_gib(p.disk):>8}  "
                     f"{'yes' if p.fits else 'NO'}")  # fmt: skip
    total = sum(p.gpu_hours for p in plans)
    lines.append(f"total: {'?' if math.isnan(total) else f'{total:.1f}'} GPU-hours for these stages "
                 "(the study's baselines, report prompts and MMLU come on top)")  # fmt: skip
    lines.append(f"disk: {_gib(sum(p.disk for p in plans))} GiB of saved models in the run store")
    lines.append("memory per stage:")
    lines += [f"  {p.stage} {p.model}: {p.parts}" for p in plans]
    return "\n".join(lines)


def format_markdown(plans: list[StagePlan]) -> str:
    """GPU-hours, peak memory and disk per stage (targets summed) as a Markdown table (the book's cost section)."""
    rows = ["| stage | models | runs | GPU-hours | peak GiB per device | disk GiB |", "|---|---|---|---|---|---|"]
    for stage in dict.fromkeys(p.stage for p in plans):
        ps = [p for p in plans if p.stage == stage]
        hours = sum(p.gpu_hours for p in ps)
        rows.append(f"| {stage} | {', '.join(dict.fromkeys(p.model for p in ps))} | {sum(p.runs for p in ps)} | "
                    f"{'?' if math.isnan(hours) else f'{hours:.1f}'} | {_gib(max(p.memory for p in ps))} | "
                    f"{_gib(sum(p.disk for p in ps))} |")  # fmt: skip
    total = sum(p.gpu_hours for p in plans)
    rows.append(f"| **total** | | | **{'?' if math.isnan(total) else f'{total:.1f}'}** | | "
                f"{_gib(sum(p.disk for p in plans))} |")  # fmt: skip
    return "\n".join(rows)


def check(plans: list[StagePlan]) -> None:
    """Raise PlanError naming the first stage that does not fit and its fix."""
    bad = [p for p in plans if not p.fits]
    if bad:
        p = bad[0]
        more = f" ({len(bad) - 1} more stage(s) too)" if len(bad) > 1 else ""
        raise PlanError(f"stage {p.stage} of {p.model} cannot fit{more}: {p.fix}")


# ----------------------------------------------------------------------------- at a training stage's start


def runtime_hardware(acc) -> Hardware:
    """The hardware a running accelerate job has: its device, process count and sharding engine."""
    import torch
    from accelerate.utils import DistributedType

    n, dt = acc.num_processes, acc.distributed_type
    strategy = "single" if n == 1 else "ddp"
    if dt == DistributedType.FSDP:
        strategy = "fsdp"
    elif dt == DistributedType.DEEPSPEED:
        stage = acc.state.deepspeed_plugin.zero_stage
        strategy = {2: "zero2", 3: "zero3"}.get(stage, "ddp" if n > 1 else "single")
    if strategy == "single" and n > 1:  # pragma: no cover
        strategy = "ddp"
    sharding = C.Sharding(strategy if n > 1 or strategy == "single" else "single", n)
    if acc.device.type == "cuda":
        props = torch.cuda.get_device_properties(acc.device)
        return Hardware(C.detected_gpu(props.name, props.total_memory), props.total_memory, sharding)
    return Hardware(None, host_memory(), sharding)


def training_line(spec: str, model, cfg: TrainConfig, n_texts: int, scale: ScaleConfig, hw: Hardware) -> str:
    """One line with the estimate of training `model` (the loaded module); raises PlanError when it cannot fit
    (unless scale.memory_check is off)."""
    numel = sum(p.numel() for p in model.parameters())
    arch = _arch_from_config(model.config, "the loaded model's config", numel=numel)
    p = plan_training("train", spec, arch, cfg, n_texts, scale, hw)
    line = (f"plan: train {spec} ({_num(p.params)} params) on {hw.sharding.devices} x "
            f"{hw.gpu.name if hw.gpu else 'CPU'} ({hw.sharding.strategy}): ~{_gib(p.memory)} GiB per device of "
            f"{_gib(hw.usable_bytes)} usable ({p.parts}); {_num(p.flops)}FLOPs, ~{_hours(p.seconds)}")  # fmt: skip
    if not p.fits and scale.memory_check:
        raise PlanError(f"training {spec} would run out of memory: {p.fix} (or --set scale.memory_check=false "
                        "to try anyway)")  # fmt: skip
    return line


__all__ = [
    "HUB_ARCHS",
    "Hardware",
    "PlanError",
    "StagePlan",
    "arch_of",
    "check",
    "format_markdown",
    "format_plan",
    "hardware",
    "plan_profile",
    "plan_training",
    "runtime_hardware",
    "training_line",
]
