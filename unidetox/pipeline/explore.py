"""Explore one prompt: continuations of the untouched and the detoxified models side by side, with their toxicity.

The logic of the exploration notebook (``notebooks/explore.py`` holds the narrative and the widgets). The
detoxified models are the study's: each target fine-tuned on the distilled text with the shared configuration
chosen on validation (``Study.chosen``). Continuations are sampled exactly as the evaluation samples them (same
sampler, settings and per-unit generator: a prompt explored with seed ``s`` and unit ``u`` gets the continuations
that ``unidetox evaluate`` stores for it when its unit holds only that prompt) and scored by the profile's scorer,
continuation only.

>>> ex = Explorer.for_study(profile, study)  # doctest: +SKIP
>>> side_by_side(ex.run("The people who live next door are", samples=3, seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from unidetox.config import Profile
from unidetox.data.texts import lone_surrogate
from unidetox.errors import UnidetoxError
from unidetox.measure.evaluate import generation_settings
from unidetox.method.generate import generate_unit, unit_generator
from unidetox.models.loading import LoadedModel, load_model, resolve_device
from unidetox.report.tables.cells import short_name
from unidetox.report.tables.main import METHOD_NAMES
from unidetox.store.registry import restore

MAX_SAMPLES = 25  # the paper's k; more is not an exploration any more
MAX_PROMPT_CHARS = 2000
COLUMNS = ["target", "model", "sample", "continuation", "toxicity", "toxic"]


class ExploreError(UnidetoxError, ValueError):
    """A prompt or setting the explorer cannot use; the message says what to change."""


@dataclass(frozen=True)
class Model:
    """One model of the comparison: its target, what was done to it (a METHOD_NAMES value) and the loaded LM."""

    target: str
    label: str
    lm: LoadedModel


@dataclass
class Explorer:
    """Loaded models and scorer of one profile; :meth:`run` continues a prompt with every model."""

    profile: Profile
    models: list[Model]
    scorer: object  # a unidetox.measure.scorers.base.ToxicityScorer

    @classmethod
    def for_study(cls, profile: Profile, study, *, targets: Sequence[str] | None = None, quiet: bool = True):
        """Each target untouched and fine-tuned by UniDetox with the study's shared (lr, steps)."""
        from unidetox import pipeline as P
        from unidetox.measure.scorers import load_scorer

        lr, steps = study.chosen
        device = resolve_device(profile.device)
        models = []
        for target in targets or profile.detox.targets:
            if target not in profile.detox.targets:
                raise ExploreError(f"{target!r} is not among detox.targets {list(profile.detox.targets)}")
            detoxified = P.finetuned(
                profile, target, "unidetox", lr, steps, selection="transferred", grid=True, quiet=quiet
            )
            for label, path in ((METHOD_NAMES["none"], target), (METHOD_NAMES["unidetox"], detoxified.path)):
                lm = load_model(restore(profile, path), device=device, trust_remote_code=profile.trust_remote_code)
                models.append(Model(target, label, lm))
        cfg = profile.eval
        scorer = load_scorer(cfg.scorer, device=str(device), batch_size=cfg.scorer_batch_size,
                             trust_remote_code=profile.trust_remote_code)  # fmt: skip
        return cls(profile, models, scorer)

    def run(self, prompt: str, *, samples: int | None = None, seed: int = 0, unit: int = 0) -> pd.DataFrame:
        """`samples` continuations of `prompt` by every model (default: the profile's k), scored.

        Returns one row per (model, sample): COLUMNS, where ``toxic`` is ``toxicity > eval.threshold``.
        """
        prompt = check_prompt(prompt)
        cfg = self.profile.eval
        k = cfg.samples_per_prompt if samples is None else samples
        if not isinstance(k, int) or not 1 <= k <= MAX_SAMPLES:
            raise ExploreError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}")
        settings = dataclasses.replace(generation_settings(cfg), samples_per_prompt=k)
        rows = []
        for m in self.models:
            device = next(m.lm.model.parameters()).device
            (texts,) = generate_unit(m.lm.model, m.lm.tokenizer, [prompt], settings, unit_generator(device, seed, unit))
            scores = np.asarray(self.scorer.score(texts), dtype=np.float64)
            if scores.shape != (k,) or not np.all(np.isfinite(scores)):
                raise ExploreError(f"the scorer returned {scores.shape} scores for {k} continuations")
            rows += [{"target": m.target, "model": m.label, "sample": j, "continuation": t, "toxicity": float(s),
                      "toxic": bool(s > cfg.threshold)} for j, (t, s) in enumerate(zip(texts, scores))]  # fmt: skip
        return pd.DataFrame(rows, columns=COLUMNS)


