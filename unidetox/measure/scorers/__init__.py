"""Toxicity scorers behind one interface: ``load_scorer(spec).score(texts) -> P(toxic)``.

Specs (``EvalConfig.scorer``):

- ``hf:<hub id or local dir>[#<label>]``: any Hugging Face ``AutoModelForSequenceClassification`` (safetensors
  only). The paper profile uses ``hf:unitary/toxic-bert`` (Detoxify ``original``). Which output is "toxic" is
  decided by :func:`~unidetox.measure.scorers.hf.toxic_label_index`; sigmoid is used when ``config.problem_type ==
  "multi_label_classification"`` (or the model has a single output), softmax over the labels otherwise.
- ``tiny``: a tiny random GPT-2 sequence classifier (fixed seed, real GPT-2 tokenizer) on the same ``hf`` code
  path, for tests and CI; its scores mean nothing but are deterministic and spread over (0, 1).
- ``detoxify[:<variant>]``: ``detoxify.Detoxify("original")`` (or `<variant>`) when that package and its (downloaded) weights are available.
- ``hatesonar``: offline; TF-IDF + logistic regression (ONNX) from the PyPI package ``hatesonar==0.1.0``, a
  second scorer sharing no model or data with the others (:mod:`unidetox.measure.scorers.hatesonar`).
- ``alt-profanity-check``: offline; the calibrated linear SVM over TF-IDF words of the PyPI package
  ``alt-profanity-check==1.9.1``, read from its joblib files through :func:`unidetox.safe_pickle.safe_load_joblib`
  (:mod:`unidetox.measure.scorers.profanity`).
- ``toxblock``: offline; a PyTorch port of the Keras BiLSTM classifier shipped in the PyPI package
  ``tox-block==0.1.2`` (weights read with h5py, tokenizer pickle read through :mod:`unidetox.safe_pickle`;
  :mod:`unidetox.measure.scorers.toxblock`).

Every scorer has ``name`` and ``version`` (package version or content hash) to record with its results, and
``score(texts)`` returning float64 probabilities in [0, 1] of shape ``(len(texts),)``, computed in batches.

>>> s = load_scorer("tiny")
>>> s.score(["hello", ""]).shape
(2,)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unidetox.measure.scorers.base import ScorerError, ToxicityScorer, check_batch_size, scorer_device
from unidetox.measure.scorers.detoxify import load_detoxify
from unidetox.measure.scorers.hatesonar import load_hatesonar
from unidetox.measure.scorers.hf import load_hf, load_tiny
from unidetox.measure.scorers.profanity import load_profanity
from unidetox.measure.scorers.toxblock import load_toxblock

SPECS_HELP = "hf:<hub id or local dir>[#<label>], tiny, detoxify, toxblock, hatesonar, alt-profanity-check"

#: Spec head -> builder(arg, device, batch_size, trust_remote_code). The head is the spec up to and including its
#: first ":" (``"hf:"`` for ``hf:unitary/toxic-bert``), or the whole spec when it has none; `arg` is the rest.
SCORERS: dict[str, Callable[[str, str, int, bool], ToxicityScorer]] = {
    "hf:": lambda arg, device, batch_size, trust: load_hf(
        arg, device=device, batch_size=batch_size, trust_remote_code=trust
    ),
    "tiny": lambda arg, device, batch_size, trust: load_tiny(device=device, batch_size=batch_size),
    "detoxify": lambda arg, device, batch_size, trust: load_detoxify(device=device, batch_size=batch_size),
    "detoxify:": lambda arg, device, batch_size, trust: load_detoxify(
        arg or "original", device=device, batch_size=batch_size
    ),
    "toxblock": lambda arg, device, batch_size, trust: load_toxblock(device=device, batch_size=batch_size),
    "hatesonar": lambda arg, device, batch_size, trust: load_hatesonar(batch_size=batch_size),
    "alt-profanity-check": lambda arg, device, batch_size, trust: load_profanity(batch_size=batch_size),
}


def check_scorer_spec(spec: str, setting: str = "scorer") -> None:
    """Refuse a scorer spec that names no scorer (unknown head, ``hf:`` without an id, a missing local folder)
    without loading anything; `setting` names where it came from in the message."""
    if not isinstance(spec, str):
        raise ScorerError(f"{setting} must be a string ({SPECS_HELP}), got {type(spec).__name__}")
    name, colon, arg = spec.partition(":")
    if name + colon not in SCORERS:
        raise ScorerError(f"{setting}: unknown scorer spec {spec!r}; use one of: {SPECS_HELP}")
    path = arg.split("#", 1)[0]
    if name == "hf" and not path:
        raise ScorerError(f"{setting}: empty hf: spec; use hf:<hub id or local dir>, e.g. hf:unitary/toxic-bert")
    if name == "hf" and path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():
        raise ScorerError(f"{setting}: hf:{path}: no such directory")


def load_scorer(
    spec: str, *, device: str = "cpu", batch_size: int = 64, trust_remote_code: bool = False
) -> ToxicityScorer:
    """Build the scorer named by `spec` (see the module docstring) on `device` ('cpu', 'cuda', 'auto')."""
    check_batch_size(batch_size)
    scorer_device(device)  # fail before loading anything
    check_scorer_spec(spec)
    name, colon, arg = spec.partition(":")
    return SCORERS[name + colon](arg, device, batch_size, trust_remote_code)


__all__ = ["SCORERS", "SPECS_HELP", "check_scorer_spec", "load_scorer"]
