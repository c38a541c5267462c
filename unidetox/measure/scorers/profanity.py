"""alt-profanity-check: a linear SVM over TF-IDF word counts, the model of the PyPI package
``alt-profanity-check==1.9.1`` (MIT), read from its joblib files through :func:`unidetox.safe_pickle.safe_load_joblib`
into the stand-ins below (never importing the package, joblib or scikit-learn, which it was saved with).

The model: lowercase -> word tokens ``(?u)\\b\\w\\w+\\b`` -> counts over a 15,442-word vocabulary (English stop
words were left out of it when it was fitted, so dropping them again changes nothing for unigrams) -> times the
idf weights, L2-normalised -> for each of the 5 cross-validation folds of a ``CalibratedClassifierCV``, a
``LinearSVC`` decision ``f = x . w + b`` mapped by its sigmoid calibration ``1 / (1 + exp(a f + c))`` -> the mean
over the folds: P(profane), float64 in [0, 1].

>>> s = load_profanity()                                  # doctest: +SKIP
>>> s.score(["have a nice day", "you are an idiot"]).round(3)  # doctest: +SKIP
array([0.058, 1.   ])
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unidetox.measure.scorers.base import ScorerError, check_batch_size, check_texts
from unidetox.safe_pickle import JoblibArray, UnsafePickleError, safe_load_joblib
from unidetox.store.run_store import sha256_file

PROFANITY_VERSION = "1.9.1"
INSTALL_FIX = f"pip install --no-deps alt-profanity-check=={PROFANITY_VERSION} (pinned in requirements-nodeps.txt)"


class _Fitted:
    """Stand-in for a fitted scikit-learn object: only its attributes (BUILD fills ``__dict__``), no method."""


class TfidfVectorizer(_Fitted): ...


class TfidfTransformer(_Fitted): ...


class CalibratedClassifierCV(_Fitted): ...


class CalibratedFold(_Fitted): ...  # sklearn.calibration._CalibratedClassifier


class SigmoidCalibration(_Fitted): ...  # sklearn.calibration._SigmoidCalibration


class LinearSVC(_Fitted): ...


def _numpy_scalar(dtype, data: bytes):
    """numpy's ``multiarray.scalar`` for a plain (non-object) dtype: the scalar stored in `data`."""
    dtype = np.dtype(dtype)
    if dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError("refusing a numpy scalar of Python objects")
    return np.frombuffer(data, dtype=dtype)[0]


#: What the two joblib files of alt-profanity-check 1.9.1 may name, each mapped to our object (checked on the files).
PROFANITY_ALLOWED = {
    ("sklearn.feature_extraction.text", "TfidfVectorizer"): TfidfVectorizer,
    ("sklearn.feature_extraction.text", "TfidfTransformer"): TfidfTransformer,
    ("sklearn.calibration", "CalibratedClassifierCV"): CalibratedClassifierCV,
    ("sklearn.calibration", "_CalibratedClassifier"): CalibratedFold,
    ("sklearn.calibration", "_SigmoidCalibration"): SigmoidCalibration,
    ("sklearn.svm._classes", "LinearSVC"): LinearSVC,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): JoblibArray,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,  # the arrays' `subclass` attribute, never called
    ("numpy", "float64"): np.float64,  # the vectorizer's `dtype` attribute
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
}


def profanity_files() -> tuple[Path, Path]:
    """The installed package's ``vectorizer.joblib`` and ``model.joblib``, found without importing the package."""
    spec = importlib.util.find_spec("profanity_check")
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError(f"the alt-profanity-check scorer needs the package alt-profanity-check: {INSTALL_FIX}")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = data / "vectorizer.joblib", data / "model.joblib"
    for f in files:
        if not f.is_file():
            raise ScorerError(f"{f} is missing; reinstall: pip install --no-deps --force-reinstall alt-profanity-check")
    return files


