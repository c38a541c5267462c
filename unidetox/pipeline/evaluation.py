"""Evaluation stages of one candidate (stage 4): generations scored for toxicity, perplexity, MMLU."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pandas as pd

from unidetox.config import Profile, to_dict
from unidetox.data.checksums import text_fingerprint
from unidetox.data.mmlu import load_mmlu
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.pipeline.candidates import Candidate
from unidetox.pipeline.keys import eval_dtype_key
from unidetox.pipeline.loading import EvalModels, load_eval_lm, load_profile_scorer
from unidetox.processes import log, process_state, timed
from unidetox.store.jsonl import read_jsonl, write_jsonl
from unidetox.store.registry import EVALUATE, MMLU, RESCORE
from unidetox.store.run_store import StageDir, atomic_path, read_json, remove_stale_temporaries, write_json, write_text


def prompts_per_domain(profile: Profile, split: str) -> int:
    """Prompts per domain evaluated on `split`: ``study.report_prompts_per_domain`` on the study's report split
    when set (the report needs the power, the validation grid only ranks), else ``eval.prompts_per_domain``."""
    n = profile.study.report_prompts_per_domain
    if n and split == profile.study.report_split and split != profile.eval.prompt_split:
        return n
    return profile.eval.prompts_per_domain


def prompts(profile: Profile, split: str | None = None, n_per_domain: int | None = None) -> pd.DataFrame:
    """The ToxiGen prompts of `split`: `n_per_domain` per domain (default: :func:`prompts_per_domain`; 0 = all) after
    the seeded shuffle, so that a smaller number selects a subset of a larger one's prompts (nested samples)."""
    split = split or profile.eval.prompt_split
    n = prompts_per_domain(profile, split) if n_per_domain is None else n_per_domain
    return load_toxigen_prompts(profile.data, split, prompts_per_domain=n, seed=0)


#: evaluation settings that are in the evaluate stage's key only when chat mode is on (they were added later)
CHAT_SETTINGS = ("chat_template", "system_prompt")


def generation_key(cfg) -> dict:
    """The evaluation settings of the evaluate stage's key: all but MMLU's, the weights' dtype (its own key part) and
    the second perplexity judge (the stage keys the judge it uses, as ``perplexity_model``), and the chat settings
    only when ``eval.chat_template`` is not off (so raw-mode stages keep their keys)."""
    drop = ("inference_dtype", "second_perplexity_model", *(CHAT_SETTINGS if cfg.chat_template == "off" else ()))
    return {k: v for k, v in to_dict(cfg).items() if not k.startswith("mmlu") and k not in drop}


def _merged_generations(st: StageDir, world_size: int) -> list[dict]:
    """All ranks' generation records; from several ranks also written to one ``generations.jsonl`` (as one process
    writes it), which every reader of a finished stage uses (score, study tables, rescore)."""
    from unidetox.measure import evaluate as E

    gens = E.merge(st / "generations.jsonl", world_size)
    if world_size > 1:
        write_jsonl(st / "generations.jsonl", gens)
    return gens


def evaluate_stage(profile: Profile, cand: Candidate, split: str | None, perplexity: bool,
                   n_prompts: int | None) -> tuple:  # fmt: skip
    """``(settings, prompts, stage)`` of :func:`evaluate`: the evaluation settings of `cand` (its split, prompts per
    domain and perplexity judge), its prompts, and its located (not begun) stage directory."""
    from unidetox.measure.evaluate import perplexity_judge

    split = split or profile.eval.prompt_split
    n = prompts_per_domain(profile, split) if n_prompts is None else n_prompts
    judge = perplexity_judge(profile.eval, cand.target)  # in the key as perplexity_model: its only effect
    cfg = dataclasses.replace(profile.eval, prompt_split=split, prompts_per_domain=n, perplexity_model=judge,
                              second_perplexity_model="")  # fmt: skip
    ps = prompts(profile, cfg.prompt_split, n)
    config = {"eval": generation_key(cfg), "prompts": text_fingerprint(ps.prompt_id + "\t" + ps.text),
              "prefix": cand.prefix, "perplexity": perplexity, **eval_dtype_key(profile)}  # fmt: skip
    return cfg, ps, EVALUATE.locate(profile, config, {"model": cand.key})


