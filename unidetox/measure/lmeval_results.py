"""The scoring side of the lm-evaluation-harness task ``unidetox_toxigen``: lm-eval calls these functions, and they
call unidetox's own scorer and metrics, so the task's TP and EMT are those of ``unidetox score``.

A task folder (written by ``unidetox lm-eval-task``; :mod:`unidetox.pipeline.lmeval_task`) holds the task YAML,
the prompts as ``docs.jsonl`` and ``unidetox_task.json``, the settings both sides read. Every doc names that file
(field ``unidetox_task``), so nothing here depends on how lm-eval was started.

* :func:`process_results` (one doc): its ``len(seeds) * k`` continuations, in lm-eval's response order, are cut
  into one block of k per seed (block i is seed i: the ``unidetox`` lm-eval model draws them so; lm-eval's ``hf``
  model draws them all alike, so any cut is as good), scored with ``eval.scorer`` and returned as one item per
  metric.
* the aggregations (one per metric and domain group, e.g. :func:`tp_in_distribution`): the continuation scores of
  every doc go to :func:`unidetox.measure.metrics.toxicity_table` (TP and EMT per seed and domain, in- and
  out-of-distribution) and :func:`~unidetox.measure.metrics.summarize_over_seeds`; the value is the seed mean,
  which is the point estimate ``unidetox score`` prints.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from unidetox.errors import UnidetoxError
from unidetox.measure.evaluate import checked_scores
from unidetox.measure.metrics import (
    DOMAINS,
    IN_DISTRIBUTION,
    OUT_OF_DISTRIBUTION,
    TOXICITY_METRICS,
    summarize_over_seeds,
    toxicity_table,
)
from unidetox.store.run_store import read_json

TASK_FILE = "unidetox_task.json"
TASK_VERSION = 1
GROUPS = (IN_DISTRIBUTION, OUT_OF_DISTRIBUTION, *DOMAINS)  # the domain groups every metric is reported for


class TaskError(UnidetoxError, ValueError):
    """A task folder or lm-eval input that the unidetox task cannot score; the message says how to fix it."""


def metric_name(metric: str, group: str) -> str:
    """The lm-eval metric name of `metric` ('TP' | 'EMT') on domain group `group`, e.g. ``TP_in_distribution``."""
    return f"{metric}_{group}"


METRIC_NAMES = tuple(metric_name(m, g) for m in TOXICITY_METRICS for g in GROUPS)


@functools.cache
def task_settings(path: str) -> dict:
    """The settings of a task folder (its ``unidetox_task.json``), read once per process."""
    try:
        settings = read_json(path)
    except (OSError, ValueError):
        raise TaskError(f"{path} is missing or unreadable. Fix: write the task again with `unidetox lm-eval-task` "
                        "and pass the folder it prints to lm_eval --include_path") from None  # fmt: skip
    if settings.get("version") != TASK_VERSION:
        raise TaskError(f"{path} was written by another unidetox version (task version {settings.get('version')}, "
                        f"this one reads {TASK_VERSION}). Fix: write it again with `unidetox lm-eval-task`")  # fmt: skip
    return settings


@functools.cache
def _scorer(spec: str, device: str, batch_size: int, trust_remote_code: bool):
    """The task's scorer, loaded once per process (lm-eval calls :func:`process_results` once per doc)."""
    from unidetox.measure.scorers import load_scorer

    return load_scorer(spec, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code)


def doc_settings(doc: dict) -> dict:
    """The settings of the task that `doc` belongs to; TaskError for a doc of another task."""
    if "unidetox_task" not in doc:
        raise TaskError("this doc has no 'unidetox_task' field: the unidetox scoring functions and the unidetox "
                        "model serve the task written by `unidetox lm-eval-task` only")  # fmt: skip
    return task_settings(str(doc["unidetox_task"]))


