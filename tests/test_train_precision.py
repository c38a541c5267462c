"""scale.mixed_precision: bf16 autocast training on CPUs that compute bf16 natively, keyed where it departs from
what the device used before (fp32 on CPU, bf16 on CUDA)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from unidetox.config import ScaleConfig, TrainConfig
from unidetox.config.loader import load_profile
from unidetox.method.train import train_causal_lm
from unidetox.method.train_setup import mixed_precision
from unidetox.models.loading import load_model
from unidetox.pipeline import keys as rt
from unidetox.pipeline.detox import detox_stage
from unidetox.pipeline.toxic import finetune_stage
from unidetox.store.registry import EXPERT_MODEL, TOXIC_MODEL

# (toxic-model, expert-model, detox) keys computed by the code before CPUs trained in bf16 (main at 22ea11d):
# fp32 runs on a CPU must keep them
KEYS_BEFORE = {
    ("tiny", "tiny:llama", 1e-3, (2, 4)): ("42c74a342c47ae67", "45a266f2f15c7019", "fc47e2df3741aee2"),
    ("cpu", "packaged:smollm2-135m", 5e-5, (8, 16)): ("9c1c659bb27a466c", "b7018644dd4eb6e5", "e7ebea5bce73599f"),
}
BF16_CPU = {"avx512f", "avx512_bf16"}


def keys(profile, target, lr, steps) -> tuple[str, str, str]:
    return (finetune_stage(profile, TOXIC_MODEL).key, finetune_stage(profile, EXPERT_MODEL).key,
            detox_stage(profile, target, lr, method="unidetox", steps=steps).key)  # fmt: skip


def test_auto_is_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: {"avx2", "avx512f"})
    assert mixed_precision(ScaleConfig(), cpu) == "no" and mixed_precision(ScaleConfig(), cuda) == "bf16"
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda flag=flag: {"avx2", flag})
        assert mixed_precision(ScaleConfig(), cpu) == "bf16"
        assert mixed_precision(ScaleConfig(mixed_precision="fp32"), cpu) == "no"


@pytest.mark.parametrize("case", list(KEYS_BEFORE))
def test_fp32_training_keeps_its_keys_and_bf16_gets_its_own(case, monkeypatch):
    name, *args = case
    monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: BF16_CPU)
    fp32 = keys(load_profile(name, ["scale.mixed_precision=fp32"]), *args)
    assert fp32 == KEYS_BEFORE[case], "the stage keys of existing fp32 training runs changed"
    bf16 = keys(load_profile(name, ["scale.mixed_precision=bf16"]), *args)
    assert all(a != b for a, b in zip(bf16, fp32))
    if name == "tiny":  # the tiny profile pins fp32: its random models' numbers are pinned by the tests
        assert load_profile(name).scale.mixed_precision == "fp32" and keys(load_profile(name), *args) == fp32
    else:  # auto: bf16 (and keyed so) on a CPU with avx512_bf16; without it, fp32 and the old keys
        assert keys(load_profile(name), *args) == bf16
        monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: {"avx512f"})
        assert keys(load_profile(name), *args) == fp32


def test_the_key_names_the_precision_only_where_it_differs_from_the_device_default(monkeypatch):
    monkeypatch.setattr("unidetox.models.precision.cpu_flags", lambda: BF16_CPU)
    cpu = load_profile("cpu")
    fp32 = dataclasses.replace(cpu, scale=ScaleConfig(mixed_precision="fp32"))
    assert rt.train_precision_key(cpu) == {"mixed_precision": "bf16"} and rt.train_precision_key(fp32) == {}
    monkeypatch.setattr(rt, "resolve_device", lambda device: torch.device("cuda"))  # runs on CUDA were bf16
    assert rt.train_precision_key(cpu) == {} and rt.train_precision_key(fp32) == {"mixed_precision": "fp32"}


@pytest.mark.numerics
def test_bf16_autocast_training_on_cpu_follows_fp32_and_keeps_fp32_weights(tmp_path):
    """tiny:llama, 4 steps: the bf16-autocast losses track fp32's within 2% (bf16 keeps 8 significant bits) without
    being the same numbers, and the trained weights are fp32."""
    texts = [f"text number {i} about the weather and the sea" for i in range(16)]
    cfg = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=4, max_length=16, seed=1, checkpoint_every=0)
    losses = {}
    for precision in ("fp32", "bf16"):
        lm = load_model("tiny:llama")
        res = train_causal_lm(lm, texts, cfg, tmp_path / precision, device="cpu", progress=False,
                              scale=ScaleConfig(mixed_precision=precision))  # fmt: skip
        assert all(p.dtype == torch.float32 for p in lm.model.parameters())
        losses[precision] = np.array(res.losses)
    assert len(losses["bf16"]) == 4 and not np.array_equal(losses["bf16"], losses["fp32"])
    # two computations by design: bf16 rounds every matmul input to 8 bits (2^-9 relative), so logits, the loss
    # (~5.5 nats) and its gradients move by a few 2^-9 relative, and AdamW's sign-like steps then differ where a
    # gradient is near zero; 2% (5x 2^-8) bounds the loss of 4 steps, while a bug (fp32 weights not trained, a
    # wrong loss scale) moves it by far more
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=0.02)
