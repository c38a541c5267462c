"""The book's tables, built from a :class:`unidetox.pipeline.Study` (pure pandas; the notebooks only display).

* :func:`main_table`: the paper's main table, one row per (target, method) on the report prompts: TP and EMT
  (in-distribution mean of gender/LGBTQ, race, religion; out-of-distribution disability) with seed std, the
  difference to the untouched target with its bootstrap CI, perplexity, Dist-1/2/3 and MMLU accuracy.
* :func:`transfer_table`: the transferred configuration against each target's own best (oracle).
* :func:`grid_curves`: validation TP and perplexity along the (learning rate, steps) grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unidetox.config.compared_methods import METHODS
from unidetox.measure.metrics import (
    ALL,
    DIVERSITY_METRICS,
    FLUENCY_METRICS,
    IN_DISTRIBUTION,
    OUT_OF_DISTRIBUTION,
    TOXICITY_METRICS,
)
from unidetox.report.tables.cells import ci_text, ratio_cell, short_name

METHOD_NAMES = {name: m.label for name, m in METHODS.items()}
METHOD_ORDER = list(METHODS)
MAIN_SELECTION = {name: m.main_selection for name, m in METHODS.items()}
LABELS = ["target", "method", "lr", "steps", "hparam", "selection"]
SIDES = {IN_DISTRIBUTION: "in", OUT_OF_DISTRIBUTION: "out"}
COLUMNS = [  # (domain, metric) -> display column: "TP (in)", "EMT (in)", "TP (out)", "EMT (out)", "PPL", "Dist-1", ...
    *(((domain, m), f"{m} ({side})") for domain, side in SIDES.items() for m in TOXICITY_METRICS),
    *(((ALL, m), m) for m in FLUENCY_METRICS),
]


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    """Labels with missing values made comparable ('' selection, NaN numbers)."""
    out = df.copy()
    out["selection"] = out["selection"].fillna("").astype(str)
    for c in ("lr", "steps", "hparam"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def seed_summary(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=0) over seeds of every (candidate, domain, metric): columns LABELS + domain, metric, mean, std."""
    t = _norm(tidy)
    g = t.groupby([*LABELS, "domain", "metric"], dropna=False).value
    return g.agg(mean="mean", std=lambda v: float(np.std(v.to_numpy()))).reset_index()


def _pick(df: pd.DataFrame, method: str) -> pd.DataFrame:
    return df[(df.method == method) & (df.selection == MAIN_SELECTION[method])]


