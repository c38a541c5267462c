"""The one causal-LM fine-tuning loop's settings: :class:`TrainConfig` (toxic model, detoxification, baselines) and
:class:`LoraSettings` (a LoRA adapter trained instead of every weight, ``detox.adapter=lora``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from unidetox.config.base import Settings, _check


@dataclass(frozen=True)
class TrainConfig(Settings):
    """The one causal-LM fine-tuning loop (toxic model, detoxification, baselines)."""

    learning_rate: float = field(
        default=5e-5, metadata={"help": "peak AdamW learning rate (paper: 1e-5 toxic model; detox: the grid's)"}
    )
    max_steps: int = field(
        default=0, metadata={"help": "optimizer steps; 0 = derive from epochs (detox: the grid's last step)"}
    )
    epochs: int = field(
        default=0, metadata={"help": "passes over the data, used when max_steps = 0 (paper: 3 for the toxic model)"}
    )
    batch_size: int = field(
        default=8,
        metadata={"help": "sequences per optimizer step, over processes and accumulation (paper: 4 toxic, 8 detox)"},
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_length: int = field(
        default=256,
        metadata={"help": "tokens per training sequence; longer texts are truncated (paper: 512 toxic, 256 detox)"},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "optimizer steps of linear learning-rate warm-up"})
    scheduler: str = field(
        default="linear",
        metadata={
            "help": '"linear" (decay to 0, HF Trainer\'s default) or "constant"',
            "choices": ("linear", "constant"),
        },
    )
    seed: int = field(default=42, metadata={"help": "seed of the training run"})
    checkpoint_every: int = field(
        default=0, metadata={"help": "optimizer steps between resumable checkpoints; 0 = none"}
    )
    log_every: int = field(default=10, metadata={"help": "optimizer steps between loss records"})

    def check(self):
        _check(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"learning_rate must be a finite number > 0, got {self.learning_rate}",
        )
        _check(self.max_steps >= 0 and self.epochs >= 0, "max_steps and epochs must be >= 0")
        _check(self.max_steps > 0 or self.epochs > 0, "set max_steps > 0 or epochs > 0 (both are 0)")
        _check(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        _check(self.grad_accum > 0, f"grad_accum must be > 0, got {self.grad_accum}")
        _check(
            self.batch_size % self.grad_accum == 0,
            f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})",
        )
        _check(self.max_length > 1, f"max_length must be > 1, got {self.max_length}")
        _check(self.checkpoint_every >= 0, "checkpoint_every must be >= 0")
        _check(self.log_every > 0, "log_every must be > 0")


#: what a detox run trains: every weight (the paper) or a LoRA adapter
ADAPTERS = ("none", "lora")


@dataclass(frozen=True)
class LoraSettings(Settings):
    """A LoRA adapter (Hu et al. 2022, through peft): each targeted linear layer computes ``W x + (alpha / r) B A x``
    with ``W`` frozen and only ``A`` (r x in) and ``B`` (out x r, zero at the start) trained."""

    r: int = field(default=8, metadata={"help": "rank of the update B @ A (peft's r)"})
    alpha: int = field(default=16, metadata={"help": "the update is scaled by alpha / r (peft's lora_alpha)"})
    dropout: float = field(
        default=0.05, metadata={"help": "dropout on each adapter's input while training (peft's lora_dropout)"}
    )
    target_modules: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "linear layers given an adapter; [] = peft's default for the model type (q_proj, v_proj; c_attn)"
        },
    )

    def check(self):
        _check(self.r > 0, f"lora.r must be > 0, got {self.r}")
        _check(self.alpha > 0, f"lora.alpha must be > 0, got {self.alpha}")
        _check(0 <= self.dropout < 1, f"lora.dropout must be in [0, 1), got {self.dropout}")
        _check(all(m.strip() for m in self.target_modules), "lora.target_modules must not hold an empty name")
