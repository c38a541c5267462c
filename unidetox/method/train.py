"""The one causal-LM training loop: the toxic model, detoxification fine-tuning, baselines.

`train_causal_lm` fine-tunes ``lm.model`` in place with AdamW and writes into ``out_dir``:

- ``checkpoint/``: the last resumable state (weights, optimizer, scheduler, RNG, step), safetensors + JSON,
  every ``cfg.checkpoint_every`` steps (none when it is 0); a new call resumes from it; removed once
  ``final/`` is written, since it is then never read again (it holds three times the model's size);
- ``steps/<n>/``: ``save_pretrained`` model + tokenizer after optimizer step n, for each n in ``save_at_steps``;
- ``final/``: the final model + tokenizer and ``train_result.json``; when it exists the call returns at once;
- ``log.jsonl``: one record per ``cfg.log_every`` steps (step, mean loss since the previous record, lr,
  cumulative tokens, elapsed seconds, gradient norm) and, with ``val_texts``, a last record with ``val_loss``.

Data: each text is tokenised with the tokenizer's defaults (BOS when the tokenizer adds one), EOS is
appended and the sequence is cut to ``cfg.max_length`` tokens (a cut text keeps no EOS: it did not end).
Step ``s`` (0-based) reads batch ``s % B_e`` of epoch ``s // B_e`` of a permutation seeded by
``(cfg.seed, epoch)``, where ``B_e = ceil(n_texts / batch_size)``; the last, partial batch of an epoch is
kept. With ``cfg.epochs`` the run has ``epochs * B_e`` steps (every text seen ``epochs`` times, as HF Trainer).

Loss: next-token cross entropy summed over the non-padding targets of the whole optimizer batch (all
processes, all accumulation micro-batches) and divided by their number, so any split of the batch gives
the same gradient as one big batch. Padding is identified by the attention mask, never by the pad id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from tqdm import tqdm

from unidetox.checkpoint import (
    CheckpointError,
    capture_rng,
    is_checkpoint,
    load_checkpoint,
    refuse_pickle,
    restore_rng,
    save_checkpoint,
)
from unidetox.config import ScaleConfig, TrainConfig, to_dict
from unidetox.errors import UnidetoxError
from unidetox.models import LoadedModel, resolve_device
from unidetox.store import DISK_FIX, JsonlWriter, atomic_dir, canonical_json, read_json, read_jsonl, write_text

log = logging.getLogger(__name__)

RESULT_FILE = "train_result.json"
IGNORE_INDEX = -100


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


# ----------------------------------------------------------------------------- pure pieces


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


def run_fingerprint(cfg: TrainConfig, texts: Sequence[str]) -> str:
    """Hash of what determines the trained weights: the config (less logging/checkpoint cadence) and texts."""
    c = to_dict(cfg)
    c.pop("checkpoint_every")
    c.pop("log_every")
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    return hashlib.sha256(canonical_json({"config": c, "n": len(texts), "texts": h.hexdigest()}).encode()).hexdigest()


# ----------------------------------------------------------------------------- helpers with side effects


def mixed_precision(scale: ScaleConfig, dev: torch.device) -> str:
    """accelerate's mixed_precision ('bf16' | 'no') for `scale.mixed_precision` on `dev`: auto = bf16 on CUDA only."""
    if scale.mixed_precision == "auto":
        return "bf16" if dev.type == "cuda" else "no"
    return "bf16" if scale.mixed_precision == "bf16" else "no"


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


def _save_pretrained(model: torch.nn.Module, tokenizer, path: Path, dtype: torch.dtype, extra: dict | None = None,
                     state_dict: dict | None = None):  # fmt: skip
    """Atomically write a `from_pretrained`-loadable directory (safetensors) with weights in `dtype`
    (`state_dict`: the full weights gathered from a sharded model, else the model's own)."""
    try:
        with atomic_dir(path) as tmp:
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


def _load_pretrained_weights(model: torch.nn.Module, path: Path) -> None:
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
            "delete it or load it with unidetox.models.load_model"
        )


