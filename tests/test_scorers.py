"""Toxicity scorers: HF classifiers (tiny local models), tiny, detoxify errors, and the ToxBlock port."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import re
import sys
import types

import h5py
import numpy as np
import pytest
import torch

from unidetox.measure.scorers import SCORERS, load_scorer
from unidetox.measure.scorers.base import ScorerError, ToxicityScorer
from unidetox.measure.scorers.hf import HFScorer, hf_max_length, tiny_classifier, toxic_label_index
from unidetox.measure.scorers.keras_layers import KerasSequentialNet, hard_sigmoid, keras_lstm
from unidetox.measure.scorers.toxblock import (
    TOXBLOCK_LABELS,
    TOXBLOCK_PICKLE_ALLOWED,
    KerasTextTokenizer,
    ToxBlockEncoder,
    pad_sequences,
    read_keras_h5,
    toxblock_dir,
)
from unidetox.safe_pickle import RestrictedUnpickler, UnsafePickleError, safe_loads

WORDS = ["you", "are", "an", "idiot", "hello", "there", "the", "cat", "sat", "on", "mat", "i", "hate", "have", "a"]
WORDS += ["nice", "day", "good", "morning", "friend"]
TOXIC_BERT_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _contract(x, n):
    assert isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (n,)
    assert np.all(np.isfinite(x)) and np.all((x >= 0) & (x <= 1))


# ============================================================================ label rule, limits


def test_toxic_label_index_rule():
    assert toxic_label_index(dict(enumerate(TOXIC_BERT_LABELS))) == 0
    assert toxic_label_index({0: "non-toxic", 1: "Toxic"}) == 1
    assert toxic_label_index({0: "neutral", 1: "TOXICITY"}) == 1
    assert toxic_label_index({0: "nothate", 1: "hate"}) == 1
    assert toxic_label_index({0: "LABEL_0", 1: "LABEL_1"}) == 1
    assert toxic_label_index({0: "LABEL_0"}) == 0
    assert toxic_label_index({0: "hate", 1: "toxic"}) == 1  # "toxic" is preferred over "hate"
    assert toxic_label_index(dict(enumerate(TOXIC_BERT_LABELS)), "insult") == 4
    assert toxic_label_index(dict(enumerate(TOXIC_BERT_LABELS)), "INSULT") == 4
    assert toxic_label_index({0: "a", 1: "b"}, "1") == 1
    with pytest.raises(ScorerError, match="cannot tell which output is toxic.*#<label>"):
        toxic_label_index({0: "positive", 1: "negative", 2: "neutral"})
    with pytest.raises(ScorerError, match="'nope' is not one of the model's labels"):
        toxic_label_index({0: "toxic"}, "nope")


def test_hf_max_length():
    ns = types.SimpleNamespace
    assert hf_max_length(ns(model_max_length=int(1e30)), ns(max_position_embeddings=32)) == 32
    assert hf_max_length(ns(model_max_length=512), ns(max_position_embeddings=514)) == 512
    assert hf_max_length(ns(model_max_length=int(1e30)), ns(n_positions=64)) == 64
    assert hf_max_length(ns(), ns()) == 512


# ============================================================================ hf: with local directories


def _bert_dir(path, *, num_labels, problem_type, id2label=None, seed=0):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=num_labels,
                     problem_type=problem_type, **extra)  # fmt: skip
    torch.manual_seed(seed)
    model = BertForSequenceClassification(cfg)
    for p in model.parameters():  # widen the random weights so that scores differ visibly between texts
        p.data.normal_(0, 0.5)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def multilabel_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("toxic_bert_like")
    return _bert_dir(path, num_labels=6, problem_type="multi_label_classification",
                     id2label=dict(enumerate(TOXIC_BERT_LABELS)))  # fmt: skip


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory):
    return _bert_dir(tmp_path_factory.mktemp("binary"), num_labels=2, problem_type=None, seed=1)


def _reference(path, texts, index, sigmoid):
    """Unbatched, unpadded forward per text with a separately loaded model; numpy sigmoid / softmax."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(path)
    model = BertForSequenceClassification.from_pretrained(path).eval()
    out = []
    for t in texts:
        with torch.no_grad():
            logits = model(**tok(t, truncation=True, max_length=32, return_tensors="pt")).logits[0].double().numpy()
        out.append(_np_sigmoid(logits[index]) if sigmoid else np.exp(logits[index]) / np.exp(logits).sum())
    return np.array(out)