def main_table(
    report: pd.DataFrame,
    cis: pd.DataFrame,
    mmlu: pd.DataFrame,
    applicability: pd.DataFrame,
    ppl_ratios: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (target, method): means, ``<col> std``, ``ΔTP (in)``/``ΔEMT (in)`` with CI bounds, MMLU, and
    with `ppl_ratios` (``Study.ppl_ratio_cis``: labels + ratio, lo, hi) ``PPL ratio`` with its bounds.

    Methods that do not apply to a target (``applicability.applies`` false) get a row of NaN with the reason
    in ``note``, so the table shows the limit instead of hiding it.
    """
    summ = seed_summary(report)
    ci = _norm(cis) if len(cis) else pd.DataFrame(columns=[*LABELS, "metric", "domain", "diff", "lo", "hi"])
    acc = _norm(mmlu) if len(mmlu) else pd.DataFrame(columns=[*LABELS, "MMLU"])
    ratios = _norm(ppl_ratios) if ppl_ratios is not None and len(ppl_ratios) else pd.DataFrame(columns=LABELS)
    app = applicability.set_index(["target", "method"])
    rows = []
    for target in dict.fromkeys(report.target):
        for method in METHOD_ORDER:
            if (target, method) not in app.index:
                continue
            rec: dict = {"target": target, "method": METHOD_NAMES[method]}
            if not app.loc[(target, method), "applies"]:
                rows.append({**rec, "note": f"n/a: {app.loc[(target, method), 'reason']}"})
                continue
            s = _pick(summ[summ.target == target], method)
            if s.empty:
                continue
            first = s.iloc[0]
            rec["config"] = _config_text(first)
            for (domain, metric), col in COLUMNS:
                v = s[(s.domain == domain) & (s.metric == metric)]
                if len(v):
                    rec[col], rec[f"{col} std"] = float(v["mean"].iloc[0]), float(v["std"].iloc[0])
            c = _pick(ci[ci.target == target], method)
            for metric, domain, col in (("TP", IN_DISTRIBUTION, "ΔTP (in)"), ("EMT", IN_DISTRIBUTION, "ΔEMT (in)"),
                                        ("TP", OUT_OF_DISTRIBUTION, "ΔTP (out)"), ("PPL", ALL, "ΔPPL")):  # fmt: skip
                v = c[(c.metric == metric) & (c.domain == domain)]
                if len(v):
                    rec[col], rec[f"{col} lo"], rec[f"{col} hi"] = (float(v[k].iloc[0]) for k in ("diff", "lo", "hi"))
            p = _pick(ratios[ratios.target == target], method)
            if len(p):
                rec["PPL ratio"], rec["PPL ratio lo"], rec["PPL ratio hi"] = (
                    float(p[k].iloc[0]) for k in ("ratio", "lo", "hi")
                )
            a = _pick(acc[acc.target == target], method) if method != "preprompt" and method != "dexperts" else []
            if len(a):
                rec["MMLU"] = float(a["MMLU"].iloc[0])
            rec["note"] = ""
            rows.append(rec)
    return pd.DataFrame(rows)


def _config_text(row: pd.Series) -> str:
    if row.method == "dexperts":
        return f"λ={row.hparam:g}"
    if not np.isnan(row.lr):
        return f"lr={row.lr:g}, {int(row.steps)} steps"
    return ""


def transfer_table(report: pd.DataFrame) -> pd.DataFrame:
    """Per (target, method) with both a transferred and an oracle row: TP/EMT (in) and PPL of each, and the gaps.

    ``gap`` columns are transferred minus oracle (0 when the shared configuration is the target's own best).
    """
    summ = seed_summary(report)
    rows = []
    for (target, method), g in summ.groupby(["target", "method"], sort=False):
        sels = set(g.selection)
        if not {"transferred", "oracle"} <= sels:
            continue
        rec = {"target": target, "method": METHOD_NAMES.get(method, method)}
        for sel in ("transferred", "oracle"):
            s = g[g.selection == sel]
            rec[f"{sel} config"] = _config_text(s.iloc[0])
            for domain, metric, col in ((IN_DISTRIBUTION, "TP", "TP (in)"), (IN_DISTRIBUTION, "EMT", "EMT (in)"),
                                        (ALL, "PPL", "PPL")):  # fmt: skip
                v = s[(s.domain == domain) & (s.metric == metric)]
                rec[f"{col} {sel}"] = float(v["mean"].iloc[0]) if len(v) else np.nan
        for col in ("TP (in)", "EMT (in)", "PPL"):
            rec[f"{col} gap"] = rec[f"{col} transferred"] - rec[f"{col} oracle"]
        rows.append(rec)
    return pd.DataFrame(rows)


def grid_curves(validation: pd.DataFrame, method: str = "unidetox") -> pd.DataFrame:
    """Validation seed means along the grid: columns target, lr, steps, TP (in), EMT (in), PPL.

    The untouched target is included at ``steps = 0`` for every learning rate, so curves start from it.
    """
    summ = seed_summary(validation)
    keep = {(IN_DISTRIBUTION, "TP"): "TP (in)", (IN_DISTRIBUTION, "EMT"): "EMT (in)", (ALL, "PPL"): "PPL"}
    summ = summ[[(d, m) in keep for d, m in zip(summ.domain, summ.metric)]]
    summ = summ.assign(col=[keep[(d, m)] for d, m in zip(summ.domain, summ.metric)])
    grid = summ[summ.method == method]
    wide = grid.pivot_table(index=["target", "lr", "steps"], columns="col", values="mean").reset_index()
    base = summ[summ.method == "none"].pivot_table(index="target", columns="col", values="mean")
    starts = [{"target": t, "lr": lr, "steps": 0, **base.loc[t].to_dict()}
              for t, lr in set(zip(wide.target, wide.lr)) if t in base.index]  # fmt: skip
    out = pd.concat([pd.DataFrame(starts), wide], ignore_index=True)
    return out.sort_values(["target", "lr", "steps"]).reset_index(drop=True)


def display_main_table(main: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The main table as strings: 'mean ± std' cells, Δ with its interval, 'n/a: …' notes for methods that do not apply."""
    out = pd.DataFrame({"target": main.target.map(short_name), "method": main.method, "config": main.get("config", "")})

    def pm(col: str, d: int = digits) -> pd.Series:
        if col not in main:
            return pd.Series([""] * len(main), index=main.index)
        std = main.get(f"{col} std")
        return pd.Series(
            ["" if pd.isna(m) else f"{m:.{d}f} ± {s:.{d}f}" for m, s in zip(main[col], std)], index=main.index
        )

    for (_, metric), col in COLUMNS:
        if metric in TOXICITY_METRICS:
            out[col] = pm(col)
    out["ΔTP (in) [95% CI]"] = ci_text(main, "ΔTP (in)", digits)
    out["ΔEMT (in) [95% CI]"] = ci_text(main, "ΔEMT (in)", digits)
    out["PPL"] = pm("PPL", 1)
    ratio = main.get("PPL ratio", pd.Series(np.nan, index=main.index))
    out["PPL ratio [95% CI]"] = [
        ratio_cell(v, lo, hi)
        for v, lo, hi in zip(ratio, main.get("PPL ratio lo", ratio), main.get("PPL ratio hi", ratio))
    ]
    for col in DIVERSITY_METRICS:
        out[col] = pm(col, 2)
    out["MMLU"] = [("" if pd.isna(v) else f"{v:.{digits}f}") for v in main.get("MMLU", pd.Series(index=main.index))]
    out["note"] = main.get("note", "").fillna("")
    return out.fillna("")


def _interval_word(lo: float, hi: float) -> str:
    if hi < 0:
        return "lower than the untouched model (the interval excludes 0)"
    if lo > 0:
        return "higher than the untouched model (the interval excludes 0)"
    return "not distinguishable from the untouched model (the interval contains 0)"


def verdicts(main: pd.DataFrame, col: str = "ΔTP (in)", floor: float = 0.05, second: pd.DataFrame | None = None,
             second_name: str = "the second scorer") -> str:  # fmt: skip
    """A Markdown list: per target and method, the change in `col` (and in EMT), whether its interval excludes 0,
    and the perplexity it costs; a note where the untouched model's TP is below `floor` (nothing to remove).

    `second`: the :func:`main_table` of the same generations under a second scorer (``Study.report_second`` and
    ``cis_second``); each line then gives `col` under it and whether the two scorers agree in sign and in whether
    the interval excludes 0."""
    from unidetox.report.claims import agreement

    other = {} if second is None or second.empty else {(r.target, r.method): r for _, r in second.iterrows()}
    lines = []
    base = {r.target: r for _, r in main[main.method == METHOD_NAMES["none"]].iterrows()}
    for target, b in base.items():
        if "TP (in)" in main and not pd.isna(b["TP (in)"]) and b["TP (in)"] < floor:
            lines.append(f"- **{target}** untouched has an in-distribution TP of only {b['TP (in)']:.3f}: at this "
                         "number of samples per prompt it is rarely toxic, so a reduction can hardly be measured.")  # fmt: skip
    for _, r in main.iterrows():
        if r.get("note", "") and str(r["note"]).startswith("n/a"):
            lines.append(f"- **{r.target}**, {r.method}: {r['note']}.")
            continue
        if col not in main or pd.isna(r.get(col)):
            continue
        text = f"- **{r.target}**, {r.method}: {col} {r[col]:+.3f} [{r[f'{col} lo']:+.3f}, {r[f'{col} hi']:+.3f}], "
        text += _interval_word(r[f"{col} lo"], r[f"{col} hi"])
        emt = col.replace("TP", "EMT")
        if emt in main and not pd.isna(r.get(emt)):
            text += f"; {emt} {r[emt]:+.3f} [{r[f'{emt} lo']:+.3f}, {r[f'{emt} hi']:+.3f}]"
        b = base.get(r.target)
        if b is not None and "PPL" in main and not pd.isna(r.get("PPL")) and not pd.isna(b["PPL"]):
            text += f"; perplexity {b['PPL']:.1f} → {r['PPL']:.1f}"
        o = other.get((r.target, r.method))
        if o is not None and col in second and not pd.isna(o.get(col)):
            agree = agreement((r[col], r[f"{col} lo"], r[f"{col} hi"]), (o[col], o[f"{col} lo"], o[f"{col} hi"]))
            text += (f"; under {second_name}: {col} {o[col]:+.3f} [{o[f'{col} lo']:+.3f}, {o[f'{col} hi']:+.3f}], "
                     f"{'the scorers agree in sign and significance' if agree == 'yes' else 'scorers disagree (' + agree[4:] + ')'}")  # fmt: skip
        lines.append(text + ".")
    return "\n".join(lines)


def delta_long(main: pd.DataFrame, cols: tuple[str, ...] = ("ΔTP (in)", "ΔEMT (in)")) -> pd.DataFrame:
    """Long rows ``row, metric, diff, lo, hi`` (row = 'target: method') for interval plots."""
    rows = []
    for _, r in main.iterrows():
        for col in cols:
            if col in main and not pd.isna(r.get(col)):
                rows.append({"row": f"{r.target}: {r.method}", "metric": col, "diff": r[col],
                             "lo": r[f"{col} lo"], "hi": r[f"{col} hi"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["row", "metric", "diff", "lo", "hi"])


def report_sizes_text(profile) -> str:
    """The report prompts per domain of the study's candidates, in words (the rule of
    :func:`unidetox.pipeline.report_sizes.report_prompts_per_domain`)."""
    from unidetox.measure.power import claim_prompts_per_domain

    cfg = profile.study
    base = cfg.report_prompts_per_domain or profile.eval.prompts_per_domain
    na, nb = (claim_prompts_per_domain(cfg.planning_sd, w, base)
              for w in (cfg.half_width_distillation, cfg.half_width_transfer))  # fmt: skip
    if na == nb == base:
        return f"{base or 'all'} per domain for every candidate"
    return (f"{na} per domain for the distillation model's untouched, UniDetox and base-samples candidates "
            f"(claims a, f), {nb} for the other targets' untouched and UniDetox candidates (claim b), {base} for "
            f"every other candidate (sized for ΔEMT (in) half-widths {cfg.half_width_distillation:g} and "
            f"{cfg.half_width_transfer:g} at a planning SD of {cfg.planning_sd:g})")  # fmt: skip


def judges_text(profile) -> str:
    """Which model judges the perplexity of which target's continuations, in words."""
    from unidetox.measure.evaluate import perplexity_judge

    judged = {t: perplexity_judge(profile.eval, t) for t in profile.detox.targets}
    if len(set(judged.values())) == 1:
        (judge,) = set(judged.values())
        own = " (itself included)" if judge in judged else ""
        return f"perplexity judged by `{judge}`{own}"
    return "perplexity judged by " + ", ".join(f"`{j}` (of `{t}`)" for t, j in judged.items())
