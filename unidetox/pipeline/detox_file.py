"""Detoxify any causal LM on any text source: ``unidetox detox --target MODEL --texts SOURCE``.

The training configuration defaults to the paper's (the ``paper`` profile's ``detox.train``: AdamW, learning rate
5e-5, batch 8, 256 tokens, linear decay, seed 1234, 10,000 steps as in the official fine-tuning example); every
value can be overridden. The run is an ordinary ``detox`` stage of the profile's run store, keyed by the target,
the configuration and the source's content hash, so it resumes after a kill and is reused when nothing changed.
Its ``final/`` folder is a Hugging Face model folder (config.json, safetensors, tokenizer files, model card);
``out`` copies it to a folder of the user's choosing.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from unidetox.config import ConfigError, Profile, TrainConfig
from unidetox.config.loader import load_profile
from unidetox.models.loading import check_model_folder
from unidetox.processes import log
from unidetox.store.run_store import StoreError, atomic_dir

#: checkpoints of long runs: every `CHECKPOINT_EVERY` steps (the paper profile's), or 4 per run when shorter
CHECKPOINT_PER_RUN = 4


def paper_train_config(*, learning_rate: float | None = None, steps: int | None = None, batch_size: int | None = None,
                       max_length: int | None = None, seed: int | None = None) -> TrainConfig:  # fmt: skip
    """The paper's detox fine-tuning configuration with the given values replaced (None keeps the paper's)."""
    paper = load_profile("paper").detox.train
    changes = {k: v for k, v in {"learning_rate": learning_rate, "max_steps": steps, "batch_size": batch_size,
                                 "max_length": max_length, "seed": seed}.items() if v is not None}  # fmt: skip
    changes.setdefault("epochs", 0)
    total = changes.get("max_steps", paper.max_steps)
    if total < paper.checkpoint_every:  # short runs still leave resumable checkpoints
        changes["checkpoint_every"] = total // CHECKPOINT_PER_RUN
        changes["log_every"] = max(1, min(paper.log_every, total // 10))
    try:
        return dataclasses.replace(paper, **changes)
    except ConfigError as e:
        raise ConfigError(f"detox --texts: {e}") from None


def check_out(out: str | Path | None) -> Path | None:
    """``--out`` must be a new or empty folder (never overwrite a user's files)."""
    if out is None:
        return None
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"--out {out} exists and is not an empty folder. Fix: choose a new folder or delete it")
    return out


def detoxify(profile: Profile, target: str, texts: str | Path, *, column: str | None = None,
             train_cfg: TrainConfig | None = None, out: str | Path | None = None, quiet: bool = False) -> Path:  # fmt: skip
    """Fine-tune `target` on the texts of `texts`; returns the model folder (``out`` when given).

    Bad inputs (missing or unreadable source, missing column, no text, a model folder without weights, an
    occupied ``out``) raise before anything is written.
    """
    from unidetox import pipeline as P
    from unidetox.data.texts import read_texts

    out_dir = check_out(out)
    check_model_folder(target)
    source = read_texts(texts, column)
    st = P.detox_on_texts(profile, target, source, train_cfg or paper_train_config(), quiet=quiet)
    final = st.path / "final"
    if out_dir is None:
        return final
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked); atomic_dir renames the finished copy into its place
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(final, tmp, dirs_exist_ok=True)
    log(f"detox: copied {final} to {out_dir}")
    return out_dir
