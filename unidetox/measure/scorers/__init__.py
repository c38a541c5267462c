"""Toxicity scorers behind one interface: ``load_scorer(spec).score(texts) -> P(toxic)``.

Specs (``EvalConfig.scorer``):

- ``hf:<hub id or local dir>[#<label>]``: any Hugging Face ``AutoModelForSequenceClassification`` (safetensors
  only). The paper profile uses ``hf:unitary/toxic-bert`` (Detoxify ``original``). Which output is "toxic" is
  decided by :func:`toxic_label_index`; sigmoid is used when ``config.problem_type ==
  "multi_label_classification"`` (or the model has a single output), softmax over the labels otherwise.
- ``tiny``: a tiny random GPT-2 sequence classifier (fixed seed, real GPT-2 tokenizer) on the same ``hf`` code
  path, for tests and CI; its scores mean nothing but are deterministic and spread over (0, 1).
- ``detoxify``: ``detoxify.Detoxify("original")`` when that package and its (downloaded) weights are available.
- ``hatesonar``: offline; TF-IDF + logistic regression (ONNX) from the PyPI package ``hatesonar==0.1.0``, a
  second scorer sharing no model or data with the others (:mod:`unidetox.measure.scorers.hatesonar`).
- ``toxblock``: offline; a PyTorch port of the Keras BiLSTM classifier shipped in the PyPI package
  ``tox-block==0.1.2`` (weights read with h5py, tokenizer pickle read through :mod:`unidetox.safe_pickle`).

Every scorer has ``name`` and ``version`` (package version or content hash) to record with its results, and
``score(texts)`` returning float64 probabilities in [0, 1] of shape ``(len(texts),)``, computed in batches.

>>> s = load_scorer("tiny")
>>> s.score(["hello", ""]).shape
(2,)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from unidetox.errors import UnidetoxError
from unidetox.safe_pickle import UnsafePickleError, safe_load
from unidetox.store import sha256_file

#: Label names (case-insensitive, in this order of preference) that :func:`toxic_label_index` takes as "toxic".
TOXIC_LABEL_NAMES = ("toxic", "toxicity", "hate")
TOXBLOCK_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
TOXBLOCK_VERSION = "0.1.2"
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


class ScorerError(UnidetoxError, RuntimeError):
    """A scorer that cannot be built or used; the message says what is wrong and how to fix it."""


@runtime_checkable
class ToxicityScorer(Protocol):
    """Scores texts with the probability that they are toxic."""

    name: str  # e.g. "toxblock", "hf:unitary/toxic-bert"
    version: str  # package/model version or content hash, recorded with every result

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """float64 probabilities in [0, 1], shape (len(texts),)."""
        ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise ScorerError("score() takes a sequence of strings, got a single string; wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ScorerError(f"score() takes strings only; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScorerError(f"device {device!r} was asked for but no CUDA GPU is visible; use device='cpu'")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ScorerError(f"invalid device {device!r}: {e}") from None


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ScorerError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


# ============================================================================ Hugging Face classifiers


def toxic_label_index(id2label: Mapping[int, str], label: str | None = None) -> int:
    """The output index that means "toxic".

    Rule: an explicit `label` (the ``#<label>`` spec suffix) must equal one label name (case-insensitive) or be
    an output index. Otherwise the first of ``TOXIC_LABEL_NAMES`` ("toxic", "toxicity", "hate") found among the
    names (case-insensitive, exact match, so "non-toxic" never matches); else ``LABEL_1`` for an unnamed binary
    head; else index 0 for a single-output head. Anything else is ambiguous and raises :class:`ScorerError`.
    """
    names = {int(i): str(n) for i, n in id2label.items()}
    lower = {n.lower(): i for i, n in sorted(names.items())}
    shown = ", ".join(f"{i}:{n!r}" for i, n in sorted(names.items()))
    if label is not None:
        if label.lower() in lower:
            return lower[label.lower()]
        if label.isdigit() and int(label) in names:
            return int(label)
        raise ScorerError(f"label {label!r} is not one of the model's labels ({shown})")
    for want in TOXIC_LABEL_NAMES:
        if want in lower:
            return lower[want]
    if len(names) == 2 and "label_1" in lower:
        return lower["label_1"]
    if len(names) == 1:
        return next(iter(names))
    raise ScorerError(
        f"cannot tell which output is toxic among the labels ({shown}); name it in the spec, e.g. 'hf:<model>#<label>'"
    )


def hf_max_length(tokenizer: Any, config: Any) -> int:
    """Longest input (tokens) the model accepts: min of the tokenizer's and the config's limits (512 if none)."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
            break
    return min(limits) if limits else 512


def _content_hash(model: torch.nn.Module, tokenizer: Any, extra: str = "") -> str:
    """sha256 (16 hex) over the weights (names, dtypes, shapes, bytes), the tokenizer vocabulary and `extra`."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    h.update(json.dumps(vocab, ensure_ascii=False).encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


class HFScorer:
    """A sequence classifier + tokenizer scoring P(label) per text (the model is kept in fp32, eval mode).

    Inputs are truncated to :func:`hf_max_length` tokens; a text that tokenizes to nothing (e.g. "" with GPT-2)
    is scored as the single token BOS/EOS/UNK. Texts are sorted by length into batches of `batch_size`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        label: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        version: str | None = None,
    ):
        cfg = model.config
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ScorerError(f"{name}: the tokenizer has neither a pad nor an EOS token, so it cannot batch")
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = tokenizer.pad_token_id
        id2label = cfg.id2label or {i: f"LABEL_{i}" for i in range(cfg.num_labels)}
        self.label_index = toxic_label_index(id2label, label)
        self.label_name = str(id2label[self.label_index])
        self.use_sigmoid = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
        self.max_length = hf_max_length(tokenizer, cfg)
        self.batch_size = _check_batch_size(batch_size)
        self.device = _device(device)
        self.name = name
        self.version = version or "sha256:" + _content_hash(
            model, tokenizer, f"{self.label_index}|{self.use_sigmoid}|{self.max_length}"
        )
        self.tokenizer = tokenizer
        self.model = model.float().to(self.device).eval()
        for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id):
            if tid is not None:
                self._filler = int(tid)
                break
        else:
            self._filler = 0

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids, attention mask (and token types) padded to the batch's longest text, shape (b, L)."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = [list(x) or [self._filler] for x in enc["input_ids"]]
        width = max(len(x) for x in ids)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"

        def pad(rows: list[list[int]], value: int) -> torch.Tensor:
            out = [([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows]
            return torch.tensor(out, dtype=torch.long, device=self.device)

        batch = {
            "input_ids": pad(ids, self.tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(x) for x in ids], 0),
        }
        if "token_type_ids" in enc:
            types = [list(t) or [0] for t in enc["token_type_ids"]]
            batch["token_type_ids"] = pad(types, getattr(self.tokenizer, "pad_token_type_id", 0))
        return batch

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """(b, num_labels) logits -> (b,) float64 P(toxic label): sigmoid or softmax as the model was trained."""
        logits = logits.double()
        if self.use_sigmoid:
            return torch.sigmoid(logits[:, self.label_index]).cpu().numpy()
        return torch.softmax(logits, dim=-1)[:, self.label_index].cpu().numpy()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.empty(len(texts), dtype=np.float64)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = self.model(**self._encode([texts[i] for i in idx])).logits
                out[idx] = self.probabilities(logits)
        return out


def _load_hf(target: str, label: str | None, device: str, batch_size: int, trust_remote_code: bool) -> HFScorer:
    if not target:
        raise ScorerError("empty hf: spec; use hf:<hub id or local dir>, e.g. hf:unitary/toxic-bert")
    local = Path(target).expanduser()
    if target.startswith(("/", ".", "~")) or local.is_dir():
        if not local.is_dir():
            raise ScorerError(f"hf:{target}: no such directory")
        files = [p.name for p in local.iterdir()]
        if not any(f.endswith(".safetensors") for f in files):
            raise ScorerError(
                f"{local} holds no .safetensors weights (files: {', '.join(sorted(files)) or 'none'}); unidetox loads "
                "safetensors only, since pickle weights can run arbitrary code. Convert once in a trusted environment "
                "with `model.save_pretrained(dir, safe_serialization=True)`."
            )
        path = str(local)
    else:
        path = target
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=torch.float32
        )
    except (OSError, ValueError) as e:
        from unidetox.hub import explain, hub_problem

        if path == target and hub_problem(e) != "other":  # a Hub id: gated, unknown or offline, said as such
            raise ScorerError(
                f"cannot load the classifier {target!r}: {explain('model', target, e)} Offline, use a local directory "
                "(hf:<dir>) or the offline scorer 'toxblock'."
            ) from None
        raise ScorerError(
            f"cannot load the classifier {target!r} ({type(e).__name__}: {e}). It must be a local directory written "
            "by save_pretrained (safetensors) or a Hub id reachable now; offline, download it elsewhere, copy the "
            "directory here and use hf:<dir>, or use the offline scorer 'toxblock'."
        ) from None
    name = f"hf:{target}" + (f"#{label}" if label is not None else "")
    return HFScorer(model, tokenizer, name=name, label=label, device=device, batch_size=batch_size)


