"""The weights' dtype of evaluation-time models (``eval.inference_dtype``): bf16 where the hardware computes it.

>>> inference_dtype("fp32", "cpu")
torch.float32
"""

from __future__ import annotations

import torch

INFERENCE_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bf16 matrix products natively


def cpu_flags() -> set[str]:
    """The feature flags of this machine's CPU from /proc/cpuinfo; empty where it cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def inference_dtype(setting: str, device: str | torch.device) -> torch.dtype:
    """The weights' dtype for ``eval.inference_dtype`` `setting` ("auto" | "bf16" | "fp32") on `device`.

    "bf16" and "fp32" are taken as they are; "auto" is bf16 on CUDA, and on a CPU bf16 when the CPU computes bf16
    natively (avx512_bf16 or amx_bf16 in /proc/cpuinfo; on 2 such cores bf16 gave 1.6-1.9x fp32's tokens/s for
    SmolLM2-135M and Gemma-3-270M, benchmarks/results/bench_dtype.md), else fp32 (the gain was measured with those
    instructions only).
    """
    if setting in INFERENCE_DTYPES:
        return INFERENCE_DTYPES[setting]
    if setting != "auto":
        raise ValueError(f"inference dtype must be auto, bf16 or fp32, not {setting!r}")
    device = torch.device(device)
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32


def autocast_bf16(setting: str, device: str | torch.device) -> bool:
    """Whether training autocasts its forward pass to bf16 for ``scale.mixed_precision`` `setting` ("auto" | "bf16" |
    "fp32") on `device`: "auto" on CUDA and on CPUs that compute bf16 natively (SmolLM2-135M trained 1.47-1.65x
    faster on 2 such cores, Gemma-3-270M 1.1x, with the same loss curve within 0.6%;
    benchmarks/results/bench_train.md)."""
    if setting != "auto":
        return setting == "bf16"
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def default_dtype(device: str | torch.device) -> torch.dtype:
    """What `unidetox.models.loading.load_model` loads without a dtype: bf16 on CUDA, fp32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
