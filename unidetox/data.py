"""Data loaders: DGHS, ToxiGen, MMLU and the Political Compass, from local files or the paper's Hub ids.

Every data set has one *normaliser* that turns a raw table into this module's columns; the local
branch (files under the data directory, see ``README.md`` of the shared data folder) and the Hub branch
(``datasets.load_dataset`` on the ids in :class:`~unidetox.config.DataConfig`) both feed it, so
they return the same columns and, where the data overlap, the same rows.

* DGHS v0.2.3 (toxic-model corpus): ``text, label, target, split``. Locally only ``dev`` and ``test``.
* ToxiGen ``annotated`` (prompts): the local CSV stores ``text`` as a Python bytes literal ``b'...'``,
  decoded here with a parser that accepts bytes literals only (nothing is evaluated). The paper's
  validation prompts are ``train.shuffle(seed=42).select(range(int(0.1 * len(train))))`` (896 rows),
  reproduced with the same ``datasets`` call on the local table; ``report`` is the other 8,064 rows.
* MMLU: ``subject, question, choices (4 strings), answer (0-3)``.
* Political Compass: ``id, statement``.

The Hub branch never passes a token: ``datasets`` reads ``HF_TOKEN`` from the environment itself.

>>> cfg = DataConfig(source="local")
>>> len(load_political_compass(cfg))
62
"""

from __future__ import annotations

import ast
import codecs
import difflib
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unidetox.config import DGHS_TARGETS, DataConfig
from unidetox.errors import UnidetoxError
from unidetox.store import sha256_file

# ----------------------------------------------------------------------------- constants

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"  # <repo>/../shared/data
DATA_DIR_ENV = "UNIDETOX_DATA_DIR"

DGHS_SPLITS = ("train", "dev", "test")
DGHS_LOCAL_SPLITS = ("dev", "test")  # the offline copy has no train split
DGHS_LABELS = ("hate", "nothate")
DGHS_COLUMNS = ("text", "label", "target", "split")

TOXIGEN_SPLITS = ("train", "test")
TOXIGEN_COLUMNS = ("text", "target_group", "toxicity_human")  # required; `label` is optional (absent on the Hub)
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

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
    "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
    "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
    "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
    "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions",
)  # fmt: skip
MMLU_LOCAL_SPLITS = ("dev", "test")
MMLU_HUB_SPLITS = ("dev", "validation", "test", "auxiliary_train")
MMLU_LOCAL_COLUMNS = ("question", "choice0", "choice1", "choice2", "choice3", "answer")

# Files each data set reads from the local directory (globs relative to it), for `data_files`.
LOCAL_FILES: dict[str, tuple[str, ...]] = {
    "dghs": ("dghs/dghs_v0.2.3_*.csv",),
    "toxigen": ("toxigen/annotated_*.csv",),
    "mmlu": ("mmlu/dev/*.csv", "mmlu/test/*.csv"),
    "political_compass": ("political_compass/statements.json",),
}


class DataError(UnidetoxError, RuntimeError):
    """A data set that cannot be loaded; the message names the file or id, what was expected, and the fix."""


# ----------------------------------------------------------------------------- locating and reading files


def resolve_data_dir(cfg: DataConfig) -> Path:
    """The local data directory: ``cfg.dir``, else ``$UNIDETOX_DATA_DIR``, else ``<repo>/../shared/data``."""
    if cfg.dir:
        path, how = Path(cfg.dir), "data.dir"
    elif os.environ.get(DATA_DIR_ENV):
        path, how = Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}"
    else:
        path, how = DEFAULT_DATA_DIR, "the default <repo>/../shared/data"
    path = path.expanduser()
    if not path.is_dir():
        raise DataError(
            f"data directory {path} (from {how}) does not exist. Fix: set data.dir (--set data.dir=PATH) or "
            f"${DATA_DIR_ENV} to the folder holding dghs/, toxigen/, mmlu/ and political_compass/, "
            "or use data.source=hub with network access."
        )
    return path


def _missing_file(path: Path, what: str) -> DataError:
    return DataError(
        f"missing data file {path}: expected {what}. Fix: point data.dir or ${DATA_DIR_ENV} at a complete copy "
        "of the data (its layout is in the data README: dghs/, toxigen/, mmlu/, political_compass/), "
        "or use data.source=hub with network access."
    )


