"""Word tokens, stopwords, and the checks of text inputs shared by the political analysis.

>>> words("The Left-wing MP's vote, 2024!")
['the', 'left-wing', "mp's", 'vote']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from unidetox.analysis.politics import PoliticalError

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


def words(text: str) -> list[str]:
    """Lowercase word tokens of `text` (letters, inner apostrophes and hyphens; curly apostrophes made straight)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def content_words(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """:func:`words` without stopwords and one-letter words."""
    return [w for w in words(text) if len(w) > 1 and w not in stopwords]


def check_texts(texts, what: str = "texts") -> list[str]:
    """`texts` as a list, after checking it is a sequence of strings (not one string); `what` names it."""
    if isinstance(texts, str):
        raise PoliticalError(f"{what} must be a list of strings, not a single string; wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise PoliticalError(f"{what}[{bad[0]}] is {type(texts[bad[0]]).__name__}, not str; pass strings only")
    return texts


def check_sets(text_sets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """`text_sets` as ``{name: list of texts}``, after checking it is a non-empty mapping of non-empty sets."""
    if not isinstance(text_sets, Mapping) or not text_sets:
        raise PoliticalError("text_sets must be a non-empty mapping of set name -> list of texts")
    out = {str(k): check_texts(v, f"text set {k!r}") for k, v in text_sets.items()}
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


__all__ = ["STOPWORDS", "check_sets", "check_texts", "content_words", "read_texts_csv", "words"]
