"""Sample sizes for the report, sized on paper from a pilot: prompts per domain for a wanted interval width.

The in-distribution value of a metric is the mean of its three domain means, each over ``n`` prompts (the
tables' definition, and the strata of :func:`unidetox.measure.compare.paired_ci`). With ``s_d`` the standard deviation
over prompts of the per-prompt quantity in domain ``d`` (per-prompt EMT, the per-prompt toxic indicator, or the
paired per-prompt difference of two models on the same prompts), its standard error is

    SE(n) = sqrt(sum_d s_d^2 / n) / D            (D domains)

and a normal-approximation 95% interval has half-width ``z * SE(n)`` with ``z = 1.96``. Per-prompt values must
come from a pilot with the report's ``k`` (samples per prompt) and number of seeds, since both change ``s_d``:
a prompt's EMT is a maximum over its ``k`` samples, averaged over seeds.

>>> round(half_width({"a": 0.3, "b": 0.3, "c": 0.3}, 100), 4)
0.0339
>>> prompts_per_domain_for({"a": 0.3, "b": 0.3, "c": 0.3}, 0.04)
73
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from unidetox.measure.metrics import IN_DOMAINS, MetricError

Z95 = 1.959963984540054
#: prompts per domain the book's power table predicts for
N_GRID = (8, 16, 32, 64, 100, 150, 250)
#: issue 18's target for the paired in-distribution EMT difference: a 95% half-width of at most this
DELTA_EMT_TARGET = 0.04


def _check_sds(sds: Mapping[str, float]) -> list[float]:
    values = [float(v) for v in sds.values()]
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise MetricError(f"standard deviations must be finite and >= 0, one per domain; got {dict(sds)}")
    return values


def stratified_se(sds: Mapping[str, float], n_per_domain: int) -> float:
    """Standard error of the mean of domain means, `n_per_domain` prompts in each domain."""
    if n_per_domain < 1:
        raise MetricError(f"n_per_domain must be >= 1, got {n_per_domain}")
    values = _check_sds(sds)
    return math.sqrt(sum(v * v for v in values) / n_per_domain) / len(values)


def half_width(sds: Mapping[str, float], n_per_domain: int, z: float = Z95) -> float:
    """Half-width of the normal-approximation interval (95% for the default `z`)."""
    return z * stratified_se(sds, n_per_domain)


def prompts_per_domain_for(sds: Mapping[str, float], target: float, z: float = Z95) -> int:
    """The smallest ``n`` whose interval half-width is at most `target`."""
    if not target > 0:
        raise MetricError(f"the target half-width must be > 0, got {target}")
    values = _check_sds(sds)
    n = math.ceil((z / len(values)) ** 2 * sum(v * v for v in values) / target**2)
    return max(n, 1)


def claim_prompts_per_domain(planning_sd: float, target: float, base: int, z: float = Z95) -> int:
    """Prompts per domain of a powered claim's candidates: enough for a `target` half-width of the in-distribution
    difference when every in-distribution domain has the per-prompt SD `planning_sd` (:func:`prompts_per_domain_for`),
    and never fewer than `base` (0 = every prompt: stays 0; `planning_sd` 0 = off: `base`)."""
    if not planning_sd or base == 0:
        return base
    return max(base, prompts_per_domain_for(dict.fromkeys(IN_DOMAINS, planning_sd), target, z))


def per_domain_sd(per_prompt: pd.DataFrame, column: str, domains: Sequence[str] = IN_DOMAINS) -> dict[str, float]:
    """Sample standard deviation (ddof=1) of `column` over the prompts of each domain.

    per_prompt: one row per prompt with ``domain`` and `column`, e.g. :func:`unidetox.measure.compare.per_prompt_values`.
    """
    out = {}
    for d in domains:
        vals = per_prompt.loc[per_prompt.domain == d, column].astype(float)
        if len(vals) < 2:
            raise MetricError(f"domain {d!r} has {len(vals)} pilot prompts; at least 2 are needed for a spread")
        out[d] = float(vals.std(ddof=1))
    return out


def paired_differences(cand: pd.DataFrame, ref: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per-prompt ``cand - ref`` of `column` on the prompts both share: ``prompt_id, domain, <column>``."""
    m = cand.merge(ref, on=["prompt_id", "domain"], suffixes=("_a", "_b"), how="inner")
    if m.empty:
        raise MetricError("paired_differences: the two pilots share no prompt")
    return m.assign(**{column: m[f"{column}_a"] - m[f"{column}_b"]})[["prompt_id", "domain", column]]


def power_table(sds: Mapping[str, float], ns: Sequence[int], z: float = Z95) -> pd.DataFrame:
    """Half-width of the interval for each number of prompts per domain: columns ``n_per_domain, half_width``."""
    return pd.DataFrame({"n_per_domain": list(ns), "half_width": [half_width(sds, n, z) for n in ns]})