TEXTS = ["you are an idiot", "", "hello there friend", "good morning", "i hate the cat", "a nice day " * 3, "zzz"]
#: Scores are probabilities, a sigmoid or softmax of logits (slope <= 1/4). A logit computed with other padding or
#: batch shapes than the reference's moves by ~sqrt(n) U of its terms per layer: < 1e-6 for these 2-layer models of
#: width 32 with |logit| ~ 1, so a score by < 2.5e-7; atol 1e-6 (the float64 references take the same float32 logits).


@pytest.mark.numerics
def test_hf_multilabel_uses_sigmoid_of_toxic(multilabel_dir):
    s = load_scorer(f"hf:{multilabel_dir}", batch_size=3)
    assert isinstance(s, ToxicityScorer) and isinstance(s, HFScorer)
    assert s.name == f"hf:{multilabel_dir}" and s.label_name == "toxic" and s.use_sigmoid and s.max_length == 32
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", s.version)
    got = s.score(TEXTS)
    _contract(got, len(TEXTS))
    np.testing.assert_allclose(got, _reference(multilabel_dir, TEXTS, 0, True), atol=1e-6)
    assert got.std() > 0.01  # the texts really score differently


@pytest.mark.numerics
def test_hf_explicit_label_suffix(multilabel_dir):
    s = load_scorer(f"hf:{multilabel_dir}#insult")
    assert s.name == f"hf:{multilabel_dir}#insult" and s.label_index == 4
    np.testing.assert_allclose(s.score(TEXTS), _reference(multilabel_dir, TEXTS, 4, True), atol=1e-6)
    with pytest.raises(ScorerError, match="not one of the model's labels"):
        load_scorer(f"hf:{multilabel_dir}#nonsense")


@pytest.mark.numerics
def test_hf_binary_uses_softmax(binary_dir):
    s = load_scorer(f"hf:{binary_dir}")
    assert s.label_name == "LABEL_1" and not s.use_sigmoid
    p1 = s.score(TEXTS)
    np.testing.assert_allclose(p1, _reference(binary_dir, TEXTS, 1, False), atol=1e-6)
    p0 = load_scorer(f"hf:{binary_dir}#LABEL_0").score(TEXTS)
    np.testing.assert_allclose(p0 + p1, 1.0, atol=1e-9)


def test_hf_truncates_to_model_length(multilabel_dir):
    s = load_scorer(f"hf:{multilabel_dir}")
    words = (WORDS * 5)[:100]
    long, head = " ".join(words), " ".join(words[:30])  # [CLS] + 30 words + [SEP] = 32 positions
    got = s.score([long, head, "hello"])
    assert abs(got[0] - got[1]) < 1e-6


@pytest.mark.numerics
def test_hf_batching_is_invisible(multilabel_dir):
    texts = [" ".join(WORDS[i : i + k]) for k in (1, 5, 2, 9, 3) for i in range(0, 12, 4)] + ["", ""]
    s = load_scorer(f"hf:{multilabel_dir}", batch_size=1)
    a = s.score(texts)
    s.batch_size = 4
    b = s.score(texts)
    s.batch_size = 64
    c = s.score(texts)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)
    np.testing.assert_allclose(a, _reference(multilabel_dir, texts, 0, True), atol=1e-6)
    assert s.score([]).shape == (0,)


def test_hf_version_tracks_content(multilabel_dir, tmp_path):
    v1 = load_scorer(f"hf:{multilabel_dir}").version
    assert load_scorer(f"hf:{multilabel_dir}").version == v1
    other = _bert_dir(tmp_path / "other", num_labels=6, problem_type="multi_label_classification",
                      id2label=dict(enumerate(TOXIC_BERT_LABELS)), seed=5)  # fmt: skip
    assert load_scorer(f"hf:{other}").version != v1
    assert load_scorer(f"hf:{multilabel_dir}#insult").version != v1


