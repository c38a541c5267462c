"""Political-bias analysis: classifiers, bootstrap, log-odds words and compass scores vs hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.classifiers import EmbeddingTopicClassifier, KeywordClassifier, make_classifier
from unidetox.analysis.politics.compass import (
    COMPASS_TEMPLATE,
    agreement_scores,
    compass_points,
    compass_position,
    compass_statements,
    load_axes,
)
from unidetox.analysis.politics.distinctive import distinctive_words, log_odds_dirichlet
from unidetox.analysis.politics.embedder import SentenceEmbedder
from unidetox.analysis.politics.report import political_report
from unidetox.analysis.politics.shares import (
    bootstrap_share,
    bootstrap_share_difference,
    classify_sets,
    political_shares,
    share_differences,
)
from unidetox.analysis.politics.text import content_words, read_texts_csv, words
from unidetox.analysis.politics.validation import confusion, validate_classifier, validation_set
from unidetox.config import DataConfig
from unidetox.data.political_compass import load_political_compass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- tokenisation and keywords


def test_words_and_content_words():
    assert words("The Left-wing MP's vote, 2024!") == ["the", "left-wing", "mp's", "vote"]
    assert words("It’s fine") == ["it's", "fine"]
    assert content_words("The cat and I sat on a mat, it's a cat.") == ["cat", "sat", "mat", "cat"]


def test_keyword_classifier_by_hand():
    clf = KeywordClassifier()
    texts = ["The Senate voted on the election.", "A party with cake.", "Trump", ""]
    assert clf.hits(texts).tolist() == [3, 0, 1, 0]  # senate, voted, election
    out = clf.classify(texts)
    assert out["political"].tolist() == [True, False, True, False]
    assert out["topic"].tolist() == ["politics", "other", "politics", "other"]
    assert KeywordClassifier(min_hits=2).classify(texts)["political"].tolist() == [True, False, False, False]
    assert KeywordClassifier(["cake"]).classify(texts)["political"].tolist() == [False, True, False, False]


def test_input_errors():
    with pytest.raises(PoliticalError, match="single string"):
        KeywordClassifier().classify("one text")
    with pytest.raises(PoliticalError, match="unknown classifier"):
        make_classifier("bert")
    with pytest.raises(PoliticalError, match="no texts"):
        classify_sets({"a": ["x"], "b": []}, "keyword")
    with pytest.raises(PoliticalError, match="not str"):
        classify_sets({"a": ["x", None]}, "keyword")
    with pytest.raises(PoliticalError, match="min_hits"):
        KeywordClassifier(min_hits=0)


def test_read_texts_csv(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a b", "", None, "c"], "x": [1, 2, 3, 4]}).to_csv(path, index=False)
    assert read_texts_csv(path) == ["a b", "c"]
    with pytest.raises(PoliticalError, match="no column 'body'"):
        read_texts_csv(path, "body")
    with pytest.raises(PoliticalError, match="no such CSV"):
        read_texts_csv(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- validation and confusion


def test_confusion_and_validate_by_hand():
    truth = [True, True, False, False, False]
    pred = [True, False, True, False, False]
    c = confusion(truth, pred)
    assert c.loc["political", "political"] == 1 and c.loc["political", "other"] == 1
    assert c.loc["other", "political"] == 1 and c.loc["other", "other"] == 2
    texts = ["the senate", "gun control rally", "taxes on cake", "cake", "soup"]
    v = validate_classifier("keyword", texts, truth)
    assert v.accuracy == pytest.approx(3 / 5)
    assert v.predictions["predicted"].tolist() == pred
    assert v.row()["true other, predicted political"] == 1 and v.row()["n"] == 5
    with pytest.raises(PoliticalError, match="both texts and labels"):
        validate_classifier("keyword", texts)


def test_validation_set_is_balanced():
    vs = validation_set()
    assert set(vs["split"]) == {"dev", "holdout"}
    dev, hold = validation_set("dev"), validation_set("holdout")
    assert len(dev) == 40 and dev["political"].sum() == 20
    assert len(hold) == 24 and hold["political"].sum() == 12
    assert not vs["text"].duplicated().any()
    with pytest.raises(PoliticalError, match="unknown validation split"):
        validation_set("test")


# ----------------------------------------------------------------------------- bootstrap


def _quantile(sorted_x: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), written out."""
    pos = q * (len(sorted_x) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_x) - 1)
    return sorted_x[lo] + (pos - lo) * (sorted_x[hi] - sorted_x[lo])


