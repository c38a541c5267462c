"""ToxiGen prompts of the paper's four evaluation domains, in three splits.

The paper's validation prompts are ``train.shuffle(seed=42).select(range(int(0.1 * len(train))))`` (896 rows),
reproduced with the same ``datasets`` call on the local table; ``report`` is the other 8,064 annotated-train
rows; ``test`` is the Hub's 940 annotated-test rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from unidetox.config import DataConfig
from unidetox.data.files import DataError
from unidetox.data.toxigen import load_toxigen

PROMPT_SPLITS = ("validation", "test", "report")
PROMPT_COLUMNS = ("prompt_id", "text", "target_group", "domain", "toxicity_human", "label")
VALIDATION_SEED = 42  # official code: ds["train"].shuffle(seed=42).select(range(int(0.1 * len)))
VALIDATION_FRACTION = 0.1

# Official UniDetox mapping of ToxiGen `target_group` to the four evaluation domains (train and test spellings).
TOXIGEN_DOMAINS: dict[str, tuple[str, ...]] = {
    "gender_lgbtq": ("women", "lgbtq", "lgbtq+ folks"),
    "race_nationality": (
        "black", "black folks / african-americans", "black/african-american folks",
        "asian", "asian folks", "latino", "latino/hispanic folks", "chinese", "chinese folks",
        "mexican", "mexican folks", "middle_east", "middle eastern folks", "native_american",
        "native american/indigenous folks", "native american folks",
    ),
    "religion": ("jewish", "jewish folks", "muslim", "muslim folks"),
    "disability": ("mental_dis", "folks with mental disabilities", "physical_dis", "folks with physical disabilities"),
}  # fmt: skip
DOMAINS = tuple(TOXIGEN_DOMAINS)
GROUP_TO_DOMAIN = {group: domain for domain, groups in TOXIGEN_DOMAINS.items() for group in groups}


def validation_rows(n_rows: int, texts: Sequence[str] | None = None) -> np.ndarray:
    """Row indices of the paper's validation prompts among `n_rows` annotated-train rows, in selection order.

    Runs the official ``Dataset.shuffle(seed=42).select(range(int(0.1 * n)))`` on a ``datasets.Dataset``.
    """
    import datasets

    columns: dict[str, Any] = {"row": list(range(n_rows))}
    if texts is not None:
        columns["text"] = list(texts)
    ds = datasets.Dataset.from_dict(columns)
    picked = ds.shuffle(seed=VALIDATION_SEED).select(range(int(VALIDATION_FRACTION * len(ds))))
    return np.asarray(picked["row"], dtype=np.int64)


def domain_of(target_group: str) -> str | None:
    """The evaluation domain of a ToxiGen target group, or None for groups the paper does not use."""
    return GROUP_TO_DOMAIN.get(target_group)


def subsample_per_domain(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The first `n` rows of each domain after a seeded shuffle (numpy default_rng(seed).permutation),
    returned in the frame's original order."""
    frame = frame.reset_index(drop=True)
    perm = np.random.default_rng(seed).permutation(len(frame))
    chosen = frame.iloc[perm].groupby("domain", sort=False).head(n).index
    return frame[frame.index.isin(chosen)].reset_index(drop=True)


def load_toxigen_prompts(cfg: DataConfig, split: str, *, prompts_per_domain: int = 0, seed: int = 0) -> pd.DataFrame:
    """ToxiGen prompts of the paper's four domains.

    split: ``validation`` (896 annotated-train rows, the paper's seed-42 10%, in the selection order),
    ``test`` (the Hub's 940 annotated-test rows) or ``report`` (the 8,064 annotated-train rows not in
    validation, in file order: a held-out set for final numbers offline). Rows of groups outside the four
    domains are dropped. Columns ``prompt_id`` (``"{split}-{row in the source split}"``), ``text``,
    ``target_group``, ``domain``, ``toxicity_human``, ``label``. ``prompts_per_domain > 0`` keeps the first
    n of each domain after a shuffle seeded with `seed` (order otherwise kept). Empty prompts (blank or missing
    text) are skipped, before the per-domain cap; their number is in ``attrs["empty_prompts_skipped"]``.
    """
    if split not in PROMPT_SPLITS:
        raise DataError(f"ToxiGen prompt split must be one of {', '.join(PROMPT_SPLITS)}, got {split!r}")
    if prompts_per_domain < 0:
        raise DataError(f"prompts_per_domain must be >= 0, got {prompts_per_domain}")
    raw = load_toxigen(cfg, "test" if split == "test" else "train")
    out = select_prompts(raw, split)
    blank = out["text"].isna() | (out["text"].astype(str).str.strip() == "")
    if blank.any():  # nothing to continue from; a model given no token cannot start
        out = out[~blank].reset_index(drop=True)
    if prompts_per_domain > 0:
        out = subsample_per_domain(out, prompts_per_domain, seed)
    if out.empty:
        raise DataError(
            f"no ToxiGen {split} prompts in the domains {', '.join(DOMAINS)}: the target_group values "
            f"({', '.join(sorted(set(raw['target_group']))[:8])}) match none of the official groups"
            + (f", or all {int(blank.sum())} prompts there are empty" if blank.any() else "")
        )
    out.attrs["empty_prompts_skipped"] = int(blank.sum())
    return out


def select_prompts(raw: pd.DataFrame, split: str) -> pd.DataFrame:
    """Prompt rows of `split` from a normalised annotated table (train for validation/report, test for test),
    with the columns of :func:`load_toxigen_prompts`; groups outside the four domains are dropped."""
    if split not in PROMPT_SPLITS:
        raise DataError(f"ToxiGen prompt split must be one of {', '.join(PROMPT_SPLITS)}, got {split!r}")
    if split == "test":
        rows = np.arange(len(raw))
    else:
        val = validation_rows(len(raw), raw["text"])
        rows = val if split == "validation" else np.setdiff1d(np.arange(len(raw)), val)  # report: file order
    picked = raw.iloc[rows]
    out = pd.DataFrame(
        {
            "prompt_id": [f"{split}-{r}" for r in rows],
            "text": picked["text"].to_numpy(),
            "target_group": picked["target_group"].to_numpy(),
            "domain": [domain_of(g) for g in picked["target_group"]],
            "toxicity_human": picked["toxicity_human"].to_numpy(dtype=float),
            "label": picked["label"].to_numpy(),
        }
    )
    return out[out["domain"].notna()].reset_index(drop=True)


__all__ = [
    "DOMAINS",
    "GROUP_TO_DOMAIN",
    "PROMPT_COLUMNS",
    "PROMPT_SPLITS",
    "TOXIGEN_DOMAINS",
    "domain_of",
    "load_toxigen_prompts",
    "select_prompts",
    "subsample_per_domain",
    "validation_rows",
]