def evaluate(profile: Profile, cand: Candidate, *, split: str | None = None, perplexity: bool = True,
             quiet: bool = False, models: EvalModels | None = None, n_prompts: int | None = None) -> StageDir:  # fmt: skip
    """Generations, toxicity, perplexity (unless `perplexity` is false) and Dist-n of one candidate; tidy rows in
    ``metrics.csv``. `models`: the caller's :class:`EvalModels`, to load the shared models once across stages.
    `n_prompts`: prompts per domain (default: :func:`prompts_per_domain`). The continuations' perplexity is judged
    by :func:`unidetox.measure.evaluate.perplexity_judge` of the candidate's target."""
    from unidetox.measure import evaluate as E

    cfg, ps, st = evaluate_stage(profile, cand, split, perplexity, n_prompts)
    what = f"{EVALUATE.name} {cand.labels()}"
    if EVALUATE.reuse(st, what):
        return st
    state = process_state()
    scorer = models.scorer(cfg.scorer) if models is not None else load_profile_scorer(profile, cfg.scorer)
    summary: dict = {"n_prompts": len(ps)}
    if skipped := ps.attrs.get("empty_prompts_skipped", 0):
        summary["empty_prompts_skipped"] = skipped
        log(f"{what}: {skipped} empty {cfg.prompt_split} prompts skipped")
    load = models.load if models is not None else functools.partial(load_eval_lm, profile)
    with timed(summary):
        lm = load(cand.path)
        make_source = None
        if cand.method == "dexperts":
            from unidetox.method.dexperts import DExpertsSource, check_models

            expert, anti = load(cand.expert), load(cand.antiexpert)
            check_models(lm, expert, anti)
            make_source = functools.partial(DExpertsSource, lm.model, expert.model, anti.model, cand.hparam)
        if chat := E.uses_chat(cfg, lm.tokenizer):
            summary["chat_template_sha256"] = E.chat_template_sha256(lm.tokenizer)
        limit, n_long = E.prompt_budget(lm, ps.text.tolist(), cand.prefix, cfg.max_new_tokens,
                                        E.generation_settings(cfg, cand.prefix, chat))  # fmt: skip
        if n_long:
            summary["prompts_truncated"] = n_long
            log(f"{what}: {n_long} of {len(ps)} prompts are longer than {limit} tokens (the model's "
                 f"context less eval.max_new_tokens); their first tokens are cut off")  # fmt: skip
        EVALUATE.begin(st)
        E.generate_and_score(lm, ps, cfg, scorer, st / "generations.jsonl", prefix=cand.prefix, make_source=make_source,
                             rank=state.process_index, world_size=state.num_processes,
                             progress=not quiet and state.is_main_process, max_prompt_tokens=limit)  # fmt: skip
        tokenizer, lm, make_source = lm.tokenizer, None, None  # the model's memory is freed before perplexity
        state.wait_for_everyone()
        if state.is_main_process:
            gens = _merged_generations(st, state.num_processes)
            ppl = []
            if perplexity:
                ppl_lm = load(cfg.perplexity_model)
                ppl = E.score_perplexity(ppl_lm, gens, st / "perplexity.jsonl", progress=not quiet)
            rows = E.metric_rows(gens, ppl, cfg)
            for k, v in cand.labels().items():
                rows[k] = v
            rows["config_key"] = st.key
            write_text(st / "metrics.csv", rows.to_csv(index=False))
            write_json(st / "settings.json", {**E.result_settings(cfg, scorer, len(ps), cand.prefix, tokenizer),
                                              **cand.labels()})  # fmt: skip
    EVALUATE.finish(st, summary, st / "metrics.csv", what, main_only=True)
    return st