class ProfanityScorer:
    """P(profane) of alt-profanity-check's calibrated linear SVM (see the module docstring)."""

    name = "alt-profanity-check"
    token_pattern = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, folds: list[tuple[np.ndarray, float, float, float]],
                 *, version: str, batch_size: int = 256):  # fmt: skip
        self.vocabulary, self.idf = vocabulary, idf
        self.coef = np.stack([w for w, _, _, _ in folds])  # (folds, vocabulary)
        self.intercept = np.array([b for _, b, _, _ in folds])
        self.a = np.array([a for _, _, a, _ in folds])
        self.c = np.array([c for _, _, _, c in folds])
        self.version = version
        self.batch_size = check_batch_size(batch_size)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(vocabulary indices, L2-normalised tf-idf weights) of one text's words."""
        counts = Counter(
            i for t in self.token_pattern.findall(text.lower()) if (i := self.vocabulary.get(t)) is not None
        )
        idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
        w = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * self.idf[idx]
        norm = np.sqrt(w @ w)
        return idx, w / norm if norm > 0 else w

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) float64 in [0, 1]: the mean over the folds of the calibrated P(profane)."""
        out = np.empty(len(texts := check_texts(texts)), dtype=np.float64)
        for i, text in enumerate(texts):
            idx, w = self.features(text)
            f = self.coef[:, idx] @ w + self.intercept  # (folds,)
            out[i] = np.mean(1.0 / (1.0 + np.exp(self.a * f + self.c)))
        return np.clip(out, 0.0, 1.0)


def _folds(model, where: Path) -> list[tuple[np.ndarray, float, float, float]]:
    """(weights, intercept, a, c) of each fold of the calibrated classifier, after checking its shape."""
    if not isinstance(model, CalibratedClassifierCV) or list(model.classes_) != [0, 1]:
        raise ScorerError(f"{where} does not hold a binary CalibratedClassifierCV")
    folds = []
    for fold in model.calibrated_classifiers_:
        svm, (cal,) = fold.estimator, fold.calibrators
        if fold.method != "sigmoid" or not isinstance(svm, LinearSVC) or not isinstance(cal, SigmoidCalibration):
            raise ScorerError(f"{where}: a fold is not a sigmoid-calibrated LinearSVC")
        folds.append((np.asarray(svm.coef_, dtype=np.float64)[0], float(svm.intercept_[0]), float(cal.a_),
                      float(cal.b_)))  # fmt: skip
    return folds


def load_profanity(*, batch_size: int = 256) -> ProfanityScorer:
    """Build the scorer from the installed ``alt-profanity-check`` package's files (checked version)."""
    try:
        installed = importlib.metadata.version("alt-profanity-check")
    except importlib.metadata.PackageNotFoundError:
        raise ScorerError(f"the alt-profanity-check scorer needs alt-profanity-check: {INSTALL_FIX}") from None
    if installed != PROFANITY_VERSION:
        raise ScorerError(f"the alt-profanity-check scorer was checked against version {PROFANITY_VERSION}, found "
                          f"{installed}: {INSTALL_FIX}")  # fmt: skip
    vec_path, model_path = profanity_files()
    try:
        vec, model = safe_load_joblib(vec_path, PROFANITY_ALLOWED), safe_load_joblib(model_path, PROFANITY_ALLOWED)
    except UnsafePickleError as e:
        raise ScorerError(f"refusing an alt-profanity-check file: {e}") from None
    except (ValueError, TypeError, AttributeError, EOFError) as e:
        raise ScorerError(f"an alt-profanity-check file is malformed: {type(e).__name__}: {e}") from None
    if not isinstance(vec, TfidfVectorizer) or vec.ngram_range != (1, 1) or vec.norm != "l2" or vec.sublinear_tf:
        raise ScorerError(f"{vec_path} is not the unigram, l2-normalised TfidfVectorizer this scorer reproduces")
    idf = np.asarray(vec._tfidf.idf_, dtype=np.float64)
    vocabulary = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    folds = _folds(model, model_path)
    if idf.shape != (len(vocabulary),) or any(w.shape != idf.shape for w, *_ in folds):
        raise ScorerError(f"alt-profanity-check: vocabulary, idf and weights disagree in size ({len(vocabulary)})")
    digest = sha256_file(model_path)[:12]
    return ProfanityScorer(vocabulary, idf, folds, version=f"alt-profanity-check=={installed};sha256:{digest}",
                           batch_size=batch_size)  # fmt: skip


__all__ = ["PROFANITY_ALLOWED", "PROFANITY_VERSION", "ProfanityScorer", "load_profanity", "profanity_files"]