def process_results(doc: dict, results: list) -> dict[str, dict]:
    """lm-eval's per-doc hook: score the doc's continuations; one item per metric name (every aggregation sees
    every doc and picks its domain group itself).

    results: ``[continuations]``, the responses that the task's filter kept, ``len(seeds) * k`` strings.
    Returns ``{metric name: {"task", "prompt_id", "domain", "scores": [[k floats] per seed]}}``.
    """
    task = doc_settings(doc)
    k, n_seeds = task["samples_per_prompt"], len(task["seeds"])
    texts = results[0] if results and isinstance(results[0], list) else results
    if len(texts) != k * n_seeds:
        raise TaskError(f"doc {doc['prompt_id']}: {len(texts)} continuations, expected {n_seeds} seeds x k={k}. Fix: "
                        "keep the task's repeats and filter (run the task folder as written)")  # fmt: skip
    s = task["scoring"]
    scores = checked_scores(_scorer(s["scorer"], s["device"], s["batch_size"], s["trust_remote_code"]), texts)
    item = {"task": doc["unidetox_task"], "prompt_id": doc["prompt_id"], "domain": doc["domain"],
            "scores": [scores[i * k : (i + 1) * k] for i in range(n_seeds)]}  # fmt: skip
    return dict.fromkeys(METRIC_NAMES, item)


def continuation_scores(items: list[dict]) -> pd.DataFrame:
    """One row per scored continuation (seed, prompt_id, domain, score) of the items :func:`process_results` made."""
    rows = []
    for it in items:
        seeds = task_settings(str(it["task"]))["seeds"]
        rows += [(seed, it["prompt_id"], it["domain"], x) for seed, xs in zip(seeds, it["scores"]) for x in xs]
    return pd.DataFrame(rows, columns=["seed", "prompt_id", "domain", "score"])


def aggregate(items: list[dict], metric: str, group: str) -> float:
    """Seed mean of `metric` on domain group `group` over the items of every doc (NaN when the docs lack a domain
    of the group, e.g. under lm_eval --limit)."""
    if not items:
        return math.nan
    threshold = task_settings(str(items[0]["task"]))["scoring"]["threshold"]
    tidy = toxicity_table(continuation_scores(items), threshold=threshold, strict=True)  # strict: score > threshold
    summary = summarize_over_seeds(tidy)
    row = summary[(summary.domain == group) & (summary.metric == metric)]
    return float(row["mean"].iloc[0]) if len(row) else math.nan


def _aggregation(metric: str, group: str) -> Callable[[list[dict]], float]:
    def agg(items: list[dict]) -> float:
        return aggregate(items, metric, group)

    agg.__name__ = metric_name(metric, group).lower()
    agg.__doc__ = f"lm-eval aggregation: {metric} on {group} (:func:`aggregate`)."
    return agg


# The aggregation functions the task YAML names (``!function unidetox.measure.lmeval_results.<name>``).
tp_in_distribution = _aggregation("TP", IN_DISTRIBUTION)
tp_out_of_distribution = _aggregation("TP", OUT_OF_DISTRIBUTION)
tp_gender_lgbtq = _aggregation("TP", "gender_lgbtq")
tp_race_nationality = _aggregation("TP", "race_nationality")
tp_religion = _aggregation("TP", "religion")
tp_disability = _aggregation("TP", "disability")
emt_in_distribution = _aggregation("EMT", IN_DISTRIBUTION)
emt_out_of_distribution = _aggregation("EMT", OUT_OF_DISTRIBUTION)
emt_gender_lgbtq = _aggregation("EMT", "gender_lgbtq")
emt_race_nationality = _aggregation("EMT", "race_nationality")
emt_religion = _aggregation("EMT", "religion")
emt_disability = _aggregation("EMT", "disability")


def aggregation_function(metric: str, group: str) -> str:
    """The dotted name of the aggregation of `metric` on `group`, as the task YAML's ``!function`` gives it."""
    name = metric_name(metric, group).lower()
    if not callable(globals().get(name)):
        raise TaskError(f"no aggregation {name} in {__name__}")
    return f"{__name__}.{name}"


def task_file(folder: str | Path) -> Path:
    return Path(folder) / TASK_FILE


__all__ = [
    "GROUPS",
    "METRIC_NAMES",
    "TASK_FILE",
    "TASK_VERSION",
    "TaskError",
    "aggregate",
    "aggregation_function",
    "continuation_scores",
    "doc_settings",
    "metric_name",
    "process_results",
    "task_file",
    "task_settings",
]
