"""Resumable training checkpoints as safetensors (tensors) + JSON (everything else); never pickle.

A checkpoint is one directory, written whole with `unidetox.store.run_store.atomic_dir` (a kill during the
write leaves the previous checkpoint in place):

- ``model.safetensors``: the weights (`safetensors.torch.save_model`, tied weights stored once);
- ``optimizer.safetensors`` + ``optimizer.json``: `optimizer.state_dict()`;
- ``scheduler.safetensors`` + ``scheduler.json``: `scheduler.state_dict()`;
- ``rng.safetensors`` + ``rng.json``: the torch RNG states of every process (``{rank: {"cpu": ..., "cuda": ...}}``);
- ``trainer_state.json``: step, losses, configuration fingerprint ... (written last).

Nested Python state is split by `flatten_state`: every tensor goes to the safetensors file under a
generated key and is replaced in the JSON skeleton by ``{"__tensor__": key}``; tuples and dicts with
non-string keys get their own markers, so `unflatten_state` rebuilds the state exactly (bit-identical
tensors, same dtypes, same Python types).

>>> tensors, skeleton = flatten_state({"step": 3, "betas": (0.9, 0.999), 0: torch.ones(2)})
>>> unflatten_state(skeleton, tensors)[0]
tensor([1., 1.])
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from unidetox.errors import UnidetoxError
from unidetox.store.run_store import DISK_FIX, atomic_dir

FORMAT = "unidetox-train-checkpoint/1"
STATE_FILE = "trainer_state.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_TENSOR, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"
_MARKERS = (_TENSOR, _TUPLE, _DICT, _FLOAT)


class CheckpointError(UnidetoxError, RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file and the fix."""


# ----------------------------------------------------------------------------- flatten / unflatten


