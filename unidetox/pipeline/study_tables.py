"""The study's derived tables: paired comparisons of its report evaluations, read from their stages.

Each candidate minus its untouched target, the transferred configuration minus the target's own best, UniDetox
minus plain base samples, the perplexity ratio (paired bootstrap intervals over the prompts both sides share, the
report's samples being nested), and MMLU differences over paired questions.
"""

from __future__ import annotations

import pandas as pd

from unidetox.config import Profile
from unidetox.config.compared_methods import FINETUNED
from unidetox.measure.evaluate import GENERATION, PERPLEXITY
from unidetox.pipeline.candidates import Candidate, untouched
from unidetox.store.jsonl import read_jsonl
from unidetox.store.run_store import StageDir


def per_prompt_rows(profile: Profile, st: StageDir) -> pd.DataFrame:
    from unidetox.measure.compare import per_prompt_values

    gens = pd.DataFrame(read_jsonl(st / "generations.jsonl", schema=GENERATION))
    ppl = pd.DataFrame(read_jsonl(st / "perplexity.jsonl", schema=PERPLEXITY))
    return per_prompt_values(gens, ppl if len(ppl) else None, threshold=profile.eval.threshold,
                             max_ppl=profile.eval.perplexity_max)  # fmt: skip


def mmlu_cis(profile: Profile, rep: list[Candidate], mmlu_stages: dict[str, StageDir]) -> pd.DataFrame:
    """Each candidate with an MMLU stage, other than the untouched ones, minus its untouched target on the same
    questions: labels + ``diff, lo, hi, n_questions`` (:func:`unidetox.measure.mmlu.paired_accuracy_ci`)."""
    from unidetox.measure.mmlu import paired_accuracy_ci

    cfg = profile.study
    rows = []
    for c in rep:
        ref = mmlu_stages.get(untouched(c.target).key)
        if c.method not in FINETUNED or c.key not in mmlu_stages or ref is None:
            continue
        a, b = (pd.read_csv(st / "mmlu.csv") for st in (mmlu_stages[c.key], ref))
        diff, lo, hi, n = paired_accuracy_ci(a, b, level=cfg.ci_level)
        rows.append({**c.labels(), "diff": diff, "lo": lo, "hi": hi, "n_questions": n})
    return pd.DataFrame(rows)


def _paired_cis(profile: Profile, rep_stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """Paired bootstrap CIs over prompts of every report candidate against its untouched target."""
    from unidetox.measure.compare import paired_ci, shared_prompts

    cfg = profile.study
    pp = {c.key + c.prefix: per_prompt_rows(profile, s) for c, s in rep_stages}
    ci_rows = []
    for c, _ in rep_stages:
        if c.method == "none":
            continue
        a, b = shared_prompts(pp[c.key + c.prefix], pp[untouched(c.target).key])
        d = paired_ci(a, b, n_boot=cfg.bootstrap, level=cfg.ci_level)
        ci_rows.append(d.assign(**c.labels()))
    return pd.concat(ci_rows, ignore_index=True) if ci_rows else pd.DataFrame()


def _transfer_cis(profile: Profile, rep_stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """Paired bootstrap CIs over prompts of every transferred candidate against the same method with the target's
    own best (oracle) configuration; a difference of exactly 0 where both are the same model."""
    from unidetox.measure.compare import paired_ci, shared_prompts

    cfg = profile.study
    oracle = {(c.target, c.method): s for c, s in rep_stages if c.selection == "oracle"}
    ci_rows = []
    for c, s in rep_stages:
        if c.selection != "transferred" or (c.target, c.method) not in oracle:
            continue
        ref = oracle[(c.target, c.method)]
        a, b = shared_prompts(per_prompt_rows(profile, s), per_prompt_rows(profile, ref))
        d = paired_ci(a, b, n_boot=cfg.bootstrap, level=cfg.ci_level)
        ci_rows.append(d.assign(**c.labels(), reference="oracle"))
    return pd.concat(ci_rows, ignore_index=True) if ci_rows else pd.DataFrame()


def _contrast_cis(profile: Profile, rep_stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """Paired CIs over prompts of every transferred UniDetox candidate minus its target's base-samples candidate
    (does the contrast matter, or do plain base-model samples detoxify as much?); empty without base-samples."""
    from unidetox.measure.compare import paired_ci, shared_prompts

    cfg = profile.study
    plain = {c.target: s for c, s in rep_stages if c.method == "base-samples"}
    ci_rows = []
    for c, s in rep_stages:
        if c.method != "unidetox" or c.selection != "transferred" or c.target not in plain:
            continue
        a, b = shared_prompts(per_prompt_rows(profile, s), per_prompt_rows(profile, plain[c.target]))
        d = paired_ci(a, b, n_boot=cfg.bootstrap, level=cfg.ci_level)
        ci_rows.append(d.assign(**c.labels(), reference="base-samples"))
    return pd.concat(ci_rows, ignore_index=True) if ci_rows else pd.DataFrame()


def _ppl_ratio_cis(profile: Profile, rep_stages: list[tuple[Candidate, StageDir]]) -> pd.DataFrame:
    """PPL ratio of every report candidate with perplexities to its untouched target, with its bootstrap interval."""
    from unidetox.measure.compare import ppl_ratio_ci, shared_prompts

    cfg = profile.study
    pp = {c.key + c.prefix: per_prompt_rows(profile, s) for c, s in rep_stages}
    rows = []
    for c, _ in rep_stages:
        if c.method == "none":
            continue
        cand, ref = shared_prompts(pp[c.key + c.prefix], pp[untouched(c.target).key])
        if cand.ppl_n.isna().any() or ref.ppl_n.isna().any() or not cand.ppl_n.sum() or not ref.ppl_n.sum():
            continue  # no perplexity, or none kept (every continuation at or above eval.perplexity_max)
        ratio, lo, hi, n = ppl_ratio_ci(cand, ref, n_boot=cfg.bootstrap, level=cfg.ci_level)
        rows.append({**c.labels(), "ratio": ratio, "lo": lo, "hi": hi, "n_prompts": n})
    return pd.DataFrame(rows)


#: The study's derived tables: file name -> (function of the profile and the stages, which scorer's stages).
DERIVED = {
    "cis.csv": (_paired_cis, "first"),
    "transfer_cis.csv": (_transfer_cis, "first"),
    "contrast_cis.csv": (_contrast_cis, "first"),
    "ppl_ratio_cis.csv": (_ppl_ratio_cis, "first"),
    "cis_second.csv": (_paired_cis, "second"),
    "transfer_cis_second.csv": (_transfer_cis, "second"),
    "contrast_cis_second.csv": (_contrast_cis, "second"),
}
