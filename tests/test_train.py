"""Tests of the causal-LM training loop and its safetensors checkpoints (tiny models, CPU, seconds)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from numerics import assert_same_training, sgd_instead_of_adamw

import unidetox.method.train_setup as setup_mod
import unidetox.store.checkpoint as ckpt_mod
from unidetox.config import ScaleConfig, TrainConfig
from unidetox.method.batches import (
    batch_indices,
    epoch_order,
    lr_factor,
    micro_batches,
    num_training_steps,
    pad_batch,
    shard,
    token_nll,
)
from unidetox.method.train import train_causal_lm
from unidetox.method.train_setup import tokenize_texts
from unidetox.method.train_state import TrainError
from unidetox.models.loading import load_model
from unidetox.store.checkpoint import (
    CheckpointError,
    capture_rng,
    flatten_state,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    unflatten_state,
)
from unidetox.store.jsonl import read_jsonl

TEXTS = [
    "The cat sat on the mat.",
    "Dogs bark",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Hello world",
    "x",
    "Some more words to make a sequence of medium length",
]


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def reference_mean_nll(model, seqs: list[list[int]]) -> float:
    """Independent reference: each sequence alone (no padding), log_softmax + gather, token mean."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            logp = torch.log_softmax(model(input_ids=ids).logits.double(), dim=-1)[0]
            for t in range(1, len(s)):
                total -= logp[t - 1, s[t]].item()
                count += 1
    return total / count


def log_without_time(path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in read_jsonl(path)]


# ----------------------------------------------------------------------------- pure pieces


@pytest.mark.numerics
def test_token_nll_matches_hand_loop_on_random_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    ids = torch.randint(0, 7, (3, 5), generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])  # full, right-, left-padded
    total, count = 0.0, 0
    for b in range(3):
        for t in range(1, 5):
            if mask[b, t] and mask[b, t - 1]:
                total -= torch.log_softmax(logits[b, t - 1].double(), -1)[ids[b, t]].item()
                count += 1
    s, n = token_nll(logits, ids, mask)
    assert n.item() == count == 4 + 2 + 2
    # float32 vs float64: each of the 8 terms (~2 nats) is off by ~U (|z| + ln 7) < 3e-7, their sum (~16) by < 3e-6
    # absolute at worst, i.e. < 2e-7 relative
    assert s.item() == pytest.approx(total, rel=1e-6)


def test_tokenize_texts_bos_eos_truncation():
    gpt2 = load_model("tiny:gpt2").tokenizer
    llama = load_model("tiny:llama").tokenizer
    eos_g, eos_l = gpt2.eos_token_id, llama.eos_token_id
    [a] = tokenize_texts(gpt2, ["hello world"], 16)
    assert a == gpt2("hello world").input_ids + [eos_g]  # GPT-2 adds no BOS by default
    [b] = tokenize_texts(llama, ["ab"], 16)
    assert b == [llama.bos_token_id, llama.convert_tokens_to_ids("a"), llama.convert_tokens_to_ids("b"), eos_l]
    [c] = tokenize_texts(llama, ["abcdefgh"], 5)  # cut to 5 tokens: BOS + 4 bytes, no EOS (the text did not end)
    assert len(c) == 5 and c[0] == llama.bos_token_id and eos_l not in c
    [d] = tokenize_texts(llama, ["abc"], 5)  # exactly fits with its EOS
    assert d[-1] == eos_l and len(d) == 5