def rescore(profile: Profile, cand: Candidate, eval_stage: StageDir, scorer_spec: str, *,
            quiet: bool = False, models: EvalModels | None = None) -> StageDir:  # fmt: skip
    """An evaluate stage's continuations scored again by another scorer, without generating again.

    Keyed by the evaluate stage's key and `scorer_spec`. Writes ``generations.jsonl`` (the same records with
    ``toxicity`` from the new scorer), ``metrics.csv`` (tidy TP/EMT rows per domain, from the same functions as
    :func:`evaluate`) and ``settings.json``; no perplexity (it does not depend on the scorer).
    """
    from unidetox.measure import evaluate as E
    from unidetox.measure.metrics import TOXICITY_METRICS

    st = RESCORE.locate(profile, {"scorer": scorer_spec}, {EVALUATE.name: eval_stage.key})
    what = f"{RESCORE.name} {cand.labels()} with {scorer_spec}"
    if RESCORE.reuse(st, what):
        return st
    summary: dict = {}
    if process_state().is_main_process:
        gens = read_jsonl(eval_stage / "generations.jsonl", schema=E.GENERATION)
        if not gens:  # written by several processes: one file per rank
            n = len(list(eval_stage.path.glob("generations.jsonl.rank*")))
            gens = E.merge(eval_stage / "generations.jsonl", n) if n > 1 else []
        if not gens or not eval_stage.done:
            raise E.EvaluationError(f"{what}: {eval_stage.path} has no finished generations to re-score")
        scorer = models.scorer(scorer_spec) if models is not None else load_profile_scorer(profile, scorer_spec)
        summary["n_continuations"] = len(gens)
        with timed(summary):
            RESCORE.begin(st)
            scores = E.checked_scores(scorer, [r["continuation"] for r in gens])
            gens = [{**r, "toxicity": x} for r, x in zip(gens, scores)]
            write_jsonl(st / "generations.jsonl", gens)
            rows = E.metric_rows(gens, [], profile.eval)
            rows = rows[rows.metric.isin(TOXICITY_METRICS)].reset_index(drop=True)
            for k, v in cand.labels().items():
                rows[k] = v
            rows["config_key"] = eval_stage.key
            rows["scorer"] = scorer_spec
            write_text(st / "metrics.csv", rows.to_csv(index=False))
            settings = read_json(eval_stage / "settings.json")
            write_json(st / "settings.json", {**settings, "scorer": scorer.name, "scorer_version": scorer.version,
                                              "rescored_from": eval_stage.key})  # fmt: skip
    RESCORE.finish(st, summary, st / "metrics.csv", what, main_only=True)
    return st


def mmlu(profile: Profile, cand: Candidate, *, quiet: bool = False) -> StageDir:
    """k-shot MMLU accuracy of one candidate; per-question rows in ``mmlu.csv``."""
    from unidetox.measure.mmlu import mmlu_summary, score_mmlu

    cfg = profile.eval
    config = {"split": cfg.mmlu_split, "shots": cfg.mmlu_shots, "per_subject": cfg.mmlu_per_subject,
              "subjects": list(cfg.mmlu_subjects), **eval_dtype_key(profile)}  # fmt: skip
    st = MMLU.locate(profile, config, {"model": cand.key})
    what = f"{MMLU.name} {cand.labels()}"
    if MMLU.reuse(st, what):
        return st
    test = load_mmlu(profile.data, cfg.mmlu_split, subjects=cfg.mmlu_subjects, per_subject=cfg.mmlu_per_subject)
    dev = load_mmlu(profile.data, "dev", subjects=cfg.mmlu_subjects)
    summary: dict = {"n_questions": len(test)}
    with timed(summary):
        lm = load_eval_lm(profile, cand.path)
        MMLU.begin(st)
        per_q = score_mmlu(lm.model, lm.tokenizer, test, dev, shots=cfg.mmlu_shots)
        write_text(st / "mmlu.csv", per_q.to_csv(index=False))
        summ = mmlu_summary(per_q)
        write_text(st / "summary.csv", summ.to_csv(index=False))
    MMLU.finish(st, summary, st / "mmlu.csv", what)
    return st


def collect(profile: Profile, stages: list[tuple[Candidate, StageDir]], name: str = "results") -> Path:
    """Concatenate candidates' tidy rows into ``runs/<profile>/<name>.csv`` and ``.parquet``."""
    table = candidate_rows(stages)
    out = Path(profile.runs_dir) / profile.name / f"{name}.csv"
    remove_stale_temporaries(out.parent)
    write_text(out, table.to_csv(index=False))
    with atomic_path(out.with_suffix(".parquet")) as tmp:
        table.to_parquet(tmp, index=False)
    return out


def candidate_rows(stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """Tidy rows of every evaluation, labelled by its candidate (one evaluation can serve several candidates,
    e.g. when the transferred configuration is also a target's own best)."""
    frames = []
    for c, st in stages:
        df = pd.read_csv(st / "metrics.csv")
        for k, v in c.labels().items():
            df[k] = v
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
