"""Batched, padded continuation log-likelihoods against a naive unpadded forward pass per example."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from unidetox.measure.likelihood import (
    LikelihoodError,
    adds_bos,
    conditional_perplexity,
    continuation_logprobs,
    continuation_logprobs_shared,
    encode_pairs,
)
from unidetox.measure.shared_prefill import pack_groups
from unidetox.models.loading import load_model as _load_model

# each tiny model is built once per module (tiny:gpt2 takes a moment on a busy CPU); tests do not modify them
load_model = functools.cache(_load_model)


#: Every test here compares log-likelihoods of the same pairs computed with other padding, batching or caching, i.e.
#: float32 reductions in other orders. A token's log p = z - logsumexp(z) moves by ~U (ln V + max |z|) when its
#: forward pass reduces otherwise (~1e-6: ln V is 10.8 for GPT-2's vocabulary, 5.6 for the byte tokenizers); a sum
#: over <= ~40 continuation tokens (the longest text below, in bytes) by <= ~4e-5 even if every error had the same
#: sign. Hence atol 1e-4 on summed log-probs, rtol 1e-4 on perplexities (exp of a mean of such values).
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.numerics]


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

    # right padding keeps positions 0..n-1 for every row, so the model needs no position ids; asked for left
    # padding, such a model is right padded anyway (left padding would shift GPT-2's absolute positions)
    ref = continuation_logprobs(lm.model, lm.tokenizer, PROMPTS, CONTS, batch_size=1)
    for side in ("right", "left"):
        got = continuation_logprobs(Plain(lm.model), lm.tokenizer, PROMPTS, CONTS, batch_size=3, padding_side=side)
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


# ----------------------------------------------------------------------------- shared-prefix path

# several prompts of different lengths, 1-4 continuations each, interleaved; an empty continuation, an empty
# prompt, a straddling token for GPT-2 (" ma" + "t" -> " mat"), and a prompt repeated far apart
SHARED_PAIRS = [
    ("The cat sat on the", " mat."),
    ("Why do people say", " that they are right about everything"),
    ("The cat sat on the", " sofa, again and again"),
    ("A much longer prompt, with punctuation and several words, about the weather in Paris", " is mild"),
    ("The cat sat on the ma", "t"),
    ("The cat sat on the", ""),
    ("", "Start of text"),
    ("Why do people say", " so"),
    ("The cat sat on the ma", "t and purred"),
    ("x", " y"),
    ("Why do people say", " nothing at all, ever"),
    ("The cat sat on the", " floor"),
    ("", " and more"),
    ("Why do people say", " so"),  # a duplicate pair, scored once
]


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"])
def shared_lm(request):
    return request.getfixturevalue(request.param)


def _unpadded(model, ids: list[int], n_prompt: int) -> float:
    """Sum of log p(ids[t] | ids[:t]) for t >= n_prompt in one unpadded, uncached forward pass (float64 softmax)."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits[n_prompt - 1 : -1].double(), dim=-1)
    return float(logp[torch.arange(len(ids) - n_prompt), torch.tensor(ids[n_prompt:])].sum())


def _assert_same(got, ref):
    assert [n for _, n in got] == [n for _, n in ref]
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in ref], atol=1e-4, rtol=0)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_shared_equals_per_pair_and_naive(shared_lm, batch_size):
    lm = shared_lm
    prompts, conts = [p for p, _ in SHARED_PAIRS], [c for _, c in SHARED_PAIRS]
    got = continuation_logprobs_shared(lm.model, lm.tokenizer, prompts, conts, batch_size=batch_size)
    ref = continuation_logprobs(lm.model, lm.tokenizer, prompts, conts, batch_size=4)
    _assert_same(got, ref)
    for (lp, n), prompt, cont in zip(got, prompts, conts):
        ref_lp, ref_n = _naive(lm, prompt, cont)
        assert n == ref_n and lp == pytest.approx(ref_lp, abs=1e-4)
    assert got[5] == (0.0, 0)  # empty continuation


def test_shared_straddle_pair_shares_the_prompt_prefill():
    """GPT-2: " ma" + "t" straddle, so that continuation is tokenised alone, after the prompt's own tokens."""
    lm = load_model("tiny:gpt2")
    prompt = "The cat sat on the ma"
    got = continuation_logprobs_shared(lm.model, lm.tokenizer, [prompt, prompt], ["t", "t and purred"])
    assert got[0][1] == 1 and got[1][1] == len(lm.tokenizer.encode("t and purred"))
    for (lp, _), cont in zip(got, ["t", "t and purred"]):
        assert lp == pytest.approx(_naive(lm, prompt, cont)[0], abs=1e-4)