def test_pad_batch_right_pads():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_schedule_and_steps_match_hf_formulas():
    # HF get_linear_schedule_with_warmup: step/warmup, then (total-step)/(total-warmup)
    assert [lr_factor(s, warmup_steps=2, total_steps=6, kind="linear") for s in range(7)] == [
        0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0
    ]  # fmt: skip
    assert [lr_factor(s, warmup_steps=0, total_steps=4, kind="linear") for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert [lr_factor(s, warmup_steps=2, total_steps=6, kind="constant") for s in range(4)] == [0.0, 0.5, 1.0, 1.0]
    assert num_training_steps(TrainConfig(max_steps=7, epochs=3), 100) == 7
    assert num_training_steps(TrainConfig(epochs=3, batch_size=4), 10) == 9  # 3 batches (4, 4, 2) per epoch


def test_data_order_is_seeded_per_epoch_and_keeps_partial_batches():
    n, bs = 10, 4
    e0, e1 = epoch_order(1, 0, n), epoch_order(1, 1, n)
    assert sorted(e0) == list(range(n)) and sorted(e1) == list(range(n))
    assert e0 != e1 and e0 == epoch_order(1, 0, n) and e0 != epoch_order(2, 0, n)
    steps = [batch_indices(s, n, bs, seed=1) for s in range(6)]
    assert [len(b) for b in steps] == [4, 4, 2, 4, 4, 2]
    assert [i for b in steps[:3] for i in b] == e0 and [i for b in steps[3:] for i in b] == e1


def test_shard_and_micro_batches_partition():
    items = list(range(11))
    for world in (1, 2, 3, 4):
        parts = [shard(items, r, world) for r in range(world)]
        assert [i for p in parts for i in p] == items
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert micro_batches([1, 2, 3], 2) == [[1, 2], [3]]
    assert micro_batches([1], 4) == [[1]]
    assert micro_batches([], 2) == [[]]


# ----------------------------------------------------------------------------- loss masking


@pytest.mark.numerics
@pytest.mark.parametrize("spec", ["tiny:gpt2", "tiny:llama"])
def test_loss_ignores_padding_and_matches_per_example_reference(spec):
    lm = load_model(spec)
    seqs = tokenize_texts(lm.tokenizer, TEXTS[:4], 32)
    ref = reference_mean_nll(lm.model, seqs)
    results = []
    for pad_id, extra in ((lm.tokenizer.pad_token_id, 0), (7, 0), (123, 5)):
        ids, mask = pad_batch(seqs, pad_id)
        if extra:  # extra all-padding columns holding arbitrary ids
            ids = torch.cat([ids, torch.full((len(seqs), extra), 42)], dim=1)
            mask = torch.cat([mask, torch.zeros((len(seqs), extra), dtype=torch.long)], dim=1)
        with torch.no_grad():
            s, n = token_nll(lm.model(input_ids=ids, attention_mask=mask).logits, ids, mask)
        assert n.item() == sum(len(x) - 1 for x in seqs)
        results.append(s.item() / n.item())
    for r in results:  # padded float32 vs per-sequence float64 (see test_first_step...): ~1e-7 relative; rel 1e-5
        assert r == pytest.approx(ref, rel=1e-5)


@pytest.mark.numerics
def test_first_step_loss_is_the_token_mean_of_the_batch(tmp_path):
    lm = load_model("tiny:llama")  # no dropout: the training-mode loss equals the eval reference
    seqs = tokenize_texts(lm.tokenizer, TEXTS, 32)
    ref = reference_mean_nll(lm.model, seqs)
    cfg = TrainConfig(learning_rate=1e-3, max_steps=1, batch_size=len(TEXTS), grad_accum=3, max_length=32)
    res = train_causal_lm(lm, TEXTS, cfg, tmp_path, device="cpu", progress=False)
    # a mean of ~100 token NLLs, float32 micro-batches vs float64 sequences: each ~U (ln V + |z|) ~ 4e-7 apart
    assert res.losses[0] == pytest.approx(ref, rel=1e-5)
    [rec] = read_jsonl(tmp_path / "log.jsonl")
    assert rec["step"] == 1 and rec["tokens"] == sum(map(len, seqs)) and rec["lr"] == 1e-3


# ----------------------------------------------------------------------------- gradient accumulation


@pytest.mark.numerics
def test_grad_accumulation_equals_one_big_batch(tmp_path, monkeypatch):
    """In fp32 (bf16 autocast, the default on CPUs with native bf16, rounds each micro-batch differently). The
    micro-batches are padded to their own lengths and their gradients added one by one: the same sums in other
    orders, so the optimizer is SGD (numerics.sgd_instead_of_adamw: AdamW turns a sign flip of a near-zero gradient
    into a change of 2 lr) and the losses (sums of <= 4 x 32 positive token NLLs: <= 128 U = 7.6e-6 apart when
    reordered) are compared within rel 1e-5."""
    monkeypatch.setattr(torch.optim, "AdamW", sgd_instead_of_adamw)
    results = {}
    for accum in (1, 2, 4):
        lm = load_model("tiny:llama")
        cfg = TrainConfig(learning_rate=1.0, max_steps=3, batch_size=4, grad_accum=accum, max_length=32, seed=3)
        res = train_causal_lm(lm, TEXTS, cfg, tmp_path / str(accum), device="cpu", progress=False,
                              scale=ScaleConfig(mixed_precision="fp32"))  # fmt: skip
        results[accum] = (weights(lm.model), res.losses)
    w1, l1 = results[1]
    start = weights(load_model("tiny:llama").model)
    assert max_diff(w1, start) > 1e-3  # training moved the weights
    for accum in (2, 4):
        w, losses = results[accum]
        assert_same_training(w1, w, start, steps=3)
        assert losses == pytest.approx(l1, rel=1e-5)


# ----------------------------------------------------------------------------- checkpoints


def test_flatten_state_roundtrip_exact():
    t = torch.randn(3, 2)
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": t, "same": t}, 5: {"bf": torch.randn(4).bfloat16()}},
        "param_groups": [{"betas": (0.9, 0.999), "params": [0, 5], "lr": 1e-5, "flag": None, "on": True}],
        "specials": [float("nan"), float("inf"), -float("inf"), 0.1 + 0.2],
        "empty": torch.zeros(0, 3, dtype=torch.int64),
        "__tensor__": "a key that looks like a marker",
        ("a", 1): "tuple key",
    }
    tensors, skeleton = flatten_state(state)
    assert len(tensors) == 4  # `same` is stored once
    back = unflatten_state(json.loads(json.dumps(skeleton, allow_nan=False)), tensors)
    assert set(back) == set(state)
    assert back["state"][0]["exp_avg"].equal(t) and back["state"][0]["step"].equal(torch.tensor(3.0))
    assert back["state"][5]["bf"].dtype == torch.bfloat16 and back["state"][5]["bf"].equal(state["state"][5]["bf"])
    assert back["param_groups"] == state["param_groups"] and isinstance(back["param_groups"][0]["betas"], tuple)
    assert math.isnan(back["specials"][0]) and back["specials"][1:] == state["specials"][1:]
    assert back["empty"].shape == (0, 3) and back["__tensor__"] == state["__tensor__"]
    assert back[("a", 1)] == "tuple key"
    with pytest.raises(CheckpointError, match="object"):
        flatten_state({"x": object()})


