"""HateSonar: a second toxicity scorer that shares no model, tokenizer or training data with the first.

The MIT-licensed PyPI package ``hatesonar==0.1.0`` ships one ONNX graph, ``hatesonar/model/model.onnx``:
lowercase -> word tokens ``[a-zA-Z0-9_]+`` -> TF-IDF over 28,302 unigrams, L2-normalised -> multinomial logistic
regression over (hate_speech, offensive_language, neither), trained on the tweets of Davidson et al. (2017).
``toxblock`` is a BiLSTM trained on Jigsaw comments and ``toxic-bert`` a BERT on the same Jigsaw data: when
HateSonar agrees with them about a difference between two models, the agreement is about the generations, not
about one classifier's quirks.

Score: ``1 - P(neither) = P(hate_speech) + P(offensive_language)``, float64 in [0, 1].

The graph is run by ``onnxruntime`` (no pickle anywhere). Its StringNormalizer asks for the ``en_US.UTF-8``
locale, which many machines and containers lack; the locale attribute is set to ``C.UTF-8`` before the session is
created. The tokenizer keeps ASCII letters, digits and ``_`` only, whose lowercase is the same in both locales,
so the scores are those of the shipped graph (tested against a NumPy recomputation from the graph's weights).

>>> s = load_hatesonar()                                    # doctest: +SKIP
>>> s.score(["have a nice day", "you are an idiot"]).round(2)  # doctest: +SKIP
array([0.05, 0.78])
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unidetox.measure.scorers.base import ScorerError, check_batch_size, check_texts
from unidetox.store.run_store import sha256_file

SONAR_VERSION = "0.1.0"
SONAR_CLASSES = ("hate_speech", "offensive_language", "neither")
SONAR_LOCALE = "C.UTF-8"
INSTALL_FIX = f"pip install --no-deps hatesonar=={SONAR_VERSION} onnx onnxruntime (pinned in requirements*.txt)"


def sonar_model_path() -> Path:
    """The installed package's ``model.onnx``, found without importing the package."""
    spec = importlib.util.find_spec("hatesonar")
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError(f"the hatesonar scorer needs the package hatesonar: {INSTALL_FIX}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "model.onnx"
    if not path.is_file():
        raise ScorerError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall hatesonar")
    return path


def _with_locale(model: Any, locale: str) -> Any:
    """`model` (an onnx ModelProto) with every StringNormalizer's `locale` attribute set to `locale`."""
    import onnx

    for node in model.graph.node:
        if node.op_type == "StringNormalizer":
            kept = [a for a in node.attribute if a.name != "locale"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("locale", locale)])
    return model


class SonarScorer:
    """P(toxic) = 1 - P(neither) from HateSonar's ONNX graph, in batches of `batch_size` texts."""

    name = "hatesonar"

    def __init__(self, session: Any, *, version: str, batch_size: int = 256):
        self.session = session
        self.version = version
        self.batch_size = check_batch_size(batch_size)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 3) float64 class probabilities in the order of ``SONAR_CLASSES``."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), len(SONAR_CLASSES)), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            batch = np.array(texts[start : start + self.batch_size], dtype=object)
            _, probs = self.session.run(None, {"text": batch})
            out[start : start + len(batch)] = [[p[k] for k in range(len(SONAR_CLASSES))] for p in probs]
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) float64 in [0, 1]: P(hate_speech) + P(offensive_language)."""
        return np.clip(1.0 - self.probabilities(texts)[:, SONAR_CLASSES.index("neither")], 0.0, 1.0)


def load_hatesonar(*, batch_size: int = 256) -> SonarScorer:
    """Build the scorer from the installed ``hatesonar`` package (checked version) with onnxruntime on the CPU."""
    try:
        installed = importlib.metadata.version("hatesonar")
        import onnx
        import onnxruntime as ort
    except (importlib.metadata.PackageNotFoundError, ImportError) as e:
        raise ScorerError(f"the hatesonar scorer needs hatesonar, onnx and onnxruntime ({e}): {INSTALL_FIX}") from None
    if installed != SONAR_VERSION:
        raise ScorerError(f"the hatesonar scorer was checked against hatesonar {SONAR_VERSION}, found {installed}: "
                          f"{INSTALL_FIX}")  # fmt: skip
    path = sonar_model_path()
    model = _with_locale(onnx.load(str(path)), SONAR_LOCALE)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small sparse model: threads cost more than they give
    options.log_severity_level = 3
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    errors = (RuntimeError, ort_errors.Fail, ort_errors.InvalidGraph, ort_errors.InvalidArgument,
              ort_errors.RuntimeException)  # fmt: skip
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except errors as e:
        raise ScorerError(f"cannot run {path} with onnxruntime {ort.__version__}: {' '.join(str(e).split())}") from None
    return SonarScorer(session, version=f"hatesonar=={installed};sha256:{sha256_file(path)[:12]}",
                       batch_size=batch_size)  # fmt: skip


__all__ = ["SONAR_CLASSES", "SONAR_VERSION", "SonarScorer", "load_hatesonar", "sonar_model_path"]