def _count_rows(model):
    """Record (rows, width, has_cache) of every forward call of `model`; returns the list and the hook handle."""
    calls = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append((ids.shape[0], ids.shape[1], kwargs.get("cache") is not None))

    return calls, model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16])
def test_shared_encodes_each_prompt_once_and_bounds_rows(tiny_llama, batch_size):
    lm = tiny_llama
    prompts = ["ab"] * 5 + ["cdefgh"] * 3 + ["i"] * 2 + ["jk"]
    conts = ["x", "yy", "zzz", "wwww", "yy", "1", "22", "", "3", "44", "5"]  # ("ab", "yy") twice: scored once
    calls, handle = _count_rows(lm.model)
    try:
        got = continuation_logprobs_shared(lm.model, lm.tokenizer, prompts, conts, batch_size=batch_size)
    finally:
        handle.remove()
    assert all(rows <= batch_size for rows, _, _ in calls)
    prefill_rows = sum(rows for rows, _, cached in calls if not cached)
    assert prefill_rows == 4  # each distinct prompt is encoded once (worked out by hand for these batch sizes)
    cont_rows = sum(rows for rows, _, cached in calls if cached)
    assert cont_rows <= 9  # one row per distinct non-empty pair at most
    _assert_same(got, continuation_logprobs(lm.model, lm.tokenizer, prompts, conts))
    # single-token continuations are scored by the prefill's last logits alone: no second pass
    calls, handle = _count_rows(lm.model)
    try:
        got = continuation_logprobs_shared(lm.model, lm.tokenizer, prompts, ["z"] * len(prompts), batch_size=16)
    finally:
        handle.remove()
    assert [cached for _, _, cached in calls] == [False]
    _assert_same(got, continuation_logprobs(lm.model, lm.tokenizer, prompts, ["z"] * len(prompts)))


def test_shared_truncated_prompts_match_reference():
    """Past GPT-2's 512-token context each pair keeps a different tail of the prompt: still exact."""
    lm = load_model("tiny:gpt2")
    long_prompt = " word" * 520
    prompts, conts = [long_prompt] * 3 + ["short"], [" end", " the very end", " end", " end"]
    got = continuation_logprobs_shared(lm.model, lm.tokenizer, prompts, conts, batch_size=8)
    _assert_same(got, continuation_logprobs(lm.model, lm.tokenizer, prompts, conts, batch_size=8))
    for (lp, n), cont in zip(got[:2], conts[:2]):
        assert lp == pytest.approx(_naive(lm, " word" * (512 - n), cont)[0], abs=1e-4)