def _opt_and_sched(model):
    opt = torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": 0.1},
         {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0}], lr=1e-3,
    )  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / 10))
    return opt, sched


def _step(lm, opt, sched, seqs):
    ids, mask = pad_batch(seqs, 0)
    s, n = token_nll(lm.model(input_ids=ids, attention_mask=mask).logits, ids, mask)
    (s / n).backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_checkpoint_roundtrip_of_optimizer_scheduler_rng_is_exact(tmp_path):
    lm = load_model("tiny:llama")
    lm.model.train()
    seqs = tokenize_texts(lm.tokenizer, TEXTS[:3], 16)
    opt, sched = _opt_and_sched(lm.model)
    for _ in range(2):
        _step(lm, opt, sched, seqs)
    torch.manual_seed(5)
    rng = {0: capture_rng(), 1: {"cpu": torch.get_rng_state()}}
    save_checkpoint(tmp_path / "ck", model=lm.model, optimizer=opt, scheduler=sched, rng=rng, meta={"step": 2})
    expected_draw = torch.rand(5)

    lm2 = load_model("tiny:llama")
    lm2.model.train()
    opt2, sched2 = _opt_and_sched(lm2.model)
    meta, rng2 = load_checkpoint(tmp_path / "ck", model=lm2.model, optimizer=opt2, scheduler=sched2)
    assert meta["step"] == 2 and set(rng2) == {0, 1}
    assert max_diff(weights(lm.model), weights(lm2.model)) == 0.0
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd["param_groups"] == sd2["param_groups"]
    assert sd["state"].keys() == sd2["state"].keys()
    for i, st in sd["state"].items():
        for k, v in st.items():
            assert v.dtype == sd2["state"][i][k].dtype and v.equal(sd2["state"][i][k]), (i, k)
    assert sched.state_dict() == sched2.state_dict()
    torch.manual_seed(0)
    restore_rng(rng2[0])
    assert torch.rand(5).equal(expected_draw)
    # One more step from each: bit-identical weights.
    _step(lm, opt, sched, seqs)
    _step(lm2, opt2, sched2, seqs)
    assert max_diff(weights(lm.model), weights(lm2.model)) == 0.0


