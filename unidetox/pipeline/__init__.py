"""The pipeline's stages over the run store: each a function of the profile and its inputs' keys.

``toxic_model -> distill -> detox -> evaluate``; every stage returns its :class:`StageDir`, reuses
a finished one, and runs the stages it reads when they are missing (like ``make``). Long stages
resume from their own checkpoints or streams. Under ``accelerate launch`` the distiller and the
evaluator split their units of work over processes; the main process merges and marks completion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from unidetox.config import Profile, to_dict
from unidetox.data.checksums import text_fingerprint
from unidetox.data.dghs import load_dghs
from unidetox.data.files import DataError
from unidetox.data.mmlu import check_mmlu_subjects, load_mmlu
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.methods import FINETUNED
from unidetox.models import load_model, resolve_device
from unidetox.store import (
    FILES,
    StageDir,
    atomic_path,
    check_opened,
    describe_damage,
    read_json,
    read_jsonl,
    remove_stale_temporaries,
    write_json,
    write_text,
)


def _state():
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 under torchrun / accelerate launch."""
    return _state().is_main_process


def _rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


@contextmanager
def _timed(summary: dict, interval: float = 0.2) -> Iterator[dict]:
    """Wall seconds and peak resident memory of the block (sampled every `interval` s), into `summary`."""
    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    peak = [_rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield summary
    finally:
        stop.set()
        sampler.join()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["peak_rss_mb"] = round(max(peak[0], _rss_mb()), 1)
    if torch.cuda.is_available():
        summary["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _load(profile: Profile, spec: str):
    return load_model(spec, device=resolve_device(profile.device), trust_remote_code=profile.trust_remote_code)


def _stage(profile: Profile, stage: str, config: dict, inputs: dict | None = None) -> StageDir:
    """The stage's directory, located but not created: call ``.begin()`` once its inputs loaded fine."""
    return StageDir.locate(profile.runs_dir, profile.name, stage, config, inputs)


def _begin(st: StageDir) -> StageDir:
    """Start writing a stage: its directory and config.json; the main process clears stale temporary files."""
    return st.begin(clean=is_main_process())


def _log(msg: str) -> None:
    """Where a stage's outputs went (printed also with --quiet, which only hides progress bars)."""
    print(msg, flush=True)


def _reuse(st: StageDir, what: str) -> bool:
    """True (and says so) when the stage is finished and its outputs have the sizes DONE recorded.

    A finished stage whose outputs are damaged (a file missing or cut short) is reopened: one line says what was
    wrong, the damaged outputs and DONE are removed (by the main process), and the caller runs the stage again,
    resuming from whatever intact work remains.
    """
    if not st.done:
        return False
    problems = st.damage()
    if not problems:
        _log(f"{what}: reusing {st.path}")
        return True
    if is_main_process():
        _log(f"{what}: {st.path} is damaged ({describe_damage(problems)}); recomputing it")
        st.discard(problems)
    return False


# ----------------------------------------------------------------------------- stage 1


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


def _finetune_base(profile: Profile, stage: str, train: list[str], val: list[str], quiet: bool) -> StageDir:
    """Fine-tune the base model with the toxic model's training configuration; weights in ``<stage>/final``."""
    from unidetox.method.train import train_causal_lm

    config = {"toxic": to_dict(profile.toxic), "texts": text_fingerprint(train), "val": text_fingerprint(val)}
    st = _stage(profile, stage, config)
    if _reuse(st, stage):
        return st
    summary: dict = {"n_train": len(train), "n_val": len(val)}
    with _timed(summary):
        lm = _load(profile, profile.toxic.base_model)
        _begin(st)
        res = train_causal_lm(lm, train, profile.toxic.train, st.path, device=profile.device, val_texts=val,
                              progress=not quiet, scale=profile.scale)  # fmt: skip
        summary.update(steps=res.steps, val_loss=res.val_loss)
    st.mark_done(summary)
    _log(f"{stage}: wrote {st.path / 'final'}")
    return st


def toxic_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Fine-tune the base model on hate speech; weights in ``<stage>/final``."""
    train, val = toxic_texts(profile)
    return _finetune_base(profile, "toxic-model", train, val, quiet)


def expert_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """DExperts' non-toxic expert: the base model fine-tuned like the toxic model, on as many ``nothate`` rows."""
    train = toxic_texts(profile)[0]
    return _finetune_base(profile, "expert-model", nothate_texts(profile, len(train)), [], quiet)


# ----------------------------------------------------------------------------- stage 2


def _decode_stage(profile: Profile, st: StageDir, model: str, toxic: str | None, quiet: bool) -> StageDir:
    """Sample ``distill.num_texts`` texts from BOS (contrastive when `toxic` is given) into ``<st>/texts.jsonl``."""
    from unidetox.method import distill as Dist

    state = _state()
    summary: dict = {}
    with _timed(summary):
        base = _load(profile, model)
        tox = _load(profile, toxic) if toxic is not None else None
        for lm in (base, tox) if tox is not None else (base,):
            Dist.check_length(lm, profile.distill)
        if tox is not None:
            Dist.check_pair(base, tox)
        if state.is_main_process:
            _log(f"{st.stage}: texts start from {Dist.start_description(base)} of {model}")
        prefix = base.tokenizer(profile.distill.context, add_special_tokens=False).input_ids
        if profile.distill.context and not prefix:
            raise Dist.DistillError(f"distill.context {profile.distill.context!r} has no tokens in {model}")
        _begin(st)
        res = Dist.distill(base, tox, profile.distill, st / "stream.jsonl", rank=state.process_index,
                           world_size=state.num_processes, progress=not quiet and state.is_main_process,
                           prefix=prefix)  # fmt: skip
        summary.update(tokens=res.tokens_generated, tokens_per_second=res.tokens_generated / max(res.seconds, 1e-9))
    state.wait_for_everyone()
    if state.is_main_process:
        recs = Dist.merge_streams(st / "stream.jsonl", state.num_processes)
        write_text(st / "texts.jsonl", "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in recs))
        write_text(st / "texts.csv", pd.DataFrame({"Text": [r["text"] for r in recs]}).to_csv(index=False))
        summary["n_texts"] = len(recs)
        st.mark_done(summary)
    state.wait_for_everyone()
    _log(f"{st.stage}: wrote {st / 'texts.jsonl'}")
    return st


def _distill_key(profile: Profile) -> dict:
    """``distill`` settings as stage config; an empty ``context`` is left out, so older stages keep their keys."""
    cfg = to_dict(profile.distill)
    if not cfg["context"]:
        del cfg["context"]
    return cfg


def distill(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Contrastive decoding with the base and toxic models; texts in ``<stage>/texts.jsonl``."""
    tox = toxic_model(profile, quiet=quiet)
    config = {"distill": _distill_key(profile), "base_model": profile.toxic.base_model}
    st = _stage(profile, "distill", config, {"toxic-model": tox.key})
    if _reuse(st, "distill"):
        return st
    return _decode_stage(profile, st, profile.toxic.base_model, str(tox.path / "final"), quiet)


def samples(profile: Profile, which: str, *, quiet: bool = False) -> StageDir:
    """Plain samples from BOS of the base (``which="base"``) or toxic model, as many and as long as the distilled text.

    The base samples are the "w/o contrast" ablation's training text; both feed the diagnostics.
    """
    if which not in ("base", "toxic"):
        raise ValueError(f"which must be 'base' or 'toxic', not {which!r}")
    config = {"distill": _distill_key(profile), "base_model": profile.toxic.base_model, "which": which}
    tox = toxic_model(profile, quiet=quiet) if which == "toxic" else None
    st = _stage(profile, "samples", config, {"toxic-model": tox.key} if tox else None)
    if _reuse(st, f"samples {which}"):
        return st
    return _decode_stage(profile, st, str(tox.path / "final") if tox else profile.toxic.base_model, None, quiet)


def distilled_texts(st: StageDir) -> list[str]:
    """The texts of a finished distill/samples stage, checked against the SHA-256 its DONE recorded."""
    check_opened(st / "texts.jsonl")
    return [r["text"] for r in read_jsonl(st / "texts.jsonl")]


# ----------------------------------------------------------------------------- stage 3


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: a target as it is, one of its fine-tuned checkpoints, or a decoding-time method."""

    target: str
    method: str  # "none" | "unidetox" | "toxic" | a baseline's name
    lr: float | None
    steps: int | None
    path: str  # spec or directory to load
    key: str  # identity used in stage keys
    prefix: str = ""  # prepended to every prompt at generation time (safety pre-prompt)
    expert: str = ""  # DExperts: expert and anti-expert model paths
    antiexpert: str = ""
    hparam: float | None = None  # DExperts' lambda
    selection: str = ""  # "transferred" | "oracle" | "" (how its configuration was chosen)

    def labels(self) -> dict:
        return {"target": self.target, "method": self.method, "lr": self.lr, "steps": self.steps,
                "hparam": self.hparam, "selection": self.selection}  # fmt: skip


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
    raise ValueError(f"unknown fine-tuning method {method!r}; choose among {list(FINETUNED)}")


def detox(profile: Profile, target: str, lr: float, *, method: str = "unidetox", steps: tuple[int, ...] | None = None,
          quiet: bool = False) -> StageDir:  # fmt: skip
    """Fine-tune `target` on `method`'s text set at learning rate `lr`; weights at every step of `steps`."""
    steps = tuple(steps or profile.detox.steps)
    texts, texts_key = training_texts(profile, method, quiet=quiet)
    train_cfg = dataclasses.replace(profile.detox.train, learning_rate=lr, max_steps=max(steps))
    source = {"kind": method, "name": f"{method} texts of profile {profile.name}", "n_texts": len(texts),
              "sha256": text_fingerprint(texts), "description": "SHA-256 of the length-prefixed UTF-8 texts "
              "(unidetox.data.text_fingerprint)"}  # fmt: skip
    return _detox_stage(profile, target, train_cfg, steps, method, texts, texts_key, source, quiet)


def detox_on_texts(profile: Profile, target: str, source, train_cfg, *, quiet: bool = False) -> StageDir:
    """Fine-tune `target` on the texts of a :class:`unidetox.texts.TextSource` with `train_cfg`; weights in
    ``<stage>/final`` (with a model card), keyed by the source's content hash, not its path."""
    return _detox_stage(profile, target, train_cfg, (), "texts", list(source.texts), source.key,
                        source.describe(), quiet)  # fmt: skip


def _detox_stage(profile: Profile, target: str, train_cfg, steps: tuple[int, ...], method: str, texts: list[str],
                 texts_key: str, source: dict, quiet: bool) -> StageDir:  # fmt: skip
    """The detox stage: `target` fine-tuned on `texts`; ``steps/<n>`` for each n of `steps`, ``final/`` always;
    every weights folder gets a model card."""
    from unidetox.method.train import train_causal_lm
    from unidetox.report.cards import write_model_card

    config = {"target": target, "train": to_dict(train_cfg), "steps": list(steps or [train_cfg.max_steps]),
              "method": method}  # fmt: skip
    st = _stage(profile, "detox", config, {"texts": texts_key})
    label = f"detox {method} {target} lr={train_cfg.learning_rate}"
    if _reuse(st, label):
        return st
    summary: dict = {"n_texts": len(texts)}
    with _timed(summary):
        lm = _load(profile, target)
        _begin(st)
        res = train_causal_lm(lm, texts, train_cfg, st.path, device=profile.device, save_at_steps=steps,
                              progress=not quiet, scale=profile.scale)  # fmt: skip
        summary["steps"] = res.steps
    if is_main_process():
        command = f"detox --profile {profile.name}"
        if method == "texts":
            command += f" --target {target} --texts {source.get('name')}"
        training = {k: v for k, v in to_dict(train_cfg).items() if k not in ("checkpoint_every", "log_every")}
        for n, folder in [*((n, st.path / "steps" / str(n)) for n in steps), (res.steps, st.path / "final")]:
            write_model_card(folder, target=target, training_data=source, training=training, command=command,
                             steps=n)  # fmt: skip
    st.mark_done(summary)
    _log(f"{label}: wrote {st.path / ('final' if method == 'texts' else 'steps')}")
    return st


def finetuned(profile: Profile, target: str, method: str, lr: float, steps: int, *, selection: str = "",
              grid: bool = False, quiet: bool = False) -> Candidate:  # fmt: skip
    """Candidate of `target` fine-tuned by `method` at (lr, steps); `grid` trains over the whole step grid."""
    st = detox(profile, target, lr, method=method, steps=None if grid else (steps,), quiet=quiet)
    return Candidate(target, method, lr, steps, str(st.path / "steps" / str(steps)), f"{st.key}/{steps}",
                     selection=selection)  # fmt: skip


def untouched(target: str) -> Candidate:
    return Candidate(target, "none", None, None, target, target)


def toxic_candidate(profile: Profile, *, quiet: bool = False) -> Candidate:
    """The toxic model as a candidate (diagnostics: is it more toxic than the base?)."""
    st = toxic_model(profile, quiet=quiet)
    return Candidate(profile.toxic.base_model, "toxic", None, None, str(st.path / "final"), f"toxic-model/{st.key}")


def preprompt(profile: Profile, target: str) -> Candidate:
    """The safety pre-prompt baseline: `target` untouched, ``study.preprompt`` before every prompt."""
    return Candidate(target, "preprompt", None, None, target, target, prefix=profile.study.preprompt)


def dexperts(profile: Profile, target: str, strength: float, *, selection: str = "", quiet: bool = False) -> Candidate:
    """DExperts on `target`: expert = base fine-tuned on nothate rows, anti-expert = the toxic model."""
    exp, tox = expert_model(profile, quiet=quiet), toxic_model(profile, quiet=quiet)
    key = f"dexperts/{target}/{exp.key}/{tox.key}/{strength!r}"
    return Candidate(target, "dexperts", None, None, target, key, expert=str(exp.path / "final"),
                     antiexpert=str(tox.path / "final"), hparam=strength, selection=selection)  # fmt: skip


def dexperts_applies(profile: Profile, target: str) -> bool:
    """DExperts needs the target to share the base model's tokenizer (its experts are fine-tuned from the base)."""
    from unidetox.models import load_tokenizer, same_tokenizer

    return same_tokenizer(load_tokenizer(target), load_tokenizer(profile.toxic.base_model))


def detox_all(profile: Profile, *, quiet: bool = False) -> list[Candidate]:
    """Every target, untouched and fine-tuned on the distilled text at every (learning rate, step) of the grid."""
    out = []
    for target in profile.detox.targets:
        out.append(untouched(target))
        for lr in profile.detox.learning_rates:
            out += [finetuned(profile, target, "unidetox", lr, s, grid=True, quiet=quiet) for s in profile.detox.steps]
    return out


# ----------------------------------------------------------------------------- stage 4


def prompts(profile: Profile, split: str | None = None) -> pd.DataFrame:
    return load_toxigen_prompts(profile.data, split or profile.eval.prompt_split,
                                prompts_per_domain=profile.eval.prompts_per_domain, seed=0)  # fmt: skip


def evaluate(profile: Profile, cand: Candidate, *, split: str | None = None, perplexity: bool = True,
             quiet: bool = False) -> StageDir:  # fmt: skip
    """Generations, toxicity, perplexity (unless `perplexity` is false) and Dist-n of one candidate; tidy rows in
    ``metrics.csv``."""
    from unidetox.measure import evaluate as E
    from unidetox.measure.scorers import load_scorer

    cfg = dataclasses.replace(profile.eval, prompt_split=split or profile.eval.prompt_split)
    ps = prompts(profile, cfg.prompt_split)
    gen_cfg = {k: v for k, v in to_dict(cfg).items() if not k.startswith("mmlu")}
    config = {"eval": gen_cfg, "prompts": text_fingerprint(ps.prompt_id + "\t" + ps.text), "prefix": cand.prefix,
              "perplexity": perplexity}  # fmt: skip
    st = _stage(profile, "evaluate", config, {"model": cand.key})
    if _reuse(st, f"evaluate {cand.labels()}"):
        return st
    state = _state()
    device = resolve_device(profile.device)
    scorer = load_scorer(cfg.scorer, device=str(device), batch_size=cfg.scorer_batch_size,
                         trust_remote_code=profile.trust_remote_code)  # fmt: skip
    summary: dict = {"n_prompts": len(ps)}
    if skipped := ps.attrs.get("empty_prompts_skipped", 0):
        summary["empty_prompts_skipped"] = skipped
        _log(f"evaluate {cand.labels()}: {skipped} empty {cfg.prompt_split} prompts skipped")
    with _timed(summary):
        lm = _load(profile, cand.path)
        make_source = None
        if cand.method == "dexperts":
            from unidetox.method.dexperts import DExpertsSource, check_models

            expert, anti = _load(profile, cand.expert), _load(profile, cand.antiexpert)
            check_models(lm, expert, anti)
            make_source = functools.partial(DExpertsSource, lm.model, expert.model, anti.model, cand.hparam)
        limit, n_long = E.prompt_budget(lm, ps.text.tolist(), cand.prefix, cfg.max_new_tokens)
        if n_long:
            summary["prompts_truncated"] = n_long
            _log(f"evaluate {cand.labels()}: {n_long} of {len(ps)} prompts are longer than {limit} tokens (the model's "
                 f"context less eval.max_new_tokens); their first tokens are cut off")  # fmt: skip
        _begin(st)
        E.generate_and_score(lm, ps, cfg, scorer, st / "generations.jsonl", prefix=cand.prefix, make_source=make_source,
                             rank=state.process_index, world_size=state.num_processes,
                             progress=not quiet and state.is_main_process, max_prompt_tokens=limit)  # fmt: skip
        del lm, make_source
        state.wait_for_everyone()
        if state.is_main_process:
            gens = E.merge(st / "generations.jsonl", state.num_processes)
            ppl = []
            if perplexity:
                ppl_lm = _load(profile, cfg.perplexity_model)
                ppl = E.score_perplexity(ppl_lm, gens, st / "perplexity.jsonl", progress=not quiet)
            rows = E.metric_rows(gens, ppl, cfg)
            for k, v in cand.labels().items():
                rows[k] = v
            rows["config_key"] = st.key
            write_text(st / "metrics.csv", rows.to_csv(index=False))
            write_json(st / "settings.json", {**E.result_settings(cfg, scorer, len(ps), cand.prefix), **cand.labels()})
    if state.is_main_process:
        st.mark_done(summary)
    state.wait_for_everyone()
    _log(f"evaluate {cand.labels()}: wrote {st / 'metrics.csv'}")
    return st


def mmlu(profile: Profile, cand: Candidate, *, quiet: bool = False) -> StageDir:
    """k-shot MMLU accuracy of one candidate; per-question rows in ``mmlu.csv``."""
    from unidetox.measure.mmlu import mmlu_summary, score_mmlu

    cfg = profile.eval
    config = {"split": cfg.mmlu_split, "shots": cfg.mmlu_shots, "per_subject": cfg.mmlu_per_subject,
              "subjects": list(cfg.mmlu_subjects)}  # fmt: skip
    st = _stage(profile, "mmlu", config, {"model": cand.key})
    if _reuse(st, f"mmlu {cand.labels()}"):
        return st
    test = load_mmlu(profile.data, cfg.mmlu_split, subjects=cfg.mmlu_subjects, per_subject=cfg.mmlu_per_subject)
    dev = load_mmlu(profile.data, "dev", subjects=cfg.mmlu_subjects)
    summary: dict = {"n_questions": len(test)}
    with _timed(summary):
        lm = _load(profile, cand.path)
        _begin(st)
        per_q = score_mmlu(lm.model, lm.tokenizer, test, dev, shots=cfg.mmlu_shots)
        write_text(st / "mmlu.csv", per_q.to_csv(index=False))
        summ = mmlu_summary(per_q)
        write_text(st / "summary.csv", summ.to_csv(index=False))
    st.mark_done(summary)
    _log(f"mmlu {cand.labels()}: wrote {st / 'mmlu.csv'}")
    return st


def collect(profile: Profile, stages: list[tuple[Candidate, StageDir]], name: str = "results") -> Path:
    """Concatenate candidates' tidy rows into ``runs/<profile>/<name>.csv`` and ``.parquet``."""
    table = _rows(stages)
    out = Path(profile.runs_dir) / profile.name / f"{name}.csv"
    remove_stale_temporaries(out.parent)
    write_text(out, table.to_csv(index=False))
    with atomic_path(out.with_suffix(".parquet")) as tmp:
        table.to_parquet(tmp, index=False)
    return out


def _rows(stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """Tidy rows of every evaluation, labelled by its candidate (one evaluation can serve several candidates,
    e.g. when the transferred configuration is also a target's own best)."""
    frames = []
    for c, st in stages:
        df = pd.read_csv(st / "metrics.csv")
        for k, v in c.labels().items():
            df[k] = v
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def silently(func, *args, **kwargs):
    """Call ``func`` with its stage messages ("reusing ...", "wrote ...") and model-loading bars hidden: for notebooks."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return func(*args, **kwargs)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# ----------------------------------------------------------------------------- the study


@dataclass
class Study:
    """The comparison of the paper's main table and its hyperparameter-transfer study.

    ``validation``/``report``: tidy metric rows (labels + seed, domain, metric, value) of every candidate on the
    validation / report prompts; ``cis``: candidate minus the untouched target with paired bootstrap CIs over
    prompts (labels + metric, domain, diff, lo, hi); ``mmlu``: labels + accuracy; ``applicability``: which
    method applies to which target and why not; ``chosen``: the shared (lr, steps) picked on `select_target`;
    ``oracle``: each target's own best (lr, steps); ``dexperts_lambda``: each applicable target's best lambda.
    """

    select_target: str
    chosen: tuple[float, int]
    oracle: dict[str, tuple[float, int]]
    dexperts_lambda: dict[str, float]
    validation: pd.DataFrame
    report: pd.DataFrame
    cis: pd.DataFrame
    mmlu: pd.DataFrame
    applicability: pd.DataFrame
    path: Path


def _check_study(profile: Profile) -> str:
    from unidetox.config import ConfigError

    sel = profile.study.select_target or profile.toxic.base_model
    if sel not in profile.detox.targets:
        raise ConfigError(f"study.select_target {sel!r} is not among detox.targets {list(profile.detox.targets)}; "
                          "add it there or choose one of them")  # fmt: skip
    if profile.study.mmlu:
        check_mmlu_subjects(profile.eval.mmlu_subjects)  # before hours of work, not after
    if profile.study.report_split == profile.eval.prompt_split:
        raise ConfigError(f"study.report_split and eval.prompt_split are both {profile.eval.prompt_split!r}: tuning "
                          "on the prompts you report on inflates the results; use validation to tune and test/report "
                          "to report")  # fmt: skip
    return sel


def _per_prompt(profile: Profile, st: StageDir) -> pd.DataFrame:
    from unidetox.measure.compare import per_prompt_values

    gens = pd.DataFrame(read_jsonl(st / "generations.jsonl"))
    ppl = pd.DataFrame(read_jsonl(st / "perplexity.jsonl"))
    return per_prompt_values(gens, ppl if len(ppl) else None, threshold=profile.eval.threshold,
                             max_ppl=profile.eval.perplexity_max)  # fmt: skip


def study(profile: Profile, *, quiet: bool = False) -> Study:
    """Tune on validation, transfer the shared configuration, evaluate every method on the report prompts.

    Runs (or reuses) every stage it needs; its tables go to ``runs/<profile>/study/<key>/``.
    """
    from unidetox.measure.compare import choose_config, choose_value, paired_ci

    cfg = profile.study
    sel = _check_study(profile)
    targets = list(profile.detox.targets)
    val_split, rep_split = profile.eval.prompt_split, cfg.report_split
    use_dex = "dexperts" in cfg.baselines
    applies = {t: dexperts_applies(profile, t) for t in targets} if use_dex else {}

    val: list[Candidate] = []
    for t in targets:
        val.append(untouched(t))
        val += [finetuned(profile, t, "unidetox", lr, s, grid=True, quiet=quiet)
                for lr in profile.detox.learning_rates for s in profile.detox.steps]  # fmt: skip
        if applies.get(t):
            val += [dexperts(profile, t, lam, quiet=quiet) for lam in cfg.dexperts_lambdas]
    val_ppl = cfg.validation_perplexity
    val_stages = [(c, evaluate(profile, c, split=val_split, perplexity=val_ppl, quiet=quiet)) for c in val]
    val_rows = _rows(val_stages)

    def rows(t: str, method: str) -> pd.DataFrame:
        return val_rows[(val_rows.target == t) & (val_rows.method == method)]

    chosen = choose_config(rows(sel, "unidetox"))
    oracle = {t: choose_config(rows(t, "unidetox")) for t in targets}
    lam = {t: choose_value(rows(t, "dexperts"), "hparam") for t in targets if applies.get(t)}

    rep: list[Candidate] = []
    for t in targets:
        rep.append(untouched(t))
        if "preprompt" in cfg.baselines:
            rep.append(preprompt(profile, t))
        rep.append(finetuned(profile, t, "unidetox", *chosen, selection="transferred", grid=True, quiet=quiet))
        rep.append(finetuned(profile, t, "unidetox", *oracle[t], selection="oracle", grid=True, quiet=quiet))
        rep += [finetuned(profile, t, m, *chosen, selection="transferred", quiet=quiet)
                for m in ("base-samples", "nothate") if m in cfg.baselines]  # fmt: skip
        if t in lam:
            if sel in lam:
                rep.append(dexperts(profile, t, lam[sel], selection="transferred", quiet=quiet))
            rep.append(dexperts(profile, t, lam[t], selection="oracle", quiet=quiet))
    rep_stages = [(c, evaluate(profile, c, split=rep_split, quiet=quiet)) for c in rep]
    mmlu_stages = {}
    if cfg.mmlu:
        for c in rep:
            if c.method in ("none", *FINETUNED) and c.key not in mmlu_stages:
                mmlu_stages[c.key] = mmlu(profile, c, quiet=quiet)

    keys = sorted({st.key for _, st in val_stages + rep_stages} | {st.key for st in mmlu_stages.values()})
    st = _stage(profile, "study", {"study": to_dict(cfg), "select_target": sel}, {"stages": ",".join(keys)})
    applicability = pd.DataFrame(
        [{"target": t, "method": m, "applies": m != "dexperts" or bool(applies.get(t)),
          "reason": "" if m != "dexperts" or applies.get(t) else "target's tokenizer differs from the experts'"}
         for t in targets for m in ("none", "unidetox", *cfg.baselines)]
    )  # fmt: skip
    if not _reuse(st, "study"):
        _begin(st)
        rep_rows = _rows(rep_stages)
        pp = {c.key + c.prefix: _per_prompt(profile, s) for c, s in rep_stages}
        ci_rows = []
        for c, _ in rep_stages:
            if c.method == "none":
                continue
            d = paired_ci(pp[c.key + c.prefix], pp[untouched(c.target).key], n_boot=cfg.bootstrap, level=cfg.ci_level)
            ci_rows.append(d.assign(**c.labels()))
        cis = pd.concat(ci_rows, ignore_index=True) if ci_rows else pd.DataFrame()
        acc = []
        for c in rep:
            if c.method in ("none", *FINETUNED) and c.key in mmlu_stages:
                summ = pd.read_csv(mmlu_stages[c.key] / "summary.csv")
                acc.append({**c.labels(), **_mmlu_overall(summ)})
        write_text(st / "validation.csv", val_rows.to_csv(index=False))
        write_text(st / "report.csv", rep_rows.to_csv(index=False))
        write_text(st / "cis.csv", cis.to_csv(index=False))
        write_text(st / "mmlu.csv", pd.DataFrame(acc).to_csv(index=False))
        write_text(st / "applicability.csv", applicability.to_csv(index=False))
        write_json(st / "selection.json", {"select_target": sel, "chosen": {"lr": chosen[0], "steps": chosen[1]},
                                           "oracle": {t: {"lr": lr, "steps": s} for t, (lr, s) in oracle.items()},
                                           "dexperts_lambda": lam, "validation_split": val_split,
                                           "report_split": rep_split})  # fmt: skip
        st.mark_done({"n_validation": len(val), "n_report": len(rep)})
        _log(f"study: wrote {st.path}")

    def read(name: str) -> pd.DataFrame:
        try:
            return pd.read_csv(st / name)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    return Study(sel, chosen, oracle, lam, read("validation.csv"), read("report.csv"), read("cis.csv"),
                 read("mmlu.csv"), read("applicability.csv"), st.path)  # fmt: skip


def _mmlu_overall(summary: pd.DataFrame) -> dict:
    """``{"MMLU": micro accuracy, "MMLU_macro": macro accuracy, "MMLU_n": questions}`` from an MMLU summary."""
    by = summary.set_index("subject")
    micro = by.loc["micro_average"]
    return {
        "MMLU": float(micro.accuracy),
        "MMLU_macro": float(by.loc["macro_average"].accuracy),
        "MMLU_n": int(micro.n),
    }


def text_sets(profile: Profile, *, quiet: bool = False) -> dict[str, list[str]]:
    """Equal-sized text sets for the analyses: distilled text, base and toxic samples, DGHS hate rows."""
    n = profile.distill.num_texts
    hate = pd.Series(toxic_texts(profile)[0])
    return {
        "UniDetox distilled": distilled_texts(distill(profile, quiet=quiet)),
        "Base samples": distilled_texts(samples(profile, "base", quiet=quiet)),
        "Toxic-model samples": distilled_texts(samples(profile, "toxic", quiet=quiet)),
        "DGHS hate": hate.sample(n=min(n, len(hate)), random_state=profile.distill.seed).tolist(),
    }


def compass_models(profile: Profile, *, quiet: bool = False) -> list[tuple[str, str]]:
    """(label, model path or spec) of the models the political-bias analysis probes."""
    from unidetox.report.tables import short_name

    st = study(profile, quiet=quiet)
    base = profile.toxic.base_model
    out = [
        (f"{short_name(base)} (base)", base),
        (f"{short_name(base)} (toxic)", str(toxic_model(profile).path / "final")),
    ]
    for t in profile.detox.targets:
        out.append((f"{short_name(t)} + UniDetox", finetuned(profile, t, "unidetox", *st.chosen, grid=True).path))
    if "base-samples" in profile.study.baselines:
        out.append((f"{short_name(st.select_target)} + base samples",
                    finetuned(profile, st.select_target, "base-samples", *st.chosen).path))  # fmt: skip
    return out


def toxic_vs_base(profile: Profile, *, quiet: bool = False) -> pd.DataFrame:
    """Validation metric rows of the untouched base model and of the toxic model (is the toxic model toxic?)."""
    split = profile.eval.prompt_split
    cands = [untouched(profile.toxic.base_model), toxic_candidate(profile, quiet=quiet)]
    ppl = profile.study.validation_perplexity
    return _rows([(c, evaluate(profile, c, split=split, perplexity=ppl, quiet=quiet)) for c in cands])


def run_all(profile: Profile, *, quiet: bool = False) -> Study:
    """Everything the book reads: the study, the toxic-model diagnostics and the text sets."""
    out = study(profile, quiet=quiet)
    toxic_vs_base(profile, quiet=quiet)
    text_sets(profile, quiet=quiet)
    return out


def stage_summaries(profile: Profile) -> pd.DataFrame:
    """Wall time and peak memory of every finished stage run of this profile (for the reproducibility page)."""
    rows = []
    for done in sorted((Path(profile.runs_dir) / profile.name).glob("*/*/DONE")):
        summary = {k: v for k, v in read_json(done).items() if k != FILES}
        rows.append({"stage": done.parent.parent.name, "key": done.parent.name, **summary})
    return pd.DataFrame(rows)