def test_hf_refuses_pickle_weights_and_missing_dirs(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ScorerError, match=r"no \.safetensors weights.*pytorch_model\.bin.*safe_serialization"):
        load_scorer(f"hf:{tmp_path}")
    with pytest.raises(ScorerError, match="no such directory"):
        load_scorer(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ScorerError, match="empty hf: spec"):
        load_scorer("hf:")


# ============================================================================ tiny


@pytest.fixture(scope="module")
def tiny():
    return load_scorer("tiny")


@pytest.mark.numerics
def test_tiny_matches_an_unbatched_reference(tiny):
    from transformers import GPT2ForSequenceClassification

    assert tiny.name == "tiny" and tiny.label_name == "toxic" and tiny.use_sigmoid and tiny.max_length == 512
    model, tok = tiny_classifier()
    assert isinstance(model, GPT2ForSequenceClassification)
    texts = ["hello", "you are an idiot", "have a nice day", "the cat sat on the mat", "I hate you", "x " * 700]
    got = tiny.score(["", *texts])
    _contract(got, len(texts) + 1)
    ref = []
    for t in texts:
        ids = tok(t, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            ref.append(_np_sigmoid(model(**ids).logits[0, 0].double().numpy()))
    np.testing.assert_allclose(got[1:], ref, atol=1e-6)
    assert got.max() - got.min() > 0.3  # spread over (0, 1), so thresholds are exercised
    # deterministic: a second build has the same weights, hence the same version
    again = HFScorer(model, tok, name="tiny")
    assert again.version == tiny.version
    np.testing.assert_allclose(again.score(["", *texts]), got, atol=1e-6)


def test_input_validation(tiny):
    with pytest.raises(ScorerError, match="single string"):
        tiny.score("hello")
    with pytest.raises(ScorerError, match="item 1 is int"):
        tiny.score(["a", 3])
    with pytest.raises(ScorerError, match="unknown scorer spec 'nope'.*toxblock"):
        load_scorer("nope")
    with pytest.raises(ScorerError, match="batch_size must be a positive integer"):
        load_scorer("tiny", batch_size=0)


@pytest.mark.parametrize("spec", ["tiny:x", "toxblock:1", "hatesonar:", "hf", "detox"])
def test_registry_takes_an_argument_only_where_the_spec_has_one(spec):
    assert set(SCORERS) == {"hf:", "tiny", "detoxify", "detoxify:", "toxblock", "hatesonar", "alt-profanity-check"}
    with pytest.raises(ScorerError, match=f"unknown scorer spec '{spec}'"):
        load_scorer(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ScorerError, match="no CUDA GPU is visible"):
        load_scorer("toxblock", device="cuda")


# ============================================================================ detoxify


def test_detoxify_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "detoxify", None)  # makes `import detoxify` fail
    with pytest.raises(ScorerError, match="pip install detoxify.*network"):
        load_scorer("detoxify")


def _fake_detoxify(monkeypatch, cls):
    mod = types.ModuleType("detoxify")
    mod.Detoxify = cls
    monkeypatch.setitem(sys.modules, "detoxify", mod)


def test_detoxify_weights_unreachable(monkeypatch):
    class Offline:
        def __init__(self, variant, device="cpu"):
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    _fake_detoxify(monkeypatch, Offline)
    with pytest.raises(ScorerError, match=r"Detoxify\('original'\) could not load its weights.*need network"):
        load_scorer("detoxify")


def test_detoxify_wrapper_batches_and_reads_toxicity(monkeypatch):
    calls = []

    class Fake:
        def __init__(self, variant, device="cpu"):
            self.variant, self.device = variant, device

        def predict(self, texts):
            calls.append(list(texts))
            return {"toxicity": [len(t) / 10 for t in texts], "insult": [0.0] * len(texts)}

    _fake_detoxify(monkeypatch, Fake)
    s = load_scorer("detoxify", batch_size=2)
    assert s.name == "detoxify" and s.version.startswith("detoxify==") and s.version.endswith(":original")
    got = s.score(["a", "bb", "ccc", "", "eeeee"])
    np.testing.assert_allclose(got, [0.1, 0.2, 0.3, 0.0, 0.5])
    assert calls == [["a", "bb"], ["ccc", ""], ["eeeee"]]
    _contract(got, 5)


