"""Batched, padded continuation log-likelihoods against a naive unpadded forward pass per example."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from unidetox.likelihood import (
    LikelihoodError,
    adds_bos,
    conditional_perplexity,
    continuation_logprobs,
    encode_pairs,
)
from unidetox.models import load_model as _load_model

# each tiny model is built once per module (tiny:gpt2 takes a moment on a busy CPU); tests do not modify them
load_model = functools.cache(_load_model)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PROMPTS = [
    "The cat sat on the",
    "A much longer prompt, with punctuation and several words, about the weather in Paris",
    "",
    "x",
    "Why do people say",
    "The cat sat on the",
]
CONTS = [" mat.", " is mild", "Start of text", "", " that they are right about everything", " sofa"]

# the BOS each tokenizer adds, stated independently of the code under test
BOS = {"tiny:gpt2": [], "tiny:llama": [1]}


@pytest.fixture(scope="module", params=["tiny:gpt2", "tiny:llama"])
def lm(request):
    return load_model(request.param)


def _split(tok, prompt: str, cont: str) -> tuple[list[int], list[int]]:
    """Prompt and continuation tokens: the joint tokenisation's tail, or the continuation alone on a straddle."""
    p = tok.encode(prompt, add_special_tokens=False)
    joint = tok.encode(prompt + cont, add_special_tokens=False)
    return p, (joint[len(p) :] if joint[: len(p)] == p else tok.encode(cont, add_special_tokens=False))


def _naive(lm, prompt: str, cont: str) -> tuple[float, int]:
    """One unpadded forward pass over [BOS] + prompt tokens + continuation tokens; sum of the latter's log-probs."""
    tok = lm.tokenizer
    p, c = _split(tok, prompt, cont)
    p = BOS[lm.spec] + p
    if not p:
        p = [tok.eos_token_id]  # GPT-2's start token
    if not c:
        return 0.0, 0
    with torch.no_grad():
        logits = lm.model(torch.tensor([p + c])).logits[0]
    # logits at position t predict token t + 1
    logp = torch.log_softmax(logits[len(p) - 1 : -1].double(), dim=-1)
    return float(logp[torch.arange(len(c)), torch.tensor(c)].sum()), len(c)


def test_adds_bos_per_tokenizer(lm):
    assert adds_bos(lm.tokenizer) == bool(BOS[lm.spec])


def test_batched_equals_naive_unpadded(lm):
    got = continuation_logprobs(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=4)
    for (lp, n), prompt, cont in zip(got, PROMPTS, CONTS):
        ref_lp, ref_n = _naive(lm, prompt, cont)
        assert n == ref_n
        assert lp == pytest.approx(ref_lp, abs=1e-4)
    assert got[3] == (0.0, 0)  # empty continuation


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
def test_invariant_to_batch_size_and_padding_side(lm, batch_size, padding_side):
    ref = continuation_logprobs(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=1, padding_side="right")
    got = continuation_logprobs(
        lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=batch_size, padding_side=padding_side
    )
    assert [n for _, n in got] == [n for _, n in ref]
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in ref], atol=1e-4, rtol=0)


def test_works_without_logits_to_keep_and_position_ids(lm):
    """A model whose forward takes only input_ids and attention_mask gives the same numbers."""

    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    # right padding keeps positions 0..n-1 for every row, so the model needs no position ids
    got = continuation_logprobs(Plain(lm.model), lm.tokenizer, PROMPTS, CONTS, batch_size=3, padding_side="right")
    ref = continuation_logprobs(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=1)
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in ref], atol=1e-4, rtol=0)


def test_boundary_rule_joint_tail_gpt2():
    tok = load_model("tiny:gpt2").tokenizer
    [(ids, n_prompt)] = encode_pairs(tok, ["The cat sat on the"], [" mat, again"])
    assert ids == tok.encode("The cat sat on the mat, again")
    assert ids[n_prompt:] == tok.encode(" mat, again") and n_prompt == len(tok.encode("The cat sat on the"))


def test_boundary_rule_straddling_token_gpt2():
    """Where a token would straddle the boundary, the prompt keeps its tokens and the continuation is its own."""
    lm = load_model("tiny:gpt2")
    tok = lm.tokenizer
    prompt, cont = "The cat sat on the ma", "t"
    joint = tok.encode(prompt + cont)
    separate = tok.encode(prompt) + tok.encode(cont)
    assert joint != separate  # " mat" is one BPE token, " ma" + "t" are two
    [(ids, n_prompt)] = encode_pairs(tok, [prompt], [cont])
    assert ids == separate and n_prompt == len(tok.encode(prompt))
    [(lp, n)] = continuation_logprobs(lm.model, tok, [prompt], [cont])
    assert n == 1
    assert lp == pytest.approx(_naive(lm, prompt, cont)[0], abs=1e-4)


