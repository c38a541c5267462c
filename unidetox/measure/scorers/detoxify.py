"""``detoxify.Detoxify(<variant>)`` as a scorer (its weights are downloaded from GitHub on first use)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import Any

import numpy as np

from unidetox.measure.scorers.base import ScorerError, check_batch_size, check_texts, scorer_device


class DetoxifyScorer:
    """``detoxify.Detoxify(<variant>)``; the score is its "toxicity" output."""

    def __init__(self, model: Any, *, variant: str, version: str, batch_size: int = 64):
        self.model = model
        self.name = "detoxify" if variant == "original" else f"detoxify:{variant}"
        self.version = version
        self.batch_size = check_batch_size(batch_size)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            pred = self.model.predict(batch)
            if "toxicity" not in pred:
                raise ScorerError(f"Detoxify returned no 'toxicity' output (keys: {sorted(pred)})")
            out[start : start + len(batch)] = np.asarray(pred["toxicity"], dtype=np.float64).reshape(-1)
        return out


def load_detoxify(variant: str = "original", *, device: str = "cpu", batch_size: int = 64) -> DetoxifyScorer:
    """``Detoxify(variant)`` on `device`; a clear :class:`ScorerError` when the package or its weights are missing."""
    dev = scorer_device(device)
    try:
        import detoxify
    except ImportError as e:
        raise ScorerError(
            "the 'detoxify' scorer needs the Detoxify package: pip install detoxify (its weights are downloaded from "
            "GitHub on first use, so they need network once). Offline, use 'toxblock' or 'hf:<local dir>'. "
            f"({type(e).__name__}: {e})"
        ) from None
    try:
        model = detoxify.Detoxify(variant, device=str(dev))
    except Exception as e:  # noqa: BLE001 - any failure here means the weights are not usable
        raise ScorerError(
            f"Detoxify({variant!r}) could not load its weights ({type(e).__name__}: {e}); they are downloaded "
            "from GitHub on first use and need network (then cached by torch.hub). Offline, use 'toxblock' or "
            "'hf:<local dir>'."
        ) from None
    try:
        ver = importlib.metadata.version("detoxify")
    except importlib.metadata.PackageNotFoundError:
        ver = getattr(detoxify, "__version__", "unknown")
    return DetoxifyScorer(model, variant=variant, version=f"detoxify=={ver}:{variant}", batch_size=batch_size)


__all__ = ["DetoxifyScorer", "load_detoxify"]