def test_bootstrap_share_matches_loop_reference():
    labels = [1, 0, 0, 1, 1, 0, 1]
    n, n_boot, seed = len(labels), 50, 7
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = sorted(sum(labels[j] for j in row) / n for row in idx.tolist())
    share, lo, hi = bootstrap_share(labels, n_boot=n_boot, seed=seed)
    assert share == pytest.approx(4 / 7)
    assert lo == pytest.approx(_quantile(means, 0.025)) and hi == pytest.approx(_quantile(means, 0.975))
    assert (share, lo, hi) == bootstrap_share([bool(x) for x in labels], n_boot=n_boot, seed=seed)
    assert bootstrap_share(labels, n_boot=n_boot, seed=seed + 1) != (share, lo, hi)


def test_bootstrap_share_hand_cases():
    assert bootstrap_share([1, 1, 1]) == (1.0, 1.0, 1.0)
    assert bootstrap_share([0, 0]) == (0.0, 0.0, 0.0)
    # n=2: resampled shares are 0, .5, 1 with probabilities 1/4, 1/2, 1/4, so the 95% bounds are 0 and 1
    assert bootstrap_share([1, 0], n_boot=4000) == (0.5, 0.0, 1.0)
    # large n: close to the normal approximation p +- 1.96 sqrt(p (1 - p) / n)
    labels = [1] * 90 + [0] * 210
    share, lo, hi = bootstrap_share(labels, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 300)
    assert share == pytest.approx(0.3)
    assert lo == pytest.approx(0.3 - half, abs=0.012) and hi == pytest.approx(0.3 + half, abs=0.012)
    with pytest.raises(PoliticalError, match="0/1"):
        bootstrap_share([0, 2])
    with pytest.raises(PoliticalError, match="non-empty"):
        bootstrap_share([])


def test_bootstrap_difference_matches_loop_reference():
    a, b, n_boot, seed = [1, 0, 0, 0], [1, 1, 0, 1, 1], 40, 3
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), size=(n_boot, len(a))).tolist()
    ib = rng.integers(0, len(b), size=(n_boot, len(b))).tolist()
    diffs = sorted(sum(a[j] for j in ra) / len(a) - sum(b[j] for j in rb) / len(b) for ra, rb in zip(ia, ib))
    d, lo, hi = bootstrap_share_difference(a, b, n_boot=n_boot, seed=seed)
    assert d == pytest.approx(0.25 - 0.8)
    assert lo == pytest.approx(_quantile(diffs, 0.025)) and hi == pytest.approx(_quantile(diffs, 0.975))


def test_shares_and_differences_from_labels():
    sets = {"A": ["the senate voted", "a cat", "a dog", "the election"], "B": ["soup", "the president"]}
    labels = classify_sets(sets, "keyword")
    assert labels["set"].tolist() == ["A"] * 4 + ["B"] * 2 and labels["index"].tolist() == [0, 1, 2, 3, 0, 1]
    assert labels["political"].tolist() == [True, False, False, True, False, True]
    shares = political_shares(labels, n_boot=100, seed=5).set_index("set")
    assert shares.loc["A", "share"] == 0.5 and shares.loc["A", "n_political"] == 2 and shares.loc["B", "n"] == 2
    assert (shares.loc["A", "ci_low"], shares.loc["A", "ci_high"]) == bootstrap_share([1, 0, 0, 1], n_boot=100, seed=5)[
        1:
    ]
    diffs = share_differences(labels, "A", n_boot=100, seed=5)
    assert diffs["set"].tolist() == ["B"]
    assert tuple(diffs.iloc[0][["difference", "ci_low", "ci_high"]]) == bootstrap_share_difference(
        [1, 0, 0, 1], [0, 1], n_boot=100, seed=5
    )
    with pytest.raises(PoliticalError, match="no text set named"):
        share_differences(labels, "C")


# ----------------------------------------------------------------------------- distinctive words


