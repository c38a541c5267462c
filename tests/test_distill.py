"""The contrastive decoder against independent references."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from unidetox.config import DistillConfig
from unidetox.measure.contrast import contrast_per_token
from unidetox.method import distill as D
from unidetox.method.sampling import (
    CausalLMSource,
    SamplingParams,
    control_token_ids,
    make_generator,
    sample,
    sample_loop,
)
from unidetox.store.jsonl import read_jsonl


def _logp(probs):
    return torch.log(torch.tensor([probs], dtype=torch.float32))


def test_plausibility_mask_on_hand_made_distribution():
    lp = _logp([0.5, 0.25, 0.125, 0.125])
    assert D.plausibility_mask(lp, 0.5).tolist() == [[True, True, False, False]]  # 0.25 >= 0.5 * 0.5: kept (>=)
    assert D.plausibility_mask(lp, 0.1).tolist() == [[True, True, True, True]]
    assert D.plausibility_mask(lp, 1.0).tolist() == [[True, False, False, False]]  # alpha = 1: the mode only
    tie = _logp([0.4, 0.4, 0.2])
    assert D.plausibility_mask(tie, 1.0).tolist() == [[True, True, False]]  # alpha = 1 keeps tied modes
    tiny = torch.log_softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), -1)
    assert D.plausibility_mask(tiny, 1e-30).all()  # alpha -> 0: every token


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_alpha_outside_range_is_refused(alpha):
    with pytest.raises(D.DistillError, match="alpha"):
        D.plausibility_mask(_logp([0.5, 0.5]), alpha)


def test_contrastive_scores_match_numpy():
    rng = np.random.default_rng(0)
    bl, tl = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    bp = bl - np.log(np.exp(bl).sum(1, keepdims=True))
    tp = tl - np.log(np.exp(tl).sum(1, keepdims=True))
    alpha = 0.2
    keep = np.exp(bp) >= alpha * np.exp(bp).max(1, keepdims=True)
    want = np.where(keep, bp - tp, -np.inf)
    got = D.contrastive_scores(torch.tensor(bp), torch.tensor(tp), alpha).numpy()
    assert np.array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-12)


@pytest.mark.numerics
def test_official_logit_form_is_equivalent():
    """The official code masks and subtracts raw logits; softmax of either form is the same distribution."""
    g = torch.Generator().manual_seed(3)
    bl, tl = torch.randn(2, 40, generator=g), torch.randn(2, 40, generator=g)
    ours = D.contrastive_scores(bl.log_softmax(-1), tl.log_softmax(-1), 0.1).softmax(-1)
    cutoff = math.log(0.1) + bl.max(-1, keepdim=True).values
    official = (bl - tl).masked_fill(bl < cutoff, float("-inf")).softmax(-1)
    # two float32 forms of one softmax over 40 O(1) scores: a few U (6e-8) apart, relative; rtol 1e-5 is ~170 U
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)


def _reference_scores(base, toxic, prefix, alpha):
    """Cache-free scores ``(V,)``: full forward passes of both models over `prefix`."""
    ids = torch.tensor([list(prefix)], device=next(base.parameters()).device)
    with torch.no_grad():
        b = torch.log_softmax(base(ids).logits[0, -1].float(), -1)
        t = torch.log_softmax(toxic(ids).logits[0, -1].float(), -1)
    return D.contrastive_scores(b[None], t[None], alpha)[0]


def _reference_trajectory(base, toxic, start_id, n_steps, alpha, params, seed, batch, context=()):
    """Cache-free decoding: full forward passes of both models over each whole prefix at every step.

    `context`: token ids after the start token, not returned."""
    gen = make_generator("cpu", seed, 0)
    start = [start_id, *context]
    seqs = [list(start) for _ in range(batch)]
    all_scores = []
    for _ in range(n_steps):
        scores = torch.stack([_reference_scores(base, toxic, s, alpha) for s in seqs])
        all_scores.append(scores)
        tok = sample(scores, params, gen)
        for s, t in zip(seqs, tok.tolist()):
            s.append(t)
    return [s[len(start) :] for s in seqs], all_scores


@pytest.mark.numerics
def test_decoder_matches_cache_free_reference(tiny_gpt2, tiny_toxic):
    cfg = DistillConfig(alpha=0.05, num_texts=3, max_new_tokens=12, batch_size=3, top_k=0, seed=7)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
    seen = []
    src = D.ContrastiveSource(tiny_gpt2.model, tiny_toxic.model, cfg.alpha)
    start = torch.full((3, 1), tiny_gpt2.start_token_id)
    from unidetox.method.sampling import sample_loop

    toks = sample_loop(src, start, torch.ones_like(start), max_new_tokens=12, params=params,
                       generator=make_generator("cpu", 7, 0), eos_token_id=None, pad_token_id=0,
                       on_step=lambda t, s: seen.append(s.clone()))  # fmt: skip
    ref_tokens, ref_scores = _reference_trajectory(tiny_gpt2.model, tiny_toxic.model, tiny_gpt2.start_token_id,
                                                   12, cfg.alpha, params, 7, 3)  # fmt: skip
    # cached vs recomputed forward passes: each log p moves by ~U (ln V + max |z|) ~ 1e-6 (GPT-2, V = 50257), a score
    # (a difference of two) by ~2e-6, so atol/rtol 1e-4 leave 50x. The tokens are equal unless a uniform draw falls
    # within ~1e-6 of a boundary of the sampling CDF: probability ~2e-6 per draw, 36 draws here
    assert toks.tolist() == ref_tokens
    for a, b in zip(seen, ref_scores):
        assert torch.equal(torch.isinf(a), torch.isinf(b))
        finite = torch.isfinite(b)
        torch.testing.assert_close(a[finite], b[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.numerics
def test_prefix_decoding_matches_cache_free_reference(tiny_gpt2, tiny_toxic):
    """A context after BOS (e.g. a paragraph break) is seen by both models, never sampled or returned."""
    cfg = DistillConfig(alpha=0.05, num_texts=3, max_new_tokens=10, batch_size=3, top_k=0, seed=7)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
    context = tiny_gpt2.tokenizer("\n\n", add_special_tokens=False).input_ids
    assert context
    got = D.decode_batch(tiny_gpt2, tiny_toxic, cfg, 0, 3, prefix=context)
    ref, _ = _reference_trajectory(tiny_gpt2.model, tiny_toxic.model, tiny_gpt2.start_token_id, 10, cfg.alpha,
                                   params, 7, 3, context=context)  # fmt: skip
    eos = tiny_gpt2.tokenizer.eos_token_id
    assert got == [r[: r.index(eos)] if eos in r else r for r in ref]
    assert got != D.decode_batch(tiny_gpt2, tiny_toxic, cfg, 0, 3)  # the context does change the texts


@pytest.mark.numerics
def test_contrast_per_token_matches_direct_computation(tiny_gpt2, tiny_toxic):
    texts = ["The cat sat on the mat.", "def f(x):\n    return x", ""]
    got = contrast_per_token(tiny_gpt2, tiny_toxic, texts, batch_size=2)
    for text, (gap, n) in zip(texts[:2], got[:2]):
        ids = [tiny_gpt2.start_token_id, *tiny_gpt2.tokenizer(text, add_special_tokens=False).input_ids]
        x, target = torch.tensor([ids]), torch.tensor(ids[1:])
        with torch.no_grad():
            lb = torch.log_softmax(tiny_gpt2.model(x).logits[0, :-1].double(), -1)[torch.arange(len(target)), target]
            lt = torch.log_softmax(tiny_toxic.model(x).logits[0, :-1].double(), -1)[torch.arange(len(target)), target]
        assert n == len(ids) - 1
        assert gap == pytest.approx(float((lb - lt).mean()), abs=1e-4)
        assert abs(gap) > 1e-3  # the perturbed model really differs, so the comparison is not vacuous
    assert math.isnan(got[2][0]) and got[2][1] == 0


def test_contrast_per_token_refuses_other_tokenizer(tiny_gpt2, tiny_llama):
    with pytest.raises(D.DistillError, match="different tokenizers"):
        contrast_per_token(tiny_gpt2, tiny_llama, ["a text"])


def test_shared_cache_bug_would_differ(tiny_gpt2, tiny_toxic):
    """Feeding the toxic model the base model's cache (the official bug) changes the scores: the exactness test bites."""
    base, tox = tiny_gpt2.model, tiny_toxic.model
    ids = torch.tensor([[tiny_gpt2.start_token_id, 464, 3290]])
    with torch.no_grad():
        bo = base(ids[:, :2], use_cache=True)
        wrong = tox(ids[:, 2:], cache=bo.cache).logits[0, -1].log_softmax(-1)
        right = tox(ids).logits[0, -1].log_softmax(-1)
    assert not torch.allclose(wrong, right, atol=1e-3)


