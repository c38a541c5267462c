"""What the Hub reads from the cards unidetox writes: ``model-index`` results, table cells that stay cells, and the
check that a card, once written, loads back as written.

* :func:`eval_results`: a ``unidetox score`` summary -> ``huggingface_hub.EvalResult`` entries for TP and EMT (in
  and out of distribution) and PPL, each naming the data set ``toxigen/toxigen-data`` (config ``annotated``), the
  Hub split the prompts come from and how they were selected, with the generation and scorer settings.
* :func:`md_cell`: a value as one Markdown table cell (a string with line breaks or edge spaces shown as its
  Python literal, ``'\\n\\n'``; pipes escaped), so that no value breaks its table.
* :func:`write_card`: render-check-write-reload: the text's YAML header must parse (``model-index`` included), its
  tables must keep their columns, and the file read back with ``ModelCard.load`` / ``DatasetCard.load`` must hold
  the same metadata; :class:`CardError` otherwise (before the file is written, when the text is at fault).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from unidetox.data.prompts import VALIDATION_FRACTION, VALIDATION_SEED
from unidetox.errors import UnidetoxError
from unidetox.measure.metrics import IN_DISTRIBUTION, METRICS, OUT_OF_DISTRIBUTION
from unidetox.store.run_store import write_text

TOXIGEN_HUB_ID = "toxigen/toxigen-data"
TOXIGEN_CONFIG = "annotated"
SOURCE = "unidetox score"
#: unidetox prompt split -> (the Hub split its prompts come from, how they are selected there)
_VALIDATION = f"train.shuffle(seed={VALIDATION_SEED}), first {VALIDATION_FRACTION:.0%}"
PROMPT_SELECTION = {
    "validation": ("train", f"the paper's validation prompts: {_VALIDATION}"),
    "report": ("train", f"the train rows outside the paper's validation prompts ({_VALIDATION}), in file order"),
    "test": ("test", "the annotated test split"),
}
#: (metric, domain group) of the model-index entries, in card order; PPL is pooled over every prompt
RESULTS = (("TP", IN_DISTRIBUTION), ("EMT", IN_DISTRIBUTION), ("TP", OUT_OF_DISTRIBUTION),
           ("EMT", OUT_OF_DISTRIBUTION), ("PPL", "all"))  # fmt: skip


class CardError(UnidetoxError, ValueError):
    """A card that would not load back as written (bad YAML header, model-index or table)."""


def md_cell(value) -> str:
    """`value` as the text of one Markdown table cell: floats to 4 significant digits; a string with a line break, a
    control character or edge spaces as its Python literal in a code span (``'\\n\\n'``); pipes escaped."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str) and (not value.isprintable() or value != value.strip() or not value):
        text = f"`{value!r}`"
    else:
        text = str(value)
    return text.replace("|", "\\|")


CARD_MODEL = "card_model"  # key a card's stored summary gets: the index of the card's own model in ``models``


def own_index(summary: dict, model: str | Path) -> int | None:
    """Index of the entry of `summary` ``models`` that scored the folder `model` (its recorded index, else the one
    whose path is `model`; paths are compared resolved, from the current directory)."""
    if CARD_MODEL in summary:
        return summary[CARD_MODEL]
    want = Path(model).expanduser().resolve()
    return next((i for i, m in enumerate(summary["models"]) if Path(m["model"]).expanduser().resolve() == want), None)


