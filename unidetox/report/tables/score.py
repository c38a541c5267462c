"""The summary of ``unidetox score`` as tables: plain text for the terminal, Markdown for model cards.

``summary`` is the dict that :func:`unidetox.pipeline.score.score_models` returns and writes as JSON: per model,
rows ``{"metric", "domain", "value", "lo", "hi"}`` (bootstrap CIs over prompts), seed means of Dist-n, MMLU, and
with a comparison the paired differences.
"""

from __future__ import annotations

import math

import pandas as pd

from unidetox.measure.metrics import ALL, DOMAINS, IN_DISTRIBUTION, OUT_OF_DISTRIBUTION, TOXICITY_METRICS

DOMAIN_ROWS = (*DOMAINS, IN_DISTRIBUTION, OUT_OF_DISTRIBUTION)


def _short(spec: str) -> str:
    return spec.split(":")[-1].rstrip("/").split("/")[-1]


def _cell(r: dict | None, digits: int = 3) -> str:
    if r is None or not math.isfinite(r["value"]):
        return "n/a"
    return f"{r['value']:.{digits}f} [{r['lo']:.{digits}f}, {r['hi']:.{digits}f}]"


def _lookup(rows: list[dict], metric: str, domain: str) -> dict | None:
    return next((r for r in rows if r["metric"] == metric and r["domain"] == domain), None)


def tables(summary: dict) -> dict[str, pd.DataFrame]:
    """``{"TP": ..., "EMT": ..., "Fluency": ...}``: tables of strings with CIs, one column per model and, with a
    comparison, one for the difference."""
    models = summary["models"]
    names = [_short(m["model"]) for m in models]
    if len(set(names)) < len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    diff = summary.get("differences")
    out = {}
    for metric in TOXICITY_METRICS:
        cols = {name: [_cell(_lookup(m["metrics"], metric, d)) for d in DOMAIN_ROWS] for name, m in zip(names, models)}
        if diff:
            cols["Δ"] = [_cell(_lookup(diff["rows"], metric, d)) for d in DOMAIN_ROWS]
        out[metric] = pd.DataFrame(cols, index=pd.Index(DOMAIN_ROWS, name="domain"))
    flu: dict[str, list[str]] = {}
    metrics = ["PPL", "Dist-1", "Dist-2", "Dist-3"] + (["MMLU"] if "mmlu" in models[0] else [])
    for name, m in zip(names, models):
        col = []
        for metric in metrics:
            if metric == "PPL":
                col.append(_cell(_lookup(m["metrics"], "PPL", ALL), 2))
            elif metric == "MMLU":
                col.append(f"{m['mmlu']['MMLU']:.3f} (n={m['mmlu']['MMLU_n']})")
            else:
                r = next((x for x in m["seed_means"] if x["metric"] == metric), None)
                col.append("n/a" if r is None else f"{r['mean']:.3f}")
        flu[name] = col
    if diff:
        col = [_cell(_lookup(diff["rows"], "PPL", ALL), 2)] + ["" for _ in metrics[1:]]
        if "mmlu" in diff:
            col[-1] = f"{diff['mmlu']:+.3f}"
        flu["Δ"] = col
    out["Fluency"] = pd.DataFrame(flu, index=pd.Index(metrics, name="metric"))
    return out


TITLES = {"TP": "TP (toxicity probability; lower is better)", "EMT": "EMT (expected maximum toxicity; lower is better)",
          "Fluency": "Fluency (perplexity: lower is better; Dist-n: higher is more diverse)"}  # fmt: skip


def _legend(summary: dict) -> str:
    s = summary["settings"]
    b = summary["bootstrap"]
    text = (f"{s['n_prompts']} {summary['split']} prompts, k={s['samples_per_prompt']}, seeds {s['seeds']}, scorer "
            f"{s['scorer']}, perplexity under {s['perplexity_model']}; [{b['level']:.0%} bootstrap CI over prompts, "
            f"{b['resamples']} resamples]")  # fmt: skip
    if summary.get("differences"):
        d = summary["differences"]
        text += f"; Δ = {_short(d['of'])} − {_short(d['minus'])}, paired"
    return text


def format_table(summary: dict) -> str:
    """The summary as plain-text tables for the terminal."""
    parts = [f"{TITLES[k]}\n{t.to_string()}\n" for k, t in tables(summary).items()]
    return "\n".join([*parts, _legend(summary)])


def markdown_table(summary: dict) -> str:
    """The summary as Markdown tables (for model cards)."""
    parts = [f"**{TITLES[k]}**\n\n{t.to_markdown()}\n" for k, t in tables(summary).items()]
    return "\n".join([*parts, _legend(summary) + "."])