@pytest.mark.numerics
def test_left_padding_gives_same_scores(tiny_llama):
    tok = tiny_llama.tokenizer
    enc = tok(["a much longer prompt here", "short"], padding=True, padding_side="left", return_tensors="pt")
    padded = CausalLMSource(tiny_llama.model).start(enc.input_ids, enc.attention_mask)[1]
    single = tok(["short"], return_tensors="pt")
    alone = CausalLMSource(tiny_llama.model).start(single.input_ids, single.attention_mask)[0]
    # other shapes, same numbers up to round-off: ~U (ln 259 + max |z|) < 1e-6 per log-prob; atol 1e-5 is 10x that
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)


def test_different_tokenizers_refused(tiny_gpt2, tiny_llama, tmp_path):
    with pytest.raises(D.DistillError, match="different tokenizers"):
        D.contrastive_texts(
            tiny_gpt2, tiny_llama, DistillConfig(num_texts=1, max_new_tokens=2, batch_size=1), tmp_path / "t.jsonl"
        )
    assert not (tmp_path / "t.jsonl").exists()


def _cfg():
    return DistillConfig(alpha=0.1, num_texts=7, max_new_tokens=10, batch_size=3, seed=11)


def test_resume_after_crash_gives_identical_texts(tiny_gpt2, tiny_toxic, tmp_path, monkeypatch):
    full = D.contrastive_texts(tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "full.jsonl", progress=False)
    assert len(full.texts) == 7 and any(t.strip() for t in full.texts)
    # a crash after the first batch, in the middle of writing the second
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    first = [ln for ln in lines if '"batch": 0' in ln]
    (tmp_path / "cut.jsonl").write_text("".join(first) + lines[len(first)][:15])
    calls = []
    real = D.decode_batch
    monkeypatch.setattr(D, "decode_batch", lambda *a: calls.append(a[3]) or real(*a))
    resumed = D.contrastive_texts(tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "cut.jsonl", progress=False)
    assert calls == [1, 2]  # batch 0 was not redone
    assert resumed.texts == full.texts
    assert read_jsonl(tmp_path / "cut.jsonl") == read_jsonl(tmp_path / "full.jsonl")


