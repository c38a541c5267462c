"""Which texts each training step reads, how they are padded and split, and the token loss.

Step ``s`` (0-based) reads batch ``s % B_e`` of epoch ``s // B_e`` of a permutation seeded by
``(seed, epoch)``, where ``B_e = ceil(n_texts / batch_size)``; the last, partial batch of an epoch is kept.
Each process takes a contiguous slice of the batch and cuts it into at most ``grad_accum`` micro-batches.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from unidetox.config import TrainConfig

IGNORE_INDEX = -100


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists -> (input_ids [B, T] long, attention_mask [B, T] long), T = longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def token_nll(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (nats, fp32 scalar) and the number of targets (long scalar).

    logits [B, T, V] predict input_ids shifted by one; target t counts when attention_mask is 1 at t and
    at t-1 (so right or left padding is ignored whatever the pad id is).
    """
    valid = (attention_mask[:, 1:] != 0) & (attention_mask[:, :-1] != 0)
    labels = input_ids[:, 1:].masked_fill(~valid, IGNORE_INDEX)
    pred = logits[:, :-1]
    nll = F.cross_entropy(
        pred.reshape(-1, pred.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return nll, valid.sum()


def batches_per_epoch(n_texts: int, batch_size: int) -> int:
    """Optimizer steps of one pass over `n_texts` texts: ceil(n_texts / batch_size)."""
    return math.ceil(n_texts / batch_size)


def num_training_steps(cfg: TrainConfig, n_texts: int) -> int:
    """cfg.max_steps, else cfg.epochs full passes: epochs * ceil(n_texts / batch_size)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return cfg.epochs * batches_per_epoch(n_texts, cfg.batch_size)


def epoch_order(seed: int, epoch: int, n: int) -> list[int]:
    """The permutation of range(n) used in `epoch`: a pure function of (seed, epoch)."""
    digest = hashlib.sha256(f"unidetox-train:{seed}:{epoch}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.randperm(n, generator=gen).tolist()


def batch_indices(step: int, n_texts: int, batch_size: int, seed: int) -> list[int]:
    """Text indices of optimizer step `step` (0-based); the last batch of an epoch may be smaller."""
    epoch, b = divmod(step, batches_per_epoch(n_texts, batch_size))
    return epoch_order(seed, epoch, n_texts)[b * batch_size : (b + 1) * batch_size]


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, kind: str) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based), as HF's linear/constant schedules."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def shard(items: Sequence[int], rank: int, world: int) -> list[int]:
    """Contiguous slice `rank` of `world` near-equal slices (the first len % world get one more)."""
    k, m = divmod(len(items), world)
    lo = rank * k + min(rank, m)
    return list(items[lo : lo + k + (rank < m)])


def micro_batches(items: Sequence[int], grad_accum: int) -> list[list[int]]:
    """Split a process's share into at most `grad_accum` non-empty micro-batches ([[]] when empty)."""
    parts = max(1, min(grad_accum, len(items)))
    return [shard(items, i, parts) for i in range(parts)]
