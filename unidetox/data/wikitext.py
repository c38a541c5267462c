"""WikiText-2 as clean English sentences: benign text for the scorers' false-positive rates.

The data folder holds the *tokenized* WikiText-2 (``wikitext2/{valid,test}.txt``: `` = Heading = `` lines,
``<unk>`` for rare words, ``@-@``/``@,@``/``@.@`` for joined hyphens and number separators, spaces around
punctuation); the Hub's copy is ``Salesforce/wikitext`` config ``wikitext-2-v1``, the same lines. Here each
paragraph line is cut into sentences (at a ``.``, ``!`` or ``?`` token followed by an upper-case start), the
tokenization is undone, and sentences holding ``<unk>`` or outside ``[min_words, max_words]`` are dropped.

>>> detokenize('The 1 @,@ 000 @-@ year " old " tree , it \\'s said , grew ( slowly ) .')
'The 1,000-year "old" tree, it\\'s said, grew (slowly).'
"""

from __future__ import annotations

import re

import pandas as pd

from unidetox.config import DataConfig
from unidetox.data.files import DataError, hub_frame, missing_file, resolve_data_dir

WIKITEXT_SPLITS = ("valid", "test")
HUB_CONFIG = "wikitext-2-v1"  # the tokenized form with <unk>, as in the data folder
HUB_SPLITS = {"valid": "validation", "test": "test"}
UNK = "<unk>"
_SENTENCE_END = re.compile(r"(?<= [.!?]) (?=[A-Z\"'(])")
_JOINS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_SPACING = (
    (re.compile(r" ([.,;:!?%)\]])"), r"\1"),  # no space before closing punctuation
    (re.compile(r"([(\[$]) "), r"\1"),  # nor after opening brackets and currency
    (re.compile(r" ('s|'re|'ve|'ll|'d|'m|n't)\b"), r"\1"),  # clitics
    (re.compile(r'" ([^"]*?) "'), r'"\1"'),  # quoted spans
)


def detokenize(text: str) -> str:
    """One tokenized WikiText-2 sentence as ordinary text (joins and punctuation spacing undone)."""
    out = f" {text.strip()} "
    for old, new in _JOINS:
        out = out.replace(old, new)
    out = " ".join(out.split())
    for pattern, repl in _SPACING:
        out = pattern.sub(repl, out)
    return out


def _lines(cfg: DataConfig, split: str) -> list[str]:
    """The raw lines of WikiText-2 `split` (valid | test), local file or Hub."""
    if split not in WIKITEXT_SPLITS:
        raise DataError(f"WikiText-2 split must be one of {', '.join(WIKITEXT_SPLITS)}, got {split!r}")
    if cfg.source == "hub":
        return hub_frame(cfg.wikitext_hub_id, HUB_CONFIG, HUB_SPLITS[split])["text"].astype(str).tolist()
    path = resolve_data_dir(cfg) / "wikitext2" / f"{split}.txt"
    if not path.is_file():
        raise missing_file(path, f"the tokenized WikiText-2 {split} split (wikitext2/{split}.txt)")
    return path.read_text(encoding="utf-8").splitlines()


def wikitext_sentences(cfg: DataConfig, split: str, *, min_words: int = 6, max_words: int = 40) -> pd.DataFrame:
    """Clean sentences of WikiText-2 `split`, in file order: columns ``paragraph`` (line number of its paragraph),
    ``position`` (0 for a paragraph's first sentence) and ``text``.

    Headings and empty lines are skipped; a sentence with ``<unk>`` or fewer than `min_words` / more than
    `max_words` words (after detokenization) is dropped, its position number kept (so ``position == 0`` is
    always a paragraph's opening sentence).
    """
    rows = []
    for i, line in enumerate(_lines(cfg, split)):
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for j, raw in enumerate(_SENTENCE_END.split(line)):
            if UNK in raw:
                continue
            text = detokenize(raw)
            if min_words <= len(text.split()) <= max_words:
                rows.append({"paragraph": i, "position": j, "text": text})
    if not rows:
        raise DataError(f"no clean sentences in WikiText-2 {split}: is the file the tokenized WikiText-2?")
    return pd.DataFrame(rows, columns=["paragraph", "position", "text"])


__all__ = ["HUB_CONFIG", "WIKITEXT_SPLITS", "detokenize", "wikitext_sentences"]