def test_sharded_run_equals_single_process(tiny_gpt2, tiny_toxic, tmp_path):
    single = D.contrastive_texts(tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "one.jsonl", progress=False)
    for rank in (0, 1):
        D.contrastive_texts(
            tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "two.jsonl", rank=rank, world_size=2, progress=False
        )
    merged = D.merge_streams(tmp_path / "two.jsonl", 2)
    assert [r["text"] for r in merged] == single.texts


def test_same_seed_same_texts_other_seed_differs(tiny_gpt2, tiny_toxic, tmp_path):
    a = D.contrastive_texts(tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "a.jsonl", progress=False).texts
    b = D.contrastive_texts(tiny_gpt2, tiny_toxic, _cfg(), tmp_path / "b.jsonl", progress=False).texts
    c = D.contrastive_texts(tiny_gpt2, tiny_toxic, DistillConfig(alpha=0.1, num_texts=7, max_new_tokens=10, batch_size=3, seed=12),
                  tmp_path / "c.jsonl", progress=False).texts  # fmt: skip
    assert a == b and a != c


def test_distill_stage_context_is_the_decoders_prefix(tmp_path, one_torch_thread):
    """`distill.context` reaches the decoder as tokens after BOS; left empty it stays out of the stage key."""
    from unidetox import pipeline as P
    from unidetox.config.loader import load_profile
    from unidetox.models.loading import load_model

    sets = [f"runs_dir={tmp_path}", "distill.num_texts=3", "distill.max_new_tokens=6", "distill.batch_size=3"]
    plain = load_profile("tiny", sets)
    with_context = load_profile("tiny", [*sets, 'distill.context="\\n\\n"'])
    assert with_context.distill.context == "\n\n"
    st_plain, st_ctx = P.distill(plain, quiet=True), P.distill(with_context, quiet=True)
    assert st_plain.key != st_ctx.key
    assert "context" not in json.loads((st_plain.path / "config.json").read_text())["config"]["distill"]
    tox = P.toxic_model(plain, quiet=True)
    base, toxic = load_model(plain.toxic.base_model), load_model(str(tox.path / "final"))
    prefix = base.tokenizer("\n\n", add_special_tokens=False).input_ids
    ref = D.contrastive_texts(base, toxic, with_context.distill, tmp_path / "ref.jsonl", progress=False, prefix=prefix)
    assert P.distilled_texts(st_ctx) == ref.texts
    assert P.distilled_texts(st_plain) != ref.texts


