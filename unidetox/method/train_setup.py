"""Everything a training run needs before its first step, checked before any work is done.

The accelerator (device, processes, mixed precision), the token ids of the texts, the step plan, and the model
in fp32 with AdamW and the lr schedule, prepared by accelerate; the result is one :class:`TrainRun`. With a LoRA
adapter (``lora``) the model is wrapped by peft first: its weights stay frozen in the dtype they were loaded in and
AdamW sees only the adapter's (fp32) parameters; the loop itself is the same.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from unidetox.config import ScaleConfig, TrainConfig
from unidetox.method.batches import lr_factor, num_training_steps
from unidetox.method.train_state import TrainError, recover_checkpoint_dir
from unidetox.models.loading import LoadedModel, resolve_device
from unidetox.models.precision import autocast_bf16
from unidetox.store.checkpoint import refuse_pickle

log = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """What the loop reads: the accelerator, the prepared model and optimizer, the token ids and the step plan.

    model: as prepared by accelerate (a DDP/FSDP wrapper when distributed); base: the bare model inside it (a peft
    model under LoRA). seqs / val_seqs: token ids per text; total: optimizer steps of the run; stop: the last step
    of this call; lora: the adapter's settings (:class:`unidetox.config.LoraSettings`), None for full fine-tuning.
    """

    cfg: TrainConfig
    scale: ScaleConfig
    out_dir: Path
    tok: object
    acc: object
    sharded: bool
    seqs: list[list[int]]
    val_seqs: list[list[int]]
    total: int
    stop: int
    save_steps: list[int]
    micro_bs: int
    pad_id: int
    fingerprint: str
    orig_dtype: torch.dtype = torch.float32
    lora: object = None
    model: torch.nn.Module | None = None
    base: torch.nn.Module | None = None
    optimizer: object = None
    raw_opt: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LambdaLR | None = None

    @property
    def ckpt(self) -> Path:
        """The resumable checkpoint directory."""
        return self.out_dir / "checkpoint"


def setup_run(lm: LoadedModel, texts: list[str], val_texts: Sequence[str], cfg: TrainConfig, scale: ScaleConfig,
              out_dir: Path, device: str, save_at_steps: Sequence[int], stop_after: int | None,
              fingerprint: str, lora=None) -> TrainRun:  # fmt: skip
    """Accelerator, token ids and step plan (all checked before any work), then model, optimizer and out_dir."""
    from unidetox.scale.hardware import runtime_hardware
    from unidetox.scale.memory import training_line

    acc, sharded = _accelerator(device, scale, cfg, stop_after)
    if sharded and lora is not None:
        raise TrainError(f"a LoRA adapter is not trained under {acc.distributed_type.value} (its optimizer state is "
                         "small: nothing to shard); use the ddp configuration or a single process")  # fmt: skip
    plan = _plan(lm, texts, val_texts, cfg, save_at_steps, stop_after, acc.num_processes)
    run = TrainRun(cfg=cfg, scale=scale, out_dir=out_dir, tok=lm.tokenizer, acc=acc, sharded=sharded,
                   fingerprint=fingerprint, lora=lora, **plan)  # fmt: skip
    line = training_line(lm.spec, lm.model, cfg, run.total, scale, runtime_hardware(acc), lora=lora)
    if acc.is_main_process:
        print(line, flush=True)
    _prepare_model(run, lm.model, lm.spec)
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        recover_checkpoint_dir(out_dir)
    acc.wait_for_everyone()
    refuse_pickle(run.ckpt)
    return run


def _accelerator(device: str, scale: ScaleConfig, cfg: TrainConfig, stop_after: int | None):
    """(accelerate.Accelerator, whether weights/optimizer are sharded: FSDP or DeepSpeed); refuses what they lack."""
    from accelerate.utils import DistributedType

    acc = _make_accelerator(resolve_device(device), scale)
    sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if sharded and (cfg.checkpoint_every > 0 or stop_after is not None):
        raise TrainError(
            f"resumable checkpoints are not supported under {acc.distributed_type.value} yet (the optimizer state is "
            "sharded); set checkpoint_every=0 (e.g. --set detox.train.checkpoint_every=0), or use the ddp configuration"
        )
    if acc.distributed_type == DistributedType.DEEPSPEED and cfg.grad_accum > 1:
        raise TrainError(  # accelerate's DeepSpeed backward also steps the optimizer: our accumulation would not hold
            f"grad_accum={cfg.grad_accum} is not supported under DeepSpeed; set grad_accum=1 or use the fsdp configuration"
        )
    return acc, sharded


def _plan(lm: LoadedModel, texts: list[str], val_texts: Sequence[str], cfg: TrainConfig,
          save_at_steps: Sequence[int], stop_after: int | None, world: int) -> dict:  # fmt: skip
    """Token ids of the texts and the step plan (total, stop, save steps, micro-batch size, pad id), checked:
    the data fields of :class:`TrainRun`."""
    from unidetox.models.loading import model_max_length

    tok = lm.tokenizer
    context = model_max_length(lm.model)
    if context is not None and cfg.max_length > context:
        raise TrainError(f"train.max_length {cfg.max_length} is beyond {lm.spec}'s context of {context} tokens. "
                         f"Fix: set that stage's toxic.train.max_length or detox.train.max_length to at most "
                         f"{context}")  # fmt: skip
    seqs = tokenize_texts(tok, texts, cfg.max_length)
    total = num_training_steps(cfg, len(seqs))
    save_steps = sorted({int(s) for s in save_at_steps})
    if save_steps and (save_steps[0] < 1 or save_steps[-1] > total):
        raise TrainError(f"save_at_steps must lie in 1..{total} (the run's optimizer steps), got {save_steps}")
    if stop_after is not None and stop_after < 1:
        raise TrainError(f"stop_after must be >= 1, got {stop_after}")
    return {
        "seqs": seqs, "val_seqs": tokenize_texts(tok, list(val_texts), cfg.max_length), "total": total,
        "stop": total if stop_after is None else min(int(stop_after), total), "save_steps": save_steps,
        "micro_bs": math.ceil(cfg.batch_size / (cfg.grad_accum * world)),
        "pad_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }  # fmt: skip


def _prepare_model(run: TrainRun, model: torch.nn.Module, spec: str) -> None:
    """Train `model` in fp32 (under LoRA: its fp32 adapter, `spec`'s weights frozen as loaded) on the accelerator's
    device with AdamW and the lr schedule; fills run.model etc."""
    from accelerate.utils import DistributedType

    from unidetox.models.adapters import add_lora

    cfg, acc = run.cfg, run.acc
    run.orig_dtype = next(model.parameters()).dtype
    if run.orig_dtype != torch.float32 and run.lora is None:
        log.warning("training %s weights in float32 (half-precision AdamW loses small updates)", run.orig_dtype)
        model.float()
    model.to(acc.device)
    if run.scale.gradient_checkpointing:
        set_checkpointing(model, True)
    if run.lora is not None:
        with torch.random.fork_rng(devices=cuda_devices(acc.device)):  # A's random start: from the run's seed
            torch.manual_seed(cfg.seed)
            model = add_lora(model, run.lora, spec)
    model.train()
    if acc.distributed_type == DistributedType.DEEPSPEED:  # no dataloader is prepared: DeepSpeed needs the micro-batch
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = run.micro_bs
    trained = [p for p in model.parameters() if p.requires_grad]  # all of them, or the adapter's under LoRA
    groups = [
        {"params": [p for p in trained if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trained if p.ndim < 2], "weight_decay": 0.0},  # biases, norms (as HF)
    ]
    # fused: one pass per parameter, no temporaries; torch's default (foreach) holds a copy of every moment for
    # the update (Gemma-3-270M on a CPU: peak 6.5 -> 5.8 GiB, benchmarks/bench_train_memory.py)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in trained)
    run.raw_opt = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=fused or None)

    def factor(step: int) -> float:
        return lr_factor(step, warmup_steps=cfg.warmup_steps, total_steps=run.total, kind=cfg.scheduler)

    run.model, run.optimizer = acc.prepare(model, run.raw_opt)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.raw_opt, factor)
    run.base = acc.unwrap_model(run.model)


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Texts -> token id lists: tokenizer defaults (BOS if it adds one) + EOS, cut to `max_length` tokens."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainError("the tokenizer has no EOS token; set tokenizer.eos_token before training")
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    out = []
    for ids in enc:
        ids = list(ids)
        if not ids or ids[-1] != eos:  # tokenizers that append EOS themselves are not given a second one
            ids = (ids + [eos])[:max_length]
        out.append(ids)
    return out


def mixed_precision(scale: ScaleConfig, dev: torch.device) -> str:
    """accelerate's mixed_precision ('bf16' | 'no') for `scale.mixed_precision` on `dev`
    (:func:`unidetox.models.precision.autocast_bf16`: auto = bf16 on CUDA and on CPUs with native bf16, else fp32)."""
    return "bf16" if autocast_bf16(scale.mixed_precision, dev) else "no"


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Switch activation (gradient) checkpointing of a transformers model on or off. Non-reentrant: the recomputed
    forward replays the saved RNG state, so dropout masks, losses and gradients equal those without it."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x names
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def _make_accelerator(dev: torch.device, scale: ScaleConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    kwargs = {"cpu": dev.type != "cuda", "mixed_precision": mixed_precision(scale, dev)}
    try:
        return Accelerator(**kwargs)
    except ValueError as e:
        if "already been initialized" not in str(e) or PartialState().num_processes > 1:
            raise TrainError(f"cannot set up accelerate for device {dev}: {e}") from None
        AcceleratorState._reset_state(reset_partial_state=True)  # single process: another device earlier
        return Accelerator(**kwargs)


def cuda_devices(dev: torch.device) -> list[int]:
    """The CUDA device whose RNG the run forks (none on CPU)."""
    return [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