def test_pickle_checkpoint_is_refused(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "optimizer.pt").write_bytes(b"\x80\x04not really a pickle")
    lm = load_model("tiny:llama")
    cfg = TrainConfig(learning_rate=1e-3, max_steps=2, batch_size=2, max_length=16)
    with pytest.raises(CheckpointError, match="pickle"):
        train_causal_lm(lm, TEXTS, cfg, tmp_path, device="cpu", progress=False)
    opt, sched = _opt_and_sched(lm.model)
    with pytest.raises(CheckpointError, match="never reads pickles"):
        load_checkpoint(tmp_path / "checkpoint", model=lm.model, optimizer=opt, scheduler=sched)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    cfg = TrainConfig(learning_rate=1e-3, max_steps=3, batch_size=2, max_length=16, checkpoint_every=1)
    res = train_causal_lm(load_model("tiny:llama"), TEXTS, cfg, tmp_path, device="cpu", progress=False, stop_after=1)
    assert res.final_dir is None and res.steps == 1 and len(res.losses) == 1
    other = TrainConfig(learning_rate=2e-3, max_steps=3, batch_size=2, max_length=16, checkpoint_every=1)
    with pytest.raises(TrainError, match="another configuration"):
        train_causal_lm(load_model("tiny:llama"), TEXTS, other, tmp_path, device="cpu", progress=False)
    with pytest.raises(TrainError, match="other texts"):
        train_causal_lm(load_model("tiny:llama"), TEXTS[:-1], cfg, tmp_path, device="cpu", progress=False)


# ----------------------------------------------------------------------------- resume, step dirs, final

RESUME_CFG = TrainConfig(
    learning_rate=1e-3, max_steps=6, batch_size=2, max_length=24, warmup_steps=1, checkpoint_every=2, log_every=1
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """tiny:gpt2 (dropout on, tied embeddings) trained 6 steps in one call."""
    out = tmp_path_factory.mktemp("uninterrupted")
    lm = load_model("tiny:gpt2")
    res = train_causal_lm(
        lm, TEXTS[:5], RESUME_CFG, out, device="cpu", save_at_steps=[2, 4], val_texts=TEXTS[4:], progress=False
    )
    return out, res, lm


@pytest.mark.numerics
def test_interrupted_run_resumes_to_identical_weights_and_log(uninterrupted, tmp_path, monkeypatch):
    ref_dir, ref, ref_lm = uninterrupted
    # 1) crash while writing the step-4 checkpoint (after steps 3 and 4 were logged)
    real_save_state, calls = ckpt_mod.save_state, []

    def failing_save_state(directory, name, obj):
        calls.append(name)
        if len(calls) == 5:  # second checkpoint, second file: the write is half done
            raise RuntimeError("simulated crash")
        real_save_state(directory, name, obj)

    monkeypatch.setattr(ckpt_mod, "save_state", failing_save_state)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_causal_lm(load_model("tiny:gpt2"), TEXTS[:5], RESUME_CFG, tmp_path, device="cpu", progress=False)
    monkeypatch.undo()
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 2  # the previous checkpoint survived the failed write
    assert not list(tmp_path.glob(".checkpoint*.tmp"))
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl")] == [1, 2, 3, 4]
    # 2) a kill between atomic_dir's two renames leaves only .checkpoint.old: it is recovered
    (tmp_path / "checkpoint").rename(tmp_path / ".checkpoint.old")
    # 3) fresh model, scrambled global RNG; stop after step 3 (time-limited job), then finish
    torch.manual_seed(999)
    part = train_causal_lm(
        load_model("tiny:gpt2"), TEXTS[:5], RESUME_CFG, tmp_path, device="cpu", progress=False, stop_after=3
    )
    assert part.final_dir is None and part.steps == 3 and part.losses == ref.losses[:3]
    torch.manual_seed(12345)
    lm = load_model("tiny:gpt2")
    res = train_causal_lm(lm, TEXTS[:5], RESUME_CFG, tmp_path, device="cpu", val_texts=TEXTS[4:], progress=False)
    assert res.steps == 6 and res.final_dir == tmp_path / "final"
    assert not (tmp_path / "checkpoint").exists(), "the resumable state must go once final/ is complete"
    # a resumed run replays the uninterrupted one's operations on bit-identical inputs (weights, AdamW moments and
    # RNG restored from safetensors, same batches, shapes and thread count): equal bits; the tolerances are slack
    assert max_diff(weights(lm.model), weights(ref_lm.model)) < 1e-6
    assert res.losses == pytest.approx(ref.losses, rel=1e-6, abs=0)
    assert res.val_loss == pytest.approx(ref.val_loss, rel=1e-6)
    got, want = log_without_time(tmp_path / "log.jsonl"), log_without_time(ref_dir / "log.jsonl")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert {k: pytest.approx(v, rel=1e-6) for k, v in g.items()} == w
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl")] == [1, 2, 3, 4, 5, 6, 6]


def test_step_dirs_final_dir_and_skip(uninterrupted, tmp_path, monkeypatch):
    out, res, lm = uninterrupted
    assert res.steps == 6 and len(res.losses) == 6 and res.val_loss is not None and res.seconds > 0
    assert sorted(p.name for p in (out / "steps").iterdir()) == ["2", "4"]
    ids = torch.tensor([tokenize_texts(lm.tokenizer, [TEXTS[2]], 24)[0]])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits
        step_logits = [load_model(str(out / "steps" / s)).model(input_ids=ids).logits for s in ("2", "4")]
        final_logits = load_model(str(res.final_dir)).model(input_ids=ids).logits
    assert not step_logits[0].equal(step_logits[1]) and not step_logits[1].equal(logits)
    assert final_logits.equal(logits)
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(res.final_dir).eval()
    with torch.no_grad():
        assert hf(input_ids=ids).logits.equal(logits)
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in out.rglob("*"))
    # A finished run returns at once (no accelerator, no step) and loads the final weights.
    monkeypatch.setattr(setup_mod, "_make_accelerator", lambda dev: pytest.fail("a finished run was retrained"))
    fresh = load_model("tiny:gpt2")
    again = train_causal_lm(fresh, TEXTS[:5], RESUME_CFG, out, device="cpu", progress=False)
    assert again == res
    with torch.no_grad():
        assert fresh.model(input_ids=ids).logits.equal(logits)
    # ... unless the directory belongs to other texts.
    shutil.copytree(out / "final", tmp_path / "final")
    with pytest.raises(TrainError, match="another configuration or other texts"):
        train_causal_lm(fresh, TEXTS[:4], RESUME_CFG, tmp_path, device="cpu", progress=False)


