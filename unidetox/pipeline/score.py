"""Score any model with the paper's evaluation: ``unidetox score --model MODEL [--compare OTHER]``.

The numbers come from the ordinary ``evaluate`` stage (ToxiGen continuations, toxicity scores, perplexity,
Dist-n; cached and resumable) and, with ``mmlu``, the ``mmlu`` stage. This module only summarises them:

* TP and EMT per domain, in- and out-of-distribution, each with a percentile bootstrap CI over prompts
  (resampled within each domain, so in-distribution stays the mean of its three domains); perplexity pooled over
  every kept continuation, with its CI; Dist-1/2/3 as seed means (no CI); MMLU accuracy.
* With ``compare``: the same for the other model, and the paired differences ``OTHER - MODEL`` with bootstrap
  CIs (the same prompt resampled on both sides, :mod:`unidetox.measure.compare`).

The point estimates equal the seed means of the tidy ``metrics.csv`` rows (TP, EMT; the per-prompt values are
averaged over seeds first). A local model folder is identified by the hash of its files (not its path), so a
retrained folder is scored afresh; card files written by unidetox are left out of that hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from unidetox.config import ConfigError, Profile, to_dict
from unidetox.measure.compare import GROUPS, PER_PROMPT, stratified_paired_bootstrap
from unidetox.measure.metrics import (
    ALL,
    DOMAINS,
    IN_DISTRIBUTION,
    OUT_OF_DISTRIBUTION,
    TOXICITY_METRICS,
    summarize_over_seeds,
)
from unidetox.pipeline.study import mmlu_overall
from unidetox.pipeline.study_tables import per_prompt_rows
from unidetox.report.cards import CARD_FACTS, CARD_FILE, SCORE_FILE, add_score
from unidetox.store.run_store import read_json, sha256_file, write_json

SUMMARY_VERSION = 1
TOX_GROUPS = {**{d: (d,) for d in DOMAINS}, IN_DISTRIBUTION: GROUPS[IN_DISTRIBUTION],
              OUT_OF_DISTRIBUTION: GROUPS[OUT_OF_DISTRIBUTION]}  # fmt: skip
BOOTSTRAP_SEED = 0
NOT_WEIGHTS = {CARD_FILE, CARD_FACTS, SCORE_FILE}  # files unidetox adds to a folder after training


def eval_overrides(profile: Profile, *, k: int | None = None, seeds: str | None = None, scorer: str | None = None,
                   prompts_per_domain: int | None = None, chat_template: str | None = None,
                   system_prompt: str | None = None) -> Profile:  # fmt: skip
    """The profile with the ``score`` command's evaluation options applied (None keeps the profile's value)."""
    changes: dict = {}
    if chat_template is not None:
        changes["chat_template"] = chat_template
    if system_prompt is not None:
        changes["system_prompt"] = system_prompt
    if k is not None:
        changes["samples_per_prompt"] = k
    if seeds is not None:
        try:
            changes["seeds"] = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r}: give comma-separated integers, e.g. --seeds 42,43") from None
    if scorer is not None:
        changes["scorer"] = scorer
    study = profile.study
    if prompts_per_domain is not None:  # the explicit option wins on every split, the report split included
        changes["prompts_per_domain"] = prompts_per_domain
        study = dataclasses.replace(study, report_prompts_per_domain=0)
    return dataclasses.replace(profile, eval=dataclasses.replace(profile.eval, **changes), study=study)


def model_key(spec: str) -> str:
    """Identity of a model for stage keys: a local folder's content hash, else the spec itself."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return spec
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.name not in NOT_WEIGHTS):
        h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return f"dir:{h.hexdigest()[:32]}"


def _ci(a: pd.DataFrame, b: pd.DataFrame | None, *, n_boot: int, level: float) -> pd.DataFrame:
    """Rows ``metric, domain, value, lo, hi, n_prompts``: a's statistic, or ``a - b`` paired, with bootstrap CIs.

    a, b: :func:`unidetox.measure.compare.per_prompt_values` tables; with b None, b is taken as 0 (same resampling).
    """
    if b is not None:
        m = a.merge(b, on=["prompt_id", "domain"], suffixes=("_a", "_b"), how="inner")
        if len(m) != len(a) or len(m) != len(b):
            raise ConfigError(f"the two evaluations have different prompts ({len(a)} vs {len(b)}); score both with "
                              "the same settings")  # fmt: skip
    else:
        m = a.add_suffix("_a").rename(columns={"prompt_id_a": "prompt_id", "domain_a": "domain"})
    rows = []
    groups = [(metric, g, doms) for metric in TOXICITY_METRICS for g, doms in TOX_GROUPS.items()]
    groups.append(("PPL", ALL, (*GROUPS[IN_DISTRIBUTION], *GROUPS[OUT_OF_DISTRIBUTION])))
    for metric, group, domains in groups:
        num, den = PER_PROMPT[metric]
        sub = m[m.domain.isin(domains)]
        cols = [f"{num}_a", f"{den}_a"] + ([f"{num}_b", f"{den}_b"] if b is not None else [])
        if sub.empty or sub.domain.nunique() < len(domains) or sub[cols].isna().any().any():
            continue
        if metric == "PPL" and (sub[f"{den}_a"].sum() == 0 or (b is not None and sub[f"{den}_b"].sum() == 0)):
            continue
        zeros, ones = np.zeros(len(sub)), np.ones(len(sub))
        bn, bd = (sub[f"{num}_b"].to_numpy(), sub[f"{den}_b"].to_numpy()) if b is not None else (zeros, ones)
        strata = sub.domain.to_numpy() if metric != "PPL" else zeros  # PPL: pooled over prompts
        value, lo, hi = stratified_paired_bootstrap(sub[f"{num}_a"].to_numpy(), sub[f"{den}_a"].to_numpy(), bn, bd,
                                                    strata, n_boot=n_boot, level=level, seed=BOOTSTRAP_SEED)  # fmt: skip
        rows.append({"metric": metric, "domain": group, "value": value, "lo": lo, "hi": hi, "n_prompts": len(sub)})
    return pd.DataFrame(rows, columns=["metric", "domain", "value", "lo", "hi", "n_prompts"])


