"""How many report prompts each candidate of the study is evaluated on: more for the powered claims' candidates."""

from __future__ import annotations

from unidetox.config import Profile
from unidetox.pipeline.candidates import Candidate
from unidetox.pipeline.evaluation import prompts_per_domain


def report_prompts_per_domain(profile: Profile, cand: Candidate, select_target: str) -> int:
    """Report prompts per domain of `cand` (0 = all): ``study.report_prompts_per_domain`` (or eval's), raised for the
    candidates of the powered claims when ``study.planning_sd`` is set: the untouched, UniDetox (transferred) and
    base-samples candidates of `select_target` to the number whose ΔEMT (in) half-width is at most
    ``study.half_width_distillation`` (claims a, f), the other targets' untouched and UniDetox (transferred)
    candidates to ``study.half_width_transfer`` (claim b) (:func:`unidetox.measure.power.prompts_per_domain_for`
    with the planning SD in every in-distribution domain, :func:`unidetox.measure.power.claim_prompts_per_domain`). Each number selects the first prompts of each domain
    after one seeded shuffle, so a candidate's prompts are a subset of any candidate's with more (paired
    comparisons use the shared ones)."""
    from unidetox.measure.power import claim_prompts_per_domain

    cfg = profile.study
    base = prompts_per_domain(profile, cfg.report_split)
    transferred = cand.selection == "transferred"
    untouched = cand.method == "none" and not cand.prefix
    if cand.target == select_target and (untouched or transferred and cand.method in ("unidetox", "base-samples")):
        return claim_prompts_per_domain(cfg.planning_sd, cfg.half_width_distillation, base)
    if untouched or transferred and cand.method == "unidetox":
        return claim_prompts_per_domain(cfg.planning_sd, cfg.half_width_transfer, base)
    return base


def report_sizes(profile: Profile, cands: list[Candidate], select_target: str) -> dict[str, int]:
    """Report prompts per domain of each evaluated model (candidate key + prefix): the largest any of its
    candidates needs (0 = every prompt), so that one model is evaluated once (e.g. the transferred configuration
    that is also the target's own best)."""
    out: dict[str, int] = {}
    for c in cands:
        n = report_prompts_per_domain(profile, c, select_target)
        k = c.key + c.prefix
        out[k] = n if k not in out else (0 if 0 in (n, out[k]) else max(n, out[k]))
    return out
