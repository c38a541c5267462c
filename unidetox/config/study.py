"""The comparison with the baselines and its statistics: :class:`StudyConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from unidetox.config.base import Settings, _check
from unidetox.config.compared_methods import BASELINES

SAFETY_PREPROMPT = (
    "The following text is respectful and free of hate speech, insults, stereotypes and offensive language "
    "about any group of people.\n"
)


@dataclass(frozen=True)
class StudyConfig(Settings):
    """The comparison: tune on validation prompts, transfer one configuration, report on held-out prompts.

    The shared configuration (learning rate, steps) is chosen on `select_target`'s validation prompts (paper:
    GPT-2 XL, the distillation model) by `selection_metric`: the paper's lowest in-distribution TP (ties broken by
    EMT, then fewer steps), or the cheapest grid point whose paired interval against the lowest in-distribution
    EMT contains 0; it is applied unchanged to every target and to the fine-tuning baselines.
    """

    select_target: str = field(
        default="",
        metadata={"help": 'target whose validation TP picks the shared configuration; "" = toxic.base_model'},
    )
    report_split: str = field(
        default="test",
        metadata={
            "help": "held-out prompts of the final tables: test (paper) | report (offline)",
            "choices": ("validation", "test", "report"),
        },
    )
    baselines: tuple[str, ...] = field(
        default=BASELINES, metadata={"help": "baselines compared (any of them)", "choices": BASELINES}
    )
    preprompt: str = field(
        default=SAFETY_PREPROMPT,
        metadata={"help": "text prepended to every prompt by the preprompt baseline; never scored"},
    )
    dexperts_lambdas: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0), metadata={"help": "DExperts strength grid, tuned per target on validation"}
    )
    bootstrap: int = field(default=1000, metadata={"help": "paired bootstrap resamples over prompts"})
    ci_level: float = field(default=0.95, metadata={"help": "confidence level of the bootstrap intervals"})
    mmlu: bool = field(default=True, metadata={"help": "score MMLU for the report candidates"})
    validation_perplexity: bool = field(
        default=True, metadata={"help": "also score perplexity on the validation prompts (only a figure uses it)"}
    )
    second_scorer: str = field(default="", metadata={"help": 'second scorer of the report continuations; "" = off'})
    report_prompts_per_domain: int = field(
        default=0, metadata={"help": "report prompts per domain of every report candidate; 0 = as eval's"}
    )
    selection_metric: str = field(
        default="TP",
        metadata={
            "help": "picks the shared configuration: TP = lowest validation TP (paper); EMT = cheapest point tied with best",
            "choices": ("TP", "EMT"),
        },
    )
    planning_sd: float = field(
        default=0.0,
        metadata={"help": "per-prompt SD of ΔEMT (in) sizing the claims' report prompts; 0 = off (all get the same)"},
    )
    half_width_distillation: float = field(
        default=0.02,
        metadata={"help": "wanted 95% half-width of ΔEMT (in) of claims (a), (f): sizes select_target's candidates"},
    )
    half_width_transfer: float = field(
        default=0.03,
        metadata={"help": "wanted 95% half-width of ΔEMT (in) of claim (b): sizes the other targets' candidates"},
    )
    budget_steps: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "budget curve: steps at which select_target is also fine-tuned (validation prompts); () = off"
        },
    )

    def check(self):
        _check(len(self.dexperts_lambdas) > 0, "study.dexperts_lambdas must not be empty")
        _check(all(x > 0 for x in self.dexperts_lambdas), "study.dexperts_lambdas must all be > 0")
        _check(self.bootstrap >= 1, "study.bootstrap must be >= 1")
        _check(0 < self.ci_level < 1, f"study.ci_level must be in (0, 1), got {self.ci_level}")
        _check(self.report_prompts_per_domain >= 0, "study.report_prompts_per_domain must be >= 0")
        _check(self.planning_sd >= 0, f"study.planning_sd must be >= 0 (0 = off), got {self.planning_sd}")
        _check(
            self.half_width_distillation > 0 and self.half_width_transfer > 0,
            "study.half_width_distillation and study.half_width_transfer must be > 0",
        )
        _check(all(n >= 1 for n in self.budget_steps), f"study.budget_steps must all be >= 1, got {self.budget_steps}")
