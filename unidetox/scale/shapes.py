"""The shape (:class:`~unidetox.scale.costs.Arch`) of a model without loading its weights.

Architectures come from the model's own config (tiny, packaged and local models; nothing is loaded but the
config) or, for the paper's Hub models, from the table `HUB_ARCHS` (numbers copied from each model's
``config.json`` on the Hub), so the plan runs offline.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from unidetox.scale import costs as C
from unidetox.scale.errors import PlanError

# config.json of each model on the Hugging Face Hub (main revision): layers, hidden, heads, KV heads, MLP width,
# vocabulary, positions, tied output. Parameter counts follow from the formulas (checked against numel in tests).
HUB_ARCHS = {
    "gpt2-xl": C.Arch("gpt2", 48, 1600, 25, 25, 6400, 50257, 1024, True, "config.json of gpt2-xl (openai-community)"),
    "facebook/opt-6.7b": C.Arch("opt", 32, 4096, 32, 32, 16384, 50272, 2048, True, "config.json of facebook/opt-6.7b"),
    "tiiuae/falcon-7b": C.Arch("falcon", 32, 4544, 71, 1, 18176, 65024, 2048, True, "config.json of tiiuae/falcon-7b"),
    "meta-llama/Llama-2-7b-hf": C.Arch(
        "llama", 32, 4096, 32, 32, 11008, 32000, 4096, False, "config.json of meta-llama/Llama-2-7b-hf"
    ),
}
HUB_ARCHS["openai-community/gpt2-xl"] = HUB_ARCHS["gpt2-xl"]


def arch_from_config(cfg, source: str, numel: int = 0) -> C.Arch:
    """An Arch from a transformers config; families without a formula are counted by instantiating on `meta`
    (or given their `numel` when the model is at hand)."""
    mt = cfg.model_type

    def g(*names, default=None):
        return next((getattr(cfg, n) for n in names if getattr(cfg, n, None)), default)

    layers, hidden = g("num_hidden_layers", "n_layer"), g("hidden_size", "n_embd")
    heads = g("num_attention_heads", "n_head")
    kv = g("num_key_value_heads", "num_kv_heads", default=heads)
    if mt == "falcon" and not cfg.new_decoder_architecture:
        kv = 1 if cfg.multi_query else heads
    inter = g("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", default=4 * hidden)
    positions = g("max_position_embeddings", "n_positions", default=2048)
    tied = bool(getattr(cfg, "tie_word_embeddings", True))
    arch = C.Arch(mt, layers, hidden, heads, kv, inter, cfg.vocab_size, positions, tied, source)
    formula_ok = mt in ("gpt2", "llama", "opt") or (
        mt == "falcon" and not cfg.new_decoder_architecture and not cfg.bias
    )
    if formula_ok and not (mt == "opt" and cfg.word_embed_proj_dim != hidden):
        return arch
    if numel:
        return replace(arch, params=numel)
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return replace(arch, params=sum(p.numel() for p in model.parameters()))


def arch_of(spec: str, *, trust_remote_code: bool = False) -> C.Arch:
    """The shape of model `spec` without loading weights: tiny (built config), packaged/local (config.json),
    the paper's Hub models (`HUB_ARCHS`), other Hub ids (their config from the local cache or the Hub)."""
    if spec in HUB_ARCHS:
        return HUB_ARCHS[spec]
    return arch_from_config(*_config_of(spec, trust_remote_code))


def _config_of(spec: str, trust_remote_code: bool):
    """(transformers config of `spec`, where it comes from), without loading weights."""
    from unidetox.models import loading as M
    from unidetox.models.folder import check_config
    from unidetox.models.tiny import TINY_SPECS, tiny_config

    if M.is_tiny(spec) or spec.startswith("tiny:"):
        kind = spec.split(":", 1)[1]
        if spec not in TINY_SPECS:
            raise PlanError(f"unknown tiny model {spec!r}; known: {', '.join(TINY_SPECS)}")
        return tiny_config(kind), f"built in code ({spec})"
    if spec.startswith("packaged:"):
        try:
            return M.packaged_config(spec.split(":", 1)[1]), f"GGUF metadata of {spec}"
        except M.ModelLoadError as e:
            raise PlanError(str(e)) from None
    from transformers import AutoConfig

    try:
        path = M.resolve_spec(spec)
        if Path(path).is_dir():  # a damaged local config.json is the folder's problem, not the Hub's
            check_config(Path(path))
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, M.ModelLoadError) as e:
        raise PlanError(
            f"the shape of {spec!r} is not known offline ({M.hub_error(spec, e) if isinstance(e, OSError) else e}); "
            f"the plan knows {', '.join(sorted(HUB_ARCHS))}, the tiny and packaged models and local directories"
        ) from None
    return cfg, f"config.json in {path}" if Path(path).is_dir() else f"config of {spec} (Hub cache)"


def lora_params_of(spec: str, arch: C.Arch, lora, *, trust_remote_code: bool = False) -> int:
    """Parameters of the LoRA adapter `lora` (:class:`unidetox.config.LoraSettings`) on `spec` (shape `arch`):
    from the formula of :func:`unidetox.scale.costs.lora_params` where the family has one, else counted on the
    model instantiated on the `meta` device (no memory)."""
    from unidetox.models.adapters import lora_param_count, lora_targets

    targets = lora_targets(arch.family, lora.target_modules)
    if C.linear_shapes(arch):
        try:
            return C.lora_params(arch, lora.r, targets)
        except KeyError as e:
            raise PlanError(f"{spec} has no linear layer named {e.args[0]!r} for LoRA. Fix: name existing layers in "
                            "detox.lora.target_modules (or [] for peft's default)") from None  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_config_of(spec, trust_remote_code)[0])
    return lora_param_count(model, lora.r, targets)


__all__ = ["HUB_ARCHS", "arch_from_config", "arch_of", "lora_params_of"]
