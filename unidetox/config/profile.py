"""Everything one run of the pipeline needs: :class:`Profile`, one field per stage's configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unidetox.config.base import Settings, _check
from unidetox.config.data import DataConfig
from unidetox.config.evaluation import EvalConfig
from unidetox.config.scale import ScaleConfig
from unidetox.config.stages import DetoxConfig, DistillConfig, ToxicModelConfig
from unidetox.config.study import StudyConfig
from unidetox.config.validity import ValidityConfig


@dataclass(frozen=True)
class Profile(Settings):
    """Everything one run of the pipeline needs."""

    name: str = field(
        default="tiny",
        metadata={
            "help": "the run store's folder under runs_dir: the profile asked for (tiny, cpu, paper, a file's stem)"
        },
    )
    runs_dir: str = field(default="runs", metadata={"help": "outputs go to <runs_dir>/<name>/<stage>/<key>/"})
    device: str = field(
        default="auto",
        metadata={
            "help": "where models run; auto: cuda when a GPU is visible, else cpu",
            "choices": ("auto", "cpu", "cuda"),
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "let Hub models run their own code (off: safer)"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "where the data sets come from"})
    toxic: ToxicModelConfig = field(default_factory=ToxicModelConfig, metadata={"help": "stage 1: the toxic model"})
    distill: DistillConfig = field(
        default_factory=DistillConfig, metadata={"help": "stage 2: contrastive decoding of the distilled text"}
    )
    detox: DetoxConfig = field(
        default_factory=DetoxConfig, metadata={"help": "stage 3: fine-tune each target on the distilled text"}
    )
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "stage 4: toxicity, perplexity, MMLU"})
    study: StudyConfig = field(
        default_factory=StudyConfig, metadata={"help": "the comparison with the baselines and its statistics"}
    )
    validity: ValidityConfig = field(
        default_factory=ValidityConfig,
        metadata={"help": "the scorers' validity on data the study does not prompt with (a book page)"},
    )
    scale: ScaleConfig = field(
        default_factory=ScaleConfig, metadata={"help": "how training uses the hardware (in no stage key)"}
    )

    def check(self):
        _check(
            bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name)) and ".." not in self.name,
            f"profile name {self.name!r} must be letters, digits, '.', '_' or '-' (no '/' or '..'): it names the "
            "run store's folder under runs_dir",
        )
        _check(bool(self.runs_dir.strip()), "runs_dir must not be empty; give a folder, e.g. --set runs_dir=runs")
