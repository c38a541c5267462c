"""What a training run keeps on disk between calls: its fingerprint, resumable checkpoint, saved models and result.

A run is identified by :func:`run_fingerprint`; ``final/`` holds the finished model and ``train_result.json``,
``checkpoint/`` the last resumable state (weights, optimizer, scheduler, RNG of every process, progress).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError

from unidetox.config import TrainConfig, to_dict
from unidetox.errors import UnidetoxError
from unidetox.models.adapters import is_adapter_dir, is_peft_model, load_adapter
from unidetox.models.loading import LoadedModel
from unidetox.store.checkpoint import (
    CheckpointError,
    capture_rng,
    is_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from unidetox.store.run_store import DISK_FIX, atomic_dir, canonical_json, read_json

log = logging.getLogger(__name__)

RESULT_FILE = "train_result.json"


class TrainError(UnidetoxError, RuntimeError):
    """Training cannot start or continue; the message names the problem and the fix."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    steps: optimizer steps done; final_dir: ``out_dir/final`` (None when stopped early by ``stop_after``);
    losses: the training loss of every optimizer step (global token mean, nats/token); val_loss: mean
    validation loss in nats/token (None without val_texts); seconds: training wall time over all resumptions.
    """

    steps: int
    final_dir: Path | None
    losses: tuple[float, ...]
    val_loss: float | None
    seconds: float


@dataclass
class Progress:
    """Where a run stands: optimizer steps done, their losses (nats/token), tokens read, seconds of earlier calls."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    elapsed0: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Training wall time in seconds over all calls so far."""
        return self.elapsed0 + time.monotonic() - self.t0


def run_fingerprint(cfg: TrainConfig, texts: Sequence[str], adapter=None) -> str:
    """Hash of what determines the trained weights: the config (less logging/checkpoint cadence), the texts and the
    LoRA `adapter` settings (left out under full fine-tuning, so those runs keep their fingerprints)."""
    c = to_dict(cfg)
    c.pop("checkpoint_every")
    c.pop("log_every")
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    what = {"config": c, "n": len(texts), "texts": h.hexdigest()}
    if adapter is not None:
        what["lora"] = to_dict(adapter)
    return hashlib.sha256(canonical_json(what).encode()).hexdigest()


def save_pretrained(model: torch.nn.Module, tokenizer, path: Path, dtype: torch.dtype, extra: dict | None = None,
                    state_dict: dict | None = None):  # fmt: skip
    """Atomically write a `from_pretrained`-loadable directory (safetensors) with weights in `dtype`
    (`state_dict`: the full weights gathered from a sharded model, else the model's own). A peft model writes its
    adapter alone, in peft's format, in the dtype it trained in (fp32)."""
    try:
        with atomic_dir(path) as tmp:
            if is_peft_model(model):
                model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
            else:
                params_dtype = next(model.parameters()).dtype
                state = None if params_dtype == dtype else {k: v.to(dtype) for k, v in model.state_dict().items()}
                if state_dict is not None:
                    state = {k: v.to(dtype) for k, v in state_dict.items()}
                model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if extra is not None:
                (tmp / RESULT_FILE).write_text(json.dumps(extra, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        raise CheckpointError(f"cannot write model {path}: {getattr(e, 'strerror', None) or e}. {DISK_FIX}") from None


def load_pretrained_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy the safetensors weights of a `save_pretrained` directory into `model` (tied weights allowed)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(f), device="cpu"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in missing if own[k].data_ptr() not in loaded_ptrs]
    if unexpected or untied:
        raise TrainError(
            f"{path} does not match the model (missing {untied[:3]}, unexpected {list(unexpected)[:3]}); "
            "delete it or load it with unidetox.models.loading.load_model"
        )


def finished_result(out_dir: Path, lm: LoadedModel, fingerprint: str) -> TrainResult | None:
    """The result of a finished run of this fingerprint in `out_dir` (its weights loaded into `lm`), else None."""
    final = out_dir / "final"
    if not (final / RESULT_FILE).is_file():
        return None
    res = read_json(final / RESULT_FILE)
    if res.get("fingerprint") != fingerprint:
        raise TrainError(
            f"{final} was trained with another configuration or other texts; use another out_dir or delete it"
        )
    if is_adapter_dir(final):  # a LoRA run: its adapter, injected into lm.model
        load_adapter(lm.model, final)
    else:
        load_pretrained_weights(lm.model, final)
    return TrainResult(
        steps=res["steps"],
        final_dir=final,
        losses=tuple(res["losses"]),
        val_loss=res["val_loss"],
        seconds=res["seconds"],
    )


def recover_checkpoint_dir(out_dir: Path) -> None:
    """Undo a kill inside `atomic_dir`: restore `.checkpoint.old` if `checkpoint` is gone; drop temp dirs."""
    ckpt, old = out_dir / "checkpoint", out_dir / ".checkpoint.old"
    if not ckpt.exists() and is_checkpoint(old):
        old.rename(ckpt)
    for tmp in out_dir.glob(".*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
    for tmp in (out_dir / "steps").glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def gather_rng(acc, dev: torch.device) -> dict[int, dict[str, torch.Tensor]]:
    """RNG states of all processes, {rank: {"cpu": uint8, "cuda": uint8}} (same-size tensors, gathered)."""
    mine = capture_rng(dev)
    if acc.num_processes == 1:
        return {0: mine}
    out: dict[int, dict[str, torch.Tensor]] = {r: {} for r in range(acc.num_processes)}
    for name, t in mine.items():
        rows = acc.gather(t.to(acc.device).unsqueeze(0)).cpu()
        for r in range(acc.num_processes):
            out[r][name] = rows[r].clone()
    return out


def resume(ckpt: Path, acc, *, model, optimizer, scheduler, fingerprint: str, total: int, seed: int) -> Progress:
    """Load `ckpt` (when there is one) into model/optimizer/scheduler and this process's RNG; its progress.

    With another number of processes than the checkpoint's, dropout RNG is re-seeded from (seed, rank, step)."""
    if not is_checkpoint(ckpt):
        return Progress()
    meta, rng = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
    if meta.get("fingerprint") != fingerprint or meta.get("total_steps") != total:
        raise TrainError(
            f"{ckpt} belongs to a run with another configuration or other texts; "
            "use another out_dir or delete the checkpoint to start afresh"
        )
    done = Progress(meta["step"], list(meta["losses"]), meta["tokens"], meta["elapsed"])
    world, rank = acc.num_processes, acc.process_index
    if meta.get("world_size") == world and rank in rng:
        restore_rng(rng[rank], acc.device)
    else:
        log.warning("resuming with %d processes instead of %s: dropout RNG re-seeded", world, meta.get("world_size"))
        torch.manual_seed(seed + rank + 1_000_003 * done.step)
    log.info("resumed %s at step %d of %d", ckpt.parent, done.step, total)
    return done


def save_resumable(ckpt: Path, acc, *, model, optimizer, scheduler, meta: dict) -> None:
    """Write the resumable state to `ckpt` (main process; RNG of all processes gathered), then synchronise."""
    rng_all = gather_rng(acc, acc.device)
    if acc.is_main_process:
        save_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, rng=rng_all, meta=meta)
    acc.wait_for_everyone()
