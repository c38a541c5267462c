"""Fine-tuning a target on a text set (stage 3): the grid, the baselines' text sets and external files."""

from __future__ import annotations

import dataclasses

from unidetox.config import Profile, to_dict
from unidetox.config.compared_methods import FINETUNED
from unidetox.data.checksums import text_fingerprint
from unidetox.data.texts import read_released
from unidetox.pipeline.candidates import Candidate, untouched
from unidetox.pipeline.distilled import distill, distill_stage, distilled_texts, samples, samples_stage
from unidetox.pipeline.keys import train_precision_key
from unidetox.pipeline.loading import load_lm
from unidetox.pipeline.toxic import finetune_stage, nothate_texts
from unidetox.processes import is_main_process, timed
from unidetox.store.registry import DETOX, TOXIC_MODEL
from unidetox.store.run_store import StageDir, StoreError


def training_texts(profile: Profile, method: str, *, quiet: bool = False) -> tuple[list[str], str]:
    """The text set a fine-tuning method trains on, and its identity for stage keys."""
    if method == "unidetox":
        st = distill(profile, quiet=quiet)
        return distilled_texts(st), st.key
    if method == "base-samples":
        st = samples(profile, "base", quiet=quiet)
        return distilled_texts(st), st.key
    if method == "nothate":
        texts = nothate_texts(profile, profile.distill.num_texts)
        return texts, text_fingerprint(texts)
    if method == "released":  # all the file's texts, as the paper; keyed by the file's content hash, not its path
        src = read_released(profile.data)
        return list(src.texts), src.key
    raise ValueError(f"unknown fine-tuning method {method!r}; choose among {list(FINETUNED)}")


def text_set_key(profile: Profile, method: str) -> str:
    """The identity :func:`training_texts` gives `method`'s text set, found without running any stage."""
    if method == "unidetox":
        return distill_stage(profile, finetune_stage(profile, TOXIC_MODEL).key).key
    if method == "base-samples":
        return samples_stage(profile, "base").key
    return training_texts(profile, method)[1]  # read from the data directory


def detox_stage(profile: Profile, target: str, lr: float, *, method: str, steps: tuple[int, ...]) -> StageDir:
    """The directory :func:`detox` fills for these arguments, located but not run (nor anything it reads)."""
    train_cfg = dataclasses.replace(profile.detox.train, learning_rate=lr, max_steps=max(steps))
    return _locate(profile, target, train_cfg, steps, method, text_set_key(profile, method))


def detox(profile: Profile, target: str, lr: float, *, method: str = "unidetox", steps: tuple[int, ...] | None = None,
          quiet: bool = False) -> StageDir:  # fmt: skip
    """Fine-tune `target` on `method`'s text set at learning rate `lr`; weights at every step of `steps`."""
    steps = tuple(steps or profile.detox.steps)
    texts, texts_key = training_texts(profile, method, quiet=quiet)
    train_cfg = dataclasses.replace(profile.detox.train, learning_rate=lr, max_steps=max(steps))
    source = {"kind": method, "name": f"{method} texts of profile {profile.name}", "n_texts": len(texts),
              "sha256": text_fingerprint(texts), "description": "SHA-256 of the length-prefixed UTF-8 texts "
              "(unidetox.data.checksums.text_fingerprint)"}  # fmt: skip
    if method == "released":  # the card names the file and its own hash
        source = {**read_released(profile.data).describe(), "description": "the authors' released distilled text "
                  "(GPT-2 XL; github EminLU/UniDetox, distilled_text/); SHA-256 of the file"}  # fmt: skip
    return _detox_stage(profile, target, train_cfg, steps, method, texts, texts_key, source, quiet)


def detox_on_texts(profile: Profile, target: str, source, train_cfg, *, quiet: bool = False) -> StageDir:
    """Fine-tune `target` on the texts of a :class:`unidetox.data.texts.TextSource` with `train_cfg`; weights in
    ``<stage>/final`` (with a model card), keyed by the source's content hash, not its path."""
    return _detox_stage(profile, target, train_cfg, (), "texts", list(source.texts), source.key,
                        source.describe(), quiet)  # fmt: skip


def adapter_key(profile: Profile) -> dict:
    """The adapter's part of the detox stage's key: ``{}`` for full fine-tuning (what every detox stage did before
    ``detox.adapter`` existed, so those keep their keys), else ``{"adapter": "lora", "lora": {r, alpha, ...}}``."""
    lora = profile.detox.lora_settings
    return {} if lora is None else {"adapter": "lora", "lora": to_dict(lora)}


