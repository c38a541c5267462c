"""Batched continuation sampling and the samplers' filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unidetox.method.generate import GenerationSettings, generate_unit, plan_units, unit_generator
from unidetox.method.sampling import CausalLMSource, SamplingParams, sample, top_k_filter, top_p_filter


def test_top_k_by_hand():
    s = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    assert torch.isinf(top_k_filter(s, 2)).tolist() == [[True, False, False, True]]
    assert torch.equal(top_k_filter(s, 0), s)


def test_top_p_matches_transformers():
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 100, generator=g) * 3
    for p in (0.1, 0.5, 0.9, 0.99):
        want = TopPLogitsWarper(p)(None, s.clone())
        assert torch.equal(torch.isinf(top_p_filter(s, p)), torch.isinf(want))
    want = TopKLogitsWarper(7)(None, s.clone())
    assert torch.equal(torch.isinf(top_k_filter(s, 7)), torch.isinf(want))


def test_top_p_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = ~torch.isinf(top_p_filter(probs.log(), 0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8


def test_sampling_frequencies_follow_the_distribution():
    scores = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(20000, 1)
    from unidetox.method.sampling import sample

    tok = sample(scores, SamplingParams(), torch.Generator().manual_seed(0))
    freq = np.bincount(tok.numpy(), minlength=3) / len(tok)
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.015)


@pytest.mark.numerics
def test_cached_scores_equal_full_forward(tiny_gpt2):
    model, tok = tiny_gpt2.model, tiny_gpt2.tokenizer
    enc = tok(["Hello there, how are", "A"], padding=True, padding_side="left", return_tensors="pt")
    src = CausalLMSource(model)
    s0 = src.start(enc.input_ids, enc.attention_mask)
    s1 = src.step(torch.tensor([11, 12]))
    for row, text in enumerate(["Hello there, how are", "A"]):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            full0 = model(ids).logits[0, -1].log_softmax(-1)
            full1 = model(torch.cat([ids, torch.tensor([[11 + row]])], 1)).logits[0, -1].log_softmax(-1)
        # cached and padded vs one full forward: ~U (ln V + max |z|) ~ 1e-6 per log-prob (V = 50257); 1e-4 is 100x
        torch.testing.assert_close(s0[row], full0, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(s1[row], full1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", ["tiny_gpt2", "tiny_llama"])
def test_units_are_independent_of_batching(spec, request):
    lm = request.getfixturevalue(spec)
    prompts = ["The cat", "Women are", "My neighbour said that", "x"]
    st = GenerationSettings(samples_per_prompt=3, max_new_tokens=6, batch_size=6)
    assert plan_units(4, st) == [(0, 2), (2, 4)]
    a = [generate_unit(lm.model, lm.tokenizer, prompts[s:e], st, unit_generator("cpu", 42, u))
         for u, (s, e) in enumerate(plan_units(4, st))]  # fmt: skip
    b = [generate_unit(lm.model, lm.tokenizer, prompts[s:e], st, unit_generator("cpu", 42, u))
         for u, (s, e) in reversed(list(enumerate(plan_units(4, st))))][::-1]  # fmt: skip
    assert a == b
    assert all(len(x) == 3 for unit in a for x in unit)
    other = generate_unit(lm.model, lm.tokenizer, prompts[:2], st, unit_generator("cpu", 43, 0))
    assert other != a[0]


def test_prefix_is_not_part_of_the_continuation(tiny_gpt2):
    st = GenerationSettings(samples_per_prompt=2, max_new_tokens=5, batch_size=4, prefix="Be kind. ")
    out = generate_unit(tiny_gpt2.model, tiny_gpt2.tokenizer, ["Hi"], st, unit_generator("cpu", 1, 0))
    assert len(out) == 1 and len(out[0]) == 2
    assert not any(c.startswith("Be kind") for c in out[0])


def test_top_k_then_top_p_sampling_matches_full_vocabulary_filtering():
    from unidetox.method.sampling import sample

    g = torch.Generator().manual_seed(1)
    row = torch.randn(1, 12, generator=g) * 2
    params = SamplingParams(temperature=0.7, top_k=5, top_p=0.8)
    want = top_p_filter(top_k_filter(row / 0.7, 5), 0.8).softmax(-1)[0]
    tok = sample(row.repeat(40000, 1), params, torch.Generator().manual_seed(0))
    freq = torch.bincount(tok, minlength=12).double() / len(tok)
    np.testing.assert_allclose(freq.numpy(), want.double().numpy(), atol=0.01)
    assert set(tok.unique().tolist()) == set(torch.nonzero(want).flatten().tolist())


@pytest.mark.numerics
def test_shared_prefill_equals_repeated_rows(tiny_llama):
    tok = tiny_llama.tokenizer
    enc = tok(["a longer prompt", "hi"], padding=True, padding_side="left", return_tensors="pt")
    shared = CausalLMSource(tiny_llama.model)
    s0 = shared.start(enc.input_ids, enc.attention_mask, repeats=3)
    rep = CausalLMSource(tiny_llama.model)
    r0 = rep.start(enc.input_ids.repeat_interleave(3, 0), enc.attention_mask.repeat_interleave(3, 0))
    # one prefill repeated vs repeated rows (other batch shapes): < 1e-6 per log-prob (V = 259); 1e-5 is 10x that
    torch.testing.assert_close(s0, r0, rtol=1e-5, atol=1e-5)
    nxt = torch.arange(6) + 70
    torch.testing.assert_close(shared.step(nxt), rep.step(nxt), rtol=1e-5, atol=1e-5)


def test_temperature_one_draws_as_the_divided_scores():
    """sample skips ``scores / 1.0``: the same draws as sampling the divided scores (x / 1 == x bit for bit)."""
    g = torch.Generator().manual_seed(5)
    scores = torch.log_softmax(torch.randn(6, 300, generator=g) * 4, dim=-1)
    params = SamplingParams(temperature=1.0, top_k=20, top_p=0.9)
    assert torch.equal(scores / 1.0, scores)
    a = sample(scores, params, torch.Generator().manual_seed(9))
    vals, idx = torch.topk(scores / 1.0, 20, dim=-1)
    want = torch.multinomial(top_p_filter(vals, 0.9).softmax(-1), 1, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, idx.gather(-1, want).squeeze(1))
