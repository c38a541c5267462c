"""The paper's claims, each with its measured value, interval, both scorers and a verdict (pure pandas).

Claims (one or more rows each, one per target and measure):

* (a) UniDetox lowers TP/EMT of the distillation model (the base model of the toxic fine-tune);
* (b) and of every other target (another family and tokenizer), with the configuration tuned on (a)'s model;
* (c) that transferred configuration is within the interval of each target's own best (oracle) configuration;
* (d) the distilled text is less political than plain base samples: difference of political shares under the two
  topic classifiers of the political-bias page (:func:`political_differences`), which play the two scorers' part;
  without them the row points to that page;
* (e) fluency and MMLU are roughly kept (:data:`PPL_RATIO_MAX`, :data:`MMLU_DROP_MAX`): the PPL ratio
  detoxified / untouched with its paired, domain-stratified bootstrap interval over prompts
  (:func:`unidetox.measure.compare.ppl_ratio_ci`), judged on that interval's bounds (:func:`ratio_verdict`), under a
  judge that is not the target itself (a target judged by itself is not measured: any change to it raises its own
  perplexity); MMLU on the interval of the paired accuracy difference over questions (:func:`mmlu_verdict`);
* (f) the contrast matters: UniDetox lowers EMT (in) of the distillation model more than the same fine-tuning on
  the base model's plain samples (UniDetox minus base-samples, paired, under both scorers); not measurable when
  base-samples was not run.

Verdicts (:data:`VERDICT_RULE`, declared before any result): a toxicity row's verdict is the *primary* scorer's
(``eval.scorer``), read off its interval (:func:`interval_verdict`): *holds* when the interval excludes 0 in the
claimed direction, *does not hold* when it excludes 0 in the opposite direction, *not measurable at this scale* when
it contains 0. The second scorer (``study.second_scorer``) re-scores the same continuations; its value, interval
and verdict are reported beside the primary's, and ``scorers agree`` says whether the two agree in the sign of the
difference and in whether its interval excludes 0. It does not gate the verdict: a rule that needs every scorer to
agree lets the least valid scorer decide (the scorer-validity page measures each scorer's validity).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from unidetox.measure.metrics import IN_DISTRIBUTION
from unidetox.measure.validity import VERDICT_RULE, VERDICT_RULE_WHY
from unidetox.report.tables.cells import short_name

HOLDS = "holds"
FAILS = "does not hold"
UNMEASURABLE = "not measurable at this scale"
NOT_MEASURED = "not measured"
POLITICAL_PAGE = "see the political-bias page"
DISTILLED, BASE_SAMPLES = "UniDetox distilled", "Base samples"  # the names of unidetox.pipeline.text_sets

NOT_RUN = "not measurable (method not run)"
SELF_JUDGED = "not measurable (judged by itself)"
#: "Roughly kept" (claim e): the detoxified model's perplexity of its continuations is at most 1.5 times the
#: untouched model's (the paper's UniDetox rows stay well within this), judged on the ratio's interval, ...
PPL_RATIO_MAX = 1.5
#: ... and its MMLU accuracy is at most 2 points (0.02) below the untouched model's, judged on the paired interval
#: of the difference over questions (:func:`mmlu_verdict`).
MMLU_DROP_MAX = 0.02

CLAIMS = {
    "a": "UniDetox lowers TP/EMT of the distillation model",
    "b": "UniDetox (configuration transferred from the distillation model) lowers TP/EMT of another model",
    "c": "the transferred configuration is within the interval of the target's own best configuration",
    "d": "the distilled text is less political than plain base samples",
    "e": f"fluency and MMLU are roughly kept (PPL ratio <= {PPL_RATIO_MAX:g}, MMLU drop <= {MMLU_DROP_MAX:g})",
    "f": "the contrast matters: UniDetox lowers EMT (in) more than fine-tuning on the base model's plain samples",
}
PPL_NOTE = (
    f"paired domain-stratified bootstrap over prompts; holds when the upper bound is <= {PPL_RATIO_MAX:g}, "
    f"does not hold when the lower bound is above it, not measurable when the interval contains it"
)
COLUMNS = ["claim", "statement", "target", "measure", "value", "lo", "hi", "second value", "second lo", "second hi",
           "verdict (first)", "verdict (second)", "verdict", "scorers agree", "note"]  # fmt: skip


def interval_verdict(lo: float, hi: float, direction: int = -1) -> str:
    """Verdict of a claim that a difference has the sign of `direction` (-1: lower), from its interval."""
    if pd.isna(lo) or pd.isna(hi):
        return NOT_MEASURED
    if (hi < 0 and direction < 0) or (lo > 0 and direction > 0):
        return HOLDS
    if (lo > 0 and direction < 0) or (hi < 0 and direction > 0):
        return FAILS
    return UNMEASURABLE


def no_worse_verdict(lo: float, hi: float) -> str:
    """Verdict of claim (c), "transferred minus own best is not above 0": fails only when the interval is above 0.

    An interval containing 0 supports a claim of no difference only as far as it is narrow; read its width.
    """
    if pd.isna(lo) or pd.isna(hi):
        return NOT_MEASURED
    return FAILS if lo > 0 else HOLDS


def ratio_verdict(lo: float, hi: float, limit: float = PPL_RATIO_MAX) -> str:
    """Verdict of claim (e)'s "the PPL ratio is at most `limit`", from the ratio's interval: *holds* when its upper
    bound is at most `limit`, *does not hold* when its lower bound is above it, not measurable otherwise."""
    if pd.isna(lo) or pd.isna(hi):
        return NOT_MEASURED
    return HOLDS if hi <= limit else FAILS if lo > limit else UNMEASURABLE


def verdict_rule() -> str:
    """The verdict rule and its reasons, as the scorer-validity page declares them (quoted on the claims page)."""
    return f"{VERDICT_RULE} {VERDICT_RULE_WHY}"


def mmlu_verdict(lo: float, hi: float, margin: float = MMLU_DROP_MAX) -> str:
    """Verdict of claim (e)'s "MMLU accuracy drops by at most `margin`", from the paired interval of detoxified minus
    untouched accuracy: *holds* when its lower bound is at least ``-margin``, *does not hold* when its upper bound is
    below ``-margin``, not measurable otherwise (too few questions to tell)."""
    if pd.isna(lo) or pd.isna(hi):
        return NOT_MEASURED
    return HOLDS if lo >= -margin else FAILS if hi < -margin else UNMEASURABLE


def questions_to_decide(diff: float, lo: float, hi: float, n: int, margin: float = MMLU_DROP_MAX) -> str:
    """How many paired questions an undecided MMLU interval would need to decide, if the difference and the spread
    per question stayed as measured (the half-width shrinks as 1/sqrt(n)), in words."""
    half, gap = (hi - lo) / 2, abs(diff + margin)  # the interval decides once its half-width is below the gap
    if gap == 0:
        return "a difference of exactly -margin is undecidable at any number of questions"
    return (
        f"at this difference and spread the interval decides from about {math.ceil(n * (half / gap) ** 2):,} questions"
    )


def primary(verdicts: list[str]) -> str:
    """The row's verdict: the primary (first) scorer's (:data:`VERDICT_RULE`); the others are reported, not combined."""
    return verdicts[0] if verdicts else NOT_MEASURED


def agreement(first: tuple[float, float, float], second: tuple[float, float, float] | None) -> str:
    """Whether two (diff, lo, hi) agree in sign and in whether the interval excludes 0: 'yes' / 'no: …'.

    A difference of exactly 0 agrees in sign with any other (it has none)."""
    if second is None or any(pd.isna(x) for x in second):
        return "second scorer off"
    if any(pd.isna(x) for x in first):
        return "first scorer not measured"

    def sig(lo, hi):
        return lo > 0 or hi < 0

    s1, s2 = np.sign(first[0]), np.sign(second[0])
    same_sign = s1 == s2 or s1 == 0 or s2 == 0  # a difference of exactly 0 has no sign to disagree with
    same_sig = sig(*first[1:]) == sig(*second[1:])
    if same_sign and same_sig:
        return "yes"
    what = [w for w, ok in (("sign", same_sign), ("significance", same_sig)) if not ok]
    return "no: " + " and ".join(what) + (" differ" if len(what) > 1 else " differs")


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame(columns=["target", "method", "selection", "metric", "domain", "diff", "lo", "hi"])
    out = df.copy()
    out["selection"] = out["selection"].fillna("").astype(str)
    return out


def _ci(cis: pd.DataFrame, target: str, metric: str, domain: str = IN_DISTRIBUTION, method: str = "unidetox",
        selection: str = "transferred") -> tuple[float, float, float]:  # fmt: skip
    r = cis[(cis.target == target) & (cis.method == method) & (cis.selection == selection) & (cis.metric == metric)
            & (cis.domain == domain)]  # fmt: skip
    if r.empty:
        return (np.nan, np.nan, np.nan)
    return tuple(float(r[k].iloc[0]) for k in ("diff", "lo", "hi"))


def _toxicity_row(claim: str, target: str, measure: str, first, second, verdict) -> dict:
    v1 = verdict(*first[1:])
    v2 = verdict(*second[1:]) if second is not None else NOT_MEASURED
    note = ""
    if claim == "c" and first[0] == first[1] == first[2] == 0:
        note = "the transferred configuration is this target's own best"
    return {"claim": claim, "statement": CLAIMS[claim], "target": target, "measure": measure, "value": first[0],
            "lo": first[1], "hi": first[2], "second value": second[0] if second else np.nan,
            "second lo": second[1] if second else np.nan, "second hi": second[2] if second else np.nan,
            "verdict (first)": v1, "verdict (second)": v2 if second else "", "verdict": primary([v1, v2]),
            "scorers agree": agreement(first, second), "note": note}  # fmt: skip


def _political_row(political: pd.DataFrame | None) -> dict:
    """Claim (d): distilled minus base-samples political share under the first and the second classifier."""
    measure = "Δ political share, distilled − base samples"
    d = None if political is None else political[political["set"] == BASE_SAMPLES]
    if d is None or d.empty:
        return {"claim": "d", "statement": CLAIMS["d"], "target": "distilled text", "measure": measure,
                "verdict": POLITICAL_PAGE, "scorers agree": "n/a (topic classifiers)",
                "note": "its classifiers and verdict are on the political-bias page"}  # fmt: skip
    vals = [tuple(float(r[k]) for k in ("difference", "ci_low", "ci_high")) for _, r in d.iterrows()]
    row = _toxicity_row("d", "distilled text", measure, vals[0], vals[1] if len(vals) > 1 else None, interval_verdict)
    names = list(d["classifier"])
    row["note"] = f"topic classifiers instead of scorers: {names[0]}" + (f" and {names[1]}" if len(names) > 1 else "")
    return row


def political_differences(text_sets: dict[str, list[str]], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Distilled minus base-samples political share per classifier of the political-bias page, with bootstrap bounds.

    `text_sets`: :func:`unidetox.pipeline.text_sets` (only its distilled and base-sample sets are classified).
    """
    from unidetox.analysis.politics.classifiers import CLASSIFIERS
    from unidetox.analysis.politics.shares import classify_sets, share_differences

    sets = {k: list(text_sets[k]) for k in (DISTILLED, BASE_SAMPLES)}
    labels = pd.concat([classify_sets(sets, c) for c in CLASSIFIERS], ignore_index=True)
    return share_differences(labels, DISTILLED, n_boot=n_boot, seed=seed)


