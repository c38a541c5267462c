"""Tables shaped for one page of the book each, built from the frames the pipeline and the analyses return.

The general tables (main table, deltas, transfer, grid) are in :mod:`unidetox.report.tables.main`; these are the
per-page reshapes the notebooks show: the base against the toxic model, the text statistics with readable
row names, the text types of each text set, the transfer gaps in long form, the distinctive words side by side,
and the sample sizes predicted from the run as a pilot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from unidetox.analysis.textstats import STATS_COLUMNS
from unidetox.analysis.texttype import TEXT_TYPES
from unidetox.measure.power import PowerPlan
from unidetox.report.tables.cells import ci_cell, short_name
from unidetox.report.tables.main import COLUMNS, seed_summary

# (domain, metric) -> column of the toxicity columns: TP and EMT, in- and out-of-distribution
TOXICITY_COLUMNS = COLUMNS[:4]
# text statistic -> its row name on the page
STAT_LABELS = {
    "n_texts": "texts",
    "empty_share": "share of empty texts",
    "words_mean": "words per text, mean",
    "words_median": "words per text, median",
    "tokens_mean": "tokens per text, mean",
    "tokens_median": "tokens per text, median",
    "distinct_words": "distinct words",
    "vocab_ttr": "vocabulary TTR",
}
COUNT_STATS = {"n_texts", "distinct_words"}  # shown as whole numbers, the others with 3 decimals
TYPE_LABELS = {"english_prose": "English prose", "code_or_markup": "code or markup",
               "other_language": "other language", "empty": "empty"}  # fmt: skip


def seed_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of tidy evaluation rows, indexed by (method, domain, metric)."""
    return seed_summary(rows).set_index(["method", "domain", "metric"])


def mean_std_table(
    stats: pd.DataFrame, models: Mapping[str, str], columns: Sequence = TOXICITY_COLUMNS, digits: int = 3
) -> pd.DataFrame:
    """One row per model (`models`: method -> row name), one "mean ± std" text column per `columns` entry.

    `stats`: :func:`seed_stats`; `columns`: ``((domain, metric), column name)`` pairs.
    """

    def cell(m: str, d: str, k: str) -> str:
        return f"{stats.loc[(m, d, k), 'mean']:.{digits}f} ± {stats.loc[(m, d, k), 'std']:.{digits}f}"

    return pd.DataFrame(
        {col: [cell(m, d, k) for m in models] for (d, k), col in columns},
        index=pd.Index(list(models.values()), name="model"),
    )


def text_stats_table(stats: pd.DataFrame) -> pd.DataFrame:
    """A :func:`unidetox.analysis.textstats.stats_table` turned on its side: one column per text set, one row per
    statistic (readable names, STAT_LABELS), values as text (counts whole, shares and means to 3 decimals)."""
    keys = STATS_COLUMNS[1:]
    return pd.DataFrame(
        {
            row.set: [f"{row[k]:.0f}" if k in COUNT_STATS else f"{row[k]:.3f}" for k in keys]
            for _, row in stats.iterrows()
        },
        index=[STAT_LABELS.get(k, k) for k in keys],
    )


def text_type_display(counts: pd.DataFrame) -> pd.DataFrame:
    """A :func:`unidetox.analysis.texttype.text_type_counts` as text: one row per set, its number of texts and
    "count (share)" per text type (share to 3 decimals; "0" for an empty set)."""

    def cell(k: int, n: int) -> str:
        return f"{k} ({k / n:.3f})" if n else "0"

    out = {"texts": counts.n_texts.astype(int).tolist()}
    out |= {TYPE_LABELS[t]: [cell(int(k), int(n)) for k, n in zip(counts[t], counts.n_texts)] for t in TEXT_TYPES}
    return pd.DataFrame(out, index=pd.Index(counts.set.tolist(), name="text set"))


def prose_target_sentence(counts: pd.DataFrame, name: str, target: float) -> str:
    """One sentence: the English-prose share of set `name` of `counts` against `target` (a share)."""
    row = counts.set_index("set").loc[name]
    k, n = int(row.english_prose), int(row.n_texts)
    if not n:
        return f"The set {name} holds no texts, so its English-prose share is undefined."
    share = k / n
    verdict = "meets" if share >= target else "falls short of"
    return (f"{name}: {share:.0%} English prose ({k} of {n} texts), which {verdict} the target of at least "
            f"{target:.0%}.")  # fmt: skip


def power_display(plan: PowerPlan) -> pd.DataFrame:
    """The table of a :class:`unidetox.measure.power.PowerPlan` as text: half-widths to 3 decimals, yes/no, minutes."""
    t = plan.table
    out = pd.DataFrame({"prompts per domain": t.n_per_domain.astype(int)})
    for c in ("EMT (in)", "TP (in)", "ΔEMT (in)"):
        out[f"{c} ±"] = t[c].map(lambda v: f"{v:.3f}")
    out["untouched TP (in) CI excludes 0"] = t["TP (in) CI excludes 0"].map({True: "yes", False: "no"})
    out["evaluation minutes"] = t.minutes.map(lambda v: f"{v:.1f}")
    return out


