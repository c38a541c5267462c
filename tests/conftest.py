"""Shared fixtures: tiny models (built once per session) and a perturbed 'toxic' copy."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from unidetox.models.loading import LoadedModel, load_model

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("UNIDETOX_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def perturbed(lm: LoadedModel, seed: int = 1, scale: float = 0.5) -> LoadedModel:
    """A copy of `lm` with Gaussian noise added to every weight: a stand-in 'toxic' model."""
    model = copy.deepcopy(lm.model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1.0))
    return LoadedModel(spec=lm.spec + "+noise", model=model, tokenizer=lm.tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2() -> LoadedModel:
    return load_model("tiny:gpt2")


@pytest.fixture(scope="session")
def tiny_llama() -> LoadedModel:
    return load_model("tiny:llama")


@pytest.fixture(scope="session")
def tiny_toxic(tiny_gpt2) -> LoadedModel:
    return perturbed(tiny_gpt2)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one thread; several threads stall on a busy shared CPU (25x seen here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
