"""How closely models (e.g. one model's weights in different dtypes) agree on the likelihood of fixed texts.

Each text is split in two at its middle word: the first half is the prompt, the second half (with its leading
space) the continuation, scored by :func:`unidetox.measure.likelihood.continuation_logprobs_shared` (the
evaluator's perplexity path). Agreement is the relative difference of the mean NLL per token against a reference
model's, per text and over all texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from unidetox.measure.likelihood import continuation_logprobs_shared


class Agreement(NamedTuple):
    """Relative difference of the mean NLL per token against the reference: median and max over the texts, and of
    the mean over all texts (``|mean / mean_ref - 1|``). Unitless (0.01 = 1%)."""

    median: float
    max: float
    corpus: float


def split_halves(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """(prompts, continuations): each text's first ``n_words // 2`` words, and the rest with a leading space."""
    prompts, conts = [], []
    for t in texts:
        words = t.split()
        prompts.append(" ".join(words[: len(words) // 2]))
        conts.append(" " + " ".join(words[len(words) // 2 :]))
    return prompts, conts


def text_nll(lm, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """``(len(texts),)`` mean negative log-likelihood per token, in nats, of each text's second half given its
    first (:func:`split_halves`) under `lm` (a loaded model with ``.model`` and ``.tokenizer``)."""
    prompts, conts = split_halves(texts)
    scored = continuation_logprobs_shared(lm.model, lm.tokenizer, prompts, conts, batch_size=batch_size)
    return np.array([-s / n for s, n in scored], dtype=np.float64)


def relative_difference(nll: np.ndarray, ref: np.ndarray) -> Agreement:
    """:class:`Agreement` of the per-text NLLs `nll` with the reference's `ref` (both ``(n_texts,)``, positive)."""
    rel = np.abs(nll - ref) / ref
    return Agreement(float(np.median(rel)), float(rel.max()), float(abs(nll.mean() / ref.mean() - 1)))


def nll_agreement(lms: Mapping[str, object], texts: Sequence[str], reference: str = "fp32",
                  batch_size: int = 16) -> dict[str, Agreement]:  # fmt: skip
    """{name: :class:`Agreement` with ``lms[reference]``} for every model of `lms` (the reference's own: zeros)."""
    nll = {name: text_nll(lm, texts, batch_size) for name, lm in lms.items()}
    return {name: relative_difference(v, nll[reference]) for name, v in nll.items()}
