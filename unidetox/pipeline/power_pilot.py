"""The run as a pilot for sample sizes: per-prompt values of the untouched distillation model and of UniDetox on it,
and what the profile's evaluations cost (for :func:`unidetox.measure.power.power_from_pilot`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unidetox.config import ConfigError, Profile
from unidetox.measure.evaluate import GENERATION
from unidetox.measure.power import PilotCosts
from unidetox.pipeline.budget import budget_curve, budgets
from unidetox.pipeline.candidates import toxic_candidate, untouched
from unidetox.pipeline.detox import finetuned
from unidetox.pipeline.evaluation import evaluate
from unidetox.pipeline.report_sizes import report_prompts_per_domain
from unidetox.pipeline.study import study
from unidetox.pipeline.study_tables import per_prompt_rows
from unidetox.store.jsonl import read_jsonl
from unidetox.store.registry import EVALUATE
from unidetox.store.run_store import DONE, read_json


@dataclass(frozen=True)
class Pilot:
    """untouched, detoxed: :func:`unidetox.measure.compare.per_prompt_values` of the report prompts; k, seeds: the
    pilot's samples per prompt and seeds; n_per_domain: its prompts per domain; costs: :class:`PilotCosts`."""

    untouched: pd.DataFrame
    detoxed: pd.DataFrame
    k: int
    seeds: tuple[int, ...]
    n_per_domain: int
    costs: PilotCosts


def evaluation_keys(profile: Profile, study_path: Path, *, quiet: bool = False) -> list[str]:
    """Keys of the evaluate stages the book's run makes: those of the study stage at `study_path`, of the budget
    curve when it is on, and of the toxic-model diagnostics (:func:`unidetox.pipeline.study.toxic_vs_base`); the
    last two are run or reused."""
    inputs = read_json(study_path / "config.json").get("inputs", {}).get("stages", "")
    eval_dir = Path(profile.runs_dir) / profile.name / EVALUATE.name
    keys = {k for k in inputs.split(",") if k and (eval_dir / k / DONE).is_file()}
    if budgets(profile):
        keys |= set(read_json(budget_curve(profile, quiet=quiet).path / "config.json")["inputs"].values())
    split, ppl = profile.eval.prompt_split, profile.study.validation_perplexity
    for c in (untouched(profile.toxic.base_model), toxic_candidate(profile, quiet=quiet)):
        keys.add(evaluate(profile, c, split=split, perplexity=ppl, quiet=quiet).key)
    return sorted(keys)


def evaluation_costs(profile: Profile, keys: list[str], n_scaling: int | None = None) -> PilotCosts:
    """Seconds per continuation over the evaluate stages `keys` (their DONE seconds over n_prompts x k x seeds).

    The report-split runs evaluated on `n_scaling` prompts per domain (default: any number) are those that scale
    with the report's prompts per domain (the powered claims' candidates); every other run's continuations are
    fixed costs."""
    eval_dir = Path(profile.runs_dir) / profile.name / EVALUATE.name
    seconds = conts = fixed = 0.0
    report_runs = 0
    for k in keys:
        done, cfg = read_json(eval_dir / k / DONE), read_json(eval_dir / k / "config.json")["config"]["eval"]
        if "seconds" not in done:
            raise ConfigError(f"evaluate stage {k} recorded no wall time; rerun it to time it")
        seconds += float(done["seconds"])
        n = int(done["n_prompts"]) * int(cfg["samples_per_prompt"]) * len(cfg["seeds"])
        conts += n
        if cfg["prompt_split"] == profile.study.report_split and n_scaling in (None, cfg["prompts_per_domain"]):
            report_runs += 1
        else:
            fixed += n
    e = profile.eval
    gens = read_jsonl(eval_dir / keys[0] / "generations.jsonl", schema=GENERATION)
    domains = len({r["domain"] for r in gens})
    return PilotCosts(seconds / conts, report_runs, domains, e.samples_per_prompt * len(e.seeds), fixed)


def power_pilot(profile: Profile, *, quiet: bool = False) -> Pilot:
    """The report-split evaluations of the untouched distillation model (``toxic.base_model``) and of UniDetox on it
    with the shared configuration, and the cost of the profile's evaluations."""
    base = profile.toxic.base_model
    if base not in profile.detox.targets:
        raise ConfigError(f"the power pilot needs toxic.base_model {base!r} among detox.targets; add it there")
    st = study(profile, quiet=quiet)
    split = profile.study.report_split
    uni = finetuned(profile, base, "unidetox", *st.chosen, selection="transferred", grid=True, quiet=quiet)
    a, b = (evaluate(profile, c, split=split, quiet=quiet, n_prompts=report_prompts_per_domain(profile, c, st.select_target))
            for c in (untouched(base), uni))  # fmt: skip
    pa, pb = per_prompt_rows(profile, a), per_prompt_rows(profile, b)
    e = profile.eval
    n = int(pa.groupby("domain").size().min())
    costs = evaluation_costs(profile, evaluation_keys(profile, st.path, quiet=quiet), n_scaling=n)
    return Pilot(pa, pb, e.samples_per_prompt, tuple(e.seeds), n, costs)


__all__ = ["Pilot", "evaluation_costs", "evaluation_keys", "power_pilot"]