# ============================================================================ Keras pieces of the ToxBlock port


def test_keras_tokenizer_stand_in():
    wi = {"the": 1, "cat": 2, "you're": 3, "mat": 4, "rare": 5}
    tok = KerasTextTokenizer(wi, num_words=5)
    # lowercased; punctuation, \t and \n split; apostrophes kept; unknown ("on") and rank >= num_words ("rare") dropped
    assert tok.texts_to_sequences(["The CAT,sat\ton the\nmat! rare you're", "", "!!!"]) == [[1, 2, 1, 4, 3], [], []]
    assert tok.texts_to_sequences(["the\rcat"]) == [[]]  # \r is not a Keras filter: "the\rcat" is one unknown word
    oov = KerasTextTokenizer({"<oov>": 1, **{w: i + 1 for w, i in wi.items()}}, num_words=6, oov_token="<oov>")
    assert oov.texts_to_sequences(["the dog rare cat"]) == [[2, 1, 1, 3]]
    chars = KerasTextTokenizer({"a": 1, "b": 2}, char_level=True)
    assert chars.texts_to_sequences(["AbCa"]) == [[1, 2, 1]]
    with pytest.raises(TypeError, match="word_index"):
        KerasTextTokenizer.__new__(KerasTextTokenizer).__setstate__({"num_words": 3})
    with pytest.raises(ValueError, match="str -> int"):
        KerasTextTokenizer({"a": "1"})


def test_pad_sequences_matches_keras_defaults():
    seqs = [[1, 2, 3], [], [4, 5, 6, 7, 8, 9]]
    np.testing.assert_array_equal(pad_sequences(seqs, 4), [[0, 1, 2, 3], [0, 0, 0, 0], [6, 7, 8, 9]])
    np.testing.assert_array_equal(pad_sequences(seqs, 4, "post", "post"), [[1, 2, 3, 0], [0, 0, 0, 0], [4, 5, 6, 7]])


def test_keras_tokenizer_pickle_maps_to_stand_in(monkeypatch):
    """A pickled keras_preprocessing Tokenizer (as Keras lays out its __dict__) loads as our stand-in."""
    monkeypatch.setitem(sys.modules, "keras_preprocessing", types.ModuleType("keras_preprocessing"))
    fake = types.ModuleType("keras_preprocessing.text")

    class Tokenizer:
        pass

    Tokenizer.__module__, Tokenizer.__qualname__ = "keras_preprocessing.text", "Tokenizer"
    fake.Tokenizer = Tokenizer
    monkeypatch.setitem(sys.modules, "keras_preprocessing.text", fake)
    t = Tokenizer()
    t.__dict__.update(word_counts=collections.OrderedDict(hi=3, yo=1), word_docs=collections.defaultdict(int, hi=1),
                      filters=KerasTextTokenizer.FIELDS["filters"], split=" ", lower=True, num_words=None,
                      document_count=1, char_level=False, oov_token=None, index_docs=collections.defaultdict(int),
                      word_index={"hi": 1, "yo": 2}, index_word={1: "hi", 2: "yo"})  # fmt: skip
    data = pickle.dumps(t, protocol=3)
    monkeypatch.delitem(sys.modules, "keras_preprocessing.text")
    monkeypatch.delitem(sys.modules, "keras_preprocessing")
    out = safe_loads(data, TOXBLOCK_PICKLE_ALLOWED)
    assert type(out) is KerasTextTokenizer and not hasattr(out, "word_counts")
    assert out.texts_to_sequences(["Hi, YO there"]) == [[1, 2]]


