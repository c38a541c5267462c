"""Scale-out settings on CPU: gradient checkpointing changes no number, the shipped accelerate configurations load,
the settings are validated, and every training run prints (and enforces) its memory plan."""

from __future__ import annotations

import copy

import pytest
import torch
from numerics import assert_same_training, sgd_instead_of_adamw

from unidetox.config import ConfigError, ScaleConfig, TrainConfig
from unidetox.config.loader import load_profile
from unidetox.method.batches import pad_batch, token_nll
from unidetox.method.train import train_causal_lm
from unidetox.method.train_setup import mixed_precision, set_checkpointing, tokenize_texts
from unidetox.models.loading import load_model
from unidetox.scale.accelerate_configs import CONFIGS, accelerate_config
from unidetox.scale.errors import PlanError
from unidetox.scale.hardware import Hardware

TEXTS = ["the cat sat on the mat", "a dog ran far away from home today", "hello", "one two three four five six"]


def _loss_and_grads(model, ids, mask, seed):
    torch.manual_seed(seed)  # same dropout masks in both runs
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    s, n = token_nll(logits, ids, mask)
    (s / n).backward()
    return float(s.detach() / n), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.numerics
@pytest.mark.parametrize("spec", ["tiny:gpt2", "tiny:llama", "tiny:opt", "tiny:falcon"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(spec, one_torch_thread):
    """Non-reentrant checkpointing recomputes each layer's forward from its saved input with the saved RNG state, so
    the recomputed activations are the same floats and backward runs the same kernels on them. We still allow
    float32 round-off (rtol 1e-5, atol 1e-7 on gradients of size ~1e-2), in case a kernel picks another reduction
    order for the recomputation; dropout is on (train mode), so equal masks are part of what is checked."""
    lm = load_model(spec)
    plain = lm.model.train()
    ckpt = copy.deepcopy(plain)
    set_checkpointing(ckpt, True)
    assert ckpt.is_activation_checkpointing and not plain.is_activation_checkpointing
    ids, mask = pad_batch(tokenize_texts(lm.tokenizer, TEXTS, 16), lm.tokenizer.pad_token_id)
    loss_a, grads_a = _loss_and_grads(plain, ids, mask, seed=7)
    loss_b, grads_b = _loss_and_grads(ckpt, ids, mask, seed=7)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for k in grads_a:
        torch.testing.assert_close(grads_b[k], grads_a[k], rtol=1e-5, atol=1e-7, msg=k)


@pytest.mark.numerics
def test_training_with_gradient_checkpointing_equals_training_without(tmp_path, capsys, one_torch_thread, monkeypatch):
    """3 steps of the training loop with and without checkpointing. The recomputed forward should give the same
    floats (see above), but the comparison must hold on any CPU even if a kernel reorders a sum: hence SGD
    (:func:`sgd_instead_of_adamw`), lr 1, losses within rel 1e-5 and weights within :func:`assert_same_training`."""
    monkeypatch.setattr(torch.optim, "AdamW", sgd_instead_of_adamw)
    cfg = TrainConfig(learning_rate=1.0, max_steps=3, batch_size=2, max_length=16, seed=3, log_every=1)
    runs = {}
    for gc in (False, True):
        lm = load_model("tiny:gpt2")
        res = train_causal_lm(lm, TEXTS, cfg, tmp_path / str(gc), device="cpu", progress=False,
                              scale=ScaleConfig(gradient_checkpointing=gc))  # fmt: skip
        assert not lm.model.is_activation_checkpointing  # switched off again for evaluation
        runs[gc] = (res.losses, {k: v.clone() for k, v in lm.model.state_dict().items()})
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-5)
    start = {k: v.clone() for k, v in load_model("tiny:gpt2").model.state_dict().items()}
    assert_same_training(runs[False][1], runs[True][1], start, steps=3)
    out = capsys.readouterr().out
    assert out.count("plan: train tiny:gpt2") == 2 and "GiB per device" in out


def test_training_refuses_a_run_that_cannot_fit(tmp_path, monkeypatch):
    from unidetox.scale import costs as C
    from unidetox.scale import hardware as HW

    small = C.GPU("toy-GPU", 100, 0.03, 1.0, "test")  # 31 MiB: the tiny GPT-2 needs ~43 MiB, ~23 MiB on 2 GPUs
    monkeypatch.setattr(HW, "runtime_hardware", lambda acc: Hardware(small, small.memory_gib * C.GIB))
    cfg = TrainConfig(learning_rate=1e-3, max_steps=1, batch_size=2, max_length=16)
    lm = load_model("tiny:gpt2")
    with pytest.raises(PlanError, match=r"would run out of memory.*Fix: shard it over \d+ GPUs.*accelerate-config"):
        train_causal_lm(lm, TEXTS, cfg, tmp_path / "a", device="cpu", progress=False)
    assert not (tmp_path / "a").exists()  # refused before anything was written
    res = train_causal_lm(lm, TEXTS, cfg, tmp_path / "b", device="cpu", progress=False,
                          scale=ScaleConfig(memory_check=False))  # fmt: skip
    assert res.steps == 1


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = accelerate_config(name)
    assert path.is_file()
    cfg = load_config_from_file(str(path))
    expected = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}[name]
    assert str(cfg.distributed_type).split(".")[-1] == expected
    assert cfg.num_machines == 1 and not cfg.use_cpu
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
        assert cfg.deepspeed_config["gradient_clipping"] == 1.0  # the training loop's own clipping norm