def _recover_checkpoint_dir(out_dir: Path) -> None:
    """Undo a kill inside `atomic_dir`: restore `.checkpoint.old` if `checkpoint` is gone; drop temp dirs."""
    import shutil

    ckpt, old = out_dir / "checkpoint", out_dir / ".checkpoint.old"
    if not ckpt.exists() and is_checkpoint(old):
        old.rename(ckpt)
    for tmp in out_dir.glob(".*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
    for tmp in (out_dir / "steps").glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def _gather_rng(acc, dev: torch.device) -> dict[int, dict[str, torch.Tensor]]:
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


def _eval_loss(model, seqs, micro_bs: int, pad_id: int, acc) -> tuple[float | None, int]:
    """Token-mean NLL over `seqs` (this process's share, summed over processes), no grad."""
    share = shard(range(len(seqs)), acc.process_index, acc.num_processes)
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    count = torch.zeros((), dtype=torch.long, device=acc.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(share), micro_bs):
            ids, mask = pad_batch([seqs[i] for i in share[lo : lo + micro_bs]], pad_id)
            ids, mask = ids.to(acc.device), mask.to(acc.device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            s, n = token_nll(logits, ids, mask)
            total += s.double()
            count += n
    model.train(was_training)
    total, count = acc.reduce(total, "sum"), acc.reduce(count, "sum")
    n = int(count.item())
    return (float(total.item() / n) if n else None), n


def _finished(out_dir: Path, lm: LoadedModel, fingerprint: str) -> TrainResult | None:
    final = out_dir / "final"
    if not (final / RESULT_FILE).is_file():
        return None
    res = read_json(final / RESULT_FILE)
    if res.get("fingerprint") != fingerprint:
        raise TrainError(
            f"{final} was trained with another configuration or other texts; use another out_dir or delete it"
        )
    _load_pretrained_weights(lm.model, final)
    return TrainResult(
        steps=res["steps"],
        final_dir=final,
        losses=tuple(res["losses"]),
        val_loss=res["val_loss"],
        seconds=res["seconds"],
    )


# ----------------------------------------------------------------------------- the loop


def train_causal_lm(
    lm: LoadedModel,
    texts: Sequence[str],
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    device: str = "auto",
    save_at_steps: Sequence[int] = (),
    val_texts: Sequence[str] = (),
    progress: bool = True,
    stop_after: int | None = None,
    scale: ScaleConfig | None = None,
) -> TrainResult:
    """Fine-tune `lm.model` in place on `texts` (see the module docstring for the files written).

    device: auto | cpu | cuda (accelerate places the model; bf16 autocast on CUDA, fp32 on CPU; under
    ``accelerate launch`` each process takes its slice of every global batch). Half-precision weights
    are trained in fp32 and cast back at the end. `scale`: gradient checkpointing, mixed precision and the memory
    check (the estimate of `unidetox.scale.plan` is printed first). If ``out_dir/final`` is complete, its weights are
    loaded into `lm.model` and its result returned without training. `stop_after`: stop after that
    optimizer step with a checkpoint and no final (time-limited jobs); a later call resumes.
    """
    out_dir = Path(out_dir)
    texts = list(texts)
    if not texts:
        raise TrainError("no training texts were given")
    fingerprint = run_fingerprint(cfg, texts)
    done_result = _finished(out_dir, lm, fingerprint)
    if done_result is not None:
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)  # a kill can fall between final/ and this cleanup
        return done_result

    from accelerate.utils import DistributedType

    from unidetox.scale.hardware import runtime_hardware
    from unidetox.scale.plan import training_line

    scale = scale or ScaleConfig()
    dev = resolve_device(device)
    acc = _make_accelerator(dev, scale)
    dev = acc.device
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
    world, rank, is_main = acc.num_processes, acc.process_index, acc.is_main_process
    tok, model = lm.tokenizer, lm.model
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    from unidetox.measure.likelihood import model_max_length

    context = model_max_length(model)
    if context is not None and cfg.max_length > context:
        raise TrainError(f"train.max_length {cfg.max_length} is beyond {lm.spec}'s context of {context} tokens. "
                         f"Fix: set that stage's toxic.train.max_length or detox.train.max_length to at most "
                         f"{context}")  # fmt: skip
    seqs = tokenize_texts(tok, texts, cfg.max_length)
    val_seqs = tokenize_texts(tok, list(val_texts), cfg.max_length)
    n = len(seqs)
    total = num_training_steps(cfg, n)
    save_steps = sorted({int(s) for s in save_at_steps})
    if save_steps and (save_steps[0] < 1 or save_steps[-1] > total):
        raise TrainError(f"save_at_steps must lie in 1..{total} (the run's optimizer steps), got {save_steps}")
    if stop_after is not None and stop_after < 1:
        raise TrainError(f"stop_after must be >= 1, got {stop_after}")
    stop = total if stop_after is None else min(int(stop_after), total)
    micro_bs = math.ceil(cfg.batch_size / (cfg.grad_accum * world))
    line = training_line(lm.spec, lm.model, cfg, n, scale, runtime_hardware(acc))
    if is_main:
        print(line, flush=True)

    orig_dtype = next(model.parameters()).dtype
    if orig_dtype != torch.float32:
        log.warning("training %s weights in float32 (half-precision AdamW loses small updates)", orig_dtype)
        model.float()
    model.to(dev)
    model.train()
    if scale.gradient_checkpointing:
        set_checkpointing(model, True)
    if acc.distributed_type == DistributedType.DEEPSPEED:  # no dataloader is prepared: DeepSpeed needs the micro-batch
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_bs
    groups = [
        {"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0},  # biases, norms (as HF)
    ]
    raw_opt = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8)

    def factor(step: int) -> float:
        return lr_factor(step, warmup_steps=cfg.warmup_steps, total_steps=total, kind=cfg.scheduler)

    model, optimizer = acc.prepare(model, raw_opt)
    scheduler = torch.optim.lr_scheduler.LambdaLR(raw_opt, factor)
    base = acc.unwrap_model(model)

    ckpt = out_dir / "checkpoint"
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _recover_checkpoint_dir(out_dir)
    acc.wait_for_everyone()
    refuse_pickle(ckpt)

    cuda_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):  # the caller's RNG state is left as it was
        torch.manual_seed(cfg.seed + rank)
        start, losses, tokens, elapsed0 = 0, [], 0, 0.0
        if is_checkpoint(ckpt):
            meta, rng = load_checkpoint(ckpt, model=base, optimizer=raw_opt, scheduler=scheduler)
            if meta.get("fingerprint") != fingerprint or meta.get("total_steps") != total:
                raise TrainError(
                    f"{ckpt} belongs to a run with another configuration or other texts; "
                    "use another out_dir or delete the checkpoint to start afresh"
                )
            start, losses, tokens, elapsed0 = meta["step"], list(meta["losses"]), meta["tokens"], meta["elapsed"]
            if meta.get("world_size") == world and rank in rng:
                restore_rng(rng[rank], dev)
            else:
                log.warning(
                    "resuming with %d processes instead of %s: dropout RNG re-seeded", world, meta.get("world_size")
                )
                torch.manual_seed(cfg.seed + rank + 1_000_003 * start)
            log.info("resumed %s at step %d of %d", out_dir, start, total)

        writer = None
        if is_main:
            log_path = out_dir / "log.jsonl"
            kept = [r for r in read_jsonl(log_path) if r.get("step", 0) <= start and "val_loss" not in r]
            write_text(log_path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in kept))
            writer = JsonlWriter(log_path)
        last_logged = max((r["step"] for r in writer.records), default=0) if writer else 0

        def checkpoint(step_done: int) -> None:
            rng_all = _gather_rng(acc, dev)
            if is_main:
                meta = {
                    "step": step_done,
                    "total_steps": total,
                    "losses": losses,
                    "tokens": tokens,
                    "elapsed": elapsed0 + time.monotonic() - t0,
                    "world_size": world,
                    "fingerprint": fingerprint,
                    "config": to_dict(cfg),
                }
                save_checkpoint(ckpt, model=base, optimizer=raw_opt, scheduler=scheduler, rng=rng_all, meta=meta)
            acc.wait_for_everyone()

        t0 = time.monotonic()
        per_epoch = batches_per_epoch(n, cfg.batch_size)
        order_epoch, order = -1, []
        bar = tqdm(total=total, initial=start, disable=not (progress and is_main), desc="train", dynamic_ncols=True)
        for step in range(start, stop):
            epoch, b = divmod(step, per_epoch)
            if epoch != order_epoch:
                order_epoch, order = epoch, epoch_order(cfg.seed, epoch, n)
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            n_targets = max(1, sum(len(seqs[i]) - 1 for i in idx))  # the global denominator, known to all
            parts = micro_batches(shard(idx, rank, world), cfg.grad_accum)
            local_sum = torch.zeros((), dtype=torch.float32, device=dev)
            for j, part in enumerate(parts):
                weight = world / n_targets  # DDP averages gradients over processes: undo it
                if not part:  # this process has no text in a small last batch; DDP still needs its backward
                    part, weight = [idx[0]], 0.0
                sync = j == len(parts) - 1
                with contextlib.nullcontext() if sync else acc.no_sync(model):
                    ids, mask = pad_batch([seqs[i] for i in part], pad_id)
                    ids, mask = ids.to(dev), mask.to(dev)
                    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                    s, _ = token_nll(logits, ids, mask)
                    acc.backward(s * weight)
                if weight:
                    local_sum += s.detach()
            norm = acc.clip_grad_norm_(model.parameters(), 1.0)  # DeepSpeed clips itself (gradient_clipping: 1.0)
            grad_norm = float(norm) if norm is not None else math.nan
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss = float(acc.reduce(local_sum, "sum").item()) / n_targets
            if not math.isfinite(loss):
                bar.close()
                raise TrainError(
                    f"training diverged: the loss is {loss} at step {step + 1} of {total} (learning_rate "
                    f"{cfg.learning_rate:g}), so the stage is not marked done. Fix: lower the learning rate (or "
                    "add warmup_steps) and rerun"
                )
            losses.append(loss)
            tokens += sum(len(seqs[i]) for i in idx)
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if writer is not None and (done % cfg.log_every == 0 or done == total):
                window = losses[last_logged:done]
                writer.append([{
                    "step": done, "loss": sum(window) / len(window), "lr": lr, "tokens": tokens,
                    "elapsed": round(elapsed0 + time.monotonic() - t0, 3), "grad_norm": grad_norm,
                }])  # fmt: skip
                last_logged = done
            if done in save_steps:
                full = acc.get_state_dict(model) if sharded else None  # a collective under FSDP/ZeRO-3
                if is_main:
                    _save_pretrained(base, tok, out_dir / "steps" / str(done), orig_dtype, state_dict=full)
                acc.wait_for_everyone()
            periodic = cfg.checkpoint_every > 0 and (done % cfg.checkpoint_every == 0 or done == total)
            if periodic or done == stop < total:
                checkpoint(done)
        bar.close()
        elapsed = elapsed0 + time.monotonic() - t0
        if stop < total:
            model = acc.unwrap_model(model, keep_fp32_wrapper=False)
            acc.free_memory()
            if scale.gradient_checkpointing:
                set_checkpointing(model, False)
            model.to(orig_dtype).eval()
            return TrainResult(steps=len(losses), final_dir=None, losses=tuple(losses), val_loss=None, seconds=elapsed)

        val_loss, val_tokens = (None, 0)
        if val_seqs:
            val_loss, val_tokens = _eval_loss(model if sharded else base, val_seqs, micro_bs, pad_id, acc)
            if writer is not None:
                writer.append([{"step": total, "val_loss": val_loss, "val_tokens": val_tokens,
                                "elapsed": round(elapsed, 3)}])  # fmt: skip

    full = acc.get_state_dict(model) if sharded else None
    model = acc.unwrap_model(model, keep_fp32_wrapper=False)
    acc.free_memory()
    if scale.gradient_checkpointing:
        set_checkpointing(model, False)
    model.to(orig_dtype).eval()
    final = out_dir / "final"
    result = {"steps": total, "losses": losses, "val_loss": val_loss, "seconds": elapsed, "fingerprint": fingerprint,
              "val_tokens": val_tokens, "tokens": tokens, "config": to_dict(cfg)}  # fmt: skip
    if is_main:
        _save_pretrained(model, tok, final, orig_dtype, extra=result, state_dict=full)
        # the resumable state (weights + optimizer: 3x the model) is dead weight once final/ is complete
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    acc.wait_for_everyone()
    return TrainResult(steps=total, final_dir=final, losses=tuple(losses), val_loss=val_loss, seconds=elapsed)


__all__ = [
    "CheckpointError",
    "TrainError",
    "TrainResult",
    "batch_indices",
    "epoch_order",
    "lr_factor",
    "micro_batches",
    "num_training_steps",
    "pad_batch",
    "run_fingerprint",
    "shard",
    "token_nll",
    "tokenize_texts",
    "train_causal_lm",
]