def check_prompt(prompt: object) -> str:
    """The prompt, unchanged (its spaces are tokens too); ExploreError unless it is a string with some text, of at
    most MAX_PROMPT_CHARS characters, all of them characters (no lone surrogate)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ExploreError("type a prompt (or pick a ToxiGen prompt) first: the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ExploreError(f"the prompt has {len(prompt)} characters; shorten it to at most {MAX_PROMPT_CHARS}")
    if (at := lone_surrogate(prompt)) is not None:
        raise ExploreError(f"the prompt holds a lone surrogate (U+{ord(prompt[at]):04X}, character {at + 1}), half of "
                           "a UTF-16 pair and not a character: remove it")  # fmt: skip
    return prompt


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (target, model): the prompt's maximum toxicity (its EMT term), whether any continuation is toxic (its
    TP term), the mean toxicity and the number of continuations."""
    g = frame.groupby(["target", "model"], sort=False)
    out = g.agg(max_toxicity=("toxicity", "max"), any_toxic=("toxic", "any"), mean_toxicity=("toxicity", "mean"),
                n=("toxicity", "size"))  # fmt: skip
    return out.reset_index()


def side_by_side(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One row per (target, sample), the models' continuations and toxicity next to each other.

    Columns: ``target``, ``sample``, then ``<model>`` (the continuation) and ``<model> tox.`` for every model in
    the order they appear in `frame`.
    """
    models = list(dict.fromkeys(frame.model))
    wide = frame.pivot(index=["target", "sample"], columns="model", values=["continuation", "toxicity"])
    out = pd.DataFrame(index=wide.index)
    for m in models:
        out[m] = wide["continuation"][m]
        out[f"{m} tox."] = wide["toxicity"][m].astype(float).round(digits)
    out = out.reset_index()
    order = list(dict.fromkeys(frame.target))
    out["target"] = pd.Categorical(out.target, order, ordered=True)
    out = out.sort_values(["target", "sample"]).reset_index(drop=True)
    out["target"] = out.target.astype(str).map(short_name)
    return out


def result_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """The side-by-side table and the summary as one HTML fragment, model text escaped (the live notebook's view)."""
    wide = side_by_side(frame, digits).style.hide(axis="index").format(precision=digits, na_rep="", escape="html")
    summ = summary(frame).style.hide(axis="index").format(precision=digits, escape="html")
    return wide.to_html() + summ.to_html()


def error_html(error: Exception) -> str:
    """An ExploreError (or any error) as a short HTML line for the live notebook."""
    return f"<p><b>error:</b> {html.escape(str(error))}</p>"


def toxigen_choices(prompts: pd.DataFrame, width: int = 90) -> list[tuple[str, str]]:
    """``(label, text)`` pairs for a drop-down of ToxiGen prompts: label ``"[domain] text"`` cut to `width`."""
    out = []
    for row in prompts.itertuples():
        label = f"[{row.domain}] {row.text}"
        out.append((label if len(label) <= width else label[: width - 1] + "…", row.text))
    return out


__all__ = [
    "COLUMNS",
    "ExploreError",
    "Explorer",
    "Model",
    "check_prompt",
    "error_html",
    "result_html",
    "side_by_side",
    "summary",
    "toxigen_choices",
]
