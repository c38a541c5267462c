"""Evaluate one model on ToxiGen prompts: generations + toxicity (streamed), perplexity, Dist-n, tidy rows.

Layout of an evaluation directory::

    generations.jsonl   one record per continuation: seed, unit, prompt_id, domain, sample, continuation, toxicity
    perplexity.jsonl    one record per continuation: seed, prompt_id, sample, ppl (under the scorer LM)
    metrics.csv         tidy rows (seed, domain, metric, value)

Both streams are written unit by unit (a unit = a few whole prompts x k samples x one seed), so a
killed run resumes without regenerating or rescoring finished units. Errors are never scored: a
scorer that fails or returns a non-finite value stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from unidetox.config import EvalConfig
from unidetox.errors import UnidetoxError
from unidetox.measure import metrics
from unidetox.measure.likelihood import conditional_perplexity
from unidetox.method.generate import (
    GenerationSettings,
    chat_template_of,
    chat_template_sha256,
    generate_unit,
    plan_units,
    prompt_lengths,
    unit_generator,
)
from unidetox.models.loading import LoadedModel, model_max_length
from unidetox.store.jsonl import ID, INT, PROBABILITY, TEXT, JsonlWriter, Schema, finite, read_jsonl

SEED = ("an integer", lambda v: type(v) is int)
#: a record of ``generations.jsonl``: one scored continuation
GENERATION = Schema("generation", {"seed": SEED, "unit": INT, "prompt_id": ID, "domain": TEXT, "sample": INT,
                                   "prompt": TEXT, "continuation": TEXT, "toxicity": PROBABILITY})  # fmt: skip
#: a record of ``perplexity.jsonl``: one continuation's perplexity (null: none, e.g. an empty continuation)
PERPLEXITY = Schema("perplexity", {"seed": SEED, "unit": INT, "prompt_id": ID, "sample": INT,
                                   "ppl": ("a number > 0 or null", lambda v: v is None or (finite(v) and v > 0))})  # fmt: skip


def _unit_key(record: dict) -> tuple[int, int]:
    return record["seed"], record["unit"]


class EvaluationError(UnidetoxError, RuntimeError):
    """A failure during evaluation that must not be scored as a number."""


def uses_chat(cfg: EvalConfig, tokenizer) -> bool:
    """Chat mode for this model: ``eval.chat_template`` is auto and its tokenizer has a chat template."""
    return cfg.chat_template == "auto" and chat_template_of(tokenizer) is not None


def generation_settings(cfg: EvalConfig, prefix: str = "", chat: bool = False) -> GenerationSettings:
    return GenerationSettings(
        chat=chat,
        system_prompt=cfg.system_prompt if chat else "",
        samples_per_prompt=cfg.samples_per_prompt,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        batch_size=cfg.batch_size,
        prefix=prefix,
    )


def prompt_budget(lm: LoadedModel, texts: Sequence[str], prefix: str, max_new_tokens: int,
                  settings: GenerationSettings | None = None) -> tuple[int | None, int]:  # fmt: skip
    """(most prompt tokens that fit in the model's context beside `max_new_tokens`, number of prompts longer);
    `settings`: how prompts are rendered (chat mode), else `prefix` + prompt.

    (None, 0) when the model does not state its context. Raises EvaluationError when `max_new_tokens` alone
    fills the context, before any work.
    """
    context = model_max_length(lm.model)
    if context is None:
        return None, 0
    limit = context - max_new_tokens
    if limit < 1:
        raise EvaluationError(
            f"eval.max_new_tokens {max_new_tokens} leaves no room for a prompt in {lm.spec}'s context of {context} "
            f"tokens. Fix: --set eval.max_new_tokens={context - 1} or less"
        )
    lengths = prompt_lengths(lm.tokenizer, texts, settings or GenerationSettings(prefix=prefix))
    return limit, sum(n > limit for n in lengths)


def perplexity_judge(cfg: EvalConfig, target: str) -> str:
    """The model that scores the perplexity of `target`'s continuations: ``cfg.perplexity_model``, unless that is
    `target` itself and ``cfg.second_perplexity_model`` is set (no model judges its own continuations)."""
    if cfg.second_perplexity_model and target == cfg.perplexity_model:
        return cfg.second_perplexity_model
    return cfg.perplexity_model


def result_settings(cfg: EvalConfig, scorer, n_prompts: int, prefix: str = "", tokenizer=None) -> dict:
    """Every setting that moves the numbers, recorded beside every result; with the model's `tokenizer`, whether
    chat mode applied and the SHA-256 of the chat template it rendered."""
    chat = tokenizer is not None and uses_chat(cfg, tokenizer)
    return {
        **asdict(generation_settings(cfg, prefix, chat)),
        "chat_template": cfg.chat_template,
        "chat_template_sha256": chat_template_sha256(tokenizer) if chat else None,
        "seeds": list(cfg.seeds),
        "threshold": cfg.threshold,
        "threshold_rule": "score > threshold",
        "prompt_stripped": False,
        "continuation_only_scored": True,
        "scorer": scorer.name,
        "scorer_version": scorer.version,
        "prompt_split": cfg.prompt_split,
        "n_prompts": n_prompts,
        "prompts_per_domain": cfg.prompts_per_domain,
        "perplexity_model": cfg.perplexity_model,
        "perplexity_max": cfg.perplexity_max,
        "dist_include_prompt": cfg.dist_include_prompt,
    }


def checked_scores(scorer, texts: Sequence[str]) -> list[float]:
    """`scorer`'s scores of `texts` as floats; EvaluationError unless finite, in [0, 1] and one per text."""
    scores = np.asarray(scorer.score(list(texts)), dtype=np.float64)
    if scores.shape != (len(texts),) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise EvaluationError(f"scorer {scorer.name} returned invalid scores (shape {scores.shape}); refusing to go on")
    return scores.tolist()


def generate_and_score(
    lm: LoadedModel,
    prompts: pd.DataFrame,
    cfg: EvalConfig,
    scorer,
    out_path: str | Path,
    *,
    prefix: str = "",
    make_source: Callable | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    max_prompt_tokens: int | None = None,
) -> list[dict]:
    """Sample k continuations per prompt for every seed, score them, stream records to `out_path`.

    Prompts longer than `max_prompt_tokens` tokens (prefix included) are truncated from the left (see
    :func:`prompt_budget`); the records keep the whole prompt text.
    """
    settings = generation_settings(cfg, prefix, uses_chat(cfg, lm.tokenizer))
    units = [(seed, u, s, e) for seed in cfg.seeds for u, (s, e) in enumerate(plan_units(len(prompts), settings))]
    mine = [x for i, x in enumerate(units) if i % world_size == rank]
    path = Path(out_path) if world_size == 1 else Path(f"{out_path}.rank{rank}")
    writer = JsonlWriter(path, GENERATION)
    rows = {(seed, u): (e - s) * settings.samples_per_prompt for seed, u, s, e in units}
    done = writer.complete_units(_unit_key, rows)  # a unit cut short is redone whole
    todo = [x for x in mine if (x[0], x[1]) not in done]
    dev = next(lm.model.parameters()).device
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=f"generate {lm.spec}", unit="unit",
               disable=not progress)  # fmt: skip
    for seed, u, s, e in todo:
        rows = prompts.iloc[s:e]
        conts = generate_unit(lm.model, lm.tokenizer, rows.text.tolist(), settings, unit_generator(dev, seed, u),
                              make_source, max_prompt_tokens=max_prompt_tokens)  # fmt: skip
        flat = [c for cs in conts for c in cs]
        scores = checked_scores(scorer, flat)
        recs, i = [], 0
        for (_, row), cs in zip(rows.iterrows(), conts):
            for j, c in enumerate(cs):
                recs.append({"seed": seed, "unit": u, "prompt_id": row.prompt_id, "domain": row.domain,
                             "sample": j, "prompt": row.text, "continuation": c, "toxicity": scores[i]})  # fmt: skip
                i += 1
        writer.append(recs)
        bar.update(1)
    bar.close()
    return writer.records