def test_log_odds_dirichlet_by_hand():
    ci, cj, prior = {"a": 3, "b": 1}, {"a": 1, "b": 2, "c": 2}, {"a": 1.0, "b": 1.0, "c": 0.5}
    out = log_odds_dirichlet(ci, cj, prior).set_index("word")
    # a_0 = 2.5, n_i = 4, n_j = 5; word a: y_i = 3, y_j = 1, a_w = 1
    delta_a = math.log(4 / (4 + 2.5 - 4)) - math.log(2 / (5 + 2.5 - 2))
    var_a = 1 / 4 + 1 / 2
    assert out.loc["a", "delta"] == pytest.approx(delta_a)
    assert out.loc["a", "var"] == pytest.approx(var_a)
    assert out.loc["a", "z"] == pytest.approx(delta_a / math.sqrt(var_a))
    # word c: absent from i, a_w = 0.5
    delta_c = math.log(0.5 / (4 + 2.5 - 0.5)) - math.log(2.5 / (5 + 2.5 - 2.5))
    assert out.loc["c", "z"] == pytest.approx(delta_c / math.sqrt(1 / 0.5 + 1 / 2.5))
    assert list(out.index) == sorted(out.index, key=lambda w: -out.loc[w, "z"])
    with pytest.raises(PoliticalError, match="has no prior"):
        log_odds_dirichlet({"x": 1}, {}, {"a": 1.0})


def test_distinctive_words_by_hand():
    sets = {"S": ["apple apple pear", "the apple"], "T": ["pear plum", "plum plum"], "U": ["kiwi pear"]}
    table = distinctive_words(sets, n=2)
    top = table[table["rank"] == 1].set_index("set")["word"].to_dict()
    assert top == {"S": "apple", "T": "plum", "U": "kiwi"}
    # reference for S vs T+U with the prior a_w = total count of w (apple 3, pear 3, plum 3, kiwi 1)
    prior = {"apple": 3, "pear": 3, "plum": 3, "kiwi": 1}
    ci, cj = {"apple": 3, "pear": 1}, {"pear": 2, "plum": 3, "kiwi": 1}
    a0, ni, nj = 10, 4, 6
    y_i, y_j, a = 3, 0, 3
    delta = math.log((y_i + a) / (ni + a0 - y_i - a)) - math.log((y_j + a) / (nj + a0 - y_j - a))
    row = table[(table["set"] == "S") & (table["word"] == "apple")].iloc[0]
    assert row["z"] == pytest.approx(delta / math.sqrt(1 / (y_i + a) + 1 / (y_j + a)))
    assert (row["count_set"], row["count_rest"]) == (3, 0)
    assert log_odds_dirichlet(ci, cj, prior).iloc[0]["word"] == "apple"
    # alpha0 rescales the prior: alpha0 = total count reproduces the default
    pd.testing.assert_frame_equal(distinctive_words(sets, n=2, alpha0=10), table)
    assert len(table[table["set"] == "U"]) == 2 and table["rank"].max() == 2
    with pytest.raises(PoliticalError, match="at least two"):
        distinctive_words({"S": ["a b"]})


# ----------------------------------------------------------------------------- embedding classifier


