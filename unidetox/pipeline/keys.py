"""What a stage's key holds besides its settings verbatim: settings added later (kept out while unset), and the
training and evaluation precision where it departs from what the device used before it was a setting."""

from __future__ import annotations

import torch

from unidetox.config import Profile, to_dict
from unidetox.models.loading import resolve_device
from unidetox.models.precision import default_dtype, inference_dtype


def settings_key(cfg, *added_later: str) -> dict:
    """A settings dataclass as stage config, without the fields in `added_later` while they hold their declared
    default: a setting added after stages were run keeps those stages' keys until someone sets it."""
    import dataclasses

    out = to_dict(cfg)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for name in added_later:
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if not out[name] or out[name] == to_dict(default):
            del out[name]
    return out


def eval_dtype(profile: Profile) -> torch.dtype:
    """The weights' dtype of the evaluate and mmlu stages' models (``eval.inference_dtype`` on the profile's device)."""
    return inference_dtype(profile.eval.inference_dtype, resolve_device(profile.device))


def eval_dtype_key(profile: Profile) -> dict:
    """The evaluation dtype's part of the evaluate/mmlu stage keys: ``{}`` when it is the dtype those stages used
    before the setting existed (fp32 on CPU, bf16 on CUDA), so those runs keep their keys; else
    ``{"inference_dtype": "bf16" | "fp32"}``."""
    dtype = eval_dtype(profile)
    if dtype == default_dtype(resolve_device(profile.device)):
        return {}
    return {"inference_dtype": "bf16" if dtype == torch.bfloat16 else "fp32"}


def train_precision_key(profile: Profile) -> dict:
    """The training precision's part of the training stages' keys (toxic, expert, detox): ``{}`` when it is what
    those stages used before CPUs with native bf16 trained in bf16 (fp32 on CPU, bf16 on CUDA), so those runs keep
    their keys; else ``{"mixed_precision": "bf16" | "fp32"}``."""
    from unidetox.method.train_setup import mixed_precision

    device = resolve_device(profile.device)
    precision = mixed_precision(profile.scale, device)
    if precision == ("bf16" if device.type == "cuda" else "no"):
        return {}
    return {"mixed_precision": "bf16" if precision == "bf16" else "fp32"}