def flatten_state(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Nested state -> (tensors by key, JSON-able skeleton with tensor placeholders).

    Supports dict, list, tuple, str, int, float (incl. nan/inf), bool, None and torch.Tensor;
    anything else raises CheckpointError rather than being stored approximately.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}

    def walk(x: Any, where: str) -> Any:
        if isinstance(x, torch.Tensor):
            if id(x) in seen:  # the same tensor object twice: store once
                return {_TENSOR: seen[id(x)]}
            key = f"t{len(tensors)}"
            seen[id(x)] = key
            tensors[key] = x.detach().to("cpu").contiguous()
            return {_TENSOR: key}
        if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {_FLOAT: repr(x)}  # strict JSON has no nan/inf
        if isinstance(x, tuple):
            return {_TUPLE: [walk(v, f"{where}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not any(k in _MARKERS for k in x):
                return {k: walk(v, f"{where}.{k}") for k, v in x.items()}
            return {_DICT: [[walk(k, where), walk(v, f"{where}[{k!r}]")] for k, v in x.items()]}
        raise CheckpointError(f"cannot store {where} of type {type(x).__name__} in a safetensors+JSON checkpoint")

    skeleton = walk(obj, "state")
    # Distinct tensors that share memory (views) cannot be saved by safetensors: give them their own copy.
    ptrs: set[tuple[int, int]] = set()
    for key, t in tensors.items():
        if t.numel() == 0:
            continue
        ptr = (t.untyped_storage().data_ptr(), t.storage_offset())
        if ptr in ptrs:
            tensors[key] = t.clone()
        ptrs.add(ptr)
    return tensors, skeleton


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if set(skeleton) == {_TENSOR}:
            key = skeleton[_TENSOR]
            if key not in tensors:
                raise CheckpointError(f"checkpoint JSON refers to tensor {key!r} missing from its safetensors file")
            return tensors[key]
        if set(skeleton) == {_TUPLE}:
            return tuple(unflatten_state(v, tensors) for v in skeleton[_TUPLE])
        if set(skeleton) == {_FLOAT}:
            return float(skeleton[_FLOAT])
        if set(skeleton) == {_DICT}:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in skeleton[_DICT]}
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    return skeleton


def save_state(directory: str | Path, name: str, obj: Any) -> None:
    """Write `obj` as ``<name>.safetensors`` + ``<name>.json`` in `directory` (not atomic by itself)."""
    directory = Path(directory)
    tensors, skeleton = flatten_state(obj)
    save_file(tensors, str(directory / f"{name}.safetensors"), metadata={"format": FORMAT})
    (directory / f"{name}.json").write_text(json.dumps(skeleton, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def load_state(directory: str | Path, name: str) -> Any:
    """Read back what `save_state(directory, name, obj)` wrote (tensors on CPU)."""
    directory = Path(directory)
    js, st = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (js, st):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {path.name} is missing; delete the directory")
    tensors = load_file(str(st), device="cpu")
    return unflatten_state(json.loads(js.read_text(encoding="utf-8")), tensors)


# ----------------------------------------------------------------------------- RNG


def capture_rng(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """The torch RNG states training consumes (dropout): CPU, and the CUDA device if `device` is CUDA."""
    state = {"cpu": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    """Inverse of `capture_rng`."""
    torch.set_rng_state(state["cpu"].to(torch.uint8))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8), device)


# ----------------------------------------------------------------------------- whole checkpoints


def refuse_pickle(directory: str | Path) -> None:
    """Raise CheckpointError when `directory` holds pickle files (.bin/.pt/.pkl ...): they are never read."""
    directory = Path(directory)
    if directory.is_file() and directory.name.endswith(PICKLE_SUFFIXES):
        bad = [directory.name]
    elif directory.is_dir():
        bad = sorted(p.name for p in directory.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    else:
        bad = []
    if bad:
        raise CheckpointError(
            f"{directory} holds pickle checkpoint files ({', '.join(bad)}). unidetox never reads pickles, since "
            "unpickling can run arbitrary code; its checkpoints are safetensors + JSON. Delete that directory to "
            "start the run afresh, or convert the state in a trusted environment."
        )


def is_checkpoint(directory: str | Path) -> bool:
    """True when `directory` holds a complete checkpoint (its trainer_state.json is written last)."""
    return (Path(directory) / STATE_FILE).is_file()


def save_checkpoint(
    directory: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: dict[int, dict[str, torch.Tensor]],
    meta: dict,
) -> None:
    """Atomically replace `directory` with the state of model, optimizer, scheduler, RNGs and `meta` (JSON)."""
    try:
        with atomic_dir(directory) as tmp:
            st_save_model(model, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
            save_state(tmp, "optimizer", optimizer.state_dict())
            save_state(tmp, "scheduler", scheduler.state_dict())
            save_state(tmp, "rng", rng)
            (tmp / STATE_FILE).write_text(
                json.dumps({**meta, "format": FORMAT}, indent=1, sort_keys=True) + "\n", encoding="utf-8"
            )
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        raise CheckpointError(
            f"cannot write checkpoint {directory}: {getattr(e, 'strerror', None) or e}. {DISK_FIX}"
        ) from None


def load_checkpoint(
    directory: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[dict, dict[int, dict[str, torch.Tensor]]]:
    """Load a checkpoint into model, optimizer and scheduler in place; return (meta, RNG states by rank)."""
    directory = Path(directory)
    refuse_pickle(directory)
    if not is_checkpoint(directory):
        raise CheckpointError(f"{directory} is not a complete checkpoint ({STATE_FILE} missing); delete it")
    meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{directory}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    device = next(model.parameters()).device
    st_load_model(model, str(directory / "model.safetensors"), strict=True, device=str(device))
    optimizer.load_state_dict(load_state(directory, "optimizer"))
    scheduler.load_state_dict(load_state(directory, "scheduler"))
    rng = load_state(directory, "rng")
    return meta, rng


__all__ = [
    "CheckpointError",
    "capture_rng",
    "flatten_state",
    "is_checkpoint",
    "load_checkpoint",
    "load_state",
    "refuse_pickle",
    "restore_rng",
    "save_checkpoint",
    "save_state",
    "unflatten_state",
]