@dataclass(frozen=True)
class PilotCosts:
    """What one evaluation costs: ``seconds_per_continuation`` (wall seconds of the evaluate stages over the
    continuations they produced), ``runs`` (report-split evaluation runs the profile makes: those that scale with
    the report's prompts per domain), ``domains`` (domains each run evaluates, out-of-distribution included),
    ``continuations_per_prompt`` (k samples x seeds) and ``fixed_continuations`` (those of the other evaluation
    runs, the validation grid's, which do not change with the report's prompts)."""

    seconds_per_continuation: float
    runs: int
    domains: int
    continuations_per_prompt: int
    fixed_continuations: float = 0.0

    def minutes(self, n_per_domain: int) -> float:
        """Predicted wall minutes of all evaluation runs with `n_per_domain` report prompts per domain."""
        conts = self.runs * n_per_domain * self.domains * self.continuations_per_prompt + self.fixed_continuations
        return conts * self.seconds_per_continuation / 60


@dataclass(frozen=True)
class PowerPlan:
    """The book's sample-size prediction from a pilot.

    sds: per-domain SDs over prompts (index domain; columns ``EMT``, ``TP`` of the untouched model, ``ΔEMT`` of the
    detoxified minus the untouched model); tp_in: the pilot's untouched TP(in); table: one row per grid ``n``
    (:func:`power_from_pilot`); n_tp: smallest n whose untouched TP(in) interval excludes 0 (None when the pilot's
    TP(in) is 0); n_delta: smallest n with ΔEMT(in) half-width <= target; n_needed: the larger of the two (None
    when n_tp is None); costs: the pilot's :class:`PilotCosts`.
    """

    sds: pd.DataFrame
    tp_in: float
    table: pd.DataFrame
    n_tp: int | None
    n_delta: int
    n_needed: int | None
    target: float
    costs: PilotCosts


def in_distribution_mean(per_prompt: pd.DataFrame, column: str, domains: Sequence[str] = IN_DOMAINS) -> float:
    """Mean over `domains` of the domain means of `column` (the tables' in-distribution value)."""
    means = [per_prompt.loc[per_prompt.domain == d, column].astype(float).mean() for d in domains]
    if any(math.isnan(m) for m in means):
        raise MetricError(f"the pilot lacks prompts of some of the domains {list(domains)}")
    return float(sum(means) / len(means))


def smallest_n_excluding_zero(sds: Mapping[str, float], mean: float, z: float = Z95) -> int | None:
    """The smallest ``n`` whose interval around `mean` (> 0) lies strictly above 0; None when `mean` <= 0."""
    if not mean > 0:
        return None
    values = _check_sds(sds)
    n = max(1, math.floor((z / len(values)) ** 2 * sum(v * v for v in values) / mean**2))
    while half_width(sds, n, z) >= mean:
        n += 1
    while n > 1 and half_width(sds, n - 1, z) < mean:
        n -= 1
    return n


def pilot_sds(untouched: pd.DataFrame, detoxed: pd.DataFrame) -> pd.DataFrame:
    """Per-domain SDs of per-prompt EMT and TP of `untouched`, and of the paired per-prompt EMT difference.

    untouched, detoxed: :func:`unidetox.measure.compare.per_prompt_values` of the same prompts (seed means).
    """
    diff = paired_differences(detoxed, untouched, "max_score")
    cols = {"EMT": per_domain_sd(untouched, "max_score"), "TP": per_domain_sd(untouched, "toxic"),
            "ΔEMT": per_domain_sd(diff, "max_score")}  # fmt: skip
    return pd.DataFrame(cols).rename_axis("domain")


def power_from_pilot(untouched: pd.DataFrame, detoxed: pd.DataFrame, costs: PilotCosts, ns: Sequence[int] = N_GRID,
                     target: float = DELTA_EMT_TARGET, z: float = Z95) -> PowerPlan:  # fmt: skip
    """Predicted 95% half-widths and evaluation minutes per number of prompts per domain, from a pilot.

    The pilot's k and seeds fix the per-prompt SDs (a prompt's EMT is the max of k scores averaged over seeds), so
    the prediction holds for those k and seeds only. table columns: ``n_per_domain``, ``EMT (in)``, ``TP (in)``
    (untouched model), ``ΔEMT (in)`` (half-widths), ``TP (in) CI excludes 0`` (untouched, with the pilot's TP(in))
    and ``minutes`` (:meth:`PilotCosts.minutes`).
    """
    sds = pilot_sds(untouched, detoxed)
    tp_in = in_distribution_mean(untouched, "toxic")
    hw = {c: [half_width(sds[c].to_dict(), n, z) for n in ns] for c in sds.columns}
    table = pd.DataFrame({"n_per_domain": list(ns), **{f"{c} (in)": v for c, v in hw.items()}})
    table["TP (in) CI excludes 0"] = [tp_in - h > 0 for h in hw["TP"]]
    table["minutes"] = [costs.minutes(n) for n in ns]
    n_tp = smallest_n_excluding_zero(sds["TP"].to_dict(), tp_in, z)
    n_delta = prompts_per_domain_for(sds["ΔEMT"].to_dict(), target, z)
    n_needed = None if n_tp is None else max(n_tp, n_delta)
    return PowerPlan(sds, tp_in, table, n_tp, n_delta, n_needed, target, costs)


__all__ = [
    "DELTA_EMT_TARGET",
    "N_GRID",
    "Z95",
    "PilotCosts",
    "PowerPlan",
    "claim_prompts_per_domain",
    "half_width",
    "in_distribution_mean",
    "paired_differences",
    "per_domain_sd",
    "pilot_sds",
    "power_from_pilot",
    "power_table",
    "prompts_per_domain_for",
    "smallest_n_excluding_zero",
    "stratified_se",
]