def test_accelerate_config_command_prints_the_path(capsys):
    from unidetox.cli import run

    assert run(["accelerate-config", "fsdp"]) == 0
    assert capsys.readouterr().out.strip() == str(accelerate_config("fsdp"))
    with pytest.raises(ValueError, match="shipped: ddp, fsdp, zero2, zero3"):
        accelerate_config("zero1")


def test_scale_settings_are_typed_and_checked():
    p = load_profile("tiny", ["scale.gradient_checkpointing=true", "scale.mixed_precision=bf16"])
    assert p.scale == ScaleConfig(gradient_checkpointing=True, mixed_precision="bf16")
    with pytest.raises(ConfigError, match="scale.mixed_precision must be auto, bf16 or fp32, not 'fp16'"):
        load_profile("tiny", ["scale.mixed_precision=fp16"])
    with pytest.raises(ConfigError, match="scale.gradient_checkpointing must be true or false"):
        load_profile("tiny", ["scale.gradient_checkpointing=3"])
    with pytest.raises(ConfigError, match="did you mean 'gradient_checkpointing'"):
        load_profile("tiny", ["scale.gradient_checkpoint=true"])
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert mixed_precision(ScaleConfig(), cuda) == "bf16"
    assert mixed_precision(ScaleConfig(mixed_precision="fp32"), cuda) == "no"
    assert mixed_precision(ScaleConfig(mixed_precision="bf16"), cpu) == "bf16"


def test_scale_settings_are_not_part_of_stage_keys(tmp_path, capsys, one_torch_thread):
    """Gradient checkpointing and fp32 precision on a CPU (the tiny profile's own) change no result beyond rounding: a
    finished stage is reused across them. (A precision that departs from the device's former default is keyed:
    tests/test_train_precision.py.)"""
    from unidetox import pipeline as P

    a = load_profile("tiny", [f"runs_dir={tmp_path}", "toxic.train.max_steps=1"])
    b = load_profile("tiny", [f"runs_dir={tmp_path}", "toxic.train.max_steps=1", "scale.gradient_checkpointing=true",
                              "scale.mixed_precision=fp32"])  # fmt: skip
    first = P.toxic_model(a, quiet=True)
    capsys.readouterr()
    again = P.toxic_model(b, quiet=True)
    assert again.key == first.key and "toxic-model: reusing" in capsys.readouterr().out


TRAIN_SCRIPT = """
import sys
import torch
from unidetox.config import ScaleConfig, TrainConfig
from unidetox.models.loading import load_model
from unidetox.method.train import train_causal_lm
torch.optim.AdamW = lambda groups, lr, **_: torch.optim.SGD(groups, lr=lr)  # see sgd_instead_of_adamw
texts = ["the cat sat on the mat", "a dog ran far away from home today", "hello", "one two three four five six",
         "seven eight", "nine ten eleven twelve", "the end", "a b c d e f g"]
cfg = TrainConfig(learning_rate=1.0, max_steps=3, batch_size=4, max_length=16, seed=3, log_every=1)
train_causal_lm(load_model("tiny:llama"), texts, cfg, sys.argv[1], device="cpu", progress=False,
                scale=ScaleConfig(gradient_checkpointing=sys.argv[2] == "1", mixed_precision="fp32"))
"""


@pytest.mark.numerics
def test_two_process_training_with_checkpointing_equals_one_plain_process(tmp_path):
    """torchrun, 2 CPU processes (gloo DDP), gradient checkpointing on; against one process without it, 3 steps.

    Each process pads its half of the batch to its own length and the all-reduce adds the halves' gradients: the
    same sums in other orders. With AdamW a gradient entry near zero can flip sign and move its weight by ~2 lr (the
    test failed so on an Intel Xeon), so the optimizer is SGD here (:func:`sgd_instead_of_adamw`; DDP changes the
    gradients only, what the optimizer does with them is per process), with lr 1 so that the weights move well
    beyond round-off (the gradient is clipped to norm 1). Compared: the loss of every step, a sum of <= 64 positive
    token NLLs, within rel 1e-5 (a reordered sum of n positive terms differs by <= n U = 3.8e-6 of it), and the
    weights within :func:`assert_same_training`'s round-off."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    two = subprocess.run([torchrun, "--nproc_per_node", "2", str(script), str(tmp_path / "two"), "1"], env=env,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 x CPU (ddp)" in two.stdout and two.stdout.count("plan: train tiny:llama") == 1  # main process only
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "0"], env=env, capture_output=True,
                         text=True, timeout=600, check=False)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    losses = {
        n: json.loads((tmp_path / n / "final" / "train_result.json").read_text())["losses"] for n in ("one", "two")
    }
    assert len(losses["one"]) == 3 and losses["two"] == pytest.approx(losses["one"], rel=1e-5)
    assert losses["one"][-1] < losses["one"][0] - 0.1  # the steps really trained
    start = {k: v.clone() for k, v in load_model("tiny:llama").model.state_dict().items()}
    a = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    assert_same_training(a, b, start, steps=3)