# ----------------------------------------------------------------------------- only text tokens are sampled


def _with_control_tokens(lm, n: int = 100):
    """A copy of `lm` (tiny:llama) whose tokenizer has `n` extra special tokens, one multimodal placeholder named by
    the model's config (as Gemma 3's image token) and one ordinary added token (as Gemma's ``<table>``); their
    embedding and output rows copy those of byte tokens, so the model gives them ordinary probabilities."""
    from unidetox.models.loading import LoadedModel

    tok, model = copy.deepcopy(lm.tokenizer), copy.deepcopy(lm.model)
    first = len(tok)
    tok.add_special_tokens({"extra_special_tokens": [f"<ctl{i}>" for i in range(n)]})
    tok.add_tokens(["<start_of_image>", "<table>"])  # added, not special (as in Gemma's GGUF tokenizer)
    model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        for j in range(first, len(tok)):
            model.get_input_embeddings().weight[j] = model.get_input_embeddings().weight[3 + j % (first - 3)]
            model.get_output_embeddings().weight[j] = model.get_output_embeddings().weight[3 + j % (first - 3)]
    model.config.image_token_id = tok.convert_tokens_to_ids("<start_of_image>")
    return LoadedModel(spec=lm.spec + "+control", model=model.eval(), tokenizer=tok)


def test_control_token_ids_are_the_specials_and_placeholders_but_eos(tiny_llama, tiny_gpt2):
    lm = _with_control_tokens(tiny_llama)
    tok = lm.tokenizer
    got = control_token_ids(tok, lm.model.config)
    ctl = [tok.convert_tokens_to_ids(f"<ctl{i}>") for i in range(100)]
    want = {tok.pad_token_id, tok.bos_token_id, *ctl, tok.convert_tokens_to_ids("<start_of_image>")}
    assert got == sorted(want) and tok.eos_token_id not in got
    assert tok.convert_tokens_to_ids("<table>") not in got  # an added token that is text stays
    assert control_token_ids(tiny_gpt2.tokenizer, tiny_gpt2.model.config) == []  # GPT-2: only EOS is special


@pytest.mark.parametrize("contrastive", [False, True])
def test_only_text_tokens_and_eos_are_sampled(tiny_llama, contrastive, tmp_path):
    from conftest import perturbed

    base = _with_control_tokens(tiny_llama)
    toxic = perturbed(base) if contrastive else None
    banned = set(control_token_ids(base.tokenizer, base.model.config))
    cfg = DistillConfig(alpha=0.001, num_texts=6, max_new_tokens=24, batch_size=3, top_k=0, seed=5)
    rows = [ids for b in range(2) for ids in D.decode_batch(base, toxic, cfg, b, 3)]
    assert sum(map(len, rows)) > 50 and not banned & {i for r in rows for i in r}
    # the test bites: the same model sampled without the rule draws control tokens
    src = CausalLMSource(base.model)
    start = torch.full((3, 1), base.start_token_id)
    drawn = sample_loop(src, start, torch.ones_like(start), max_new_tokens=24, params=SamplingParams(),
                        generator=make_generator("cpu", 5), eos_token_id=None, pad_token_id=0)  # fmt: skip
    assert banned & set(drawn.flatten().tolist())
    texts = D.contrastive_texts(base, toxic, cfg, tmp_path / "t.jsonl", progress=False).texts
    assert not any(f"<ctl{i}>" in t or "<start_of_image>" in t for t in texts for i in range(100))
