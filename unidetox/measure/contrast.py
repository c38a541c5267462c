"""How strongly the contrastive score rewards given texts: per-token ``log p_base - log p_toxic`` in nats.

A diagnostic of the distillation pair (:mod:`unidetox.method.distill`), used to explain which kinds of text a base
model's contrast with its toxic twin favours (``benchmarks/distill_variants.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from unidetox.measure.likelihood import continuation_logprobs
from unidetox.method.distill import check_pair
from unidetox.models.loading import LoadedModel


def contrast_per_token(
    base: LoadedModel, toxic: LoadedModel, texts: Sequence[str], batch_size: int = 8
) -> list[tuple[float, int]]:
    """Per text: (mean over its tokens of ``log p_base(token) - log p_toxic(token)`` in nats, number of tokens).

    Each text is scored from the start token as a whole continuation (teacher forcing, no plausibility mask):
    how much more likely the base model finds the text than the toxic model does, i.e. what the contrastive score
    rewards. A text without tokens gives ``(nan, 0)``.
    """
    check_pair(base, toxic)
    texts = list(texts)
    empty = [""] * len(texts)
    b = continuation_logprobs(base.model, base.tokenizer, empty, texts, batch_size=batch_size)
    t = continuation_logprobs(toxic.model, toxic.tokenizer, empty, texts, batch_size=batch_size)
    return [((sb - st) / n if n else math.nan, n) for (sb, n), (st, _) in zip(b, t, strict=True)]


__all__ = ["contrast_per_token"]
