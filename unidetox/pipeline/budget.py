"""The training-budget curve: UniDetox's effect on the selection target against fine-tuning steps (hence tokens).

The study's shared learning rate, the selection target (the distillation model), and one full fine-tune per
budget: ``max(detox.steps)`` (the grid's own run, reused) and each of ``study.budget_steps``, every one with its own
learning-rate schedule. Each is evaluated on the validation prompts as the grid is, never on the report prompts,
so the budget can be chosen from the curve without touching what the report measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unidetox.config import ConfigError, Profile
from unidetox.measure.budget import budget_table, cheapest_as_good
from unidetox.pipeline.candidates import untouched
from unidetox.pipeline.detox import finetuned
from unidetox.pipeline.evaluation import evaluate
from unidetox.pipeline.loading import EvalModels
from unidetox.pipeline.study import study
from unidetox.pipeline.study_tables import per_prompt_rows
from unidetox.store.registry import BUDGET, DETOX
from unidetox.store.run_store import StageDir, read_json, write_json, write_text


@dataclass
class BudgetCurve:
    """``table``: :func:`unidetox.measure.budget.budget_table` rows plus ``tokens`` (at most, steps x batch x
    max_length) and ``train_seconds`` (wall seconds of that budget's fine-tune, read from its stage's DONE: not in
    ``curve.csv``, whose bytes a rerun reproduces); ``lr``:
    the shared learning rate; ``chosen_steps``: the study's steps; ``cheapest``: the fewest steps as good as the
    best budget on in-distribution EMT; ``target``: the selection target; ``path``: the stage folder."""

    table: pd.DataFrame
    lr: float
    chosen_steps: int
    cheapest: int
    target: str
    path: Path


def budgets(profile: Profile) -> list[int]:
    """The curve's budgets in steps, ascending: ``max(detox.steps)`` and ``study.budget_steps`` (empty: off)."""
    extra = profile.study.budget_steps
    return sorted({max(profile.detox.steps), *extra}) if extra else []


def _train_seconds(cand_path: str) -> float:
    """Wall seconds the fine-tune of a ``<stage>/steps/<n>`` candidate took, from its stage's DONE summary."""
    return float(
        StageDir(path=Path(cand_path).parents[1], stage=DETOX.name, key="").summary().get("seconds", float("nan"))
    )


def budget_curve(profile: Profile, *, quiet: bool = False, models: EvalModels | None = None) -> BudgetCurve:
    """Run (or reuse) the study, the curve's fine-tunes and their validation evaluations; the table goes to
    ``runs/<profile>/budget/<key>/curve.csv``. Raises ConfigError when ``study.budget_steps`` is empty."""
    steps = budgets(profile)
    if not steps:
        raise ConfigError("study.budget_steps is empty: the budget curve is off; set e.g. "
                          "--set study.budget_steps=[32,64]")  # fmt: skip
    s = study(profile, quiet=quiet)
    lr, chosen = s.chosen
    sel, top, split = s.select_target, max(profile.detox.steps), profile.eval.prompt_split
    models = models or EvalModels(profile)
    cands = {n: finetuned(profile, sel, "unidetox", lr, n, selection="budget", grid=n == top, quiet=quiet)
             for n in steps}  # fmt: skip
    val = profile.study.validation_perplexity
    base = evaluate(profile, untouched(sel), split=split, perplexity=val, quiet=quiet, models=models)
    stages = {
        n: evaluate(profile, c, split=split, perplexity=val, quiet=quiet, models=models) for n, c in cands.items()
    }
    config = {"budget_steps": steps, "lr": lr, "select_target": sel, "bootstrap": profile.study.bootstrap,
              "ci_level": profile.study.ci_level}  # fmt: skip
    st = BUDGET.locate(profile, config, {"untouched": base.key, **{str(n): x.key for n, x in stages.items()}})
    if not BUDGET.reuse(st, "budget curve"):
        BUDGET.begin(st)
        pp = {n: per_prompt_rows(profile, x) for n, x in stages.items()}
        table = budget_table(pp, per_prompt_rows(profile, base), n_boot=profile.study.bootstrap,
                             level=profile.study.ci_level)  # fmt: skip
        t = profile.detox.train
        table["tokens"] = table.steps * t.batch_size * t.grad_accum * t.max_length
        write_text(st / "curve.csv", table.to_csv(index=False))
        write_json(st / "choice.json", {"cheapest_as_good": cheapest_as_good(table), "chosen_steps": chosen})
        BUDGET.finish(st, {"budgets": steps}, st.path, "budget curve")
    table = pd.read_csv(st / "curve.csv")  # wall seconds are not outputs (reruns differ): read from the stages
    table["train_seconds"] = table.steps.map({n: _train_seconds(c.path) for n, c in cands.items()})
    return BudgetCurve(table, lr, chosen, int(read_json(st / "choice.json")["cheapest_as_good"]), sel, st.path)
