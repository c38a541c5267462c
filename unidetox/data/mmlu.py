"""MMLU questions: ``subject, question, choices (4 strings), answer (0-3)``, from local CSVs or ``cais/mmlu``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from unidetox.config import DataConfig
from unidetox.data.files import DataError, hub_frame, read_csv_checked, require_columns, resolve_data_dir

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


def check_mmlu_subjects(subjects: Sequence[str]) -> tuple[str, ...]:
    """The subjects to score (all 57 for an empty list); an unknown name raises DataError with the closest ones."""
    if isinstance(subjects, str):
        subjects = (subjects,)
    for s in subjects:
        if s not in MMLU_SUBJECTS:
            close = difflib.get_close_matches(s, MMLU_SUBJECTS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see unidetox.data.mmlu.MMLU_SUBJECTS"
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
        require_columns(frame, ("question", "choices", "answer") + (() if subject else ("subject",)), where)
        choices = [[str(c) for c in cs] for cs in frame["choices"]]
    else:
        require_columns(frame, MMLU_LOCAL_COLUMNS, where)
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
        frame = normalise_mmlu(hub_frame(cfg.mmlu_hub_id, "all", split), where)
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


__all__ = [
    "MMLU_HUB_SPLITS",
    "MMLU_LOCAL_SPLITS",
    "MMLU_SUBJECTS",
    "check_mmlu_subjects",
    "load_mmlu",
    "normalise_mmlu",
]