def tiny_classifier() -> tuple[torch.nn.Module, Any]:
    """A tiny random GPT-2 sequence classifier (seed 0; one multi-label output named "toxic") and its tokenizer.

    The score head is initialised wider (std 0.5) than GPT-2's default so that probabilities spread over (0, 1).
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from unidetox.models import tiny_tokenizer

    tok = tiny_tokenizer("gpt2")
    cfg = GPT2Config(
        vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=2, n_head=2, num_labels=1,
        problem_type="multi_label_classification", id2label={0: "toxic"}, label2id={"toxic": 0},
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2ForSequenceClassification(cfg)
        torch.nn.init.normal_(model.score.weight, std=0.5)
    return model.eval(), tok


# ============================================================================ Detoxify


class DetoxifyScorer:
    """``detoxify.Detoxify(<variant>)``; the score is its "toxicity" output."""

    def __init__(self, model: Any, *, variant: str, version: str, batch_size: int = 64):
        self.model = model
        self.name = "detoxify" if variant == "original" else f"detoxify:{variant}"
        self.version = version
        self.batch_size = _check_batch_size(batch_size)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            pred = self.model.predict(batch)
            if "toxicity" not in pred:
                raise ScorerError(f"Detoxify returned no 'toxicity' output (keys: {sorted(pred)})")
            out[start : start + len(batch)] = np.asarray(pred["toxicity"], dtype=np.float64).reshape(-1)
        return out


def _load_detoxify(variant: str, device: str, batch_size: int) -> DetoxifyScorer:
    dev = _device(device)
    try:
        import detoxify
    except ImportError as e:
        raise ScorerError(
            "the 'detoxify' scorer needs the Detoxify package: pip install detoxify (its weights are downloaded from "
            "GitHub on first use, so they need network once). Offline, use 'toxblock' or 'hf:<local dir>'. "
            f"({type(e).__name__}: {e})"
        ) from None
    try:
        model = detoxify.Detoxify(variant, device=str(dev))
    except Exception as e:  # noqa: BLE001 - any failure here means the weights are not usable
        raise ScorerError(
            f"Detoxify({variant!r}) could not load its weights ({type(e).__name__}: {e}); they are downloaded "
            "from GitHub on first use and need network (then cached by torch.hub). Offline, use 'toxblock' or "
            "'hf:<local dir>'."
        ) from None
    try:
        ver = importlib.metadata.version("detoxify")
    except importlib.metadata.PackageNotFoundError:
        ver = getattr(detoxify, "__version__", "unknown")
    return DetoxifyScorer(model, variant=variant, version=f"detoxify=={ver}:{variant}", batch_size=batch_size)


# ============================================================================ ToxBlock (Keras BiLSTM port)


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


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2 (tf.keras <= 2.x) ``hard_sigmoid``: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


KERAS_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hard_sigmoid": hard_sigmoid,
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in KERAS_ACTIVATIONS:
        raise ScorerError(f"Keras activation {name!r} is not ported (known: {', '.join(KERAS_ACTIVATIONS)})")
    return KERAS_ACTIVATIONS[name]


def keras_lstm(
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    activation: str = "tanh",
    recurrent_activation: str = "hard_sigmoid",
) -> torch.Tensor:
    """D independent Keras LSTMs run in lockstep from zero state (D=2: the two directions of a Bidirectional).

    Shapes: x (D, B, T, in), kernel (D, in, 4H), recurrent_kernel (D, H, 4H), bias (D, 4H) -> outputs (D, B, T, H).
    Keras gate order i, f, c, o: ``z = x W + h U + b``; i, f, o = rec_act(z_i, z_f, z_o); c = f c + i act(z_c);
    h = o act(c).
    """
    act, rec = _activation(activation), _activation(recurrent_activation)
    d, b, t, _ = x.shape
    h_units = recurrent_kernel.shape[1]
    xz = torch.einsum("dbti,dij->dtbj", x, kernel)  # input projections of all steps at once
    if bias is not None:
        xz = xz + bias[:, None, None, :]
    h = x.new_zeros(d, b, h_units)
    c = x.new_zeros(d, b, h_units)
    outs = []
    with _one_cpu_thread(x.device):
        for step in range(t):
            z = torch.baddbmm(xz[:, step], h, recurrent_kernel)
            zi, zf, zc, zo = z.split(h_units, dim=-1)
            c = rec(zf) * c + rec(zi) * act(zc)
            h = rec(zo) * act(c)
            outs.append(h)
    return torch.stack(outs, dim=2)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the many tiny per-step CPU ops on one thread: with OpenMP workers they gain nothing and, on a busy
    machine, each op can wait milliseconds for its thread team (measured 100x slower on 2 shared cores)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _KEmbedding(torch.nn.Module):
    def __init__(self, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        if cfg.get("mask_zero"):
            raise ScorerError("Keras Embedding(mask_zero=True) is not ported")
        self.register_buffer("table", torch.from_numpy(weights[0]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, E)
        return self.table[ids]


class _KLSTM(torch.nn.Module):
    """Keras ``LSTM`` or ``Bidirectional(LSTM, merge_mode='concat')`` at inference (dropouts inactive)."""

    def __init__(self, class_name: str, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        if class_name == "Bidirectional":
            if cfg.get("merge_mode", "concat") != "concat":
                raise ScorerError(f"Bidirectional merge_mode {cfg.get('merge_mode')!r} is not ported (only concat)")
            inner = cfg["layer"]
            if inner["class_name"] != "LSTM":
                raise ScorerError(f"Bidirectional({inner['class_name']}) is not ported (only LSTM)")
            lcfg, directions = inner["config"], [False, True]
        else:
            lcfg, directions = cfg, [bool(cfg.get("go_backwards", False))]
        if lcfg.get("stateful") or lcfg.get("return_state") or lcfg.get("time_major"):
            raise ScorerError("stateful / return_state / time_major Keras LSTMs are not ported")
        per = 3 if lcfg.get("use_bias", True) else 2
        if len(weights) != per * len(directions):
            raise ScorerError(f"LSTM weights: expected {per * len(directions)} arrays, found {len(weights)}")
        groups = [weights[i * per : (i + 1) * per] for i in range(len(directions))]
        self.register_buffer("kernel", torch.from_numpy(np.stack([g[0] for g in groups])))
        self.register_buffer("recurrent_kernel", torch.from_numpy(np.stack([g[1] for g in groups])))
        self.register_buffer("bias", torch.from_numpy(np.stack([g[2] for g in groups])) if per == 3 else None)
        self.backwards = directions
        self.bidirectional = class_name == "Bidirectional"
        self.return_sequences = bool(lcfg.get("return_sequences", False))
        self.activation = lcfg.get("activation", "tanh")
        self.recurrent_activation = lcfg.get("recurrent_activation", "hard_sigmoid")
        _activation(self.activation), _activation(self.recurrent_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, in) -> (B, T, D*H) or (B, D*H)
        xs = torch.stack([x.flip(1) if back else x for back in self.backwards])
        ys = keras_lstm(xs, self.kernel, self.recurrent_kernel, self.bias,
                        activation=self.activation, recurrent_activation=self.recurrent_activation)  # fmt: skip
        if not self.return_sequences:
            return torch.cat(list(ys[:, :, -1]), dim=-1)
        if not self.bidirectional:  # a lone go_backwards LSTM returns its outputs in processing order
            return ys[0]
        # Bidirectional re-reverses the backward direction's outputs so that both are aligned in time.
        return torch.cat([ys[0], ys[1].flip(1)], dim=-1)


class _KGlobalMaxPool1D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, C)
        return x.amax(dim=1)


class _KDense(torch.nn.Module):
    def __init__(self, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        self.register_buffer("kernel", torch.from_numpy(weights[0]))
        self.register_buffer("bias", torch.from_numpy(weights[1]) if cfg.get("use_bias", True) else None)
        self.act_name = cfg.get("activation", "linear")
        self.act = _activation(self.act_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, units)
        y = x @ self.kernel
        return self.act(y + self.bias if self.bias is not None else y)


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


class KerasSequentialNet(torch.nn.Module):
    """A linear chain of Keras layers (Embedding, LSTM, Bidirectional(LSTM), GlobalMaxPooling1D, Dense, Dropout),
    rebuilt from a stored Keras model config and weights; float32, inference only. ids (B, T) -> (B, outputs)."""

    def __init__(self, config: dict, weights: Mapping[str, list[np.ndarray]]):
        super().__init__()
        layers = config.get("config", {}).get("layers", [])
        mods, self.input_length, previous = [], None, None
        for layer in layers:
            kind, name, cfg = layer["class_name"], layer.get("name") or layer["config"]["name"], layer["config"]
            inbound = [n[0] for node in layer.get("inbound_nodes", []) for n in node]
            if previous is not None and inbound != [previous]:
                raise ScorerError(f"Keras layer {name!r} does not follow {previous!r}: only linear stacks are ported")
            previous = name
            w = weights.get(name, [])
            if kind == "InputLayer":
                shape = cfg.get("batch_input_shape") or [None, None]
                self.input_length = shape[1]
            elif kind == "Embedding":
                mods.append(_KEmbedding(cfg, w))
            elif kind in ("LSTM", "Bidirectional"):
                mods.append(_KLSTM(kind, cfg, w))
            elif kind == "GlobalMaxPooling1D":
                if cfg.get("data_format", "channels_last") != "channels_last":
                    raise ScorerError("GlobalMaxPooling1D(data_format='channels_first') is not ported")
                mods.append(_KGlobalMaxPool1D())
            elif kind == "Dense":
                mods.append(_KDense(cfg, w))
            elif kind == "Dropout":
                continue  # identity at inference
            else:
                raise ScorerError(f"Keras layer {name!r} of class {kind} is not ported")
        if not mods:
            raise ScorerError("the Keras model config holds no layers")
        self.layers = torch.nn.Sequential(*mods)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layers(ids)


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
        self.device = _device(device)
        self.net = net.to(self.device).eval()
        self.version = version
        self.labels = tuple(labels)
        self.rescale = dict(rescale or {})
        self.batch_size = _check_batch_size(batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, max_sequence_length) int64 word ids, as the package's encoder gives them."""
        return self.encoder.transform(_check_texts(texts))

    def predict_raw(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 6) float32 sigmoid outputs, one forward pass per batch of `batch_size` padded texts."""
        ids = self.encode(texts)
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        with torch.inference_mode(), _one_cpu_thread(self.device):  # small ops: threads only add waiting
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


# ============================================================================ entry point

SPECS_HELP = "hf:<hub id or local dir>[#<label>], tiny, detoxify, toxblock, hatesonar"


def load_scorer(
    spec: str, *, device: str = "cpu", batch_size: int = 64, trust_remote_code: bool = False
) -> ToxicityScorer:
    """Build the scorer named by `spec` (see the module docstring) on `device` ('cpu', 'cuda', 'auto')."""
    _check_batch_size(batch_size)
    _device(device)  # fail before loading anything
    if not isinstance(spec, str):
        raise ScorerError(f"scorer spec must be a string ({SPECS_HELP}), got {type(spec).__name__}")
    if spec.startswith("hf:"):
        target, _, label = spec[3:].partition("#")
        return _load_hf(target, label or None, device, batch_size, trust_remote_code)
    if spec == "tiny":
        model, tok = tiny_classifier()
        return HFScorer(model, tok, name="tiny", device=device, batch_size=batch_size)
    if spec == "detoxify" or spec.startswith("detoxify:"):
        return _load_detoxify(spec.partition(":")[2] or "original", device, batch_size)
    if spec == "toxblock":
        return load_toxblock(device=device, batch_size=batch_size)
    if spec == "hatesonar":
        from unidetox.measure.scorers.hatesonar import load_hatesonar

        return load_hatesonar(batch_size=batch_size)
    raise ScorerError(f"unknown scorer spec {spec!r}; use one of: {SPECS_HELP}")


__all__ = [
    "TOXBLOCK_LABELS",
    "TOXBLOCK_PICKLE_ALLOWED",
    "TOXIC_LABEL_NAMES",
    "DetoxifyScorer",
    "HFScorer",
    "KerasSequentialNet",
    "KerasTextTokenizer",
    "ScorerError",
    "ToxBlockEncoder",
    "ToxBlockScorer",
    "ToxicityScorer",
    "hard_sigmoid",
    "hf_max_length",
    "keras_lstm",
    "keras_text_to_word_sequence",
    "load_scorer",
    "load_toxblock",
    "pad_sequences",
    "read_keras_h5",
    "tiny_classifier",
    "toxblock_dir",
    "toxic_label_index",
]
