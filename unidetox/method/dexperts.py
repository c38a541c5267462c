r"""DExperts (Liu et al., 2021): decoding-time steering with an expert and an anti-expert.

At each step the target's next-token scores are shifted towards a non-toxic expert and away from a
toxic anti-expert,

.. math:: z(v) = z_{\text{target}}(v) + \lambda \, (z_{\text{expert}}(v) - z_{\text{anti}}(v)),

and the next token is sampled from ``softmax(z)`` after the usual top-k / top-p filtering. We combine
log-probabilities rather than raw logits: ``log_softmax`` differs from the logits by one constant per
row, which ``softmax`` ignores, so the sampled distribution is the same.

The three models must share one vocabulary (token ``i`` must mean the same string for all of them):
DExperts applies only to targets whose tokenizer matches the experts'. That is the limit UniDetox
removes, and the comparison tables show it as "n/a" instead of hiding it.
"""

from __future__ import annotations

import torch

from unidetox.errors import UnidetoxError
from unidetox.method.sampling import CausalLMSource
from unidetox.models.loading import LoadedModel, same_tokenizer


class DExpertsError(UnidetoxError, ValueError):
    """DExperts cannot be applied as asked (e.g. the target's vocabulary differs from the experts')."""


def dexperts_scores(target: torch.Tensor, expert: torch.Tensor, anti: torch.Tensor, strength: float) -> torch.Tensor:
    """``(B, V)`` ensembled scores ``target + strength * (expert - anti)``.

    Inputs are ``(B, V_i)`` log-probabilities (or logits); models whose output layers are padded past
    the tokenizer's vocabulary are cut to the smallest ``V_i`` (padding ids are never real tokens).
    """
    if strength < 0:
        raise DExpertsError(f"DExperts strength (lambda) must be >= 0, got {strength}")
    v = min(target.shape[-1], expert.shape[-1], anti.shape[-1])
    return target[..., :v] + strength * (expert[..., :v].to(target.device) - anti[..., :v].to(target.device))


def applicable(target: LoadedModel, expert: LoadedModel) -> bool:
    """True when `target` shares the experts' tokenizer (DExperts needs token-level agreement)."""
    return same_tokenizer(target.tokenizer, expert.tokenizer)


def check_models(target: LoadedModel, expert: LoadedModel, anti: LoadedModel) -> None:
    """Refuse a target/expert/anti-expert triple whose vocabularies differ."""
    for name, lm in (("expert", expert), ("anti-expert", anti)):
        if not same_tokenizer(target.tokenizer, lm.tokenizer):
            raise DExpertsError(
                f"DExperts needs one vocabulary, but target {target.spec!r} and {name} {lm.spec!r} have different "
                "tokenizers; it applies only to targets of the experts' family (use UniDetox, which transfers as text)."
            )


class DExpertsSource:
    """Score source of the DExperts ensemble; each of the three models keeps its own KV cache."""

    def __init__(self, target: torch.nn.Module, expert: torch.nn.Module, anti: torch.nn.Module, strength: float):
        if strength < 0:
            raise DExpertsError(f"DExperts strength (lambda) must be >= 0, got {strength}")
        self.sources = [CausalLMSource(m) for m in (target, expert, anti)]
        self.strength = strength

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        t, e, a = (s.start(input_ids, attention_mask, repeats) for s in self.sources)
        return dexperts_scores(t, e, a, self.strength)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        t, e, a = (s.step(tokens) for s in self.sources)
        return dexperts_scores(t, e, a, self.strength)