def _locate(profile: Profile, target: str, train_cfg, steps: tuple[int, ...], method: str, texts_key: str) -> StageDir:
    config = {"target": target, "train": to_dict(train_cfg), "steps": list(steps or [train_cfg.max_steps]),
              "method": method, **train_precision_key(profile), **adapter_key(profile)}  # fmt: skip
    return DETOX.locate(profile, config, {"texts": texts_key})


def _detox_stage(profile: Profile, target: str, train_cfg, steps: tuple[int, ...], method: str, texts: list[str],
                 texts_key: str, source: dict, quiet: bool) -> StageDir:  # fmt: skip
    """The detox stage: `target` fine-tuned on `texts`; ``steps/<n>`` for each n of `steps`, ``final/`` always;
    every weights folder gets a model card."""
    st = _locate(profile, target, train_cfg, steps, method, texts_key)
    label = f"detox {method} {target} lr={train_cfg.learning_rate}"
    args = (profile, st, label, target, train_cfg, steps, method, texts, source, quiet)
    if DETOX.reuse(st, label):
        return st
    return _train_detox(*args)


def _train_detox(profile: Profile, st: StageDir, label: str, target: str, train_cfg, steps: tuple[int, ...],
                 method: str, texts: list[str], source: dict, quiet: bool) -> StageDir:  # fmt: skip
    """Train the detox stage `st` of :func:`_detox_stage`, write its model cards and mark it done."""
    from unidetox.method.train import train_causal_lm
    from unidetox.report.cards import write_model_card

    lora = profile.detox.lora_settings
    summary: dict = {"n_texts": len(texts)}
    with timed(summary):
        lm = load_lm(profile, target)
        DETOX.begin(st)
        res = train_causal_lm(lm, texts, train_cfg, st.path, device=profile.device, save_at_steps=steps,
                              progress=not quiet, scale=profile.scale, lora=lora)  # fmt: skip
        summary["steps"] = res.steps
        if lora is not None:
            summary["trainable_params"] = _adapter_params(lm.model)
    if is_main_process():
        command = f"detox --profile {profile.name}"
        if method == "texts":
            command += f" --target {target} --texts {source.get('name')}" + (" --adapter lora" if lora else "")
        training = {k: v for k, v in to_dict(train_cfg).items() if k not in ("checkpoint_every", "log_every")}
        if lora is not None:
            training |= {"adapter": "lora", **{f"lora_{k}": v for k, v in to_dict(lora).items()}}
        for n, folder in [*((n, st.path / "steps" / str(n)) for n in steps), (res.steps, st.path / "final")]:
            write_model_card(folder, target=target, training_data=source, training=training, command=command,
                             steps=n, adapter="lora" if lora else None)  # fmt: skip
    DETOX.finish(st, summary, st.path / ("final" if method == "texts" else "steps"), label)
    return st


def _adapter_params(model) -> int:
    """Parameters of the LoRA adapter(s) peft injected into `model` (their names hold ``lora_``)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


@DETOX.recomputed_by
def _recompute(profile: Profile, config: dict):
    """A detox run of a fine-tuning method (not of a user's text file) is made from the profile and its target,
    learning rate, method and steps."""
    if config.get("method") not in FINETUNED:
        raise StoreError(f"a {DETOX.name} stage of method {config.get('method')!r} cannot be recomputed from a profile")
    args = (profile, config["target"], config["train"]["learning_rate"])
    kwargs = {"method": config["method"], "steps": tuple(config["steps"])}
    return detox_stage(*args, **kwargs), lambda quiet: detox(*args, **kwargs, quiet=quiet)


def finetuned(profile: Profile, target: str, method: str, lr: float, steps: int, *, selection: str = "",
              grid: bool = False, quiet: bool = False) -> Candidate:  # fmt: skip
    """Candidate of `target` fine-tuned by `method` at (lr, steps); `grid` trains over the whole step grid."""
    st = detox(profile, target, lr, method=method, steps=None if grid else (steps,), quiet=quiet)
    return Candidate(target, method, lr, steps, str(st.path / "steps" / str(steps)), f"{st.key}/{steps}",
                     selection=selection)  # fmt: skip


def detox_all(profile: Profile, *, quiet: bool = False) -> list[Candidate]:
    """Every target, untouched and fine-tuned on the distilled text at every (learning rate, step) of the grid."""
    out = []
    for target in profile.detox.targets:
        out.append(untouched(target))
        for lr in profile.detox.learning_rates:
            out += [finetuned(profile, target, "unidetox", lr, s, grid=True, quiet=quiet) for s in profile.detox.steps]
    return out
