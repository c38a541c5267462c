"""The in-place KV cache gives bit-identical scores, keys and values to transformers' concatenating cache.

Exact on any CPU: attention reads the same key and value numbers in the same shapes (only their strides differ: a
view of a larger buffer), so its kernels reduce in the same order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from unidetox.method import sampling
from unidetox.method.kvcache import reserve
from unidetox.method.sampling import CausalLMSource


def _scores(model, enc, steps: int) -> list[torch.Tensor]:
    src = CausalLMSource(model)
    out = [src.start(enc.input_ids, enc.attention_mask, repeats=2)]
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        out.append(src.step(torch.randint(3, 60, (out[-1].shape[0],), generator=g)))
    return out


@pytest.mark.numerics
@pytest.mark.parametrize("spec", ["tiny_gpt2", "tiny_llama"])
def test_decoding_scores_equal_the_concatenating_cache(spec, request, monkeypatch):
    lm = request.getfixturevalue(spec)
    enc = lm.tokenizer(["a longer prompt here", "hi"], padding=True, padding_side="left", return_tensors="pt")
    steps = 40  # beyond the 32 positions reserved at first: the buffers grow once
    fast = _scores(lm.model, enc, steps)
    monkeypatch.setattr(sampling, "reserve", lambda cache: 0)  # the old path: DynamicLayer.update concatenates
    slow = _scores(lm.model, enc, steps)
    assert len(fast) == len(slow) == steps + 1
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)


def _layers(kind, **kw):
    return kind(**kw), kind(**kw)


@pytest.mark.parametrize("kind, kw", [(DynamicLayer, {}), (DynamicSlidingWindowLayer, {"sliding_window": 7})])
def test_layer_updates_equal_the_class_update(kind, kw):
    """Prefill 3 positions, then 6 single-token steps (a window of 7 is crossed at step 4, and the layer falls back)."""
    g = torch.Generator().manual_seed(1)
    fast, ref = _layers(kind, **kw)
    k, v = torch.randn(2, 3, 3, 4, generator=g), torch.randn(2, 3, 3, 4, generator=g)
    fast.update(k, v)
    ref.update(k, v)
    assert reserve(SimpleNamespace(layers=[fast]), room=2) == 1
    for _ in range(6):
        k, v = torch.randn(2, 3, 1, 4, generator=g), torch.randn(2, 3, 1, 4, generator=g)
        got, want = fast.update(k, v), ref.update(k, v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert torch.equal(fast.keys, ref.keys) and torch.equal(fast.values, ref.values)
        assert fast.get_seq_length() == ref.get_seq_length()
        assert fast.get_mask_sizes(1) == ref.get_mask_sizes(1)


def test_replaced_tensors_fall_back_to_the_class_update():
    g = torch.Generator().manual_seed(2)
    fast, ref = _layers(DynamicLayer)
    k, v = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    fast.update(k, v)
    ref.update(k, v)
    reserve(SimpleNamespace(layers=[fast]))
    k, v = torch.randn(3, 2, 1, 4, generator=g), torch.randn(3, 2, 1, 4, generator=g)
    fast.update(k, v)
    ref.update(k, v)
    keep = torch.tensor([2, 0])
    fast.batch_select_indices(keep)
    ref.batch_select_indices(keep)
    k, v = torch.randn(2, 2, 1, 4, generator=g), torch.randn(2, 2, 1, 4, generator=g)
    got, want = fast.update(k, v), ref.update(k, v)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert "update" not in vars(fast)  # the class's own update from now on


def test_uninitialised_and_recording_layers_are_left_alone():
    empty = DynamicLayer()
    recording = DynamicSlidingWindowLayer(sliding_window=8)
    recording.activate_past_recording()
    recording.update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    full = DynamicSlidingWindowLayer(sliding_window=3)
    full.update(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2))
    assert reserve(SimpleNamespace(layers=[empty, recording, full])) == 0
    assert reserve(object()) == 0