def test_bad_save_steps_are_rejected(tmp_path):
    cfg = TrainConfig(learning_rate=1e-3, max_steps=2, batch_size=2, max_length=16)
    with pytest.raises(TrainError, match="save_at_steps"):
        train_causal_lm(load_model("tiny:llama"), TEXTS, cfg, tmp_path, device="cpu", save_at_steps=[3])
    with pytest.raises(TrainError, match="no training texts"):
        train_causal_lm(load_model("tiny:llama"), [], cfg, tmp_path, device="cpu")


def test_loss_decreases_when_overfitting_four_texts(tmp_path):
    lm = load_model("tiny:llama")
    cfg = TrainConfig(learning_rate=1e-3, max_steps=30, batch_size=4, max_length=32, scheduler="constant")
    res = train_causal_lm(lm, TEXTS[:4], cfg, tmp_path, device="cpu", progress=False)
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    assert last < first - 0.5, (first, last)
    assert all(math.isfinite(x) for x in res.losses)


def test_half_precision_weights_train_in_fp32_and_come_back_half(tmp_path):
    lm = load_model("tiny:llama")
    lm.model.to(torch.bfloat16)
    before = weights(lm.model)
    cfg = TrainConfig(learning_rate=1e-4, max_steps=2, batch_size=4, max_length=16)
    res = train_causal_lm(lm, TEXTS, cfg, tmp_path, device="cpu", save_at_steps=[1], progress=False)
    assert all(p.dtype == torch.bfloat16 for p in lm.model.parameters())
    assert max_diff(weights(lm.model), before) > 0  # small updates were not rounded away
    from safetensors import safe_open

    for d in (res.final_dir, tmp_path / "steps" / "1"):
        with safe_open(str(d / "model.safetensors"), "pt") as f:
            names = list(f.keys())
            assert {f.get_slice(k).get_dtype() for k in names} == {"BF16"}
