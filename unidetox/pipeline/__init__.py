"""The pipeline's stages over the run store: each a function of the profile and its inputs' keys.

``toxic_model -> distill -> detox -> evaluate``; every stage returns its :class:`StageDir`, reuses
a finished one, and runs the stages it reads when they are missing (like ``make``). Long stages
resume from their own checkpoints or streams. Under ``accelerate launch`` the distiller and the
evaluator split their units of work over processes; the main process merges and marks completion.

The public API of the pipeline; each stage lives in the module named for its job."""

from __future__ import annotations

from unidetox.pipeline.budget import BudgetCurve, budget_curve
from unidetox.pipeline.candidates import Candidate, dexperts, dexperts_applies, preprompt, toxic_candidate, untouched
from unidetox.pipeline.detox import detox, detox_all, detox_on_texts, finetuned, training_texts
from unidetox.pipeline.distilled import distill, distilled_texts, samples
from unidetox.pipeline.evaluation import collect, evaluate, mmlu, prompts, rescore
from unidetox.pipeline.full_run import run_all
from unidetox.pipeline.power_pilot import Pilot, power_pilot
from unidetox.pipeline.study import (
    Study,
    compass_models,
    stage_summaries,
    study,
    text_sets,
    text_type_sets,
    toxic_vs_base,
)
from unidetox.pipeline.toxic import expert_model, nothate_texts, toxic_model, toxic_texts
from unidetox.pipeline.validity import ScorerValidity, scorer_validity
from unidetox.processes import is_main_process, silently

__all__ = [
    "BudgetCurve",
    "Candidate",
    "Pilot",
    "ScorerValidity",
    "Study",
    "budget_curve",
    "collect",
    "compass_models",
    "detox",
    "detox_all",
    "detox_on_texts",
    "dexperts",
    "dexperts_applies",
    "distill",
    "distilled_texts",
    "evaluate",
    "expert_model",
    "finetuned",
    "is_main_process",
    "mmlu",
    "nothate_texts",
    "power_pilot",
    "preprompt",
    "prompts",
    "rescore",
    "run_all",
    "samples",
    "scorer_validity",
    "silently",
    "stage_summaries",
    "study",
    "text_sets",
    "text_type_sets",
    "toxic_candidate",
    "toxic_model",
    "toxic_texts",
    "toxic_vs_base",
    "training_texts",
    "untouched",
]
