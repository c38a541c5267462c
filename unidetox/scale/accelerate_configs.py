"""The shipped accelerate configurations (package data ``unidetox/scale/accelerate/*.yaml``).

``ddp`` (data parallel), ``fsdp`` (PyTorch FSDP, full sharding), ``zero2`` and ``zero3`` (DeepSpeed ZeRO).
``unidetox accelerate-config NAME`` prints a file's path for ``accelerate launch --config_file``; the
number of processes and machines is given on the ``accelerate launch`` command line.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "accelerate"
CONFIGS = ("ddp", "fsdp", "zero2", "zero3")


def accelerate_config(name: str) -> Path:
    """Path of the shipped accelerate configuration `name` (one of `CONFIGS`)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown accelerate configuration {name!r}; shipped: {', '.join(CONFIGS)}")
    return CONFIG_DIR / f"{name}.yaml"


__all__ = ["CONFIGS", "accelerate_config"]
