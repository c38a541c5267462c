"""Comparing candidates: choosing the shared configuration on validation, and paired bootstrap CIs over prompts.

Everything here is a pure function of tidy tables or per-continuation records:

* :func:`choose_config` picks the (learning rate, steps) with the lowest in-distribution TP (mean over seeds),
  ties broken by EMT, then fewer steps, then the smaller learning rate.
* :func:`per_prompt_values` reduces one evaluation's continuations to per-prompt numerators and denominators
  (toxic indicator, maximum score, kept perplexities), averaged over seeds.
* :func:`paired_ci` resamples prompts (within each domain, so the in-distribution mean stays the mean of its
  three domains, as in the tables) and returns the difference of a candidate and a reference with its
  percentile interval.
* :func:`ppl_ratio_ci` resamples prompts the same way (within each of the four domains) and returns the ratio of
  two models' perplexities, each the pooled mean over every prompt as in the tables' PPL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unidetox.measure.bootstrap import bootstrap_ci, strata_rows
from unidetox.measure.metrics import (
    IN_DISTRIBUTION,
    IN_DOMAINS,
    METRICS,
    OOD_DOMAIN,
    OUT_OF_DISTRIBUTION,
    TOXICITY_METRICS,
    MetricError,
    per_prompt_toxicity,
)

#: metric -> (column of per-prompt numerators, column of denominators)
PER_PROMPT = {"TP": ("toxic", "one"), "EMT": ("max_score", "one"), "PPL": ("ppl_sum", "ppl_n")}
#: comparison group -> the domains it pools (as strata)
GROUPS = {IN_DISTRIBUTION: IN_DOMAINS, OUT_OF_DISTRIBUTION: (OOD_DOMAIN,), "all": (*IN_DOMAINS, OOD_DOMAIN)}


def _best(tidy: pd.DataFrame, keys: list[str], what: str, first: str = "TP") -> pd.Series:
    """Seed-mean in-distribution TP and EMT per value of `keys`; the row with the lowest `first` metric, then the
    other, then keys."""
    need = {*keys, "domain", "metric", "value"}
    if not need <= set(tidy.columns):
        raise MetricError(f"choosing {what} needs columns {sorted(need)}, got {sorted(tidy.columns)}")
    rows = tidy[(tidy.domain == IN_DISTRIBUTION) & tidy.metric.isin(TOXICITY_METRICS)]
    if rows.empty:
        raise MetricError(f"choosing {what}: no in-distribution TP/EMT rows to choose from (evaluate the grid first)")
    means = rows.groupby([*keys, "metric"]).value.mean().unstack("metric").reset_index()
    order = sorted(TOXICITY_METRICS, key=lambda m: m != first)
    ascending = [not METRICS[m].higher_is_better for m in order] + [True] * len(keys)
    return means.sort_values([*order, *keys], ascending=ascending, kind="stable").iloc[0]


def choose_config(tidy: pd.DataFrame) -> tuple[float, int]:
    """``(lr, steps)`` of the best grid point of one target's validation rows (ties: fewer steps, then smaller lr).

    tidy: rows with columns lr, steps, seed, domain, metric, value (one target, one method).
    """
    best = _best(tidy, ["steps", "lr"], "a configuration")
    return float(best.lr), int(best.steps)


def choose_value(tidy: pd.DataFrame, column: str, metric: str = "TP") -> float:
    """The value of `column` (e.g. DExperts' lambda) with the lowest in-distribution `metric` (TP or EMT), then the
    other, then the smaller value."""
    return float(_best(tidy, [column], column, metric)[column])


def per_prompt_values(
    generations: pd.DataFrame,
    perplexities: pd.DataFrame | None = None,
    *,
    threshold: float = 0.5,
    max_ppl: float = 1e4,
) -> pd.DataFrame:
    """One row per prompt: ``prompt_id, domain, toxic, max_score, one, ppl_sum, ppl_n``, averaged over seeds.

    generations: one row per continuation (seed, prompt_id, domain, toxicity); a prompt is toxic in a seed
    when any continuation scores ``> threshold`` (:func:`unidetox.measure.metrics.per_prompt_toxicity`). perplexities:
    one row per continuation (seed, prompt_id, sample, ppl); ``ppl_sum``/``ppl_n`` are the sum and count of
    kept values (``< max_ppl``) over seeds, so the pooled mean perplexity of any set of prompts is
    ``sum(ppl_sum) / sum(ppl_n)``.
    """
    scores = generations[["seed", "prompt_id", "domain", "toxicity"]].rename(columns={"toxicity": "score"})
    g = per_prompt_toxicity(scores, threshold=threshold, strict=True)
    out = g.groupby(["prompt_id", "domain"])[["toxic", "max_score"]].mean().reset_index()
    out["one"] = 1.0
    if perplexities is not None and len(perplexities):
        p = perplexities.assign(ppl=perplexities.ppl.astype(float))
        kept = p[np.isfinite(p.ppl) & (p.ppl < max_ppl)]
        agg = kept.groupby("prompt_id").ppl.agg(["sum", "count"]).rename(columns={"sum": "ppl_sum", "count": "ppl_n"})
        out = out.merge(agg, left_on="prompt_id", right_index=True, how="left").fillna({"ppl_sum": 0.0, "ppl_n": 0.0})
    else:
        out["ppl_sum"], out["ppl_n"] = np.nan, np.nan
    return out.sort_values(["domain", "prompt_id"]).reset_index(drop=True)


def _stat(num: np.ndarray, den: np.ndarray, strata: list[np.ndarray], rows: np.ndarray) -> float:
    """Mean over strata of ``sum(num[rows[s]]) / sum(den[rows[s]])``; `strata` holds positions in `rows`."""
    return float(np.mean([num[rows[s]].sum() / den[rows[s]].sum() for s in strata]))


def stratified_paired_bootstrap(
    a_num: np.ndarray,
    a_den: np.ndarray,
    b_num: np.ndarray,
    b_den: np.ndarray,
    strata: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Paired bootstrap of ``stat(a) - stat(b)`` over prompts, resampled within each stratum.

    All arrays are ``(n_prompts,)`` and aligned (same prompt at the same index). ``stat`` is the mean over
    strata of ``sum(num) / sum(den)``. Returns ``(difference, lo, hi)``, a percentile interval at `level`
    (:func:`unidetox.measure.bootstrap.bootstrap_ci`, stratified).
    """
    arrays = [np.asarray(x, dtype=float) for x in (a_num, a_den, b_num, b_den)]
    strata = np.asarray(strata)
    if any(x.shape != strata.shape or x.ndim != 1 for x in arrays) or strata.size == 0:
        raise MetricError("stratified_paired_bootstrap: inputs must be aligned non-empty 1-D arrays over prompts")
    groups = strata_rows(strata)
    an, ad, bn, bd = arrays
    return bootstrap_ci(
        lambda rows: _stat(an, ad, groups, rows) - _stat(bn, bd, groups, rows),
        strata.size,
        strata=strata,
        n_boot=n_boot,
        level=level,
        seed=seed,
    )


def paired_ci(
    cand: pd.DataFrame, ref: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Differences candidate - reference with bootstrap CIs, from two :func:`per_prompt_values` tables.

    Returns rows ``metric, domain, diff, lo, hi, n_prompts`` for TP and EMT (in- and out-of-distribution)
    and PPL (all prompts; omitted when either side has no perplexities).
    """
    keys = ["prompt_id", "domain"]
    m = cand.merge(ref, on=keys, suffixes=("_a", "_b"), how="inner")
    if len(m) != len(cand) or len(m) != len(ref):
        raise MetricError(
            f"paired_ci needs the same prompts on both sides ({len(cand)} vs {len(ref)}, {len(m)} shared)"
        )
    rows = []
    for metric, (num, den) in PER_PROMPT.items():
        if metric == "PPL" and (m[f"{num}_a"].isna().any() or m[f"{num}_b"].isna().any()):
            continue
        for group, domains in GROUPS.items():
            if (metric == "PPL") != (group == "all"):
                continue
            sub = m[m.domain.isin(domains)]
            if sub.empty or sub.domain.nunique() < len(domains):
                continue
            strata = sub.domain.to_numpy() if metric != "PPL" else np.zeros(len(sub))  # PPL: pooled over prompts
            diff, lo, hi = stratified_paired_bootstrap(
                sub[f"{num}_a"].to_numpy(), sub[f"{den}_a"].to_numpy(), sub[f"{num}_b"].to_numpy(),
                sub[f"{den}_b"].to_numpy(), strata, n_boot=n_boot, level=level, seed=seed,
            )  # fmt: skip
            rows.append((metric, group, diff, lo, hi, len(sub)))
    return pd.DataFrame(rows, columns=["metric", "domain", "diff", "lo", "hi", "n_prompts"])


def ppl_ratio_ci(
    cand: pd.DataFrame, ref: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float, int]:
    """``(ratio, lo, hi, n_prompts)``: PPL(candidate) / PPL(reference) with a paired, domain-stratified bootstrap.

    cand, ref: :func:`per_prompt_values` tables of the same prompts (every domain). PPL of a model is the mean of
    its kept per-continuation perplexities over all prompts of all domains, pooled over seeds
    (``sum(ppl_sum) / sum(ppl_n)``): the tables' PPL (:data:`unidetox.measure.metrics.METRICS`), which averages
    per-seed means instead, is the same number whenever every seed keeps as many continuations. Each resample
    draws prompts within each domain (the same prompts for both models) and recomputes both means and their ratio.
    """
    m = cand.merge(ref, on=["prompt_id", "domain"], suffixes=("_a", "_b"), how="inner")
    if len(m) != len(cand) or len(m) != len(ref) or m.empty:
        raise MetricError(f"ppl_ratio_ci needs the same prompts on both sides ({len(cand)} vs {len(ref)}, "
                          f"{len(m)} shared)")  # fmt: skip
    an, ad, bn, bd = (m[c].to_numpy(dtype=float) for c in ("ppl_sum_a", "ppl_n_a", "ppl_sum_b", "ppl_n_b"))
    if np.isnan([an, ad, bn, bd]).any() or ad.sum() == 0 or bd.sum() == 0:
        raise MetricError("ppl_ratio_ci needs kept perplexities of both models (evaluate with perplexity on)")

    def ratio(rows: np.ndarray) -> float:
        return float((an[rows].sum() / ad[rows].sum()) / (bn[rows].sum() / bd[rows].sum()))

    point, lo, hi = bootstrap_ci(ratio, len(m), strata=m.domain.to_numpy(), n_boot=n_boot, level=level, seed=seed)
    return point, lo, hi, len(m)


def shared_prompts(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two per-prompt tables restricted to the prompts they share. The report's samples are nested (one candidate's
    prompts are the first of each domain in another's shuffle): a pair whose smaller side is not a subset of the
    larger raises :class:`unidetox.measure.metrics.MetricError`."""
    shared = set(a.prompt_id) & set(b.prompt_id)
    if len(shared) != min(len(a), len(b)):
        raise MetricError(f"paired comparison of non-nested prompt samples ({len(a)} and {len(b)} prompts, "
                          f"{len(shared)} shared)")  # fmt: skip
    return a[a.prompt_id.isin(shared)].reset_index(drop=True), b[b.prompt_id.isin(shared)].reset_index(drop=True)
