"""The hardware a plan is for: a named GPU, the detected one, a running accelerate job's, or the CPU host."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from unidetox.processes import own_rss
from unidetox.scale import costs as C
from unidetox.scale.errors import PlanError


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
    """Physical RAM of this host in bytes (inf when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return math.inf


def _meminfo_available() -> float:
    """MemAvailable of /proc/meminfo in bytes (inf where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.inf


def _cgroup_room() -> float:
    """Bytes this process's cgroup (v2) may still allocate: memory.max - memory.current (inf without a limit)."""
    from pathlib import Path

    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return math.inf
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return math.inf


def host_memory_available() -> float:
    """Bytes a stage starting in this process can use: what it holds already plus what the system can still give it
    (MemAvailable, capped by a container's cgroup limit), at most the physical RAM."""
    room = min(_meminfo_available(), _cgroup_room())
    return min(host_memory(), own_rss() + room) if math.isfinite(room) else host_memory()


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


def runtime_hardware(acc) -> Hardware:
    """The hardware a running accelerate job has: its device, process count and sharding engine; on a CPU host, the
    memory it can use now (:func:`host_memory_available`, shared by its processes), so that a training stage that
    will not fit says so before it starts."""
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
    return Hardware(None, host_memory_available() / n, sharding)  # the processes of one host share its memory


def act_bytes(hw: Hardware, mixed_precision: str) -> int:
    """Bytes per activation element: 2 under bf16 autocast (bf16, or auto on CUDA or on this machine's CPU where it
    computes bf16 natively), else 4."""
    from unidetox.models.precision import autocast_bf16

    return 2 if autocast_bf16(mixed_precision, "cuda" if hw.cuda else "cpu") else 4


__all__ = ["Hardware", "act_bytes", "hardware", "host_memory", "host_memory_available", "own_rss", "runtime_hardware"]
