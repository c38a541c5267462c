"""How training uses the hardware: :class:`ScaleConfig` (in no stage key, but for a departure from the device's
former default precision)."""

from __future__ import annotations

from dataclasses import dataclass, field

from unidetox.config.base import Settings


@dataclass(frozen=True)
class ScaleConfig(Settings):
    """How training uses the hardware. None of these changes what is computed beyond floating-point rounding, so
    they are not part of any stage's key, except the mixed precision where it differs from what the device used
    before CPUs trained in bf16 (fp32 on CPU, bf16 on CUDA), as bf16 rounding moves the weights further. Sharding
    over several GPUs (FSDP, DeepSpeed ZeRO) is chosen at launch time with one of the shipped accelerate
    configurations (`unidetox accelerate-config NAME`)."""

    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in backward: about 1/3 more compute, far less activation memory"},
    )
    mixed_precision: str = field(
        default="auto",
        metadata={
            "help": "forward autocast, fp32 weights and AdamW: "
            "auto (bf16 on CUDA, CPUs with avx512_bf16/amx_bf16) | bf16 | fp32",
            "choices": ("auto", "bf16", "fp32"),
        },
    )
    memory_check: bool = field(
        default=True, metadata={"help": "refuse a training stage whose estimated peak memory exceeds the device"}
    )