def eval_results(summary: dict, model: str | Path):
    """``[EvalResult]`` of the folder `model` in a ``unidetox score`` summary (empty when it is not among the scored
    models); point estimates, with the 95% interval in ``metric_args``."""
    from huggingface_hub import EvalResult

    i = own_index(summary, model)
    if i is None:
        return []
    own = summary["models"][i]
    s, split = summary["settings"], summary["split"]
    hub_split, selection = PROMPT_SELECTION[split]
    per_domain = s.get("prompts_per_domain") or 0
    if per_domain:
        selection += f"; {per_domain} prompts per domain (first after numpy default_rng(0).permutation)"
    dataset_args = {"prompt_split": split, "selection": selection, "n_prompts": s["n_prompts"],
                    "prompts_sha256": summary.get("prompts_sha256", "")}  # fmt: skip
    sampling = {"samples_per_prompt": s["samples_per_prompt"], "seeds": list(s["seeds"]), "top_p": s["top_p"],
                "top_k": s["top_k"], "temperature": s["temperature"], "max_new_tokens": s["max_new_tokens"]}  # fmt: skip
    out = []
    for metric, group in RESULTS:
        row = next((r for r in own["metrics"] if r["metric"] == metric and r["domain"] == group), None)
        if row is None or not math.isfinite(row["value"]):
            continue
        args = {**sampling, "ci_level": summary["bootstrap"]["level"], "ci": [row["lo"], row["hi"]]}
        if metric == "PPL":
            args["perplexity_model"] = s["perplexity_model"]
        else:
            args.update(scorer=s["scorer"], scorer_version=s.get("scorer_version", ""), threshold=s["threshold"])
        out.append(EvalResult(
            task_type="text-generation", task_name="Toxicity of continuations of ToxiGen prompts (UniDetox)",
            dataset_type=TOXIGEN_HUB_ID, dataset_name="ToxiGen", dataset_config=TOXIGEN_CONFIG,
            dataset_split=hub_split, dataset_args=dataset_args, metric_type=metric.lower(),
            metric_value=float(row["value"]), metric_name=f"{metric} ({METRICS[metric].label}), {group}",
            metric_config=group, metric_args={**args, "measured_by": SOURCE},
        ))  # fmt: skip
    return out


def table_problems(text: str) -> list[str]:
    """Lines of Markdown tables in `text` that break their table: a row whose number of cells differs from its
    header's, or a block of pipe rows without the ``|---|`` line under its header (an unescaped pipe or a line
    break in a value does either)."""
    blocks: list[list[str]] = []
    previous = False
    for line in text.splitlines():
        row = line.strip().startswith("|")
        if row and not previous:
            blocks.append([])
        if row:
            blocks[-1].append(line.strip())
        previous = row
    problems = []
    for rows in blocks:
        if len(rows) < 2 or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[1]):
            problems.append(rows[0][:80])
            continue
        width = _cells(rows[0])
        problems += [r[:80] for r in rows[1:] if _cells(r) != width]
    return problems


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row)) - 2


def _metadata(card) -> dict:
    return card.data.to_dict()


def write_card(path: str | Path, text: str, *, dataset: bool = False, n_results: int = 0) -> None:
    """Write a card's `text` to `path` (atomically) after checking it, then check the written file loads back.

    n_results: the ``model-index`` results the card must hold (model cards). CardError on any failure.
    """
    import yaml
    from huggingface_hub import DatasetCard, ModelCard

    cls = DatasetCard if dataset else ModelCard
    try:
        card = cls(text, ignore_metadata_errors=False)
    except (ValueError, yaml.YAMLError) as e:
        raise CardError(f"the card for {path} has an invalid YAML header: {e}") from None
    if broken := table_problems(card.text):
        raise CardError(f"the card for {path} has table rows that do not match their header: {broken[:3]}")
    got = 0 if dataset else len(card.data.eval_results or [])
    if got != n_results:
        raise CardError(f"the card for {path} holds {got} model-index results, {n_results} were written")
    write_text(path, text)
    loaded = cls.load(Path(path), ignore_metadata_errors=False)
    if _metadata(loaded) != _metadata(card) or loaded.text != card.text:
        raise CardError(f"{path} does not load back as it was written. Fix: check the disk, then write it again")


__all__ = [
    "CARD_MODEL",
    "PROMPT_SELECTION",
    "CardError",
    "eval_results",
    "md_cell",
    "own_index",
    "table_problems",
    "write_card",
]