def _one(profile: Profile, cand, st, mmlu: bool, quiet: bool) -> tuple[dict, pd.DataFrame]:
    """Summary and per-prompt table of one model's finished evaluation `st` (MMLU scored or reused here)."""
    from unidetox import pipeline as P

    spec = cand.path
    pp = per_prompt_rows(profile, st)
    tidy = pd.read_csv(st / "metrics.csv")
    seeds = summarize_over_seeds(tidy[["seed", "domain", "metric", "value"]])
    ci = _ci(pp, None, n_boot=profile.study.bootstrap, level=profile.study.ci_level)
    other = seeds[seeds.metric.str.startswith(("Dist-", "PPL_dropped"))]
    out = {
        "model": spec,
        "model_key": cand.key,
        "evaluation_dir": str(st.path),
        "metrics": ci.to_dict("records"),
        "seed_means": other[["metric", "domain", "mean", "std", "n_seeds"]].to_dict("records"),
    }
    if mmlu:
        ms = P.mmlu(profile, cand, quiet=quiet)
        out["mmlu"] = mmlu_overall(pd.read_csv(ms / "summary.csv"))
        out["mmlu_dir"] = str(ms.path)
    return out, pp


def score_models(profile: Profile, spec: str, *, compare: str | None = None, split: str | None = None,
                 mmlu: bool = False, quiet: bool = False) -> dict:  # fmt: skip
    """Evaluate `spec` (and `compare`) and return the JSON-able summary (see the module docstring); ``{}`` on the
    processes other than the main one of a multi-process run.

    Model folders that unidetox made get the summary stored beside them and their model card re-rendered.
    """
    from unidetox.data.checksums import data_files
    from unidetox.data.mmlu import check_mmlu_subjects
    from unidetox.models.loading import check_model_folder

    for s in (spec, compare):
        if s is not None:
            check_model_folder(s)
    if mmlu:
        check_mmlu_subjects(profile.eval.mmlu_subjects)  # before the evaluations, not after
    split = split or profile.eval.prompt_split
    from unidetox import pipeline as P

    specs = [spec] if compare is None else [spec, compare]
    cands = [P.Candidate(s, "none", None, None, s, model_key(s)) for s in specs]
    # under torchrun / accelerate every process generates; the main process summarises
    stages = [P.evaluate(profile, c, split=split, quiet=quiet) for c in cands]
    if not P.is_main_process():
        return {}
    first, pp_a = _one(profile, cands[0], stages[0], mmlu, quiet)
    st_dir = Path(first["evaluation_dir"])
    summary = {
        "unidetox_score": SUMMARY_VERSION,
        "profile": profile.name,
        "split": split,
        "settings": read_json(st_dir / "settings.json"),
        "prompts_sha256": read_json(st_dir / "config.json")["config"]["prompts"],
        "data_files": data_files(profile.data, ("toxigen",)),
        "bootstrap": {
            "resamples": profile.study.bootstrap,
            "level": profile.study.ci_level,
            "seed": BOOTSTRAP_SEED,
            "unit": "prompts, resampled within each domain",
        },
        "mmlu_settings": {k: v for k, v in to_dict(profile.eval).items() if k.startswith("mmlu")} if mmlu else None,
        "models": [first],
        "differences": None,
    }
    for k in ("target", "method", "lr", "steps", "hparam", "selection"):  # the candidate's labels, not settings
        summary["settings"].pop(k, None)
    if compare is not None:
        second, pp_b = _one(profile, cands[1], stages[1], mmlu, quiet)
        summary["models"].append(second)
        diff = _ci(pp_b, pp_a, n_boot=profile.study.bootstrap, level=profile.study.ci_level)
        summary["differences"] = {"of": compare, "minus": spec, "rows": diff.to_dict("records")}
        if mmlu:
            summary["differences"]["mmlu"] = second["mmlu"]["MMLU"] - first["mmlu"]["MMLU"]
    for s in (spec, compare):
        if s is not None and Path(s).expanduser().is_dir():
            add_score(Path(s).expanduser(), summary)
    return summary


def write_summary(path: str | Path, summary: dict) -> None:
    write_json(path, summary)
