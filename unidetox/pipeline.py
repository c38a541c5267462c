"""The pipeline's stages over the run store: each a function of the profile and its inputs' keys.

``toxic_model -> distill -> detox -> evaluate``; every stage returns its :class:`StageDir`, reuses
a finished one, and runs the stages it reads when they are missing (like ``make``). Long stages
resume from their own checkpoints or streams. Under ``accelerate launch`` the distiller and the
evaluator split their units of work over processes; the main process merges and marks completion.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from . import data as D
from .config import Profile, to_dict
from .models import load_model, resolve_device
from .store import StageDir, atomic_path, read_json, read_jsonl, write_json, write_text


def _state():
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 under torchrun / accelerate launch."""
    return _state().is_main_process


@contextmanager
def _timed(summary: dict) -> Iterator[dict]:
    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    yield summary
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if torch.cuda.is_available():
        summary["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _load(profile: Profile, spec: str):
    return load_model(spec, device=resolve_device(profile.device), trust_remote_code=profile.trust_remote_code)


def _stage(profile: Profile, stage: str, config: dict, inputs: dict | None = None) -> StageDir:
    return StageDir.create(profile.runs_dir, profile.name, stage, config, inputs)


def _log(msg: str) -> None:
    """Where a stage's outputs went (printed also with --quiet, which only hides progress bars)."""
    print(msg, flush=True)


# ----------------------------------------------------------------------------- stage 1


def toxic_texts(profile: Profile) -> tuple[list[str], list[str]]:
    """Training and validation texts of the toxic model (DGHS hate rows of the configured targets)."""
    cfg = profile.toxic
    train = D.load_dghs(profile.data, cfg.train_splits, targets=cfg.targets).text.tolist()
    val = D.load_dghs(profile.data, cfg.val_splits, targets=cfg.targets).text.tolist() if cfg.val_splits else []
    if cfg.max_texts:
        train, val = train[: cfg.max_texts], val[: cfg.max_texts]
    return train, val


def toxic_model(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Fine-tune the base model on hate speech; weights in ``<stage>/final``."""
    from .train import train_causal_lm

    train, val = toxic_texts(profile)
    config = {"toxic": to_dict(profile.toxic), "texts": D.text_fingerprint(train), "val": D.text_fingerprint(val)}
    st = _stage(profile, "toxic-model", config)
    if st.done:
        _log(f"toxic-model: reusing {st.path}")
        return st
    summary: dict = {"n_train": len(train), "n_val": len(val)}
    with _timed(summary):
        lm = _load(profile, profile.toxic.base_model)
        res = train_causal_lm(lm, train, profile.toxic.train, st.path, device=profile.device, val_texts=val,
                              progress=not quiet)  # fmt: skip
        summary.update(steps=res.steps, val_loss=res.val_loss)
    st.mark_done(summary)
    _log(f"toxic-model: wrote {st.path / 'final'}")
    return st


# ----------------------------------------------------------------------------- stage 2


def distill(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Contrastive decoding with the base and toxic models; texts in ``<stage>/texts.jsonl``."""
    from . import distill as Dist

    tox = toxic_model(profile, quiet=quiet)
    config = {"distill": to_dict(profile.distill), "base_model": profile.toxic.base_model}
    st = _stage(profile, "distill", config, {"toxic-model": tox.key})
    if st.done:
        _log(f"distill: reusing {st.path}")
        return st
    state = _state()
    summary: dict = {}
    with _timed(summary):
        base = _load(profile, profile.toxic.base_model)
        toxic = _load(profile, str(tox.path / "final"))
        res = Dist.distill(base, toxic, profile.distill, st / "stream.jsonl", rank=state.process_index,
                           world_size=state.num_processes, progress=not quiet and state.is_main_process)  # fmt: skip
        summary.update(tokens=res.tokens_generated, tokens_per_second=res.tokens_generated / max(res.seconds, 1e-9))
    state.wait_for_everyone()
    if state.is_main_process:
        recs = Dist.merge_streams(st / "stream.jsonl", state.num_processes)
        write_text(st / "texts.jsonl", "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in recs))
        write_text(st / "texts.csv", pd.DataFrame({"Text": [r["text"] for r in recs]}).to_csv(index=False))
        summary["n_texts"] = len(recs)
        st.mark_done(summary)
    state.wait_for_everyone()
    _log(f"distill: wrote {st / 'texts.jsonl'}")
    return st


def distilled_texts(st: StageDir) -> list[str]:
    return [r["text"] for r in read_jsonl(st / "texts.jsonl")]


# ----------------------------------------------------------------------------- stage 3


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: a target as it is, or one of its fine-tuned checkpoints."""

    target: str
    method: str  # "none" | "unidetox" | a baseline's name
    lr: float | None
    steps: int | None
    path: str  # spec or directory to load
    key: str  # identity used in stage keys

    def labels(self) -> dict:
        return {"target": self.target, "method": self.method, "lr": self.lr, "steps": self.steps}


def detox(profile: Profile, target: str, lr: float, *, texts_stage: StageDir | None = None,
          method: str = "unidetox", quiet: bool = False) -> StageDir:  # fmt: skip
    """Fine-tune `target` on the distilled text at learning rate `lr`; weights at every grid step."""
    from .train import train_causal_lm

    texts_stage = texts_stage or distill(profile, quiet=quiet)
    train_cfg = dataclasses.replace(profile.detox.train, learning_rate=lr, max_steps=max(profile.detox.steps))
    config = {"target": target, "train": to_dict(train_cfg), "steps": list(profile.detox.steps), "method": method}
    st = _stage(profile, "detox", config, {"texts": texts_stage.key})
    if st.done:
        _log(f"detox {target} lr={lr}: reusing {st.path}")
        return st
    texts = distilled_texts(texts_stage)
    summary: dict = {"n_texts": len(texts)}
    with _timed(summary):
        lm = _load(profile, target)
        res = train_causal_lm(lm, texts, train_cfg, st.path, device=profile.device,
                              save_at_steps=profile.detox.steps, progress=not quiet)  # fmt: skip
        summary["steps"] = res.steps
    st.mark_done(summary)
    _log(f"detox {target} lr={lr}: wrote {st.path / 'steps'}")
    return st


def detox_all(profile: Profile, *, quiet: bool = False) -> list[Candidate]:
    """Every target, untouched and fine-tuned at every (learning rate, step) of the grid."""
    out = []
    for target in profile.detox.targets:
        out.append(Candidate(target, "none", None, None, target, target))
        for lr in profile.detox.learning_rates:
            st = detox(profile, target, lr, quiet=quiet)
            for s in profile.detox.steps:
                out.append(Candidate(target, "unidetox", lr, s, str(st.path / "steps" / str(s)), f"{st.key}/{s}"))
    return out


# ----------------------------------------------------------------------------- stage 4


def prompts(profile: Profile, split: str | None = None) -> pd.DataFrame:
    return D.load_toxigen_prompts(profile.data, split or profile.eval.prompt_split,
                                  prompts_per_domain=profile.eval.prompts_per_domain, seed=0)  # fmt: skip


def evaluate(profile: Profile, cand: Candidate, *, split: str | None = None, prefix: str = "",
             quiet: bool = False) -> StageDir:  # fmt: skip
    """Generations, toxicity, perplexity and Dist-n of one candidate; tidy rows in ``metrics.csv``."""
    from . import evaluate as E
    from .scorers import load_scorer

    cfg = dataclasses.replace(profile.eval, prompt_split=split or profile.eval.prompt_split)
    ps = prompts(profile, cfg.prompt_split)
    gen_cfg = {k: v for k, v in to_dict(cfg).items() if not k.startswith("mmlu")}
    config = {"eval": gen_cfg, "prompts": D.text_fingerprint(ps.prompt_id + "\t" + ps.text), "prefix": prefix}
    st = _stage(profile, "evaluate", config, {"model": cand.key})
    if st.done:
        _log(f"evaluate {cand.labels()}: reusing {st.path}")
        return st
    state = _state()
    device = resolve_device(profile.device)
    scorer = load_scorer(cfg.scorer, device=str(device), batch_size=cfg.scorer_batch_size,
                         trust_remote_code=profile.trust_remote_code)  # fmt: skip
    summary: dict = {"n_prompts": len(ps)}
    with _timed(summary):
        lm = _load(profile, cand.path)
        E.generate_and_score(lm, ps, cfg, scorer, st / "generations.jsonl", prefix=prefix, rank=state.process_index,
                             world_size=state.num_processes, progress=not quiet and state.is_main_process)  # fmt: skip
        del lm
        state.wait_for_everyone()
        if state.is_main_process:
            gens = E.merge(st / "generations.jsonl", state.num_processes)
            ppl_lm = _load(profile, cfg.perplexity_model)
            ppl = E.score_perplexity(ppl_lm, gens, st / "perplexity.jsonl", progress=not quiet)
            rows = E.metric_rows(gens, ppl, cfg)
            for k, v in cand.labels().items():
                rows[k] = v
            rows["config_key"] = st.key
            write_text(st / "metrics.csv", rows.to_csv(index=False))
            write_json(st / "settings.json", {**E.result_settings(cfg, scorer, len(ps), prefix), **cand.labels()})
    if state.is_main_process:
        st.mark_done(summary)
    state.wait_for_everyone()
    _log(f"evaluate {cand.labels()}: wrote {st / 'metrics.csv'}")
    return st


def mmlu(profile: Profile, cand: Candidate, *, quiet: bool = False) -> StageDir:
    """k-shot MMLU accuracy of one candidate; per-question rows in ``mmlu.csv``."""
    from .mmlu import mmlu_summary, score_mmlu

    cfg = profile.eval
    config = {"split": cfg.mmlu_split, "shots": cfg.mmlu_shots, "per_subject": cfg.mmlu_per_subject,
              "subjects": list(cfg.mmlu_subjects)}  # fmt: skip
    st = _stage(profile, "mmlu", config, {"model": cand.key})
    if st.done:
        _log(f"mmlu {cand.labels()}: reusing {st.path}")
        return st
    test = D.load_mmlu(profile.data, cfg.mmlu_split, subjects=cfg.mmlu_subjects, per_subject=cfg.mmlu_per_subject)
    dev = D.load_mmlu(profile.data, "dev", subjects=cfg.mmlu_subjects)
    summary: dict = {"n_questions": len(test)}
    with _timed(summary):
        lm = _load(profile, cand.path)
        per_q = score_mmlu(lm.model, lm.tokenizer, test, dev, shots=cfg.mmlu_shots)
        write_text(st / "mmlu.csv", per_q.to_csv(index=False))
        summ = mmlu_summary(per_q)
        write_text(st / "summary.csv", summ.to_csv(index=False))
    st.mark_done(summary)
    _log(f"mmlu {cand.labels()}: wrote {st / 'mmlu.csv'}")
    return st


def collect(profile: Profile, stages: list[tuple[Candidate, StageDir]], name: str = "results") -> Path:
    """Concatenate candidates' tidy rows into ``runs/<profile>/<name>.csv`` and ``.parquet``."""
    frames = [pd.read_csv(st / "metrics.csv") for _, st in stages]
    table = pd.concat(frames, ignore_index=True)
    out = Path(profile.runs_dir) / profile.name / f"{name}.csv"
    write_text(out, table.to_csv(index=False))
    with atomic_path(out.with_suffix(".parquet")) as tmp:
        table.to_parquet(tmp, index=False)
    return out


def stage_summaries(profile: Profile) -> pd.DataFrame:
    """Wall time and peak memory of every finished stage run of this profile (for the reproducibility page)."""
    rows = []
    for done in sorted((Path(profile.runs_dir) / profile.name).glob("*/*/DONE")):
        summary = read_json(done)
        rows.append({"stage": done.parent.parent.name, "key": done.parent.name, **summary})
    return pd.DataFrame(rows)