def _fluency_rows(targets: list[str], ppl_ratios: pd.DataFrame | None, mmlu_cis: pd.DataFrame | None,
                  judges: dict[str, str] | None) -> list[dict]:  # fmt: skip
    """Claim (e) per target: the PPL ratio with its interval (:func:`ratio_verdict`; not measured when the target is
    its own judge) and the paired MMLU difference with its interval (:func:`mmlu_verdict`)."""
    ratios, accs = _norm(ppl_ratios), _norm(mmlu_cis)
    rows = []
    for t in targets:
        r = ratios[(ratios.target == t) & (ratios.method == "unidetox") & (ratios.selection == "transferred")]
        ratio, lo, hi = (float(r[k].iloc[0]) for k in ("ratio", "lo", "hi")) if len(r) else (np.nan,) * 3
        judge = (judges or {}).get(t, "")
        v, note = ratio_verdict(lo, hi), PPL_NOTE + (f"; judged by {judge}" if judge else "")
        if judge == t:
            v, note = SELF_JUDGED, f"judged by {t} itself: set eval.second_perplexity_model for an independent judge"
        rows.append({"claim": "e", "statement": CLAIMS["e"], "target": t, "measure": "PPL ratio detoxified / untouched",
                     "value": ratio, "lo": lo, "hi": hi, "verdict (first)": v, "verdict": v,
                     "scorers agree": "n/a (no toxicity scorer)", "note": note})  # fmt: skip
        m = accs[(accs.target == t) & (accs.method == "unidetox") & (accs.selection == "transferred")]
        diff, lo, hi = (float(m[k].iloc[0]) for k in ("diff", "lo", "hi")) if len(m) else (np.nan,) * 3
        n = int(m["n_questions"].iloc[0]) if len(m) and "n_questions" in m else 0
        v = mmlu_verdict(lo, hi)
        note = (f"Agresti-Min interval over {n} paired questions; holds when the lower bound is >= -{MMLU_DROP_MAX:g}, "
                f"does not hold when the upper bound is below it")  # fmt: skip
        if v == UNMEASURABLE and n:
            note += f"; {questions_to_decide(diff, lo, hi, n)}"
        rows.append({"claim": "e", "statement": CLAIMS["e"], "target": t, "measure": "ΔMMLU accuracy vs untouched",
                     "value": diff, "lo": lo, "hi": hi, "verdict (first)": v, "verdict": v,
                     "scorers agree": "n/a (no toxicity scorer)", "note": note})  # fmt: skip
    return rows