def _dummy_prefix_tokenizer():
    """A Llama-2-style SentencePiece tokenizer: '▁' is prepended to every text and spaces become '▁'."""
    from tokenizers import Tokenizer, models, normalizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>", "▁", "▁the", "▁cat", "▁mat", "▁ma"] + list("abcdefghijklmnopqrstuvwxyz")
    scores = [0.0, 0.0, 0.0, -3.0, -1.0, -1.0, -1.0, -2.0] + [-5.0] * 26
    core = Tokenizer(models.Unigram(list(zip(pieces, scores)), unk_id=0))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_boundary_rule_dummy_prefix_tokenizer():
    tok = _dummy_prefix_tokenizer()
    piece = tok.convert_tokens_to_ids
    # alone, " mat" gets a spurious dummy-prefix piece; after the prompt it is one token
    assert tok.encode(" mat", add_special_tokens=False) == [piece("▁"), piece("▁mat")]
    [(ids, n_prompt)] = encode_pairs(tok, ["the cat"], [" mat"])
    assert ids == [piece("▁the"), piece("▁cat"), piece("▁mat")] and n_prompt == 2


def test_bos_once_and_empty_prompt_start_token():
    llama = load_model("tiny:llama").tokenizer
    [(ids, n_prompt)] = encode_pairs(llama, ["ab"], ["c"])
    assert ids == [llama.bos_token_id] + llama.encode("ab", add_special_tokens=False) + llama.encode(
        "c", add_special_tokens=False
    )
    assert n_prompt == 3
    [(ids, n_prompt)] = encode_pairs(llama, [""], ["c"])
    assert ids[:1] == [llama.bos_token_id] and n_prompt == 1
    gpt2 = load_model("tiny:gpt2").tokenizer
    [(ids, n_prompt)] = encode_pairs(gpt2, [""], [" hi"])
    assert ids == [gpt2.eos_token_id] + gpt2.encode(" hi") and n_prompt == 1


def test_long_prompts_are_left_truncated_keeping_bos():
    tok = load_model("tiny:llama").tokenizer
    [(ids, n_prompt)] = encode_pairs(tok, ["abcdefghij"], ["XYZ"], max_length=8)
    assert ids == [tok.bos_token_id] + tok.encode("ghijXYZ", add_special_tokens=False)
    assert n_prompt == 5
    with pytest.raises(LikelihoodError, match="does not fit"):
        encode_pairs(tok, ["a"], ["0123456789"], max_length=8)


def test_truncation_matches_scoring_the_kept_prompt():
    lm = load_model("tiny:gpt2")  # context 512 tokens
    long_prompt = " word" * 600
    [(lp, n)] = continuation_logprobs(lm.model, lm.tokenizer, [long_prompt], [" end"])
    kept = " word" * (512 - n)
    assert lp == pytest.approx(_naive(lm, kept, " end")[0], abs=1e-4)


def test_conditional_perplexity(lm):
    ppl = conditional_perplexity(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=4)
    assert ppl.shape == (len(PROMPTS),)
    for value, prompt, cont in zip(ppl, PROMPTS, CONTS):
        lp, n = _naive(lm, prompt, cont)
        if n == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(math.exp(-lp / n), rel=1e-4)


def test_bad_input_messages():
    lm = load_model("tiny:gpt2")
    with pytest.raises(LikelihoodError, match="continuations"):
        continuation_logprobs(lm.model, lm.tokenizer, ["a", "b"], ["c"])
    with pytest.raises(LikelihoodError, match="list"):
        continuation_logprobs(lm.model, lm.tokenizer, "a", "b")
    with pytest.raises(LikelihoodError, match="padding_side"):
        continuation_logprobs(lm.model, lm.tokenizer, ["a"], ["b"], padding_side="middle")
    assert continuation_logprobs(lm.model, lm.tokenizer, [], []) == []


def test_nan_from_left_padding_falls_back_to_right_padding(lm):
    """A model that breaks on left-padded rows (as some attention kernels can) still gives the right numbers."""

    class NanOnLeftPad(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids=None):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
            if (attention_mask[:, 0] == 0).any():
                out.logits = torch.full_like(out.logits, float("nan"))
            return out

    got = continuation_logprobs(NanOnLeftPad(lm.model), lm.tokenizer, PROMPTS, CONTS, batch_size=6)
    ref = continuation_logprobs(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=1)
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in ref], atol=1e-4, rtol=0)


def test_nan_everywhere_raises(lm):
    class AllNan(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            out.logits = torch.full_like(out.logits, float("nan"))
            return out

    with pytest.raises(LikelihoodError, match="NaN"):
        continuation_logprobs(AllNan(lm.model), lm.tokenizer, ["a"], [" b"])