def _np_keras_lstm(x, w, u, b, rec, act=np.tanh, go_backwards=False):
    """One Keras LSTM, one sample, step by step (implementation=1 gate slices). x (T, in) -> (T, H)."""
    h_units = u.shape[0]
    sl = [slice(k * h_units, (k + 1) * h_units) for k in range(4)]  # i, f, c, o
    h, c, out = np.zeros(h_units), np.zeros(h_units), []
    for xt in x[::-1] if go_backwards else x:
        i = rec(xt @ w[:, sl[0]] + b[sl[0]] + h @ u[:, sl[0]])
        f = rec(xt @ w[:, sl[1]] + b[sl[1]] + h @ u[:, sl[1]])
        c = f * c + i * act(xt @ w[:, sl[2]] + b[sl[2]] + h @ u[:, sl[2]])
        o = rec(xt @ w[:, sl[3]] + b[sl[3]] + h @ u[:, sl[3]])
        h = o * act(c)
        out.append(h)
    return np.array(out)


def _np_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def test_hard_sigmoid_by_hand():
    x = torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 4.0])
    np.testing.assert_allclose(hard_sigmoid(x).numpy(), [0, 0, 0.3, 0.5, 0.7, 1, 1], atol=1e-7)


@pytest.mark.parametrize("rec_name, rec", [("hard_sigmoid", _np_hard_sigmoid), ("sigmoid", _np_sigmoid)])
def test_keras_lstm_matches_numpy_step_by_step(rec_name, rec):
    rng = np.random.default_rng(0)
    d, b, t, n_in, h = 2, 3, 5, 4, 3
    x = rng.normal(size=(d, b, t, n_in))
    w, u, bias = rng.normal(size=(d, n_in, 4 * h)) * 1.5, rng.normal(size=(d, h, 4 * h)), rng.normal(size=(d, 4 * h))
    got = keras_lstm(*(torch.from_numpy(a) for a in (x, w, u, bias)), recurrent_activation=rec_name).numpy()
    assert got.shape == (d, b, t, h)
    for di in range(d):
        for bi in range(b):
            np.testing.assert_allclose(got[di, bi], _np_keras_lstm(x[di, bi], w[di], u[di], bias[di], rec), atol=1e-12)
    if rec_name == "hard_sigmoid":  # the clipped regions were really visited
        z = np.einsum("dbti,dij->dbtj", x, w) + bias[:, None, None]
        assert (np.abs(z) > 2.5).any()


def _keras_config(maxlen, vocab, emb, units, dense, outputs, rec="hard_sigmoid"):
    """A tox-block-shaped Keras functional config (Input, Embedding, BiLSTM, max pool, Dense relu, Dropout, Dense)."""
    layers = [
        ("input_1", "InputLayer", {"batch_input_shape": [None, maxlen]}),
        ("embedding", "Embedding", {"input_dim": vocab, "output_dim": emb, "mask_zero": False}),
        ("bidirectional", "Bidirectional", {"merge_mode": "concat", "layer": {"class_name": "LSTM", "config": {
            "units": units, "activation": "tanh", "recurrent_activation": rec, "use_bias": True,
            "return_sequences": True, "go_backwards": False, "dropout": 0.1, "recurrent_dropout": 0.1}}}),
        ("global_max_pooling1d", "GlobalMaxPooling1D", {"data_format": "channels_last"}),
        ("dense", "Dense", {"units": dense, "activation": "relu", "use_bias": True}),
        ("dropout", "Dropout", {"rate": 0.1}),
        ("dense_1", "Dense", {"units": outputs, "activation": "sigmoid", "use_bias": True}),
    ]  # fmt: skip
    out, prev = [], None
    for name, kind, cfg in layers:
        out.append({"name": name, "class_name": kind, "config": {"name": name, **cfg},
                    "inbound_nodes": [[[prev, 0, 0, {}]]] if prev else []})  # fmt: skip
        prev = name
    return {"class_name": "Model", "config": {"name": "model", "layers": out}}


def _write_keras_h5(path, config, weights):
    """Keras 2 HDF5 layout: attrs model_config; model_weights/<layer>/<layer>/<weight>:0 with weight_names."""
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        names = [layer["name"] for layer in config["config"]["layers"]]
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            lg = g.create_group(name)
            pairs = weights.get(name, [])
            lg.attrs["weight_names"] = np.array([f"{name}/{w}".encode() for w, _ in pairs], dtype="S64")
            for w, arr in pairs:
                lg.create_dataset(f"{name}/{w}", data=arr)