def test_shared_sliding_window_gemma3(tiny_llama):
    """Gemma-3 (the perplexity scorer's family) mixes sliding-window and full layers; windows shorter than the
    prompts exercise the sliding KV cache. Checked against an unpadded forward pass per pair."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = tiny_llama.tokenizer
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=5,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                           max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(cfg).eval()
    prompts = ["abcdefghijk", "ab", "abcdefghijk", "xyz", "abcdefghijk", "ab"]
    conts = ["lmnopq", "c", "LM", "uvwxyz0123", "", "cdefghij"]
    got = continuation_logprobs_shared(model, tok, prompts, conts, batch_size=4)
    _assert_same(got, continuation_logprobs(model, tok, prompts, conts, batch_size=4))
    for (lp, n), (ids, n_prompt) in zip(got, encode_pairs(tok, prompts, conts)):
        assert n == len(ids) - n_prompt
        if n:
            assert lp == pytest.approx(_unpadded(model, ids, n_prompt), abs=1e-4)


def test_shared_without_cache_interface_uses_reference(tiny_gpt2):
    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    prompts, conts = [p for p, _ in SHARED_PAIRS], [c for _, c in SHARED_PAIRS]
    got = continuation_logprobs_shared(Plain(tiny_gpt2.model), tiny_gpt2.tokenizer, prompts, conts, batch_size=3)
    _assert_same(got, continuation_logprobs(tiny_gpt2.model, tiny_gpt2.tokenizer, prompts, conts))


def test_shared_nan_chunks_fall_back_and_full_logits_path(shared_lm):
    """A wrapper model (no boolean logits_to_keep: logits of every position are computed and masked) whose
    left-padded prefills give NaN: those chunks are rescored by the reference path; the others stay shared."""
    lm = shared_lm

    class NanOnLeftPad(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.cached_calls = 0

        def forward(self, input_ids, attention_mask, position_ids=None, cache=None, use_cache=None, logits_to_keep=0):
            if isinstance(logits_to_keep, torch.Tensor):
                raise TypeError("a module without slice_logits_to_keep must get an int logits_to_keep")
            self.cached_calls += cache is not None
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep)  # fmt: skip
            if cache is None and (attention_mask[:, 0] == 0).any():
                out.logits = torch.full_like(out.logits, float("nan"))
            return out

    prompts, conts = [p for p, _ in SHARED_PAIRS], [c for _, c in SHARED_PAIRS]
    ref = continuation_logprobs(lm.model, lm.tokenizer, prompts, conts)
    for batch_size in (1, 16):
        wrapped = NanOnLeftPad(lm.model)
        got = continuation_logprobs_shared(wrapped, lm.tokenizer, prompts, conts, batch_size=batch_size)
        _assert_same(got, ref)
        # one row: every prefill holds one prompt, so no padding, no NaN; 16 rows: one padded prefill, all NaN
        assert (wrapped.cached_calls > 0) == (batch_size == 1)


def test_shared_model_returning_no_cache_falls_back(tiny_gpt2):
    class NoCache(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids=None, cache=None, use_cache=None, logits_to_keep=0):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             logits_to_keep=logits_to_keep)  # fmt: skip
            out.cache = None
            return out

    prompts, conts = [p for p, _ in SHARED_PAIRS], [c for _, c in SHARED_PAIRS]
    got = continuation_logprobs_shared(NoCache(tiny_gpt2.model), tiny_gpt2.tokenizer, prompts, conts, batch_size=4)
    _assert_same(got, continuation_logprobs(tiny_gpt2.model, tiny_gpt2.tokenizer, prompts, conts))


def test_shared_bad_inputs(tiny_gpt2):
    with pytest.raises(LikelihoodError, match="batch_size"):
        continuation_logprobs_shared(tiny_gpt2.model, tiny_gpt2.tokenizer, ["a"], ["b"], batch_size=0)
    with pytest.raises(LikelihoodError, match="continuations"):
        continuation_logprobs_shared(tiny_gpt2.model, tiny_gpt2.tokenizer, ["a", "b"], ["c"])
    assert continuation_logprobs_shared(tiny_gpt2.model, tiny_gpt2.tokenizer, [], []) == []
    assert continuation_logprobs_shared(tiny_gpt2.model, tiny_gpt2.tokenizer, ["a"], [""]) == [(0.0, 0)]


def test_pack_groups_bounds_and_covers():
    groups = [((1, 2), list(range(7))), ((3,), [7, 8]), ((4, 5, 6), [9]), ((7,), list(range(10, 15)))]
    for batch_size in (1, 2, 3, 4, 8):
        blocks = pack_groups(groups, batch_size)
        assert all(1 <= len({p for chunk in block for p, _ in chunk}) <= batch_size for block in blocks)
        chunks = [chunk for block in blocks for chunk in block]
        assert all(1 <= sum(len(idx) for _, idx in chunk) <= batch_size for chunk in chunks)
        assert sorted(i for chunk in chunks for _, idx in chunk for i in idx) == list(range(15))
        # every piece of a prompt's pairs keeps that prompt; a prompt is split only into batch_size pieces
        for chunk in chunks:
            for p, idx in chunk:
                assert set(idx) <= set(dict(groups)[p])
        n_pieces = sum(len(chunk) for chunk in chunks)
        assert n_pieces == sum(math.ceil(len(idx) / batch_size) for _, idx in groups)


def test_conditional_perplexity_shared_equals_reference(shared_lm):
    lm = shared_lm
    prompts, conts = [p for p, _ in SHARED_PAIRS], [c for _, c in SHARED_PAIRS]
    a = conditional_perplexity(lm.model, lm.tokenizer, prompts, conts, batch_size=3)
    b = conditional_perplexity(lm.model, lm.tokenizer, prompts, conts, batch_size=3, shared=False)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert np.isnan(a[5]) and np.isnan(b[5])
