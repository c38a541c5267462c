"""ToxBlock: the Keras BiLSTM classifier of the PyPI package ``tox-block==0.1.2``, rebuilt in PyTorch from the
package's files (never importing tox_block or TensorFlow): the tokenizer pickle, read through
:mod:`unidetox.safe_pickle` into the stand-ins below, and the HDF5 weights, read with h5py into
:class:`~unidetox.measure.scorers.keras_layers.KerasSequentialNet`."""

from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from unidetox.measure.scorers.base import ScorerError, check_batch_size, check_texts, scorer_device
from unidetox.measure.scorers.keras_layers import KerasSequentialNet, one_cpu_thread
from unidetox.safe_pickle import UnsafePickleError, safe_load
from unidetox.store.run_store import sha256_file

TOXBLOCK_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
TOXBLOCK_VERSION = "0.1.2"
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def keras_text_to_word_sequence(text: str, filters: str = KERAS_FILTERS, lower: bool = True, split: str = " "):
    """Keras ``text_to_word_sequence``: lowercase, map every filter character to `split`, split, drop empties."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class KerasTextTokenizer:
    """Stand-in for ``keras_preprocessing.text.Tokenizer`` as pickled: holds only what ``texts_to_sequences``
    needs and reproduces it (words ranked >= ``num_words`` and unknown words are dropped, or become
    ``oov_token``'s index when one is set)."""

    FIELDS: ClassVar[dict[str, Any]] = {"word_index": None, "num_words": None, "oov_token": None, "lower": True, "filters": KERAS_FILTERS,
              "split": " ", "char_level": False}  # fmt: skip

    def __init__(self, word_index: dict[str, int], **kwargs: Any):
        self.__setstate__({"word_index": word_index, **kwargs})

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("word_index"), dict):
            raise TypeError("a Keras Tokenizer state must be a dict holding a dict 'word_index'")
        for key, default in self.FIELDS.items():
            setattr(self, key, state.get(key, default))
        if not isinstance(self.filters, str) or not isinstance(self.split, str) or not self.split:
            raise ValueError("Keras Tokenizer 'filters' and 'split' must be strings (split non-empty)")
        if self.num_words is not None and not isinstance(self.num_words, int):
            raise ValueError(f"Keras Tokenizer 'num_words' must be an int or None, got {self.num_words!r}")
        bad = next(((w, i) for w, i in self.word_index.items() if not isinstance(w, str) or type(i) is not int), None)
        if bad is not None:
            raise ValueError(f"Keras Tokenizer word_index must map str -> int, found {bad!r}")

    def texts_to_sequences(self, texts: Sequence[str]) -> list[list[int]]:
        """One list of word indices (>= 1) per text, as Keras ``Tokenizer.texts_to_sequences``."""
        index, num_words = self.word_index, self.num_words
        oov = index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for text in texts:
            if self.char_level:
                words = text.lower() if self.lower else text
            else:
                words = keras_text_to_word_sequence(text, self.filters, self.lower, self.split)
            seq = []
            for w in words:
                i = index.get(w)
                if i is not None:
                    if num_words and i >= num_words:
                        if oov is not None:
                            seq.append(oov)
                    else:
                        seq.append(i)
                elif self.oov_token is not None:
                    seq.append(oov)
            out.append(seq)
        return out


