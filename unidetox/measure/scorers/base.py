"""The scorer interface shared by every toxicity scorer, its error class and the argument checks they all use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from unidetox.errors import UnidetoxError


class ScorerError(UnidetoxError, RuntimeError):
    """A scorer that cannot be built or used; the message says what is wrong and how to fix it."""


@runtime_checkable
class ToxicityScorer(Protocol):
    """Scores texts with the probability that they are toxic."""

    name: str  # e.g. "toxblock", "hf:unitary/toxic-bert"
    version: str  # package/model version or content hash, recorded with every result

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """float64 probabilities in [0, 1], shape (len(texts),)."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """`texts` as a list, after checking it is a sequence of strings (not one string)."""
    if isinstance(texts, (str, bytes)):
        raise ScorerError("score() takes a sequence of strings, got a single string; wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ScorerError(f"score() takes strings only; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def scorer_device(device: str) -> torch.device:
    """The torch device for 'cpu', 'cuda[:i]' or 'auto' (CUDA when visible); a clear error for an unusable one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScorerError(f"device {device!r} was asked for but no CUDA GPU is visible; use device='cpu'")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ScorerError(f"invalid device {device!r}: {e}") from None


def check_batch_size(batch_size: int) -> int:
    """`batch_size` (texts per forward pass) if it is a positive int."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ScorerError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


__all__ = ["ScorerError", "ToxicityScorer", "check_batch_size", "check_texts", "scorer_device"]
