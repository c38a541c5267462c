"""The scorers' validity, measured on data the study does not prompt with: :class:`ValidityConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from unidetox.config.base import Settings, _check


@dataclass(frozen=True)
class ValidityConfig(Settings):
    """Scorer validity (the book's "Scorer validity" page): each scorer's ROC AUC against human labels (held-out
    ToxiGen rows, DGHS test) and its false-positive rate at ``eval.threshold`` on benign text (WikiText-2
    sentences, the released distilled text, the untouched targets' continuations of WikiText-2 openings).

    The scorers validated are ``eval.scorer``, ``study.second_scorer`` and `scorers`. Continuations use the
    evaluation's sampler settings (``eval.temperature``, ``top_p``, ``top_k``, ``max_new_tokens``, ``batch_size``),
    one per opening, seed ``eval.seeds[0]``.
    """

    enabled: bool = field(default=True, metadata={"help": "run the scorer-validity stage with the book's pipeline"})
    scorers: tuple[str, ...] = field(
        default=(), metadata={"help": "candidate scorers validated beside eval.scorer and study.second_scorer"}
    )
    max_texts: int = field(
        default=0,
        metadata={"help": "texts scored per data set (held-out ToxiGen, DGHS test, WikiText, released); 0 = all"},
    )
    openings: int = field(
        default=300,
        metadata={"help": "WikiText-2 test paragraph openings each untouched target continues once; 0 = none"},
    )

    def check(self):
        _check(self.max_texts >= 0, f"validity.max_texts must be >= 0, got {self.max_texts}")
        _check(self.openings >= 0, f"validity.openings must be >= 0, got {self.openings}")
        _check(
            len(set(self.scorers)) == len(self.scorers),
            f"validity.scorers must not repeat a scorer, got {list(self.scorers)}",
        )
