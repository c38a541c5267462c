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

import pandas as pd

from unidetox.measure.metrics import IN_DOMAINS, MetricError

Z95 = 1.959963984540054


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


__all__ = [
    "Z95",
    "half_width",
    "paired_differences",
    "per_domain_sd",
    "power_table",
    "prompts_per_domain_for",
    "stratified_se",
]