def read_csv_checked(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Read a CSV as strings (no NA guessing: 'None' stays a string) and check it has `columns`."""
    if not path.is_file():
        raise _missing_file(path, what)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot read {path} ({what}): {type(e).__name__}: {e}. Fix: restore the file.") from None
    _require_columns(frame, columns, str(path))
    return frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where} lacks the column(s) {', '.join(missing)} (expected {', '.join(columns)}; "
            f"found {', '.join(map(str, frame.columns)) or 'none'})"
        )


def _numeric(series: pd.Series, name: str, where: str) -> pd.Series:
    try:
        return pd.to_numeric(series, errors="raise")
    except (ValueError, TypeError) as e:
        raise DataError(f"{where}: column {name!r} must be numeric ({e})") from None


def _hub_frame(repo: str, name: str | None, split: str, *, class_labels_as_str: Sequence[str] = ()) -> pd.DataFrame:
    """One split of a Hub data set as a DataFrame; `class_labels_as_str` ClassLabel columns become their names.

    No token is passed: ``datasets`` reads ``HF_TOKEN`` from the environment.
    """
    import datasets

    try:
        ds = datasets.load_dataset(repo, name, split=split)
    except Exception as e:  # noqa: BLE001 (network, auth, unknown id or split: one message each, see unidetox.hub)
        from unidetox.hub import explain

        raise DataError(
            f"cannot load {repo} (config {name!r}, split {split!r}) from the Hugging Face Hub ({type(e).__name__}): "
            f"{explain('dataset', repo, e)} Or use data.source=local with data.dir / ${DATA_DIR_ENV} set."
        ) from None
    if isinstance(ds, datasets.DatasetDict):  # a loader that ignored `split`
        if split not in ds:
            raise DataError(f"{repo} (config {name!r}) has no split {split!r}; it has {', '.join(ds)}")
        ds = ds[split]
    frame = ds.to_pandas()
    for col in class_labels_as_str:
        feature = ds.features.get(col)
        if isinstance(feature, datasets.ClassLabel):
            frame[col] = [feature.int2str(int(v)) for v in frame[col]]
    return frame


# ----------------------------------------------------------------------------- DGHS


def normalise_dghs(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Raw DGHS rows (local CSV or Hub) -> columns ``text, label, target, split`` (strings)."""
    _require_columns(frame, DGHS_COLUMNS, where)
    out = pd.DataFrame({c: frame[c].fillna("").astype(str).to_numpy() for c in DGHS_COLUMNS})
    bad = sorted(set(out["label"]) - set(DGHS_LABELS))
    if bad:
        raise DataError(f"{where}: DGHS label values must be hate or nothate, found {bad[:5]}")
    return out


def load_dghs(
    cfg: DataConfig,
    splits: Sequence[str],
    *,
    label: str | None = "hate",
    targets: Sequence[str] = DGHS_TARGETS,
) -> pd.DataFrame:
    """DGHS v0.2.3 rows of `splits` with `label` (None: both) and `target` in `targets` (empty: all).

    Returns columns ``text, label, target, split``, in file order (splits in the order asked).
    The official code keeps ``label == "hate"`` and exact matches of the 34 target codes.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits or any(s not in DGHS_SPLITS for s in splits):
        raise DataError(f"DGHS splits must be a non-empty list of {', '.join(DGHS_SPLITS)}, got {splits!r}")
    if label is not None and label not in DGHS_LABELS:
        raise DataError(f"DGHS label must be 'hate', 'nothate' or None, got {label!r}")
    if cfg.source == "hub":
        frame = normalise_dghs(_hub_frame(cfg.dghs_hub_id, None, "train"), cfg.dghs_hub_id)
        where = f"{cfg.dghs_hub_id} (Hub)"
    else:
        absent = [s for s in splits if s not in DGHS_LOCAL_SPLITS]
        if absent:
            raise DataError(
                f"DGHS split(s) {', '.join(absent)} are not in the local data: the offline copy has only "
                f"{' and '.join(DGHS_LOCAL_SPLITS)} (dghs/dghs_v0.2.3_{{dev,test}}.csv). Fix: train on the local "
                "splits (--set toxic.train_splits=[dev] --set toxic.val_splits=[test]) or use data.source=hub."
            )
        root = resolve_data_dir(cfg)
        parts = []
        for s in splits:
            path = root / "dghs" / f"dghs_v0.2.3_{s}.csv"
            parts.append(normalise_dghs(read_csv_checked(path, DGHS_COLUMNS, f"the DGHS {s} split"), str(path)))
        frame = pd.concat(parts, ignore_index=True)
        where = f"{root / 'dghs'}"
    keep = frame["split"].isin(splits)
    if label is not None:
        keep &= frame["label"] == label
    if targets:
        keep &= frame["target"].isin(tuple(targets))
    out = frame[keep].reset_index(drop=True)
    if out.empty:
        raise DataError(
            f"no DGHS rows in {where} for splits={list(splits)}, label={label!r} and {len(targets)} target codes "
            "(targets=() keeps every target). Fix: check the splits and target codes."
        )
    return out


# ----------------------------------------------------------------------------- ToxiGen


def decode_bytes_literal(value: str, where: str = "value") -> str:
    r"""``b'caf\xc3\xa9'`` -> ``café``: parse one Python bytes literal (nothing is evaluated), decode UTF-8."""
    s = value.strip() if isinstance(value, str) else ""
    if len(s) < 3 or s[0] != "b" or s[1] not in "'\"" or s[-1] != s[1]:
        raise DataError(f"{where}: expected a Python bytes literal like b'...', got {str(value)[:60]!r}")
    try:
        node = ast.parse(s, mode="eval").body
    except (SyntaxError, ValueError) as e:
        raise DataError(f"{where}: not a valid bytes literal ({e.__class__.__name__}): {s[:60]!r}") from None
    if not (isinstance(node, ast.Constant) and isinstance(node.value, bytes)):
        raise DataError(f"{where}: expected a bytes literal only, got {s[:60]!r}")
    raw = ast.literal_eval(node)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: bytes literal is not valid UTF-8 ({e})") from None


def decode_hub_toxigen_text(value: str) -> str:
    """Text from the Hub's ``annotated`` config -> the same string the local CSV decodes to.

    The Hub loading script strips the ``b'``/``'`` wrapper but leaves the escapes (``\\\\'``, ``\\\\xe2...``)
    in place; undo them the way the bytes literal would. A full literal is decoded strictly; plain text
    without backslashes is returned unchanged.
    """
    s = "" if value is None else str(value)
    if len(s) >= 3 and s[0] == "b" and s[1] in "'\"" and s[-1] == s[1]:
        return decode_bytes_literal(s, "ToxiGen Hub text")
    if "\\" not in s or not s.isascii():
        return s
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "invalid escape sequence" for e.g. \u, which stays as is
            return codecs.escape_decode(s.encode("ascii"))[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return s


def normalise_toxigen(frame: pd.DataFrame, where: str, *, bytes_literals: bool) -> pd.DataFrame:
    """Raw ToxiGen ``annotated`` rows -> the same rows with decoded ``text``, float ``toxicity_human``
    and a string ``label`` (hate|neutral; '' where the source has no label column, as on the Hub)."""
    _require_columns(frame, TOXIGEN_COLUMNS, where)
    out = frame.copy()
    if bytes_literals:
        out["text"] = [decode_bytes_literal(v, f"{where}, text of row {i}") for i, v in enumerate(frame["text"])]
    else:
        out["text"] = [decode_hub_toxigen_text(v) for v in frame["text"]]
    out["target_group"] = out["target_group"].fillna("").astype(str)
    out["toxicity_human"] = _numeric(out["toxicity_human"], "toxicity_human", where).astype(float)
    if "label" in out.columns:
        out["label"] = out["label"].fillna("").astype(str)
    else:
        out["label"] = ""
    return out.reset_index(drop=True)


def load_toxigen(cfg: DataConfig, split: str) -> pd.DataFrame:
    """ToxiGen human-annotated rows of `split` (train: 8,960; test: 940), every column, decoded ``text``.

    Local: ``toxigen/annotated_{split}.csv``; the test split is not in the offline copy, so without that
    file it comes from the Hub (an error when offline).
    """
    if split not in TOXIGEN_SPLITS:
        raise DataError(f"ToxiGen split must be one of {', '.join(TOXIGEN_SPLITS)}, got {split!r}")
    if cfg.source == "local":
        path = resolve_data_dir(cfg) / "toxigen" / f"annotated_{split}.csv"
        if path.is_file():
            raw = read_csv_checked(path, TOXIGEN_COLUMNS, f"the ToxiGen annotated {split} split")
            return normalise_toxigen(raw, str(path), bytes_literals=True)
        if split == "train":
            raise _missing_file(path, "the ToxiGen annotated train split (8,960 rows)")
        try:
            raw = _hub_frame(cfg.toxigen_hub_id, "annotated", split)
        except DataError as e:
            raise DataError(
                f"the ToxiGen annotated test split is not in the local data ({path} does not exist) and the Hub "
                f"copy could not be loaded (offline?). Fix: use the disjoint held-out prompts "
                f"(--set eval.prompt_split=report), put annotated_test.csv there, or run with network access. "
                f"Hub error: {e}"
            ) from None
    else:
        raw = _hub_frame(cfg.toxigen_hub_id, "annotated", split)
    return normalise_toxigen(raw, f"{cfg.toxigen_hub_id} annotated/{split} (Hub)", bytes_literals=False)


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


# ----------------------------------------------------------------------------- MMLU


def check_mmlu_subjects(subjects: Sequence[str]) -> tuple[str, ...]:
    """The subjects to score (all 57 for an empty list); an unknown name raises DataError with the closest ones."""
    if isinstance(subjects, str):
        subjects = (subjects,)
    for s in subjects:
        if s not in MMLU_SUBJECTS:
            close = difflib.get_close_matches(s, MMLU_SUBJECTS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see unidetox.data.MMLU_SUBJECTS"
            raise DataError(f"unknown MMLU subject {s!r}{hint}")
    return tuple(subjects) or MMLU_SUBJECTS


def _answer_index(value: Any, where: str) -> int:
    text = str(value).strip()
    if text in ("A", "B", "C", "D"):
        return "ABCD".index(text)
    try:
        idx = int(float(text))
    except ValueError:
        idx = -1
    if idx not in (0, 1, 2, 3) or str(value).strip() == "":
        raise DataError(f"{where}: MMLU answer must be an index 0-3 (or A-D), got {value!r}")
    return idx


def normalise_mmlu(frame: pd.DataFrame, where: str, subject: str | None = None) -> pd.DataFrame:
    """Local (``question, choice0..3, answer``) or Hub (``question, subject, choices, answer``) rows ->
    columns ``subject, question, choices`` (list of 4 str), ``answer`` (int 0-3)."""
    if "choices" in frame.columns:
        _require_columns(frame, ("question", "choices", "answer") + (() if subject else ("subject",)), where)
        choices = [[str(c) for c in cs] for cs in frame["choices"]]
    else:
        _require_columns(frame, MMLU_LOCAL_COLUMNS, where)
        choices = [list(t) for t in zip(*(frame[f"choice{i}"].astype(str) for i in range(4)))]
    if any(len(c) != 4 for c in choices):
        raise DataError(f"{where}: every MMLU question needs exactly 4 choices")
    subjects = [subject] * len(frame) if subject else frame["subject"].astype(str).tolist()
    return pd.DataFrame(
        {
            "subject": subjects,
            "question": frame["question"].astype(str).to_numpy(),
            "choices": choices,
            "answer": np.array([_answer_index(a, where) for a in frame["answer"]], dtype=np.int64),
        }
    )


def load_mmlu(cfg: DataConfig, split: str, *, subjects: Sequence[str] = (), per_subject: int = 0) -> pd.DataFrame:
    """MMLU questions of `split`, subjects in alphabetical order (or the order given), file order within one.

    ``per_subject > 0`` keeps the first n questions of each subject (a fixed, documented choice: no shuffle).
    Local splits: dev, test; Hub (``cais/mmlu`` config ``all``): dev, validation, test, auxiliary_train.
    """
    chosen = check_mmlu_subjects(subjects)
    if per_subject < 0:
        raise DataError(f"per_subject must be >= 0, got {per_subject}")
    if cfg.source == "hub":
        if split not in MMLU_HUB_SPLITS:
            raise DataError(f"MMLU split must be one of {', '.join(MMLU_HUB_SPLITS)}, got {split!r}")
        where = f"{cfg.mmlu_hub_id} all/{split} (Hub)"
        frame = normalise_mmlu(_hub_frame(cfg.mmlu_hub_id, "all", split), where)
        frame = frame[frame["subject"].isin(chosen)]
        order = {s: i for i, s in enumerate(chosen)}
        frame = frame.iloc[np.argsort(frame["subject"].map(order).to_numpy(), kind="stable")]
    else:
        if split not in MMLU_LOCAL_SPLITS:
            raise DataError(
                f"MMLU split {split!r} is not in the local data (only {', '.join(MMLU_LOCAL_SPLITS)}: "
                f"mmlu/<split>/<subject>_<split>.csv). Fix: --set eval.mmlu_split=test, or use data.source=hub."
            )
        root = resolve_data_dir(cfg)
        parts = []
        for s in chosen:
            path = root / "mmlu" / split / f"{s}_{split}.csv"
            raw = read_csv_checked(path, MMLU_LOCAL_COLUMNS, f"MMLU {s} {split} questions")
            parts.append(normalise_mmlu(raw, str(path), subject=s))
        frame = pd.concat(parts, ignore_index=True)
        where = str(root / "mmlu" / split)
    if per_subject > 0:
        frame = frame.groupby("subject", sort=False).head(per_subject)
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise DataError(f"no MMLU questions in {where} for subjects {list(chosen)[:5]}")
    return frame


# ----------------------------------------------------------------------------- Political Compass


def load_political_compass(cfg: DataConfig) -> pd.DataFrame:
    """The 62 Political Compass statements: columns ``id`` (int), ``statement``. Always local (no Hub id)."""
    path = resolve_data_dir(cfg) / "political_compass" / "statements.json"
    if not path.is_file():
        raise _missing_file(path, "the 62 Political Compass statements (JSON list of {statement, response, id})")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}. Fix: restore the file.") from None
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise DataError(f"{path}: expected a JSON list of objects with keys statement and id")
    frame = pd.DataFrame(items)
    _require_columns(frame, ("id", "statement"), str(path))
    if frame.empty:
        raise DataError(f"{path}: no statements")
    ids = _numeric(frame["id"], "id", str(path)).astype(np.int64)
    return pd.DataFrame({"id": ids.to_numpy(), "statement": frame["statement"].astype(str).to_numpy()})


# ----------------------------------------------------------------------------- provenance


def data_files(cfg: DataConfig, which: Sequence[str] = ()) -> dict[str, str]:
    """Relative path -> sha256 of each local data file the loaders read (of the data sets in `which`,
    default all: dghs, toxigen, mmlu, political_compass). Empty for ``source == "hub"``, except the
    Political Compass, which is always local."""
    kinds = tuple(which) or tuple(LOCAL_FILES)
    unknown = [k for k in kinds if k not in LOCAL_FILES]
    if unknown:
        raise DataError(f"unknown data set(s) {unknown}; choose from {', '.join(LOCAL_FILES)}")
    if cfg.source == "hub":
        kinds = tuple(k for k in kinds if k == "political_compass")
        if not kinds:
            return {}
    root = resolve_data_dir(cfg)
    paths = sorted({p for k in kinds for pattern in LOCAL_FILES[k] for p in root.glob(pattern) if p.is_file()})
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in paths}


def text_fingerprint(texts: Sequence[str]) -> str:
    """sha256 (hex) of a sequence of texts; each text is length-prefixed, so ["ab"] and ["a", "b"] differ."""
    if isinstance(texts, str):
        raise TypeError("text_fingerprint expects a sequence of texts, not a single string")
    h = hashlib.sha256()
    for t in texts:
        b = str(t).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


__all__ = [
    "DOMAINS",
    "GROUP_TO_DOMAIN",
    "MMLU_SUBJECTS",
    "TOXIGEN_DOMAINS",
    "DataError",
    "data_files",
    "decode_bytes_literal",
    "domain_of",
    "load_dghs",
    "load_mmlu",
    "load_political_compass",
    "load_toxigen",
    "load_toxigen_prompts",
    "resolve_data_dir",
    "select_prompts",
    "subsample_per_domain",
    "text_fingerprint",
]
