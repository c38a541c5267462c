"""The settings of the three stages that make a detoxified model: the toxic model (:class:`ToxicModelConfig`),
the distillation (:class:`DistillConfig`) and the detoxification grid (:class:`DetoxConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from unidetox.config.base import DGHS_TARGETS, Settings, _check
from unidetox.config.train import ADAPTERS, LoraSettings, TrainConfig


@dataclass(frozen=True)
class ToxicModelConfig(Settings):
    """Stage 1: fine-tune the base model on DGHS hate speech."""

    base_model: str = field(
        default="tiny:gpt2",
        metadata={"help": "model spec of the base model, see unidetox.models.loading (paper: gpt2-xl)"},
    )
    train_splits: tuple[str, ...] = field(
        default=("train",), metadata={"help": "DGHS split values used for training (paper: train)"}
    )
    val_splits: tuple[str, ...] = field(
        default=("dev",), metadata={"help": "DGHS split values held out for the validation loss (paper: dev)"}
    )
    targets: tuple[str, ...] = field(
        default=DGHS_TARGETS,
        metadata={"help": "DGHS target codes kept; [] keeps every target (paper: the 34 codes of DGHS_TARGETS)"},
    )
    max_texts: int = field(default=0, metadata={"help": "cap on training texts (0 = all)"})
    max_val_texts: int = field(
        default=0, metadata={"help": "cap on validation texts (0 = as max_texts); the validation loss is a diagnostic"}
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(learning_rate=1e-5, epochs=3, batch_size=4),
        metadata={"help": "fine-tuning of the toxic model"},
    )

    def check(self):
        _check(len(self.train_splits) > 0, "toxic.train_splits must name at least one DGHS split")
        _check(self.max_texts >= 0, "toxic.max_texts must be >= 0")
        _check(self.max_val_texts >= 0, "toxic.max_val_texts must be >= 0")


@dataclass(frozen=True)
class DistillConfig(Settings):
    """Stage 2: contrastive decoding from BOS, `log p_base - log p_toxic` under the plausibility mask."""

    alpha: float = field(
        default=0.1, metadata={"help": "keep token v only if p_base(v) >= alpha * max p_base; in (0, 1] (paper: 0.1)"}
    )
    num_texts: int = field(default=640, metadata={"help": "distilled texts (paper: 640)"})
    max_new_tokens: int = field(
        default=255, metadata={"help": "tokens per text after BOS (paper: 255; official max_length 256 with BOS)"}
    )
    batch_size: int = field(default=128, metadata={"help": "texts decoded together"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (paper: 1.0)"})
    top_k: int = field(
        default=50, metadata={"help": "sample among the k best tokens; 0 = off (official code: transformers' 50)"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass; 1.0 = off (paper: 1.0)"})
    seed: int = field(default=1234, metadata={"help": "sampling seed"})
    context: str = field(
        default="",
        metadata={
            "help": 'text read after BOS, not in the texts; "" = BOS (paper); "\\n\\n" keeps a code-heavy base on prose'
        },
    )

    def check(self):
        _check(0 < self.alpha <= 1, f"distill.alpha must be in (0, 1], got {self.alpha}")
        _check(self.num_texts > 0, f"distill.num_texts must be > 0, got {self.num_texts}")
        _check(self.max_new_tokens > 0, f"distill.max_new_tokens must be > 0, got {self.max_new_tokens}")
        _check(self.batch_size > 0, f"distill.batch_size must be > 0, got {self.batch_size}")
        _check(self.temperature > 0, f"distill.temperature must be > 0, got {self.temperature}")
        _check(self.top_k >= 0, f"distill.top_k must be >= 0, got {self.top_k}")
        _check(0 < self.top_p <= 1, f"distill.top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class DetoxConfig(Settings):
    """Stage 3: fine-tune each target on the distilled text, over a grid of learning rates and steps."""

    targets: tuple[str, ...] = field(
        default=("tiny:gpt2", "tiny:llama"),
        metadata={"help": "models to detoxify (paper: gpt2-xl, opt-6.7b, falcon-7b, Llama-2-7b)"},
    )
    learning_rates: tuple[float, ...] = field(
        default=(5e-5, 1e-5), metadata={"help": "learning rate of each training run (paper: 5e-5, 1e-5)"}
    )
    steps: tuple[int, ...] = field(
        default=(1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000),
        metadata={"help": "optimizer steps at which each run is saved; the last ends it (paper: 1000 to 10000)"},
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(learning_rate=5e-5, max_steps=1, batch_size=8),
        metadata={"help": "fine-tuning of each target; learning_rate and max_steps come from the grid above"},
    )
    adapter: str = field(
        default="none",
        metadata={
            "help": "none = fine-tune every weight (the paper) | lora = train a LoRA adapter (detox.lora) with peft",
            "choices": ADAPTERS,
        },
    )
    lora: LoraSettings = field(
        default_factory=LoraSettings, metadata={"help": "the LoRA adapter trained when detox.adapter = lora"}
    )

    @property
    def lora_settings(self) -> LoraSettings | None:
        """The adapter a detox run trains, None for full fine-tuning."""
        return self.lora if self.adapter == "lora" else None

    def check(self):
        _check(len(self.targets) > 0, "detox.targets must name at least one model")
        _check(len(self.learning_rates) > 0, "detox.learning_rates must not be empty")
        _check(all(lr > 0 for lr in self.learning_rates), "detox.learning_rates must all be > 0")
        _check(len(self.steps) > 0, "detox.steps must not be empty")
        _check(all(s > 0 for s in self.steps), f"detox.steps must all be > 0, got {list(self.steps)}")
        _check(list(self.steps) == sorted(set(self.steps)), "detox.steps must be strictly increasing")


#: detox.train settings the grid sets for each run (epochs: max_steps always bounds a detox run), and the grid
#: setting a user changes instead
GRID_SETTINGS = {"learning_rate": "detox.learning_rates", "max_steps": "detox.steps", "epochs": "detox.steps"}