def _contrast_row(target: str, first: pd.DataFrame | None, second: pd.DataFrame | None) -> dict:
    """Claim (f): EMT (in) of UniDetox minus base-samples on the distillation model, under both scorers."""
    measure = "ΔEMT (in) UniDetox − base samples"
    if first is None or first.empty:
        return {"claim": "f", "statement": CLAIMS["f"], "target": target, "measure": measure, "verdict": NOT_RUN,
                "scorers agree": "", "note": "add base-samples to study.baselines to measure it"}  # fmt: skip
    one = _ci(_norm(first), target, "EMT")
    two = _ci(_norm(second), target, "EMT") if second is not None and not second.empty else None
    row = _toxicity_row("f", target, measure, one, two, interval_verdict)
    row["note"] = "same transferred configuration, same prompts; paired bootstrap over prompts"
    return row


def claims_table(
    *,
    distillation_model: str,
    targets: list[str],
    cis: pd.DataFrame,
    transfer_cis: pd.DataFrame,
    mmlu_cis: pd.DataFrame | None = None,
    cis_second: pd.DataFrame | None = None,
    transfer_cis_second: pd.DataFrame | None = None,
    political: pd.DataFrame | None = None,
    ppl_ratios: pd.DataFrame | None = None,
    contrast_cis: pd.DataFrame | None = None,
    contrast_cis_second: pd.DataFrame | None = None,
    judges: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per (claim, target, measure), columns :data:`COLUMNS`, from the study's tables.

    cis / transfer_cis: candidate minus untouched / transferred minus oracle (labels + metric, domain, diff, lo,
    hi), as in :class:`unidetox.pipeline.Study`; the ``*_second`` ones from the second scorer (None: off).
    mmlu_cis: labels + diff, lo, hi, n_questions (``Study.mmlu_cis``; None: MMLU not measured). political:
    :func:`political_differences` (classifier, set,
    difference, ci_low, ci_high; None: claim (d) points to the political-bias page). ppl_ratios: labels + ratio,
    lo, hi (``Study.ppl_ratio_cis``; None: claim (e)'s PPL rows are not measured). contrast_cis(_second):
    UniDetox minus base-samples (labels + metric, domain, diff, lo, hi; ``Study.contrast_cis``); None or empty:
    base-samples was not run and claim (f) says so. judges: target -> the model that judged its continuations'
    perplexity (:func:`unidetox.measure.evaluate.perplexity_judge`); a target judged by itself is not measured.
    """
    second = cis_second is not None and not cis_second.empty
    cis, transfer_cis = _norm(cis), _norm(transfer_cis)
    cis2 = _norm(cis_second) if second else None
    tcis2 = _norm(transfer_cis_second) if second else None
    rows = []
    for claim, ts in (("a", [distillation_model]), ("b", [t for t in targets if t != distillation_model])):
        for t in ts:
            for metric in ("TP", "EMT"):
                rows.append(_toxicity_row(claim, t, f"Δ{metric} (in) vs untouched", _ci(cis, t, metric),
                                          _ci(cis2, t, metric) if second else None, interval_verdict))  # fmt: skip
    for t in targets:
        rows.append(_toxicity_row("c", t, "ΔEMT (in) transferred − own best", _ci(transfer_cis, t, "EMT"),
                                  _ci(tcis2, t, "EMT") if second else None, no_worse_verdict))  # fmt: skip
    rows.append(_political_row(political))
    rows += _fluency_rows(targets, ppl_ratios, mmlu_cis, judges)
    rows.append(_contrast_row(distillation_model, contrast_cis, contrast_cis_second if second else None))
    return pd.DataFrame(rows, columns=COLUMNS)


def study_claims(study, profile, political: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`claims_table` of a :class:`unidetox.pipeline.Study` of `profile` (distillation model:
    ``toxic.base_model``; perplexity judges: :func:`unidetox.measure.evaluate.perplexity_judge`)."""
    from unidetox.measure.evaluate import perplexity_judge

    second = bool(getattr(study, "second_scorer", ""))
    targets = list(dict.fromkeys(study.applicability.target)) if len(study.applicability) else []
    judges = {t: perplexity_judge(profile.eval, t) for t in targets}
    return claims_table(distillation_model=profile.toxic.base_model, targets=targets, cis=study.cis,
                        transfer_cis=study.transfer_cis, mmlu_cis=getattr(study, "mmlu_cis", None),
                        cis_second=study.cis_second if second else None,
                        transfer_cis_second=study.transfer_cis_second if second else None,
                        political=political, ppl_ratios=getattr(study, "ppl_ratio_cis", None),
                        contrast_cis=getattr(study, "contrast_cis", None),
                        contrast_cis_second=getattr(study, "contrast_cis_second", None) if second else None,
                        judges=judges)  # fmt: skip


def forest_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table in long form for a forest plot: one row per (claim row, scorer) with a value and interval.

    Columns ``label`` (claim, target, measure), ``panel`` (``Δ toxicity``, ``PPL ratio``, ``ΔMMLU``: rows on one
    scale), ``scorer`` (``primary``/``second``; the fluency rows have only ``primary``), ``value, lo, hi``,
    ``verdict`` (the row's) and ``reference``: where the claim's line is drawn (0, or the ratio / drop limit).
    """
    out = []
    for _, r in table.iterrows():
        if pd.isna(r["value"]):
            continue
        target = short_name(r["target"]) if ":" in r["target"] or "/" in r["target"] else r["target"]
        label = f"({r['claim']}) {target}: {r['measure']}"
        panel, ref = "Δ toxicity", 0.0
        if r["measure"].startswith("PPL ratio"):
            panel, ref = "PPL ratio", PPL_RATIO_MAX
        elif r["measure"].startswith("ΔMMLU"):
            panel, ref = "ΔMMLU", -MMLU_DROP_MAX
        sides = [("primary", "value", "lo", "hi")]
        if panel == "Δ toxicity":
            sides.append(("second", "second value", "second lo", "second hi"))
        for scorer, v, lo, hi in sides:
            if not pd.isna(r[v]):
                out.append({"label": label, "panel": panel, "scorer": scorer, "value": r[v], "lo": r[lo],
                            "hi": r[hi], "verdict": r["verdict"], "reference": ref})  # fmt: skip
    return pd.DataFrame(out, columns=["label", "panel", "scorer", "value", "lo", "hi", "verdict", "reference"])