@pytest.mark.numerics
def test_keras_net_from_h5_matches_numpy_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    maxlen, vocab, emb, units, dense, outputs = 6, 9, 3, 2, 4, 6
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
    fw = [("forward_lstm/kernel:0", f32(emb, 4 * units)), ("forward_lstm/recurrent_kernel:0", f32(units, 4 * units)),
          ("forward_lstm/bias:0", f32(4 * units))]  # fmt: skip
    bw = [(n.replace("forward", "backward"), f32(*a.shape)) for n, a in fw]
    weights = {
        "embedding": [("embeddings:0", f32(vocab, emb))],
        "bidirectional": fw + bw,
        "dense": [("kernel:0", f32(2 * units, dense)), ("bias:0", f32(dense))],
        "dense_1": [("kernel:0", f32(dense, outputs)), ("bias:0", f32(outputs))],
    }
    config = _keras_config(maxlen, vocab, emb, units, dense, outputs)
    _write_keras_h5(tmp_path / "m.h5", config, weights)
    cfg_read, w_read = read_keras_h5(tmp_path / "m.h5")
    assert cfg_read == config and [a.shape for a in w_read["bidirectional"]] == [a.shape for _, a in fw + bw]
    net = KerasSequentialNet(cfg_read, w_read)
    assert net.input_length == maxlen
    ids = pad_sequences([[1, 2, 3], [8, 7, 6, 5, 4, 3, 2], [], [5]], maxlen)
    got = net(torch.from_numpy(ids)).numpy()

    wd = {k: [a.astype(np.float64) for _, a in v] for k, v in weights.items()}
    ref = []
    for row in ids:
        x = wd["embedding"][0][row]
        f = _np_keras_lstm(x, *wd["bidirectional"][:3], _np_hard_sigmoid)
        b = _np_keras_lstm(x, *wd["bidirectional"][3:], _np_hard_sigmoid, go_backwards=True)[::-1]
        pooled = np.concatenate([f, b], axis=1).max(axis=0)
        hidden = np.maximum(pooled @ wd["dense"][0] + wd["dense"][1], 0)
        ref.append(_np_sigmoid(hidden @ wd["dense_1"][0] + wd["dense_1"][1]))
    np.testing.assert_allclose(got, np.array(ref), atol=1e-5)

    config["config"]["layers"][3]["class_name"] = "GlobalAveragePooling1D"
    with pytest.raises(ScorerError, match="GlobalAveragePooling1D is not ported"):
        KerasSequentialNet(config, w_read)


# ============================================================================ ToxBlock against its README


@pytest.fixture(scope="module")
def toxblock():
    return load_scorer("toxblock")


# The package README (tox_block-0.1.2.dist-info/METADATA): make_predictions(..., rescale=True).
README = {
    "Good morning my friend, I hope you're having a fantastic day!": [
        0.05347811430692673, 0.0006274021579883993, 0.004466842859983444,
        0.009578478522598743, 0.00757843442261219, 0.002106667961925268],
    "I will kill you, you fucking idiot!": [
        0.9998679757118225, 0.7870362997055054, 0.9885633587837219,
        0.8483908176422119, 0.9883397221565247, 0.171059250831604],
    "I do strongly disagree with the fascist views of this joke that calls itself a political party.": [
        0.026190076023340225, 7.185135473264381e-05, 0.0009493605466559529,
        0.00012321282702032477, 0.0029190618079155684, 0.0022098885383456945],
}  # fmt: skip


def test_toxblock_reproduces_readme(toxblock):
    texts = list(README)
    got = toxblock.score_all(texts, rescale=True)
    assert list(got) == list(TOXBLOCK_LABELS)
    table = np.stack([got[label] for label in TOXBLOCK_LABELS], axis=1)
    # The README's own two runs of sentence 2 differ by 6e-8 (float32 noise); 1e-6 is well inside its rounding.
    np.testing.assert_allclose(table, np.array(list(README.values())), atol=1e-6, rtol=0)
    single = toxblock.score_all(["I will kill you, you fucking idiot!"], rescale=True)  # make_single_prediction
    assert abs(single["toxic"][0] - 0.9998680353164673) < 1e-6
    assert abs(single["identity_hate"][0] - 0.1710592657327652) < 1e-6


