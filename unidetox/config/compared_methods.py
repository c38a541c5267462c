"""The methods the study compares, by name: the one list that the study, the tables and the notebooks read.

A method is what is done to a target model before it is evaluated. ``none`` is the untouched target; the
study also evaluates the toxic model itself (method ``toxic``) as a diagnostic, which is not a method of the
comparison and has no entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    """One row family of the main table."""

    label: str = field(metadata={"help": "the method's name in tables and plots"})
    finetunes: bool = field(default=False, metadata={"help": "fine-tunes the target on a text set (shared lr/steps)"})
    baseline: bool = field(default=False, metadata={"help": "a baseline that study.baselines can switch off"})
    main_selection: str = field(
        default="",
        metadata={"help": "which report row stands for the method in the main table: the shared 'transferred' "
                  "configuration, each target's own validation-tuned 'oracle', or '' (no configuration)"},
    )  # fmt: skip


METHODS: dict[str, Method] = {
    "none": Method("No detoxification"),
    "preprompt": Method("Safety pre-prompt", baseline=True),
    "unidetox": Method("UniDetox", finetunes=True, main_selection="transferred"),
    # the authors' released distilled text (GPT-2 XL, all 640 texts), fine-tuned like ours: the paper's step 3
    "released": Method("Released text (GPT-2 XL)", finetunes=True, baseline=True, main_selection="transferred"),
    "base-samples": Method("Base-model samples (w/o contrast)", finetunes=True, baseline=True,
                           main_selection="transferred"),
    "nothate": Method("Fine-tuning on DGHS nothate", finetunes=True, baseline=True, main_selection="transferred"),
    # DExperts' strength is tuned per target on validation prompts, as the paper had to tune it per model
    "dexperts": Method("DExperts", baseline=True, main_selection="oracle"),
}  # fmt: skip

#: the baselines, in table order (any subset may be chosen with ``study.baselines``)
BASELINES = tuple(name for name, m in METHODS.items() if m.baseline)
#: the methods that fine-tune the target on a text set, all with the shared configuration
FINETUNED = tuple(name for name, m in METHODS.items() if m.finetunes)
#: the baselines that fine-tune the target on their text set with the shared (transferred) configuration
FINETUNED_BASELINES = tuple(name for name in FINETUNED if METHODS[name].baseline)

__all__ = ["BASELINES", "FINETUNED", "FINETUNED_BASELINES", "METHODS", "Method"]