def _prompts(n: int) -> str:
    return f"{n} prompt{'' if n == 1 else 's'} per domain"


def power_sentences(plan: PowerPlan, n_pilot: int, k: int, seeds: int) -> str:
    """What a :class:`unidetox.measure.power.PowerPlan` says, in Markdown: the pilot, TP(in), the smallest n."""
    c = plan.costs
    pilot = (f"The pilot has {_prompts(n_pilot)}, $k = {k}$ samples per prompt and {seeds} seed(s); the "
             "predictions hold for that $k$ and number of seeds.")  # fmt: skip
    out = [pilot]
    if plan.n_tp is None:
        out.append(f"The untouched model's TP(in) is {plan.tp_in:.3f} in the pilot, so with this pilot no number of "
                   "prompts makes its interval exclude 0.")  # fmt: skip
    else:
        out.append(f"The untouched model's TP(in) is {plan.tp_in:.3f} in the pilot; its 95% interval excludes 0 from "
                   f"{_prompts(plan.n_tp)}.")  # fmt: skip
    out.append(f"The half-width of ΔEMT(in) falls to {plan.target} at {_prompts(plan.n_delta)}.")
    if plan.n_needed is not None:
        out.append(f"Both targets need **{_prompts(plan.n_needed)}** on the report prompts, about "
                   f"{c.minutes(plan.n_needed):.0f} minutes of evaluation in all: this profile's {c.runs} report "
                   "evaluation runs of the pilot's size at that size, every other evaluation as in this run "
                   f"({c.seconds_per_continuation:.3f} s per continuation, as measured in this run).")  # fmt: skip
    return " ".join(out)


def budget_display(table: pd.DataFrame) -> pd.DataFrame:
    """A budget curve's table (:func:`unidetox.measure.budget.budget_table` plus tokens and train_seconds) as
    text, one row per budget: steps, tokens, fine-tuning seconds, ΔEMT/ΔTP (in) vs untouched and EMT vs the best."""
    emt = table[table.metric == "EMT"].set_index("steps").sort_index()
    tp = table[table.metric == "TP"].set_index("steps")
    return pd.DataFrame({
        "steps": emt.index.astype(int),
        "tokens (at most)": emt.tokens.astype(int).to_numpy(),
        "fine-tune s": emt.train_seconds.map(lambda v: f"{v:.0f}").to_numpy(),
        "ΔEMT (in) [95% CI]": [ci_cell(r["diff"], r.lo, r.hi) for _, r in emt.iterrows()],
        "ΔTP (in) [95% CI]": [ci_cell(r["diff"], r.lo, r.hi) for _, r in tp.loc[emt.index].iterrows()],
        "EMT − best budget [95% CI]": [ci_cell(r.vs_best, r.vs_best_lo, r.vs_best_hi) for _, r in emt.iterrows()],
    })  # fmt: skip


def budget_sentences(table: pd.DataFrame, chosen: int, cheapest: int, n_per_domain: int) -> str:
    """What a budget curve says, in Markdown: which budgets detoxify, the best and cheapest-as-good budget, and
    where the study's `chosen` steps stand."""
    emt = table[table.metric == "EMT"].set_index("steps").sort_index()
    sig = [int(n) for n, r in emt.iterrows() if r.hi < 0]
    best = int(emt["diff"].idxmin())  # the first minimum: ties go to the cheaper budget, as in budget_table
    n_in = int(emt.n_prompts.iloc[0])
    out = [f"On {_prompts(n_per_domain)} of the validation split ({n_in} in-distribution prompts),"]
    if sig:
        out.append(f"UniDetox lowers EMT(in) significantly at {', '.join(map(str, sig))} steps;")
    else:
        out.append("no budget lowers EMT(in) significantly (every interval contains 0);")
    out.append(f"the lowest EMT(in) is at {best} steps, and the fewest steps whose difference from it has an interval "
               f"containing 0 is **{cheapest}**.")  # fmt: skip
    if chosen == cheapest:
        out.append(f"The study's budget, {chosen} steps, is that cheapest budget.")
    elif chosen < cheapest:
        out.append(f"The study's budget, {chosen} steps, is below it: on these prompts a longer fine-tune detoxifies "
                   "more than the budget the book affords.")  # fmt: skip
    else:
        out.append(f"The study's budget, {chosen} steps, is above it: a cheaper fine-tune would do as well here.")
    return " ".join(out)


def transfer_gaps(transfer: pd.DataFrame) -> pd.DataFrame:
    """A :func:`unidetox.report.tables.main.transfer_table` in long form for a bar chart: columns target, method,
    gap ("TP (in) gap" or "EMT (in) gap"), value, and row ("<target>: <method>")."""
    long = transfer.melt(id_vars=["target", "method"], value_vars=["TP (in) gap", "EMT (in) gap"], var_name="gap")
    long["row"] = long.target + ": " + long.method
    return long