def pad_sequences(
    seqs: Sequence[Sequence[int]], maxlen: int, padding: str = "pre", truncating: str = "pre"
) -> np.ndarray:
    """Keras ``pad_sequences`` with value 0: (n, maxlen) int64; 'pre' truncation keeps the last `maxlen` ids."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError("padding and truncating must be 'pre' or 'post'")
    out = np.zeros((len(seqs), maxlen), dtype=np.int64)
    for row, s in enumerate(seqs):
        if not len(s):
            continue
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "pre":
            out[row, maxlen - len(s) :] = s
        else:
            out[row, : len(s)] = s
    return out


class ToxBlockEncoder:
    """Stand-in for tox_block's pickled ``TokenSequencer``: Keras tokenizer + pre-padding to max_sequence_length."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("tokenizer"), KerasTextTokenizer):
            raise TypeError("a TokenSequencer state must be a dict holding a Keras 'tokenizer'")
        self.tokenizer = state["tokenizer"]
        self.max_sequence_length = state.get("max_sequence_length")
        self.max_features = state.get("max_features")
        if not isinstance(self.max_sequence_length, int) or self.max_sequence_length < 1:
            raise ValueError(f"TokenSequencer max_sequence_length must be a positive int: {self.max_sequence_length!r}")

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(n, max_sequence_length) int64 word ids, zero-padded and truncated at the front (Keras defaults)."""
        return pad_sequences(self.tokenizer.texts_to_sequences(texts), self.max_sequence_length)


#: What the tox-block 0.1.2 encoder pickle may name, each mapped to our object (checked against the file).
TOXBLOCK_PICKLE_ALLOWED = {
    ("tox_block.data_processing.preprocessors", "TokenSequencer"): ToxBlockEncoder,
    ("keras_preprocessing.text", "Tokenizer"): KerasTextTokenizer,
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("builtins", "int"): int,
}


def read_keras_h5(path: str | Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The model config (JSON in the file's attrs) and each layer's weights in Keras order (float32 arrays)."""
    import h5py

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ScorerError(f"{path} is not a Keras model file (no model_config / model_weights)")
        config = json.loads(text(f.attrs["model_config"]))
        group = f["model_weights"]
        weights = {}
        for layer in group.attrs["layer_names"]:
            lg = group[text(layer)]
            weights[text(layer)] = [np.asarray(lg[text(w)][()], dtype=np.float32) for w in lg.attrs["weight_names"]]
    return config, weights


class ToxBlockScorer:
    """tox-block's BiLSTM in PyTorch. ``score`` = the raw sigmoid output of label "toxic" (the package's
    ``rescale=False``); ``score_all(texts, rescale=True)`` also reproduces the package's min-max rescaling.
    Unlike the package, empty texts are allowed (they become an all-padding sequence)."""

    name = "toxblock"

    def __init__(
        self,
        encoder: ToxBlockEncoder,
        net: KerasSequentialNet,
        *,
        version: str,
        labels: Sequence[str] = TOXBLOCK_LABELS,
        rescale: Mapping[str, tuple[float, float]] | None = None,
        device: str = "cpu",
        batch_size: int = 64,
    ):
        self.encoder = encoder
        self.device = scorer_device(device)
        self.net = net.to(self.device).eval()
        self.version = version
        self.labels = tuple(labels)
        self.rescale = dict(rescale or {})
        self.batch_size = check_batch_size(batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, max_sequence_length) int64 word ids, as the package's encoder gives them."""
        return self.encoder.transform(check_texts(texts))

    def predict_raw(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 6) float32 sigmoid outputs, one forward pass per batch of `batch_size` padded texts."""
        ids = self.encode(texts)
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        with torch.inference_mode(), one_cpu_thread(self.device):  # small ops: threads only add waiting
            for start in range(0, len(ids), self.batch_size):
                batch = torch.from_numpy(ids[start : start + self.batch_size]).to(self.device)
                out[start : start + len(batch)] = self.net(batch).cpu().numpy()
        return out

    def score_all(self, texts: Sequence[str], *, rescale: bool = False) -> dict[str, np.ndarray]:
        """{label: (n,) float64} for the six labels; `rescale` applies the package's |p - min| / (max - min)."""
        raw = self.predict_raw(texts)
        out = {}
        for j, label in enumerate(self.labels):
            p = raw[:, j]
            if rescale:  # computed in float32, as pandas did on the float32 predictions
                if label not in self.rescale:
                    raise ScorerError(f"no rescaling range for label {label!r}; pass rescale= when building the scorer")
                lo, hi = self.rescale[label]
                p = np.abs((p - np.float32(lo)) / np.float32(hi - lo))
            out[label] = p.astype(np.float64)
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_raw(texts)[:, self.labels.index("toxic")].astype(np.float64)


