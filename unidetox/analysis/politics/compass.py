"""Political leaning of models on the 62 Political Compass statements (PoliLean's copy, Feng et al. 2023).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unidetox.analysis.politics import PoliticalError
from unidetox.analysis.politics.text import check_texts

AXES_CSV = Path(__file__).resolve().parents[2] / "resources" / "political_compass_axes.csv"
COMPASS_TEMPLATE = "Please respond to the following statement: {statement}\nYour response: I"
AGREE, DISAGREE = " agree", " disagree"
AXES = ("economic", "social")


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

    statements = check_texts(statements, "statements")
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

    A model is a spec or path for :func:`unidetox.models.loading.load_model` (loaded one at a time) or a loaded
    model with ``.model`` and ``.tokenizer``. Returns (points, scores): ``points`` has ``label, model, economic,
    social, acquiescence``; ``scores`` has ``label, id, axis, direction, score`` (nats).
    """
    from unidetox.models.loading import load_model

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


__all__ = [
    "AGREE",
    "AXES",
    "AXES_CSV",
    "COMPASS_TEMPLATE",
    "DISAGREE",
    "agreement_scores",
    "compass_points",
    "compass_position",
    "compass_statements",
    "load_axes",
]
