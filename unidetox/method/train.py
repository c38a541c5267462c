"""The one causal-LM training loop: the toxic model, detoxification fine-tuning, baselines.

`train_causal_lm` fine-tunes ``lm.model`` in place with AdamW and writes into ``out_dir``:

- ``checkpoint/``: the last resumable state (weights, optimizer, scheduler, RNG, step), safetensors + JSON,
  every ``cfg.checkpoint_every`` steps (none when it is 0); a new call resumes from it; removed once
  ``final/`` is written, since it is then never read again (it holds three times the model's size);
- ``steps/<n>/``: ``save_pretrained`` model + tokenizer after optimizer step n, for each n in ``save_at_steps``;
  the snapshot of the last step shares its files with ``final/`` (hard links, :mod:`unidetox.store.links`);
- ``final/``: the final model + tokenizer and ``train_result.json``; when it exists the call returns at once;
- ``log.jsonl``: one record per ``cfg.log_every`` steps (step, mean loss since the previous record, lr,
  cumulative tokens, elapsed seconds, gradient norm) and, with ``val_texts``, a last record with ``val_loss``.

Data (:mod:`unidetox.method.train_setup`, :mod:`unidetox.method.batches`): each text is tokenised with the
tokenizer's defaults (BOS when the tokenizer adds one), EOS is appended and the sequence is cut to
``cfg.max_length`` tokens (a cut text keeps no EOS: it did not end).
Step ``s`` (0-based) reads batch ``s % B_e`` of epoch ``s // B_e`` of a permutation seeded by
``(cfg.seed, epoch)``, where ``B_e = ceil(n_texts / batch_size)``; the last, partial batch of an epoch is
kept. With ``cfg.epochs`` the run has ``epochs * B_e`` steps (every text seen ``epochs`` times, as HF Trainer).

LoRA (``lora``, :class:`unidetox.config.LoraSettings`): peft injects an adapter into ``lm.model`` (its random start
seeded by ``cfg.seed``) and only the adapter trains; the base's weights stay frozen in their dtype, and
``steps/<n>/`` and ``final/`` hold the adapter alone in peft's format (``adapter_config.json``,
``adapter_model.safetensors``). The loop is the same; the checkpoint holds the whole wrapped model.

Loss: next-token cross entropy summed over the non-padding targets of the whole optimizer batch (all
processes, all accumulation micro-batches) and divided by their number, so any split of the batch gives
the same gradient as one big batch. Padding is identified by the attention mask, never by the pad id.

The loop below reads top-down: :func:`train_causal_lm` (set up, resume, step, log, checkpoint, save), then
:func:`_train_step`; the set-up is in :mod:`unidetox.method.train_setup`, the files of a run (fingerprint,
resumable checkpoint, saved models) in :mod:`unidetox.method.train_state`.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from unidetox.config import ScaleConfig, TrainConfig, to_dict
from unidetox.method.batches import batch_indices, micro_batches, pad_batch, shard, token_nll
from unidetox.method.train_setup import TrainRun, cuda_devices, set_checkpointing, setup_run
from unidetox.method.train_state import (
    Progress,
    TrainError,
    TrainResult,
    finished_result,
    resume,
    run_fingerprint,
    save_pretrained,
    save_resumable,
)
from unidetox.models.loading import LoadedModel
from unidetox.store.jsonl import INT, NUMBER, JsonlWriter, Schema, read_jsonl
from unidetox.store.links import link_identical
from unidetox.store.run_store import ANNOTATIONS, write_text

_ANY_NUMBER = ("a number", lambda v: type(v) in (int, float))  # NaN included: a gradient norm DeepSpeed kept
#: a record of ``log.jsonl``: a window of training steps, or (with ``val_loss``) the validation at the end
TRAIN_LOG = Schema("training log", {"step": INT}, optional={
    "loss": NUMBER, "lr": NUMBER, "tokens": INT, "elapsed": NUMBER, "grad_norm": _ANY_NUMBER, "val_tokens": INT,
    "val_loss": ("a number or null", lambda v: v is None or type(v) in (int, float)),
})  # fmt: skip

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
    lora=None,
) -> TrainResult:
    """Fine-tune `lm.model` in place on `texts` (see the module docstring for the files written).

    device: auto | cpu | cuda (accelerate places the model; ``scale.mixed_precision``: bf16 autocast on CUDA and on
    CPUs with native bf16, else fp32; under ``accelerate launch`` each process takes its slice of every global
    batch). Half-precision weights are trained in fp32 and cast back at the end. `scale`: gradient checkpointing,
    mixed precision and the memory check (the estimate of `unidetox.pipeline.plan` is printed first). If
    ``out_dir/final`` is complete, its weights are loaded into `lm.model` and its result returned without training.
    `stop_after`: stop after that optimizer step with a checkpoint and no final; a later call resumes. `lora`: below.
    """
    out_dir, texts = Path(out_dir), list(texts)
    if not texts:
        raise TrainError("no training texts were given")
    fingerprint = run_fingerprint(cfg, texts, lora)
    done_result = finished_result(out_dir, lm, fingerprint)
    if done_result is not None:
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)  # a kill can fall between final/ and this cleanup
        link_identical(out_dir / "final", out_dir / "steps" / str(done_result.steps), skip=ANNOTATIONS)  # and links
        return done_result
    run = setup_run(lm, texts, val_texts, cfg, scale or ScaleConfig(), out_dir, device, save_at_steps, stop_after,
                    fingerprint, lora)  # fmt: skip
    acc = run.acc
    with torch.random.fork_rng(devices=cuda_devices(acc.device)):  # the caller's RNG state is left as it was
        torch.manual_seed(cfg.seed + acc.process_index)
        state = resume(run.ckpt, acc, model=run.base, optimizer=run.raw_opt, scheduler=run.scheduler,
                       fingerprint=fingerprint, total=run.total, seed=cfg.seed)  # fmt: skip
        book = _Logbook(out_dir, state.step, run.total, cfg.log_every, acc, progress)
        for step in range(state.step, run.stop):
            idx = batch_indices(step, len(run.seqs), cfg.batch_size, cfg.seed)
            loss, grad_norm, lr = _train_step(run, idx)
            if not math.isfinite(loss):
                book.bar.close()
                raise TrainError(
                    f"training diverged: the loss is {loss} at step {step + 1} of {run.total} (learning_rate "
                    f"{cfg.learning_rate:g}), so the stage is not marked done. Fix: lower the learning rate (or "
                    "add warmup_steps) and rerun"
                )
            state.step, state.tokens = step + 1, state.tokens + sum(len(run.seqs[i]) for i in idx)
            state.losses.append(loss)
            book.record(state, lr, grad_norm)
            if state.step in run.save_steps:
                _save_step_model(run, state.step)
            if _checkpoint_due(cfg, state.step, run.total, run.stop):
                _checkpoint(run, state)
        book.bar.close()
        elapsed = state.elapsed()
        if run.stop < run.total:
            _release(run)
            return TrainResult(steps=len(state.losses), final_dir=None, losses=tuple(state.losses), val_loss=None,
                               seconds=elapsed)  # fmt: skip
        val_loss, val_tokens = _validate(run, book, elapsed)
    return _save_final(run, state, elapsed, val_loss, val_tokens)


def _train_step(run: TrainRun, idx: list[int]) -> tuple[float, float, float]:
    """One optimizer step on texts `idx` -> (loss in nats/token over the whole batch, gradient norm, lr used)."""
    acc, model, seqs = run.acc, run.model, run.seqs
    world = acc.num_processes
    n_targets = max(1, sum(len(seqs[i]) - 1 for i in idx))  # the global denominator, known to all
    parts = micro_batches(shard(idx, acc.process_index, world), run.cfg.grad_accum)
    local_sum = torch.zeros((), dtype=torch.float32, device=acc.device)
    for j, part in enumerate(parts):
        weight = world / n_targets  # DDP averages gradients over processes: undo it
        if not part:  # this process has no text in a small last batch; DDP still needs its backward
            part, weight = [idx[0]], 0.0
        sync = j == len(parts) - 1
        with contextlib.nullcontext() if sync else acc.no_sync(model):
            ids, mask = pad_batch([seqs[i] for i in part], run.pad_id)
            ids, mask = ids.to(acc.device), mask.to(acc.device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            s, _ = token_nll(logits, ids, mask)
            acc.backward(s * weight)
        if weight:
            local_sum += s.detach()
    norm = acc.clip_grad_norm_(model.parameters(), 1.0)  # DeepSpeed clips itself (gradient_clipping: 1.0)
    grad_norm = float(norm) if norm is not None else math.nan
    lr = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return float(acc.reduce(local_sum, "sum").item()) / n_targets, grad_norm, lr


# ----------------------------------------------------------------------------- logging, checkpoints, teardown


class _Logbook:
    """``log.jsonl`` (main process only; on resume cut back to the resumed step) and the progress bar."""

    def __init__(self, out_dir: Path, start: int, total: int, log_every: int, acc, show: bool):
        self.writer, self.last, self.total, self.log_every = None, 0, total, log_every
        if acc.is_main_process:
            path = out_dir / "log.jsonl"
            logged = read_jsonl(path, repair=True, schema=TRAIN_LOG)
            kept = [r for r in logged if r["step"] <= start and "val_loss" not in r]
            write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in kept))
            self.writer = JsonlWriter(path)
            self.last = max((r["step"] for r in self.writer.records), default=0)
        disable = not (show and acc.is_main_process)
        self.bar = tqdm(total=total, initial=start, disable=disable, desc="train", dynamic_ncols=True)

    def record(self, state: Progress, lr: float, grad_norm: float) -> None:
        """After step `state.step`: the bar, and every `log_every` steps the mean loss since the last record."""
        done = state.step
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{state.losses[-1]:.4f}", lr=f"{lr:.2e}")
        if self.writer is not None and (done % self.log_every == 0 or done == self.total):
            window = state.losses[self.last : done]
            self.writer.append([{
                "step": done, "loss": sum(window) / len(window), "lr": lr, "tokens": state.tokens,
                "elapsed": round(state.elapsed(), 3), "grad_norm": grad_norm,
            }])  # fmt: skip
            self.last = done


def _validate(run: TrainRun, book: _Logbook, elapsed: float) -> tuple[float | None, int]:
    """Validation loss (nats/token, None without val_texts) and its token count, logged as the last record."""
    if not run.val_seqs:
        return None, 0
    val_loss, val_tokens = _eval_loss(run.model if run.sharded else run.base, run.val_seqs, run.micro_bs,
                                      run.pad_id, run.acc)  # fmt: skip
    if book.writer is not None:
        book.writer.append([{"step": run.total, "val_loss": val_loss, "val_tokens": val_tokens,
                             "elapsed": round(elapsed, 3)}])  # fmt: skip
    return val_loss, val_tokens


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


def _checkpoint_due(cfg: TrainConfig, done: int, total: int, stop: int) -> bool:
    """Checkpoint after step `done`: every `cfg.checkpoint_every` steps and at the end, or when stopping early."""
    periodic = cfg.checkpoint_every > 0 and (done % cfg.checkpoint_every == 0 or done == total)
    return periodic or done == stop < total


def _checkpoint(run: TrainRun, state: Progress) -> None:
    """The resumable state after step `state.step` into ``out_dir/checkpoint``."""
    meta = {
        "step": state.step,
        "total_steps": run.total,
        "losses": state.losses,
        "tokens": state.tokens,
        "elapsed": state.elapsed(),
        "world_size": run.acc.num_processes,
        "fingerprint": run.fingerprint,
        "config": to_dict(run.cfg),
    }
    save_resumable(run.ckpt, run.acc, model=run.base, optimizer=run.raw_opt, scheduler=run.scheduler, meta=meta)


def _save_step_model(run: TrainRun, done: int) -> None:
    """``out_dir/steps/<done>/``: the model after optimizer step `done` (a collective under FSDP/ZeRO-3)."""
    full = run.acc.get_state_dict(run.model) if run.sharded else None
    if run.acc.is_main_process:
        save_pretrained(run.base, run.tok, run.out_dir / "steps" / str(done), run.orig_dtype, state_dict=full)
    run.acc.wait_for_everyone()


def _release(run: TrainRun) -> torch.nn.Module:
    """Unwrap the model from accelerate, checkpointing off, back in its original dtype (a LoRA adapter stays fp32;
    its base never left its dtype), in eval mode."""
    run.model = run.acc.unwrap_model(run.model, keep_fp32_wrapper=False)
    run.acc.free_memory()
    if run.scale.gradient_checkpointing:
        set_checkpointing(run.model, False)
    return (run.model if run.lora is not None else run.model.to(run.orig_dtype)).eval()


def _save_final(run: TrainRun, state: Progress, elapsed: float, val_loss: float | None, val_tokens: int) -> TrainResult:
    """Write ``out_dir/final`` (model, tokenizer, ``train_result.json``) and drop the now useless checkpoint."""
    full = run.acc.get_state_dict(run.model) if run.sharded else None
    model = _release(run)
    final = run.out_dir / "final"
    result = {"steps": run.total, "losses": state.losses, "val_loss": val_loss, "seconds": elapsed,
              "fingerprint": run.fingerprint, "val_tokens": val_tokens, "tokens": state.tokens,
              "config": to_dict(run.cfg)}  # fmt: skip
    if run.acc.is_main_process:
        save_pretrained(model, run.tok, final, run.orig_dtype, extra=result, state_dict=full)
        if run.total in run.save_steps:  # steps/<last> holds the final weights: keep one copy (hard links)
            link_identical(final, run.out_dir / "steps" / str(run.total), skip=ANNOTATIONS)
        # the resumable state (weights + optimizer: 3x the model) is dead weight once final/ is complete
        shutil.rmtree(run.ckpt, ignore_errors=True)
    run.acc.wait_for_everyone()
    return TrainResult(steps=run.total, final_dir=final, losses=tuple(state.losses), val_loss=val_loss, seconds=elapsed)


__all__ = ["TrainError", "TrainResult", "train_causal_lm"]