class FakeEmbedder:
    """Maps each known string to a fixed unit vector."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = {k: np.asarray(v, float) / np.linalg.norm(v) for k, v in table.items()}

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


def test_embedding_classifier_max_and_mean_by_hand():
    topics = {"politics": ("p1", "p2"), "food": ("f1",)}
    emb = FakeEmbedder({"p1": [1, 0, 0], "p2": [0, 1, 0], "f1": [0.8, 0.5, 0.3317], "x": [1, 0, 0], "y": [1, 1, 0]})
    f1 = emb.table["f1"]
    clf_max = EmbeddingTopicClassifier(emb, topics=topics, aggregate="max")
    s = clf_max.topic_scores(["x", "y"])
    r2 = 1 / math.sqrt(2)
    np.testing.assert_allclose(s, [[1.0, f1[0]], [r2, (f1[0] + f1[1]) * r2]])
    out = clf_max.classify(["x", "y"])
    assert out["political"].tolist() == [True, False] and out["topic"].tolist() == ["politics", "food"]
    assert out["score"].tolist() == pytest.approx([1.0 - f1[0], r2 - (f1[0] + f1[1]) * r2])
    clf_mean = EmbeddingTopicClassifier(emb, topics=topics, aggregate="mean")
    # mean of p1 and p2 normalised = (1, 1, 0) / sqrt(2)
    np.testing.assert_allclose(clf_mean.topic_scores(["x", "y"]), [[r2, f1[0]], [1.0, (f1[0] + f1[1]) * r2]])
    assert clf_mean.classify(["x", "y"])["political"].tolist() == [False, True]
    # below min_similarity a text has no topic and is not political
    z = FakeEmbedder({**{k: v.tolist() for k, v in emb.table.items()}, "z": [0, 0, 1]})
    low = EmbeddingTopicClassifier(z, topics=topics, min_similarity=0.5).classify(["z", "x"])
    assert low["topic"].tolist() == ["none", "politics"] and low["political"].tolist() == [False, True]
    assert EmbeddingTopicClassifier(z, topics=topics).classify(["z"])["topic"].tolist() == ["food"]  # 0.33 >= 0.2
    with pytest.raises(PoliticalError, match="political topic"):
        EmbeddingTopicClassifier(emb, topics={"food": ("f1",), "x": ("x",)})


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder(batch_size=4)


@pytest.mark.numerics
def test_minilm_embeddings_match_unpadded_mean_pooling(embedder):
    texts = ["Hi.", "A much longer sentence about the parliament and its many members, who vote.", "Soup."]
    got = embedder.encode(texts)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    for i, t in enumerate(texts):  # one text at a time, no padding: plain mean over tokens
        enc = embedder.tokenizer(t, return_tensors="pt")
        with torch.no_grad():
            h = embedder.model(**enc).last_hidden_state[0].double()
        ref = (h.mean(0) / h.mean(0).norm()).numpy()
        # padded batch vs one text (other GEMM shapes) through 6 layers of width 384: each layer's dot products move
        # by ~sqrt(384) U = 1.2e-6 relative, ~1e-5 after the layers and the norms, on entries of a unit vector
        np.testing.assert_allclose(got[i], ref, atol=2e-5)


def test_minilm_classifier_on_validation_set(embedder):
    clf = EmbeddingTopicClassifier(embedder)
    dev = validate_classifier(clf, split="dev")
    hold = validate_classifier(clf, split="holdout")
    assert dev.accuracy >= 0.95 and hold.accuracy >= 0.9  # measured: 40/40 and 24/24
    out = clf.classify(["The referendum result divided the ruling party.", "I baked bread with my kids."])
    assert out["political"].tolist() == [True, False]


# ----------------------------------------------------------------------------- compass


def test_axes_annotation_file():
    axes = load_axes()
    assert axes["id"].tolist() == list(range(62))
    assert set(axes["axis"]) == {"economic", "social"} and set(axes["direction"]) == {1, -1}
    assert (axes["axis"] == "economic").sum() == 23
    by_id = axes.set_index("id")
    assert tuple(by_id.loc[11, ["axis", "direction"]]) == ("economic", 1)  # the freer the market ...
    assert tuple(by_id.loc[10, ["axis", "direction"]]) == ("economic", -1)  # from each according to ...
    assert tuple(by_id.loc[40, ["axis", "direction"]]) == ("social", 1)  # one-party state
    assert tuple(by_id.loc[59, ["axis", "direction"]]) == ("social", -1)  # private bedroom


def test_compass_statements_join_and_checks():
    statements = load_political_compass(DataConfig())
    joined = compass_statements(statements)
    assert len(joined) == 62 and joined["axis"].notna().all()
    changed = statements.copy()
    changed.loc[3, "statement"] = "Something else entirely."
    with pytest.raises(PoliticalError, match=r"id\(s\) \[3\] differ"):
        compass_statements(changed)
    extra = pd.concat([statements, pd.DataFrame({"id": [99], "statement": ["New."]})], ignore_index=True)
    with pytest.raises(PoliticalError, match="no axis annotation"):
        compass_statements(extra)


def test_compass_position_by_hand():
    scores, axes, dirs = [2.0, -1.0, 0.5, 3.0], ["economic", "economic", "social", "social"], [1, -1, 1, -1]
    raw = compass_position(scores, axes, dirs, center=False)
    assert raw["economic"] == pytest.approx((math.tanh(1.0) + math.tanh(0.5)) / 2)
    assert raw["social"] == pytest.approx((math.tanh(0.25) - math.tanh(1.5)) / 2)
    assert raw["acquiescence"] == pytest.approx(1.125)
    c = compass_position(scores, axes, dirs, center=True)
    t = [math.tanh((s - 1.125) / 2) for s in scores]
    assert c["economic"] == pytest.approx((t[0] - t[1]) / 2) and c["social"] == pytest.approx((t[2] - t[3]) / 2)
    # tanh(s / 2) is p(agree) - p(disagree) renormalised over the two answers
    pa = math.exp(2.0) / (math.exp(2.0) + 1.0)
    assert compass_position([2.0], ["economic"], [1], center=False)["economic"] == pytest.approx(2 * pa - 1)
    assert math.isnan(compass_position([1.0], ["economic"], [1])["social"])
    with pytest.raises(PoliticalError, match="equal-length"):
        compass_position([1.0, 2.0], ["economic"], [1])


def _reference_logprob(lm, prompt: str, cont: str, bos: list[int]) -> float:
    """log p(cont | prompt) from one unpadded forward pass over prompt+continuation."""
    tok = lm.tokenizer
    p = bos + tok(prompt, add_special_tokens=False).input_ids
    joint = bos + tok(prompt + cont, add_special_tokens=False).input_ids
    assert joint[: len(p)] == p  # the template ends in a word, so the continuation starts a new token
    with torch.no_grad():
        logits = lm.model(torch.tensor([joint])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[t - 1, joint[t]] for t in range(len(p), len(joint))))


@pytest.mark.parametrize("name,bos", [("tiny_gpt2", []), ("tiny_llama", [1])])
def test_agreement_scores_match_full_forward(request, name, bos):
    lm = request.getfixturevalue(name)
    statements = ["The rich are too highly taxed.", "All authority should be questioned.", "Tax."]
    got = agreement_scores(lm.model, lm.tokenizer, statements, batch_size=2)
    for s, g in zip(statements, got):
        prompt = COMPASS_TEMPLATE.format(statement=s)
        ref = _reference_logprob(lm, prompt, " agree", bos) - _reference_logprob(lm, prompt, " disagree", bos)
        assert g == pytest.approx(ref, abs=1e-4)


FAKE_STATEMENTS = pd.DataFrame(
    {
        "id": [0, 1, 2, 3],
        "statement": ["Markets are free.", "Taxes are theft.", "Obey the law.", "Question authority."],
        "axis": ["economic", "economic", "social", "social"],
        "direction": [1, 1, 1, -1],
    }
)


def test_compass_points_and_report(tiny_gpt2):
    points, scores = compass_points([("gpt2", tiny_gpt2), ("gpt2 again", "tiny:gpt2")], FAKE_STATEMENTS)
    ref = agreement_scores(tiny_gpt2.model, tiny_gpt2.tokenizer, FAKE_STATEMENTS["statement"].tolist())
    np.testing.assert_allclose(scores.loc[scores["label"] == "gpt2", "score"], ref)
    pos = compass_position(ref, FAKE_STATEMENTS["axis"], FAKE_STATEMENTS["direction"])
    row = points.set_index("label").loc["gpt2"]
    assert row["economic"] == pytest.approx(pos["economic"]) and row["social"] == pytest.approx(pos["social"])
    assert points["model"].tolist() == ["tiny:gpt2", "tiny:gpt2"]
    # tiny:gpt2 is built with a fixed seed, so loading it again gives the same point
    assert points.iloc[1]["economic"] == pytest.approx(row["economic"], abs=1e-6)

    sets = {
        "UniDetox distilled": ["a cat sat", "the sun rose", "bread and soup"],
        "Base samples": ["the senate voted", "a dog ran", "the election"],
    }
    report = political_report(
        sets, [("gpt2", tiny_gpt2)], statements=FAKE_STATEMENTS, classifiers=["keyword"], n_words=3, n_boot=200
    )
    shares = report.shares.set_index("set")["share"]
    assert shares["UniDetox distilled"] == 0 and shares["Base samples"] == pytest.approx(2 / 3)
    assert report.differences["difference"].tolist() == pytest.approx([-2 / 3])
    assert report.validation["split"].tolist() == ["dev", "holdout"]
    assert report.compass.iloc[0]["economic"] == pytest.approx(pos["economic"])
    assert len(report.statement_scores) == 4 and set(report.words["set"]) == set(sets)
    assert "UniDetox distilled is" in report.verdict()
    with pytest.raises(PoliticalError, match="needs statements"):
        political_report(sets, [("gpt2", tiny_gpt2)], classifiers=["keyword"])
