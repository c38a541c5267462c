"""unidetox.measure.nll_agreement: the split of fixed texts, their mean NLL per token against a direct computation,
and the relative differences against hand-computed ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unidetox.measure.nll_agreement import Agreement, nll_agreement, relative_difference, split_halves, text_nll
from unidetox.models.loading import load_model

TEXTS = ["the cat sat on the mat today", "a b", "one two three", "people from everywhere are welcome here"]


def test_split_halves_puts_the_middle_word_in_the_continuation():
    prompts, conts = split_halves(["a b c d e", "x y", "solo"])
    assert prompts == ["a b", "x", ""] and conts == [" c d e", " y", " solo"]


def _direct_nll(lm, prompt: str, cont: str) -> float:
    """Mean NLL per token of `cont` after `prompt`, from one full forward pass (GPT-2 tokenisation: the prompt's
    tokens are a prefix of the joint ones for these texts; an empty prompt is preceded by the start token)."""
    tok = lm.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids or [tok.eos_token_id]
    ids = tok(prompt + cont, add_special_tokens=False).input_ids
    ids = ids if prompt else [tok.eos_token_id, *ids]
    assert ids[: len(p_ids)] == p_ids
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0].double(), -1)
    n = len(ids) - len(p_ids)
    return -float(sum(logp[i - 1, ids[i]] for i in range(len(p_ids), len(ids)))) / n


@pytest.mark.numerics
def test_text_nll_matches_a_direct_forward_pass():
    lm = load_model("tiny:gpt2")
    got = text_nll(lm, TEXTS, batch_size=2)
    prompts, conts = split_halves(TEXTS)
    ref = [_direct_nll(lm, p, c) for p, c in zip(prompts, conts)]
    assert got.shape == (len(TEXTS),) and np.all(got > 0)
    # batched vs one forward per text: a mean of token NLLs (~10.8 each) each ~1e-6 apart: ~1e-7 relative; rtol 1e-5
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_relative_difference_by_hand():
    ref = np.array([2.0, 4.0, 1.0])
    nll = np.array([2.2, 4.0, 0.95])  # 10%, 0%, 5% per text; means 7.15 / 7 - 1
    got = relative_difference(nll, ref)
    assert got == pytest.approx(Agreement(0.05, 0.1, 0.15 / 7))


def test_nll_agreement_of_a_model_with_itself_is_zero_and_bf16_is_not():
    fp32 = load_model("tiny:llama", dtype=torch.float32)
    out = nll_agreement({"fp32": fp32, "same": fp32, "bf16": load_model("tiny:llama", dtype=torch.bfloat16)}, TEXTS)
    assert out["fp32"] == out["same"] == Agreement(0.0, 0.0, 0.0)
    assert 0 < out["bf16"].max < 0.1 and out["bf16"].median <= out["bf16"].max