def test_toxblock_readme_check_is_sensitive_to_the_recurrent_activation(toxblock):
    """With Keras 3 / cuDNN-style sigmoid gates instead of the stored hard_sigmoid, the README is missed."""
    config, weights = read_keras_h5(toxblock_dir() / "trained_models" / "lstm_model_0.1.2.h5")
    lstm = config["config"]["layers"][2]["config"]["layer"]["config"]
    assert lstm["recurrent_activation"] == "hard_sigmoid"
    lstm["recurrent_activation"] = "sigmoid"
    ids = torch.from_numpy(toxblock.encode(list(README)))
    wrong = KerasSequentialNet(config, weights)(ids).numpy()
    raw = toxblock.predict_raw(list(README))
    assert np.abs(wrong - raw).max() > 1e-3


def test_toxblock_score_is_raw_toxic_probability(toxblock):
    texts = [*README, "", "   ", "!!!", "hello"]
    s = toxblock.score(texts)
    _contract(s, len(texts))
    raw = toxblock.score_all(texts)
    np.testing.assert_array_equal(s, raw["toxic"])
    resc = toxblock.score_all(texts, rescale=True)
    lo, hi = 0.002116, 0.999858  # tox_block/config/config.py RESCALE_PROBA["toxic"]
    np.testing.assert_allclose(resc["toxic"], np.abs((raw["toxic"] - lo) / (hi - lo)), atol=1e-6)
    assert s[texts.index("")] == s[texts.index("   ")] == s[texts.index("!!!")]  # all are all-padding inputs
    assert toxblock.name == "toxblock"
    digest = hashlib.sha256((toxblock_dir() / "trained_models" / "lstm_model_0.1.2.h5").read_bytes()).hexdigest()
    assert toxblock.version == f"tox-block==0.1.2;sha256:{digest[:12]}"


def test_toxblock_encoding(toxblock):
    wi = toxblock.encoder.tokenizer.word_index
    ids = toxblock.encode(["Hello, WORLD!!", ""])
    assert ids.shape == (2, 100) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[0], [0] * 98 + [wi["hello"], wi["world"]])
    np.testing.assert_array_equal(ids[1], np.zeros(100))
    # 'pre' truncation keeps the last 100 words: a long text scores as its tail
    head, tail = " ".join(["good"] * 100), " ".join(["you idiot"] * 50)
    s = toxblock.score([f"{head} {tail}", tail, head])
    assert abs(s[0] - s[1]) < 1e-6 and abs(s[0] - s[2]) > 1e-3


@pytest.mark.numerics
def test_toxblock_batching_is_invisible(toxblock):
    texts = [*README, "", "you are stupid", "what a lovely morning"] * 3
    threads = torch.get_num_threads()
    a = toxblock.score(texts)
    assert torch.get_num_threads() == threads  # the one-thread recurrence restores the setting
    toxblock.batch_size = 2
    try:
        b = toxblock.score(texts)
    finally:
        toxblock.batch_size = 64
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert toxblock.score([]).shape == (0,)


def test_toxblock_pickle_names_exactly_the_allow_list(toxblock):
    asked = set()

    class Recording(RestrictedUnpickler):
        def find_class(self, module, name):
            asked.add((module, name))
            return super().find_class(module, name)

    data = (toxblock_dir() / "trained_models" / "encoder_0.1.2.pkl").read_bytes()
    Recording(io.BytesIO(data), TOXBLOCK_PICKLE_ALLOWED).load()
    assert asked == set(TOXBLOCK_PICKLE_ALLOWED)
    assert type(toxblock.encoder) is ToxBlockEncoder and type(toxblock.encoder.tokenizer) is KerasTextTokenizer
    assert toxblock.encoder.max_sequence_length == 100 and toxblock.encoder.tokenizer.num_words == 20000
    # dropping any one allowed name makes the real file fail loudly
    fewer = {k: v for k, v in TOXBLOCK_PICKLE_ALLOWED.items() if k != ("builtins", "int")}
    with pytest.raises(UnsafePickleError, match=r"builtins\.int"):
        safe_loads(data, fewer)
