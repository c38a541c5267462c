"""The plan as the reader sees it: the printed table of `unidetox plan` and the book's Markdown cost table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from unidetox.scale import costs as C
from unidetox.scale.hardware import Hardware, act_bytes
from unidetox.scale.memory import StagePlan, gib, hours, num

if TYPE_CHECKING:
    from unidetox.config import Profile


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
        lines.append(f"{p.stage:<12} {p.model[-26:]:<26} {num(p.params):>9} {p.runs:>4} {gib(p.memory):>10} "
                     f"{num(p.flops):>9} {hours(p.seconds):>9} "
                     f"{'?' if math.isnan(p.gpu_hours) else f'{p.gpu_hours:.2f}':>7} {gib(p.disk):>8}  "
                     f"{'yes' if p.fits else 'NO'}")  # fmt: skip
    total = sum(p.gpu_hours for p in plans)
    lines.append(f"total: {'?' if math.isnan(total) else f'{total:.1f}'} GPU-hours for these stages "
                 "(the study's baselines, report prompts and MMLU come on top)")  # fmt: skip
    lines.append(f"disk: {gib(sum(p.disk for p in plans))} GiB of saved models in the run store")
    lines.append("memory per stage:")
    lines += [f"  {p.stage} {p.model}: {p.parts}" for p in plans]
    return "\n".join(lines)


def format_markdown(plans: list[StagePlan]) -> str:
    """GPU-hours, peak memory and disk per stage (targets summed) as a Markdown table (the book's cost section)."""
    rows = ["| stage | models | runs | GPU-hours | peak GiB per device | disk GiB |", "|---|---|---|---|---|---|"]
    for stage in dict.fromkeys(p.stage for p in plans):
        ps = [p for p in plans if p.stage == stage]
        gpu_h = sum(p.gpu_hours for p in ps)
        rows.append(f"| {stage} | {', '.join(dict.fromkeys(p.model for p in ps))} | {sum(p.runs for p in ps)} | "
                    f"{'?' if math.isnan(gpu_h) else f'{gpu_h:.1f}'} | {gib(max(p.memory for p in ps))} | "
                    f"{gib(sum(p.disk for p in ps))} |")  # fmt: skip
    total = sum(p.gpu_hours for p in plans)
    rows.append(f"| **total** | | | **{'?' if math.isnan(total) else f'{total:.1f}'}** | | "
                f"{gib(sum(p.disk for p in plans))} |")  # fmt: skip
    return "\n".join(rows)


__all__ = ["format_markdown", "format_plan", "gib", "hours", "num"]
