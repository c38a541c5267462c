"""LoRA adapters through peft: wrap a causal LM for training, count the adapter's parameters, load a saved adapter.

A LoRA adapter (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models") leaves each targeted linear
layer's weight ``W`` (out x in) frozen and learns ``A`` (r x in, random at the start) and ``B`` (out x r, zero at the
start), so the layer computes ``W x + (alpha / r) B A x`` and the model starts exactly where the base is. An adapter
folder is peft's format: ``adapter_config.json`` (whose ``base_model_name_or_path`` is the unidetox spec of the base,
e.g. ``packaged:smollm2-135m``) and ``adapter_model.safetensors``; unidetox also writes the tokenizer and a card.

Merging (:func:`merge`, peft's ``merge_and_unload``) adds ``(alpha / r) B A`` into ``W``: the same function up to
float rounding, with the base model's speed and no peft needed to run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from unidetox.errors import UnidetoxError

ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(UnidetoxError, ValueError):
    """An adapter that cannot be built or loaded; the message names the setting or file and the fix."""


def is_adapter_dir(path: str | Path) -> bool:
    """True for a folder holding a peft adapter (``adapter_config.json``) rather than whole weights."""
    return (Path(path).expanduser() / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str:
    """The spec of the base model an adapter folder was trained on (its ``base_model_name_or_path``)."""
    cfg_path = Path(path).expanduser() / ADAPTER_CONFIG
    try:
        base = json.loads(cfg_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise AdapterError(
            f"cannot read {cfg_path}: {e}. Fix: give a folder written by peft's save_pretrained"
        ) from None
    if not isinstance(base, str) or not base:
        raise AdapterError(f"{cfg_path} names no base model (base_model_name_or_path). Fix: set it to the base "
                           "model's spec, Hub id or folder")  # fmt: skip
    return base


def lora_targets(model_type: str, target_modules: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names of the linear layers that get an adapter: `target_modules`, else peft's default for `model_type`
    (GPT-2: c_attn; Falcon: query_key_value; Llama, OPT, Gemma: q_proj, v_proj)."""
    if target_modules:
        return tuple(target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if model_type not in DEFAULTS:
        raise AdapterError(f"peft has no default LoRA layers for model type {model_type!r}. Fix: name them, e.g. "
                           "--set detox.lora.target_modules=[q_proj,v_proj]")  # fmt: skip
    return tuple(DEFAULTS[model_type])


def _in_out(module: torch.nn.Module) -> tuple[int, int] | None:
    """(in, out) features of a linear layer (torch Linear, or GPT-2's Conv1D whose weight is in x out), else None."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None:
        n_in, n_out = module.weight.shape
        return int(n_in), int(n_out)
    return None


def lora_param_count(model: torch.nn.Module, r: int, targets: tuple[str, ...]) -> int:
    """Parameters of a rank-`r` adapter on the linear layers of `model` named `targets` (peft's rule: a module
    whose name is, or ends with ``.``, a target): ``r * (in + out)`` each (A and B, no bias). Works on `meta`."""
    total, hit = 0, set()
    for name, module in model.named_modules():
        match = next((t for t in targets if name == t or name.endswith(f".{t}")), None)
        shape = _in_out(module) if match else None
        if shape is not None:
            total += r * sum(shape)
            hit.add(match)
    missing = [t for t in targets if t not in hit]
    if missing:
        raise AdapterError(f"the model has no linear layer named {missing[0]!r} for LoRA. Fix: name existing layers "
                           "in detox.lora.target_modules (or [] for peft's default)")  # fmt: skip
    return total


def add_lora(model: torch.nn.Module, settings, base_spec: str):
    """`model` with a fresh LoRA adapter of `settings` (:class:`unidetox.config.LoraSettings`) injected in place;
    returns the peft model around it. Only the adapter trains; its weights are fp32 whatever the base's dtype."""
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(model.config.model_type, settings.target_modules)
    lora_param_count(model, settings.r, targets)  # every target exists: a clear error instead of peft's
    config = LoraConfig(task_type="CAUSAL_LM", r=settings.r, lora_alpha=settings.alpha,
                        lora_dropout=settings.dropout, target_modules=list(targets), bias="none")  # fmt: skip
    peft_model = get_peft_model(model, config, autocast_adapter_dtype=True)
    peft_model.peft_config["default"].base_model_name_or_path = base_spec  # what unidetox.models.loading loads it from
    return peft_model


def load_adapter(model: torch.nn.Module, path: str | Path):
    """The peft model of `model` with the adapter saved in `path` injected in place (eval mode, frozen)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(Path(path).expanduser()), is_trainable=False,
                                     autocast_adapter_dtype=True)  # fmt: skip


def merge(peft_model) -> torch.nn.Module:
    """The base model with the adapter added into its weights (``W + (alpha / r) B A``), peft's layers removed."""
    return peft_model.merge_and_unload()


def is_peft_model(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def trainable_count(model: torch.nn.Module) -> int:
    """Parameters that receive gradients (the adapter's under LoRA; every one under full fine-tuning)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
