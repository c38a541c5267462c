"""The toxic model (fine-tuned on DGHS hate rows) and the DExperts expert (on nothate rows): stage 1."""

from __future__ import annotations

from unidetox.config import Profile, to_dict
from unidetox.data.checksums import text_fingerprint
from unidetox.data.dghs import load_dghs
from unidetox.data.files import DataError
from unidetox.pipeline.keys import train_precision_key
from unidetox.pipeline.loading import load_lm
from unidetox.processes import timed
from unidetox.store.registry import EXPERT_MODEL, TOXIC_MODEL, Stage
from unidetox.store.run_store import StageDir


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


def _base_texts(profile: Profile, stage: Stage) -> tuple[list[str], list[str]]:
    """Training and validation texts of the toxic-model or expert-model stage."""
    if stage is TOXIC_MODEL:
        return toxic_texts(profile)
    return nothate_texts(profile, len(toxic_texts(profile)[0])), []


def _base_stage(profile: Profile, stage: Stage, train: list[str], val: list[str]) -> StageDir:
    config = {"toxic": to_dict(profile.toxic), "texts": text_fingerprint(train), "val": text_fingerprint(val),
              **train_precision_key(profile)}  # fmt: skip
    return stage.locate(profile, config)


def finetune_stage(profile: Profile, stage: Stage) -> StageDir:
    """The directory of the toxic-model or expert-model stage of `profile`, located but not run."""
    return _base_stage(profile, stage, *_base_texts(profile, stage))


def _finetune_base(profile: Profile, stage: Stage, quiet: bool) -> StageDir:
    """Fine-tune the base model with the toxic model's training configuration; weights in ``<stage>/final``."""
    train, val = _base_texts(profile, stage)
    st = _base_stage(profile, stage, train, val)
    if stage.reuse(st):
        return st
    return _train_base(profile, stage, st, train, val, quiet)


def _train_base(profile: Profile, stage: Stage, st: StageDir, train: list[str], val: list[str],
                quiet: bool) -> StageDir:  # fmt: skip
    """Train the run `st` of :func:`_finetune_base` and mark it done."""
    from unidetox.method.train import train_causal_lm

    summary: dict = {"n_train": len(train), "n_val": len(val)}
    with timed(summary):
        lm = load_lm(profile, profile.toxic.base_model)
        stage.begin(st)
        res = train_causal_lm(lm, train, profile.toxic.train, st.path, device=profile.device, val_texts=val,
                              progress=not quiet, scale=profile.scale)  # fmt: skip
        summary.update(steps=res.steps, val_loss=res.val_loss)
    stage.finish(st, summary, st.path / "final")
    return st


def toxic_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Fine-tune the base model on hate speech; weights in ``<stage>/final``."""
    return _finetune_base(profile, TOXIC_MODEL, quiet)


def expert_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """DExperts' non-toxic expert: the base model fine-tuned like the toxic model, on as many ``nothate`` rows."""
    return _finetune_base(profile, EXPERT_MODEL, quiet)


@TOXIC_MODEL.recomputed_by
def _recompute_toxic(profile: Profile, config: dict):
    """A toxic-model run is made from the profile alone."""
    return finetune_stage(profile, TOXIC_MODEL), lambda quiet: toxic_model(profile, quiet=quiet)


@EXPERT_MODEL.recomputed_by
def _recompute_expert(profile: Profile, config: dict):
    """An expert-model run is made from the profile alone."""
    return finetune_stage(profile, EXPERT_MODEL), lambda quiet: expert_model(profile, quiet=quiet)
