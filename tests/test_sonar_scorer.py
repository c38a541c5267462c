"""The HateSonar scorer: ONNX graph equals a NumPy recomputation from its weights; validity on labelled ToxiGen."""

from __future__ import annotations

import ast
import re

import numpy as np
import pandas as pd
import pytest
from harness import DATA_DIR

from unidetox.measure.scorers import load_scorer
from unidetox.measure.scorers.base import ScorerError
from unidetox.measure.scorers.hatesonar import SONAR_LOCALE, _with_locale, sonar_model_path

onnx = pytest.importorskip("onnx")
TEXTS = ["have a nice day", "You are an IDIOT!!!", "", "Ünïcödé ça va, naïve café", "women are stupid, shut up",
         "the_snake_case word42 42", "   ", "I hate all of them\nand their kind", "a " * 300]  # fmt: skip


def numpy_sonar(texts: list[str]) -> np.ndarray:
    """Independent recomputation of the graph: lowercase, regex tokens, TF x IDF, L2, linear, softmax, L1."""
    model = onnx.load(str(sonar_model_path()))
    nodes = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    init = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    tfidf, lin = nodes["TfIdfVectorizer"], nodes["LinearClassifier"]
    vocab = {w.decode(): int(i) for w, i in zip(tfidf["pool_strings"], tfidf["ngram_indexes"], strict=True)}
    pattern = re.compile(nodes["Tokenizer"]["tokenexp"].decode())
    n_feat = len(init["idfcst"])
    x = np.zeros((len(texts), n_feat))
    for row, text in enumerate(texts):
        for tok in pattern.findall(text.lower()):
            if tok in vocab:
                x[row, vocab[tok]] += 1.0
    assert tfidf["mode"] == b"TF"  # raw counts: the graph's own weights are not applied in TF mode
    x = x * init["idfcst"]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    coef = np.asarray(lin["coefficients"], dtype=np.float64).reshape(len(lin["intercepts"]), n_feat)
    logits = x @ coef.T + np.asarray(lin["intercepts"])
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def sonar():
    return load_scorer("hatesonar")


@pytest.mark.numerics
def test_graph_equals_numpy_recomputation(sonar):
    got = sonar.probabilities(TEXTS)
    want = numpy_sonar(TEXTS)
    # the graph computes in float32, the reference in float64: probabilities of a softmax over logits that are sums of
    # a few hundred weighted features, ~n U = 1e-5 relative at worst on O(1) logits, and a softmax damps that
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(sonar.score(TEXTS), 1 - want[:, 2], atol=1e-5)
    assert sonar.score(TEXTS).dtype == np.float64 and sonar.score(TEXTS).shape == (len(TEXTS),)


@pytest.mark.numerics
def test_batches_do_not_change_scores(sonar):
    from unidetox.measure.scorers.hatesonar import SonarScorer

    small = SonarScorer(sonar.session, version=sonar.version, batch_size=2)
    # exact: each row's features and dot products are computed alone; a batch only stacks rows
    np.testing.assert_array_equal(small.score(TEXTS), sonar.score(TEXTS))
    assert sonar.score([]).shape == (0,)


def test_locale_is_set_on_the_string_normalizer():
    model = _with_locale(onnx.load(str(sonar_model_path())), SONAR_LOCALE)
    (node,) = [n for n in model.graph.node if n.op_type == "StringNormalizer"]
    assert onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "locale")) == b"C.UTF-8"


def test_name_version_and_bad_input(sonar):
    assert sonar.name == "hatesonar" and sonar.version.startswith("hatesonar==0.1.0;sha256:")
    with pytest.raises(ScorerError, match="single string"):
        sonar.score("one text")
    with pytest.raises(ScorerError, match="strings only"):
        sonar.score(["ok", 3])


def test_missing_package_is_one_clear_error(monkeypatch):
    import importlib.metadata

    import unidetox.measure.scorers.hatesonar as S

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(S.importlib.metadata, "version", missing)
    with pytest.raises(ScorerError, match="pip install --no-deps hatesonar==0.1.0"):
        S.load_hatesonar()


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    ranks = pd.Series(s).rank().to_numpy()
    n1 = int(y.sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))


def test_auc_helper_against_pairs():
    rng = np.random.default_rng(0)
    y, s = rng.random(60) < 0.4, rng.random(60)
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert _auc(y, s) == pytest.approx(np.mean(pairs))


def test_validity_on_human_labelled_toxigen(sonar):
    """2,000 human-annotated ToxiGen texts (toxicity_human > 3 = toxic): AUC measured 0.62 (toxblock: 0.66).

    A weak but real signal, as expected of a TF-IDF model trained on tweets; the bound leaves room for another
    onnxruntime build, not for a broken scorer (chance is 0.5).
    """
    frame = pd.read_csv(DATA_DIR / "toxigen" / "annotated_train.csv").sample(2000, random_state=0)
    texts = [ast.literal_eval(t).decode("utf-8") if t[:2] in ("b'", 'b"') else t for t in frame.text]
    auc = _auc(frame.toxicity_human.to_numpy() > 3, sonar.score(texts))
    assert 0.58 < auc < 0.7
