"""The toxic model (fine-tuned on DGHS hate rows) and the DExperts expert (on nothate rows): stage 1."""

from __future__ import annotations

from unidetox.config import Profile, to_dict
from unidetox.data.checksums import text_fingerprint
from unidetox.data.dghs import load_dghs
from unidetox.data.files import DataError
from unidetox.pipeline.runtime import begin, load_lm, log, reuse, stage_dir, timed, train_precision_key
from unidetox.store.run_store import (
    StageDir,
)


def toxic_texts(profile: Profile) -> tuple[list[str], list[str]]:
    """Training and validation texts of the toxic model (DGHS hate rows of the configured targets)."""
    cfg = profile.toxic
    train = load_dghs(profile.data, cfg.train_splits, targets=cfg.targets).text.tolist()
    val = load_dghs(profile.data, cfg.val_splits, targets=cfg.targets).text.tolist() if cfg.val_splits else []
    if cfg.max_texts:
        train, val = train[: cfg.max_texts], val[: cfg.max_texts]
    if cfg.max_val_texts:
        val = val[: cfg.max_val_texts]
    return train, val


def nothate_texts(profile: Profile, n: int) -> list[str]:
    """`n` DGHS ``nothate`` rows of the toxic model's training splits (any target), in a seeded random order."""
    rows = load_dghs(profile.data, profile.toxic.train_splits, label="nothate", targets=())
    if len(rows) < n:
        raise DataError(f"only {len(rows)} DGHS nothate rows in splits {list(profile.toxic.train_splits)}; need {n}")
    return rows.sample(n=n, random_state=profile.distill.seed).text.tolist()


def _base_texts(profile: Profile, stage: str) -> tuple[list[str], list[str]]:
    """Training and validation texts of the ``toxic-model`` or ``expert-model`` stage."""
    if stage == "toxic-model":
        return toxic_texts(profile)
    return nothate_texts(profile, len(toxic_texts(profile)[0])), []


def _base_stage(profile: Profile, stage: str, train: list[str], val: list[str]) -> StageDir:
    config = {"toxic": to_dict(profile.toxic), "texts": text_fingerprint(train), "val": text_fingerprint(val),
              **train_precision_key(profile)}  # fmt: skip
    return stage_dir(profile, stage, config)


def finetune_stage(profile: Profile, stage: str) -> StageDir:
    """The directory of the ``toxic-model`` or ``expert-model`` stage of `profile`, located but not run."""
    return _base_stage(profile, stage, *_base_texts(profile, stage))


def _finetune_base(profile: Profile, stage: str, quiet: bool) -> StageDir:
    """Fine-tune the base model with the toxic model's training configuration; weights in ``<stage>/final``."""
    train, val = _base_texts(profile, stage)
    st = _base_stage(profile, stage, train, val)
    if reuse(st, stage):
        return st
    return _train_base(profile, st, train, val, quiet)


def _train_base(profile: Profile, st: StageDir, train: list[str], val: list[str], quiet: bool) -> StageDir:
    """Train the stage `st` of :func:`_finetune_base` and mark it done."""
    from unidetox.method.train import train_causal_lm

    summary: dict = {"n_train": len(train), "n_val": len(val)}
    with timed(summary):
        lm = load_lm(profile, profile.toxic.base_model)
        begin(st)
        res = train_causal_lm(lm, train, profile.toxic.train, st.path, device=profile.device, val_texts=val,
                              progress=not quiet, scale=profile.scale)  # fmt: skip
        summary.update(steps=res.steps, val_loss=res.val_loss)
    st.mark_done(summary)
    log(f"{st.stage}: wrote {st.path / 'final'}")
    return st


def toxic_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Fine-tune the base model on hate speech; weights in ``<stage>/final``."""
    return _finetune_base(profile, "toxic-model", quiet)


def expert_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """DExperts' non-toxic expert: the base model fine-tuned like the toxic model, on as many ``nothate`` rows."""
    return _finetune_base(profile, "expert-model", quiet)