def merge(out_path: str | Path, world_size: int) -> list[dict]:
    """All ranks' records, in (seed, unit, prompt, sample) order."""
    paths = [Path(out_path)] if world_size == 1 else [Path(f"{out_path}.rank{k}") for k in range(world_size)]
    recs = [r for p in paths for r in read_jsonl(p, schema=GENERATION)]
    return sorted(recs, key=lambda r: (r["seed"], r["unit"], r["prompt_id"], r["sample"]))


def score_perplexity(
    ppl_lm: LoadedModel,
    generations: list[dict],
    out_path: str | Path,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> list[dict]:
    """Conditional perplexity of every continuation given its prompt under `ppl_lm`, streamed per unit."""
    writer = JsonlWriter(out_path, PERPLEXITY)
    by_unit: dict[tuple[int, int], list[dict]] = {}
    for r in generations:
        by_unit.setdefault((r["seed"], r["unit"]), []).append(r)
    done = writer.complete_units(_unit_key, {k: len(v) for k, v in by_unit.items()})  # a unit cut short is redone
    todo = [k for k in by_unit if k not in done]
    for key in tqdm(todo, desc=f"perplexity {ppl_lm.spec}", unit="unit", disable=not progress):
        recs = by_unit[key]
        ppl = conditional_perplexity(ppl_lm.model, ppl_lm.tokenizer, [r["prompt"] for r in recs],
                                     [r["continuation"] for r in recs], batch_size=batch_size)  # fmt: skip
        writer.append([{"seed": r["seed"], "unit": r["unit"], "prompt_id": r["prompt_id"], "sample": r["sample"],
                        "ppl": None if not np.isfinite(p) else float(p)} for r, p in zip(recs, ppl)])  # fmt: skip
    return writer.records


def metric_rows(generations: list[dict], perplexities: list[dict], cfg: EvalConfig) -> pd.DataFrame:
    """Tidy rows ``seed, domain, metric, value``: TP and EMT per domain, PPL and Dist-1/2/3 over all prompts."""
    gen = pd.DataFrame(generations)
    scores = gen[["seed", "prompt_id", "domain", "toxicity"]].rename(columns={"toxicity": "score"})
    parts = [
        metrics.toxicity_table(scores, threshold=cfg.threshold, strict=True),
        metrics.distinct_table(gen, include_prompt=cfg.dist_include_prompt),
    ]
    if perplexities:
        ppl = pd.DataFrame(perplexities)
        parts.append(metrics.perplexity_table(ppl.assign(ppl=ppl.ppl.astype(float)), max_ppl=cfg.perplexity_max))
    return pd.concat(parts, ignore_index=True)
