"""DExperts: the ensembled scores against hand computations and a cache-free full-forward reference."""

from __future__ import annotations

import pytest
import torch
from conftest import perturbed

from unidetox.method.dexperts import DExpertsError, DExpertsSource, check_models, dexperts_scores
from unidetox.method.generate import GenerationSettings, generate_unit
from unidetox.method.sampling import make_generator


def test_scores_by_hand():
    t = torch.tensor([[0.0, 1.0, 2.0]])
    e = torch.tensor([[1.0, 0.0, 0.0]])
    a = torch.tensor([[0.0, 0.0, 3.0]])
    # target + 2 * (expert - anti) = [0+2, 1+0, 2-6]
    assert dexperts_scores(t, e, a, 2.0).tolist() == [[2.0, 1.0, -4.0]]
    assert torch.equal(dexperts_scores(t, e, a, 0.0), t)


def test_padded_vocabularies_are_cut_to_the_smallest():
    t, e, a = torch.zeros(2, 5), torch.ones(2, 4), torch.zeros(2, 6)
    out = dexperts_scores(t, e, a, 1.5)
    assert out.shape == (2, 4) and torch.all(out == 1.5)


def test_negative_strength_refused():
    with pytest.raises(DExpertsError, match="lambda"):
        dexperts_scores(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), -1.0)


def _reference_scores(target, expert, anti, prefix, strength):
    """Cache-free scores ``(V,)`` from raw logits of full forward passes over `prefix`."""
    ids = torch.tensor([prefix])
    with torch.no_grad():
        z = [m(ids).logits[0, -1].float() for m in (target, expert, anti)]
    return z[0] + strength * (z[1] - z[2])


@pytest.mark.numerics
def test_source_matches_full_forward_reference(tiny_gpt2, tiny_toxic, one_torch_thread):
    """Step by step, the cached source's distribution equals softmax of the reference's raw-logit ensemble."""
    expert = perturbed(tiny_gpt2, seed=7, scale=0.3)
    lam = 1.5
    prefix = tiny_gpt2.tokenizer("The people next door").input_ids
    src = DExpertsSource(tiny_gpt2.model, expert.model, tiny_toxic.model, lam)
    ids = torch.tensor([prefix])
    scores = src.start(ids, torch.ones_like(ids))
    seq = list(prefix)
    for tok in [11, 262, 318]:
        ref = _reference_scores(tiny_gpt2.model, expert.model, tiny_toxic.model, seq, lam)
        # cached vs full forwards of three models, combined as z + lam (z_e - z_a): each logit ~U |z| apart, the
        # combination (1 + 2 lam) times that, a log-softmax a few 1e-6 at most; atol 1e-4 leaves > 10x
        torch.testing.assert_close(torch.log_softmax(scores[0], -1), torch.log_softmax(ref, -1), atol=1e-4, rtol=0)
        seq.append(tok)
        scores = src.step(torch.tensor([tok]))


def test_zero_strength_generates_like_the_target(tiny_gpt2, tiny_toxic, one_torch_thread):
    """lambda = 0 must sample exactly what the plain target samples with the same generator."""
    settings = GenerationSettings(samples_per_prompt=3, max_new_tokens=6, batch_size=6)
    prompts = ["Women are", "My neighbours"]
    plain = generate_unit(tiny_gpt2.model, tiny_gpt2.tokenizer, prompts, settings, make_generator("cpu", 1, 2))
    dex = generate_unit(tiny_gpt2.model, tiny_gpt2.tokenizer, prompts, settings, make_generator("cpu", 1, 2),
                        lambda: DExpertsSource(tiny_gpt2.model, tiny_toxic.model, tiny_toxic.model, 0.0))  # fmt: skip
    assert plain == dex


def test_vocabulary_mismatch_refused(tiny_gpt2, tiny_llama, tiny_toxic):
    check_models(tiny_gpt2, tiny_toxic, tiny_toxic)
    with pytest.raises(DExpertsError, match="different tokenizers"):
        check_models(tiny_llama, tiny_gpt2, tiny_toxic)