def words_side_by_side(words: pd.DataFrame) -> pd.DataFrame:
    """Distinctive words (columns set, rank, word, z) as one column per set, in the sets' order: "word (z)" by rank.

    Cells of a set with fewer words than the others are empty strings.
    """
    cells = words.assign(cell=lambda d: d["word"] + " (" + d["z"].round(1).astype(str) + ")")
    return cells.pivot(index="rank", columns="set", values="cell")[list(dict.fromkeys(cells["set"]))].fillna("")


__all__ = [
    "COUNT_STATS",
    "STAT_LABELS",
    "TOXICITY_COLUMNS",
    "TYPE_LABELS",
    "mean_std_table",
    "power_display",
    "power_sentences",
    "prose_target_sentence",
    "seed_stats",
    "text_stats_table",
    "text_type_display",
    "transfer_gaps",
    "words_side_by_side",
]


def selection_markdown(selection: pd.DataFrame, metric: str, digits: int = 3) -> str:
    """The study's selection table (:attr:`unidetox.pipeline.Study.selection`) as Markdown: per target and grid
    point, the validation value, the paired difference from the best with its interval, the share of bootstrap wins,
    and which point was chosen."""

    head = ["target", "learning rate", "steps", f"{metric} (in)", "− best [95% CI]", "bootstrap wins", "chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in selection.iterrows():
        cells = [f"`{short_name(r.target)}`", f"{r.lr:g}", str(int(r.steps)), f"{r.value:.{digits}f}",
                 ci_cell(r.vs_best, r.vs_best_lo, r.vs_best_hi, digits), f"{r.wins:.0%}",
                 "**chosen**" if bool(r.chosen) else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def planned_vs_achieved(profile, claims: pd.DataFrame) -> pd.DataFrame:
    """The powered claims' sample sizes: per row of claims (a), (b) and (f) on ΔEMT (in), the prompts per domain the
    plan gave its candidates (:func:`unidetox.measure.power.claim_prompts_per_domain` with ``study.planning_sd``), the
    planned 95% half-width and the one this run achieved under the primary scorer (half the interval's width)."""
    from unidetox.measure.power import claim_prompts_per_domain

    cfg = profile.study
    base = cfg.report_prompts_per_domain or profile.eval.prompts_per_domain
    planned = {"a": cfg.half_width_distillation, "f": cfg.half_width_distillation, "b": cfg.half_width_transfer}
    rows = []
    for _, r in claims.iterrows():
        if r["claim"] not in planned or not str(r["measure"]).startswith("ΔEMT"):
            continue
        width = planned[r["claim"]]
        achieved = (r["hi"] - r["lo"]) / 2 if pd.notna(r["lo"]) else float("nan")
        rows.append({"claim": f"({r['claim']})", "target": short_name(r["target"]), "measure": r["measure"],
                     "prompts per domain": claim_prompts_per_domain(cfg.planning_sd, width, base),
                     "planned half-width": width, "achieved half-width": round(achieved, 4),
                     "met": "yes" if achieved <= width else "no"})  # fmt: skip
    return pd.DataFrame(rows)


def planning_sentences(profile) -> str:
    """The report's sample-size calculation in words and numbers (Markdown with math), from the profile's
    ``study.planning_sd`` and target half-widths; '' when planning is off."""
    from unidetox.measure.power import Z95, claim_prompts_per_domain

    cfg = profile.study
    if not cfg.planning_sd:
        return ""
    base = cfg.report_prompts_per_domain or profile.eval.prompts_per_domain
    sd = cfg.planning_sd
    parts = []
    for claims, w in (("claims (a) and (f)", cfg.half_width_distillation), ("claim (b)", cfg.half_width_transfer)):
        exact = (Z95 * sd / w) ** 2 / 3
        n = claim_prompts_per_domain(sd, w, base)
        parts.append(f"{claims}, half-width $w = {w:g}$: $n = (1.96 \\times {sd:g} / {w:g})^2 / 3 = {exact:.1f}$, "
                     f"so **{n}** prompts per domain")  # fmt: skip
    return (
        f"The claims' sample sizes are planned before the run. ΔEMT(in) is the mean of three domain means of per-prompt "
        f"paired differences; with the same standard deviation $\\sigma$ in each domain and $n$ prompts per domain, "
        f"its 95% half-width is $w = 1.96\\,\\sigma / \\sqrt{{3n}}$, so $n = (1.96\\,\\sigma / w)^2 / 3$. The planning "
        f"value is $\\sigma = {sd:g}$ (`study.planning_sd`; the cpu profile's 0.20 is the per-prompt SD of ΔEMT that "
        f"UniDetox on SmolLM2 showed on about 300 held-out in-distribution prompts, k = 5, before this design). That "
        f"gives, for "
        + "; for ".join(parts)
        + f". Those sizes go to the candidates the claims compare (the distillation model's untouched, UniDetox and "
        f"base-samples models; the other targets' untouched and UniDetox models); every other candidate keeps "
        f"{base} prompts per domain (`study.report_prompts_per_domain`), and its paired differences use the prompts "
        f"it shares with the untouched target (the samples are nested). The table below gives the half-width each "
        f"claim reached in this run under the primary scorer."
    )