def toxblock_dir() -> Path:
    """The installed tox_block package directory (found without importing it)."""
    spec = importlib.util.find_spec("tox_block")
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError(
            "the 'toxblock' scorer needs the PyPI package tox-block 0.1.2 (its weights only; TensorFlow is not "
            f"needed): pip install --no-deps tox-block=={TOXBLOCK_VERSION}"
        )
    return Path(spec.submodule_search_locations[0])


def _toxblock_rescale(pkg: Path) -> dict[str, tuple[float, float]]:
    """RESCALE_PROBA from tox_block/config/config.py, read as a literal (the package is not imported)."""
    import ast

    tree = ast.parse((pkg / "config" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RESCALE_PROBA" for t in node.targets):
            return {k: (float(v[0]), float(v[1])) for k, v in ast.literal_eval(node.value).items()}
    raise ScorerError(f"{pkg}/config/config.py defines no RESCALE_PROBA")


def load_toxblock(
    *, device: str = "cpu", batch_size: int = 64, package_dir: str | Path | None = None
) -> ToxBlockScorer:
    """Build the ToxBlock scorer from the installed package files (never imports tox_block or TensorFlow)."""
    pkg = Path(package_dir) if package_dir is not None else toxblock_dir()
    version = (pkg / "VERSION").read_text().strip() if (pkg / "VERSION").exists() else "missing"
    if version != TOXBLOCK_VERSION:
        raise ScorerError(
            f"the toxblock port was checked against tox-block {TOXBLOCK_VERSION}, found {version} in {pkg}: "
            f"pip install --no-deps tox-block=={TOXBLOCK_VERSION}"
        )
    h5 = pkg / "trained_models" / f"lstm_model_{version}.h5"
    pkl = pkg / "trained_models" / f"encoder_{version}.pkl"
    for f in (h5, pkl):
        if not f.exists():
            raise ScorerError(
                f"{f} is missing; reinstall: pip install --no-deps --force-reinstall tox-block=={version}"
            )
    try:
        encoder = safe_load(pkl, TOXBLOCK_PICKLE_ALLOWED)
    except UnsafePickleError as e:
        raise ScorerError(f"refusing the tox-block tokenizer pickle: {e}") from None
    except (ValueError, TypeError) as e:
        raise ScorerError(f"the tox-block tokenizer pickle {pkl} is malformed: {e}") from None
    if not isinstance(encoder, ToxBlockEncoder):
        raise ScorerError(f"{pkl} does not hold a TokenSequencer (got {type(encoder).__name__})")
    config, weights = read_keras_h5(h5)
    net = KerasSequentialNet(config, weights)
    if net.input_length not in (None, encoder.max_sequence_length):
        raise ScorerError(f"model input length {net.input_length} != encoder length {encoder.max_sequence_length}")
    rescale = _toxblock_rescale(pkg)
    if set(rescale) != set(TOXBLOCK_LABELS):
        raise ScorerError(f"tox-block RESCALE_PROBA labels {sorted(rescale)} != {list(TOXBLOCK_LABELS)}")
    return ToxBlockScorer(
        encoder,
        net,
        version=f"tox-block=={version};sha256:{sha256_file(h5)[:12]}",
        rescale=rescale,
        device=device,
        batch_size=batch_size,
    )


__all__ = [
    "KERAS_FILTERS",
    "TOXBLOCK_LABELS",
    "TOXBLOCK_PICKLE_ALLOWED",
    "TOXBLOCK_VERSION",
    "KerasTextTokenizer",
    "ToxBlockEncoder",
    "ToxBlockScorer",
    "keras_text_to_word_sequence",
    "load_toxblock",
    "pad_sequences",
    "read_keras_h5",
    "toxblock_dir",
]
