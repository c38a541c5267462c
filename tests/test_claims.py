"""The second scorer (re-scoring stored generations) and the claims table's verdict logic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from unidetox import pipeline as P
from unidetox.config.loader import load_profile
from unidetox.measure.metrics import ALL, IN_DISTRIBUTION, TOXICITY_METRICS
from unidetox.measure.scorers import load_scorer
from unidetox.report import claims as C
from unidetox.report import claims_text as CT
from unidetox.report.tables.main import verdicts
from unidetox.store.jsonl import read_jsonl


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One evaluate stage of the untouched tiny GPT-2 (no perplexity: the rescore stage never needs it)."""
    profile = load_profile("tiny", [f"runs_dir={tmp_path_factory.mktemp('rescore-runs')}"])
    cand = P.untouched("tiny:gpt2")
    return profile, cand, P.evaluate(profile, cand, perplexity=False, quiet=True)


def _tox(path):
    df = pd.read_csv(path / "metrics.csv")
    return df[df.metric.isin(TOXICITY_METRICS)][["seed", "domain", "metric", "value"]].reset_index(drop=True)


def test_rescoring_with_the_same_scorer_reproduces_the_evaluation(evaluated):
    profile, cand, ev = evaluated
    again = P.rescore(profile, cand, ev, profile.eval.scorer, quiet=True)
    pd.testing.assert_frame_equal(_tox(again), _tox(ev))


def test_rescore_scores_the_stored_continuations_and_is_cached(evaluated, capsys):
    profile, cand, ev = evaluated
    st = P.rescore(profile, cand, ev, "hatesonar", quiet=True)
    old, new = read_jsonl(ev / "generations.jsonl"), read_jsonl(st / "generations.jsonl")
    assert [{**r, "toxicity": 0} for r in old] == [{**r, "toxicity": 0} for r in new]  # no new generations
    as_evaluate_writes = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in new)
    assert (st / "generations.jsonl").read_text(encoding="utf-8") == as_evaluate_writes  # the shared JSONL format
    expected = load_scorer("hatesonar").score([r["continuation"] for r in old])
    np.testing.assert_allclose([r["toxicity"] for r in new], expected)
    rows = pd.read_csv(st / "metrics.csv")
    assert set(rows.metric) == set(TOXICITY_METRICS) and set(rows.scorer) == {"hatesonar"}
    assert set(rows.domain) == set(_tox(ev).domain) and len(rows) == len(_tox(ev))
    assert json.loads((st / "settings.json").read_text())["scorer"] == "hatesonar"
    assert json.loads((st / "config.json").read_text())["inputs"] == {"evaluate": ev.key}
    capsys.readouterr()
    assert P.rescore(profile, cand, ev, "hatesonar", quiet=True).key == st.key
    assert "reusing" in capsys.readouterr().out
    assert P.rescore(profile, cand, ev, "toxblock", quiet=True).key != st.key


def test_rescoring_an_unfinished_evaluation_is_refused(evaluated):
    from unidetox.errors import UnidetoxError
    from unidetox.store.registry import EVALUATE

    profile, cand, _ = evaluated
    missing = EVALUATE.locate(profile, {"never": "run"}, {"model": cand.key})
    with pytest.raises(UnidetoxError, match="no finished generations"):
        P.rescore(profile, cand, missing, "hatesonar", quiet=True)


def test_second_scorer_equal_to_the_first_is_refused(tmp_path):
    from unidetox.config import ConfigError

    with pytest.raises(ConfigError, match="second_scorer"):
        P.study(load_profile("tiny", [f"runs_dir={tmp_path}", "study.second_scorer=tiny"]))


# --- the verdict logic, on hand-made tables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "direction", "verdict"),
    [(-0.3, -0.1, -1, C.HOLDS), (0.1, 0.3, -1, C.FAILS), (-0.1, 0.1, -1, C.UNMEASURABLE),
     (-0.2, 0.0, -1, C.UNMEASURABLE), (0.1, 0.3, 1, C.HOLDS), (-0.3, -0.1, 1, C.FAILS),
     (np.nan, np.nan, -1, C.NOT_MEASURED)],
)  # fmt: skip
def test_interval_verdict(lo, hi, direction, verdict):
    assert C.interval_verdict(lo, hi, direction) == verdict


def test_the_primary_scorer_decides_and_agreement_is_reported():
    assert C.primary([C.HOLDS, C.HOLDS]) == C.HOLDS
    assert C.primary([C.HOLDS, C.UNMEASURABLE]) == C.HOLDS  # the second scorer is reported, it does not gate
    assert C.primary([C.UNMEASURABLE, C.HOLDS]) == C.UNMEASURABLE
    assert C.primary([C.HOLDS, C.FAILS]) == C.HOLDS
    assert C.primary([C.HOLDS, C.NOT_MEASURED]) == C.HOLDS  # second scorer off
    assert "primary scorer" in C.verdict_rule() and "never overrules" in C.verdict_rule()
    assert C.agreement((-0.2, -0.3, -0.1), (-0.1, -0.2, -0.05)) == "yes"
    assert C.agreement((-0.2, -0.3, -0.1), (-0.1, -0.2, 0.05)) == "no: significance differs"
    assert C.agreement((-0.2, -0.3, -0.1), (0.1, 0.05, 0.2)) == "no: sign differs"
    assert C.agreement((-0.2, -0.3, -0.1), (0.1, -0.1, 0.2)) == "no: sign and significance differ"
    assert C.agreement((-0.2, -0.3, -0.1), None) == "second scorer off"
    assert C.agreement((0.0, -0.1, 0.1), (0.05, -0.1, 0.2)) == "yes"  # 0 has no sign
    assert C.no_worse_verdict(-0.1, 0.2) == C.HOLDS and C.no_worse_verdict(0.01, 0.2) == C.FAILS


def _labels(target, method, selection=""):
    return {"target": target, "method": method, "lr": np.nan, "steps": np.nan, "hparam": np.nan, "selection": selection}


def _cis(rows):
    """rows: (target, method, selection, metric, domain, diff, lo, hi)."""
    return pd.DataFrame([{**_labels(t, m, s), "metric": me, "domain": d, "diff": x, "lo": lo, "hi": hi}
                         for t, m, s, me, d, x, lo, hi in rows])  # fmt: skip


@pytest.fixture
def tables():
    A, B, U, T, IN = "org/distiller", "other/model", "unidetox", "transferred", IN_DISTRIBUTION
    cis = _cis([(A, U, T, "TP", IN, -0.2, -0.3, -0.1), (A, U, T, "EMT", IN, -0.1, -0.2, 0.05),
                (B, U, T, "TP", IN, 0.2, 0.1, 0.3), (B, U, T, "EMT", IN, -0.1, -0.2, -0.05),
                (A, U, T, "PPL", ALL, 2.0, 1.0, 3.0), (B, U, T, "PPL", ALL, 20.0, 15.0, 25.0)])  # fmt: skip
    second = _cis([(A, U, T, "TP", IN, -0.1, -0.2, -0.05), (A, U, T, "EMT", IN, -0.1, -0.2, -0.01),
                   (B, U, T, "TP", IN, -0.1, -0.2, 0.1), (B, U, T, "EMT", IN, -0.1, -0.2, -0.01)])  # fmt: skip
    transfer = _cis([(A, U, T, "EMT", IN, 0.0, 0.0, 0.0), (B, U, T, "EMT", IN, 0.1, 0.05, 0.2)])
    transfer2 = _cis([(A, U, T, "EMT", IN, 0.0, 0.0, 0.0), (B, U, T, "EMT", IN, 0.02, -0.1, 0.1)])
    ratios = pd.DataFrame([{**_labels(A, U, T), "ratio": 1.2, "lo": 1.1, "hi": 1.3},
                           {**_labels(B, U, T), "ratio": 2.0, "lo": 1.8, "hi": 2.2}])  # fmt: skip
    contrast = _cis([(A, U, T, "EMT", IN, -0.05, -0.09, -0.01), (A, U, T, "TP", IN, 0.1, 0.05, 0.2)])
    contrast2 = _cis([(A, U, T, "EMT", IN, -0.02, -0.06, 0.01)])
    mmlu = pd.DataFrame([{**_labels(A, U, T), "diff": -0.01, "lo": -0.015, "hi": 0.0, "n_questions": 900},
                         {**_labels(B, U, T), "diff": -0.05, "lo": -0.08, "hi": -0.03, "n_questions": 900}])  # fmt: skip
    return {"distillation_model": A, "targets": [A, B], "cis": cis, "transfer_cis": transfer, "mmlu_cis": mmlu,
            "cis_second": second, "transfer_cis_second": transfer2, "ppl_ratios": ratios, "contrast_cis": contrast,
            "contrast_cis_second": contrast2}  # fmt: skip


def test_claims_table_verdicts(tables):
    t = C.claims_table(**tables)
    assert list(t.columns) == C.COLUMNS
    assert set(t.claim) == {"a", "b", "c", "d", "e", "f"}
    got = {(r.claim, r.target, r.measure[:4]): (r.verdict, r["scorers agree"]) for _, r in t.iterrows()}
    A, B = tables["targets"]
    assert got[("a", A, "ΔTP ")] == (C.HOLDS, "yes")
    assert got[("a", A, "ΔEMT")] == (C.UNMEASURABLE, "no: significance differs")  # holds under the second only
    assert got[("b", B, "ΔTP ")] == (C.FAILS, "no: sign and significance differ")
    assert got[("b", B, "ΔEMT")] == (C.HOLDS, "yes")
    assert got[("c", A, "ΔEMT")] == (C.HOLDS, "yes")  # same configuration: exactly 0
    assert got[("c", B, "ΔEMT")] == (C.FAILS, "no: significance differs")  # worse than its own best under the first
    assert got[("d", "distilled text", "Δ po")][0] == C.POLITICAL_PAGE
    e = t[t.claim == "e"].set_index(["target", "measure"])
    assert e.loc[(A, "PPL ratio detoxified / untouched"), "value"] == pytest.approx(1.2)
    assert e.loc[(A, "PPL ratio detoxified / untouched"), "verdict"] == C.HOLDS
    assert e.loc[(A, "PPL ratio detoxified / untouched"), ["lo", "hi"]].tolist() == [1.1, 1.3]
    assert e.loc[(B, "PPL ratio detoxified / untouched"), "verdict"] == C.FAILS  # lower bound 1.8 > PPL_RATIO_MAX
    assert "upper bound" in e.loc[(A, "PPL ratio detoxified / untouched"), "note"]
    assert e.loc[(A, "ΔMMLU accuracy vs untouched"), "value"] == pytest.approx(-0.01)
    assert e.loc[(A, "ΔMMLU accuracy vs untouched"), "verdict"] == C.HOLDS  # lower bound -0.015 >= -0.02
    assert e.loc[(B, "ΔMMLU accuracy vs untouched"), "verdict"] == C.FAILS  # upper bound -0.03 < -0.02
    assert "900 paired questions" in e.loc[(A, "ΔMMLU accuracy vs untouched"), "note"]
    f = t[t.claim == "f"].iloc[0]  # the EMT rows of the distillation model only; the second scorer's contains 0
    assert (f.target, f.value, f["second hi"]) == (A, -0.05, 0.01)
    assert (f.verdict, f["scorers agree"]) == (C.HOLDS, "no: significance differs")  # the primary decides
    md = CT.claims_markdown(t, "toxblock", "hatesonar")
    assert md.count("\n") == len(t) + 1 and "`hatesonar`" in md


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [(-0.02, 0.05, C.HOLDS), (-0.05, 0.05, C.UNMEASURABLE), (-0.08, -0.021, C.FAILS), (np.nan, 0.0, C.NOT_MEASURED)],
)
def test_mmlu_verdict_uses_the_paired_interval(lo, hi, verdict):
    assert C.MMLU_DROP_MAX == 0.02 and C.mmlu_verdict(lo, hi) == verdict


def test_questions_an_undecided_mmlu_interval_needs():
    # half-width 0.05 at 100 questions, difference 0: the gap to -0.02 is 0.02, so (0.05 / 0.02)^2 x 100 = 625
    assert "about 625 questions" in C.questions_to_decide(0.0, -0.05, 0.05, 100)
    assert "undecidable" in C.questions_to_decide(-0.02, -0.07, 0.03, 100)


def test_a_target_judged_by_itself_has_no_fluency_verdict(tables):
    A, B = tables["targets"]
    t = C.claims_table(**tables, judges={A: B, B: B})
    ppl = t[(t.claim == "e") & t.measure.str.startswith("PPL")].set_index("target")
    assert ppl.loc[A, "verdict"] == C.HOLDS and f"judged by {B}" in ppl.loc[A, "note"]
    assert ppl.loc[B, "verdict"] == C.SELF_JUDGED and "second_perplexity_model" in ppl.loc[B, "note"]


def test_forest_rows_put_each_scale_in_its_panel(tables):
    t = C.claims_table(**tables)
    f = C.forest_rows(t)
    assert set(f.panel) == {"Δ toxicity", "PPL ratio", "ΔMMLU"}
    tox = f[f.panel == "Δ toxicity"]
    assert set(tox.scorer) == {"primary", "second"} and (tox.reference == 0).all()
    assert (f[f.panel == "PPL ratio"].reference == C.PPL_RATIO_MAX).all()
    assert (f[f.panel == "ΔMMLU"].reference == -C.MMLU_DROP_MAX).all() and set(f[f.panel == "ΔMMLU"].scorer) == {
        "primary"
    }
    a_tp = f[f.label.str.startswith("(a)") & f.label.str.contains("ΔTP") & (f.scorer == "primary")].iloc[0]
    assert (a_tp.value, a_tp.lo, a_tp.hi, a_tp.verdict) == (-0.2, -0.3, -0.1, C.HOLDS)
    # every toxicity row with a value appears once per scorer that measured it
    measured = t[t["value"].notna() & ~t.measure.str.startswith(("PPL", "ΔMMLU"))]
    assert len(tox) == measured["value"].notna().sum() + measured["second value"].notna().sum()


def test_claims_table_without_a_second_scorer(tables):
    t = C.claims_table(**{**tables, "cis_second": None, "transfer_cis_second": None})
    a = t[t.claim == "a"]
    assert list(a.verdict) == [C.HOLDS, C.UNMEASURABLE] and set(a["scorers agree"]) == {"second scorer off"}
    assert a["second value"].isna().all()
    assert "second (off)" in CT.claims_markdown(t, "toxblock")
    assert t[t.claim == "f"].verdict.tolist() == [C.HOLDS]  # the first scorer's interval is below 0


@pytest.mark.parametrize(
    ("first", "second", "verdict"),
    [((-0.1, -0.2, -0.05), (-0.1, -0.15, -0.01), C.HOLDS),
     ((0.005, -0.05, 0.06), (0.01, -0.04, 0.05), C.UNMEASURABLE),  # the cpu run: no difference either way
     ((0.05, 0.01, 0.09), (-0.01, -0.05, 0.02), C.FAILS)],  # plain samples lower EMT more under the first scorer
)  # fmt: skip
def test_contrast_claim_can_hold_or_fail(tables, first, second, verdict):
    A, U, T, IN = tables["distillation_model"], "unidetox", "transferred", IN_DISTRIBUTION
    t = C.claims_table(**{**tables, "contrast_cis": _cis([(A, U, T, "EMT", IN, *first)]),
                          "contrast_cis_second": _cis([(A, U, T, "EMT", IN, *second)])})  # fmt: skip
    assert t[t.claim == "f"].verdict.tolist() == [verdict]


def test_contrast_claim_without_base_samples_is_not_run(tables):
    for missing in (None, pd.DataFrame()):
        t = C.claims_table(**{**tables, "contrast_cis": missing, "contrast_cis_second": None})
        f = t[t.claim == "f"].iloc[0]
        assert f.verdict == C.NOT_RUN == "not measurable (method not run)" and pd.isna(f.value)
    assert "method not run" in CT.claims_markdown(t, "toxblock")


def test_contrast_sentence_follows_the_verdict(tables):
    A, U, T, IN = tables["distillation_model"], "unidetox", "transferred", IN_DISTRIBUTION

    def sentence(first, second=None):
        c2 = None if second is None else _cis([(A, U, T, "EMT", IN, *second)])
        t = C.claims_table(**{**tables, "contrast_cis": first if first is None else _cis([(A, U, T, "EMT", IN, *first)]),
                              "contrast_cis_second": c2})  # fmt: skip
        return CT.contrast_sentence(t)

    same = "plain base-model samples detoxify as much as the distilled text"
    assert same in sentence((0.005, -0.05, 0.06), (0.01, -0.04, 0.05)) and "+0.005 [-0.050, +0.060]" in sentence(
        (0.005, -0.05, 0.06), (0.01, -0.04, 0.05)
    )
    assert same in sentence((0.05, 0.01, 0.09)) and "lower it more" in sentence((0.05, 0.01, 0.09))
    assert "; the primary scorer's interval contains 0: no measurable advantage" in sentence((0.005, -0.05, 0.06))
    # the interval's lower bound is the largest advantage of UniDetox it leaves open
    assert "An advantage of UniDetox larger than 0.050 is excluded at 95%" in sentence((0.005, -0.05, 0.06))
    assert "excluded" not in sentence((0.05, 0.01, 0.09))
    assert "(second scorer: +0.010 [-0.040, +0.050])" in sentence((0.005, -0.05, 0.06), (0.01, -0.04, 0.05))
    held = sentence((-0.1, -0.2, -0.05), (-0.1, -0.15, -0.01))
    assert held.startswith("The contrast matters") and same not in held and "-0.100 [-0.200, -0.050]" in held
    assert held.endswith("The second scorer agrees.")
    assert "does not agree (no: significance differs)" in sentence((-0.1, -0.2, -0.05), (-0.1, -0.15, 0.01))
    assert "not among `study.baselines`" in sentence(None)
    summary = CT.claims_summary(C.claims_table(**tables))
    # (f) holds under the primary scorer, whose interval is below 0; the second scorer's contains 0
    assert summary.count("\n- ") == 5 and "**(f)**" in summary and "The contrast matters" in summary
    assert "PPL ratio detoxified / untouched on distiller 1.20 [1.10, 1.30]: **holds**" in summary


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [(0.9, 1.5, C.HOLDS), (1.2, 1.6, C.UNMEASURABLE), (1.51, 2.0, C.FAILS), (np.nan, np.nan, C.NOT_MEASURED)],
)
def test_ratio_verdict_uses_the_interval(lo, hi, verdict):
    assert C.PPL_RATIO_MAX == 1.5 and C.ratio_verdict(lo, hi) == verdict


# --- the PPL ratio's paired, domain-stratified bootstrap -----------------------------------------------------


def _pp(rng, domains, n_per):
    """Hand-made per-prompt tables of two models on the same prompts (ppl_sum over ppl_n kept continuations)."""
    rows = [(f"{d}-{i}", d) for d in domains for i in range(n_per)]

    def one(scale):
        n = rng.integers(1, 4, size=len(rows)).astype(float)
        return pd.DataFrame({"prompt_id": [r[0] for r in rows], "domain": [r[1] for r in rows],
                             "ppl_sum": n * rng.uniform(5, 50, size=len(rows)) * scale, "ppl_n": n})  # fmt: skip

    return one(1.3), one(1.0)


def test_ppl_ratio_ci_matches_a_plain_loop():
    from unidetox.measure.compare import ppl_ratio_ci

    rng = np.random.default_rng(7)
    cand, ref = _pp(rng, ["religion", "disability", "race_nationality"], 5)
    ratio, lo, hi, n = ppl_ratio_ci(cand, ref, n_boot=300, seed=3)
    assert n == 15
    assert ratio == pytest.approx((cand.ppl_sum.sum() / cand.ppl_n.sum()) / (ref.ppl_sum.sum() / ref.ppl_n.sum()))
    # reference: resample prompts within each domain (first-seen order), the same prompts for both models
    loop_rng, domains = np.random.default_rng(3), list(dict.fromkeys(cand.domain))
    reps = []
    for _ in range(300):
        picked = []
        for d in domains:
            rows = [i for i in range(len(cand)) if cand.domain[i] == d]
            picked += list(loop_rng.choice(rows, size=len(rows), replace=True))
        a = sum(cand.ppl_sum[i] for i in picked) / sum(cand.ppl_n[i] for i in picked)
        b = sum(ref.ppl_sum[i] for i in picked) / sum(ref.ppl_n[i] for i in picked)
        reps.append(a / b)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), rel=1e-12)
    assert lo < ratio < hi


def test_ppl_ratio_ci_pairs_prompts_and_needs_perplexities():
    from unidetox.measure.compare import ppl_ratio_ci
    from unidetox.measure.metrics import MetricError

    cand, ref = _pp(np.random.default_rng(0), ["religion", "disability"], 4)
    same = ppl_ratio_ci(ref, ref, n_boot=50)
    assert same == pytest.approx((1.0, 1.0, 1.0, 8))  # the same model: every resample's ratio is exactly 1
    with pytest.raises(MetricError, match="same prompts"):
        ppl_ratio_ci(cand.iloc[1:], ref, n_boot=10)
    with pytest.raises(MetricError, match="kept perplexities"):
        ppl_ratio_ci(cand.assign(ppl_sum=np.nan), ref, n_boot=10)


def test_verdicts_state_scorer_agreement():
    row = {"target": "m", "method": "UniDetox", "note": ""}
    main = pd.DataFrame([{**row, "ΔTP (in)": -0.2, "ΔTP (in) lo": -0.3, "ΔTP (in) hi": -0.1}])
    second = pd.DataFrame([{**row, "ΔTP (in)": 0.1, "ΔTP (in) lo": -0.1, "ΔTP (in) hi": 0.2}])
    text = verdicts(main, second=second, second_name="`hatesonar`")
    assert "under `hatesonar`: ΔTP (in) +0.100 [-0.100, +0.200]" in text
    assert "scorers disagree (sign and significance differ)" in text
    assert "under" not in verdicts(main)
    assert "agree in sign and significance" in verdicts(main, second=main)


def test_political_claim_uses_both_classifiers():
    def diffs(rows):
        return pd.DataFrame(rows, columns=["classifier", "set", "difference", "ci_low", "ci_high"])

    both = diffs([("minilm", C.BASE_SAMPLES, -0.2, -0.3, -0.1), ("keyword", C.BASE_SAMPLES, -0.1, -0.2, 0.02),
                  ("minilm", "DGHS hate", -0.5, -0.6, -0.4)])  # fmt: skip
    r = C._political_row(both)
    assert (r["value"], r["second value"]) == (-0.2, -0.1)  # the base-samples rows only
    # the first classifier decides (as the primary scorer does); the second is reported with the agreement
    assert r["verdict"] == C.HOLDS and r["scorers agree"] == "no: significance differs"
    assert "minilm and keyword" in r["note"]
    assert C._political_row(diffs([("minilm", C.BASE_SAMPLES, 0.2, 0.1, 0.3)]))["verdict"] == C.FAILS
    assert C._political_row(None)["verdict"] == C.POLITICAL_PAGE


def test_political_differences_of_the_distilled_and_base_sets():
    sets = {C.DISTILLED: ["the weather is lovely today", "I baked bread"] * 3,
            C.BASE_SAMPLES: ["the senate passed the tax bill", "voters elected a new president"] * 3,
            "DGHS hate": ["ignored"]}  # fmt: skip
    d = C.political_differences(sets, n_boot=50)
    assert list(d["set"]) == [C.BASE_SAMPLES] * len(d) and len(d) == 2
    assert (d["difference"] < 0).all()


# --- misspelt scorers and models fail before any work -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "setting", "message"),
    [(["pipeline"], "study.second_scorer=nope", "study.second_scorer: unknown scorer spec 'nope'"),
     (["pipeline"], 'study.second_scorer="hf:"', "study.second_scorer: empty hf: spec"),
     (["pipeline"], "eval.scorer=perspective", "eval.scorer: unknown scorer spec 'perspective'"),
     (["evaluate", "--no-mmlu"], "eval.scorer=hf:./no-such-folder", "eval.scorer: hf:./no-such-folder: no such directory"),
     (["pipeline"], "eval.perplexity_model=tiny:nope", "eval.perplexity_model: unknown tiny model 'tiny:nope'"),
     (["distill"], "toxic.base_model=packaged:nope", "toxic.base_model: unknown packaged model 'packaged:nope'"),
     (["detox"], "detox.targets=[tiny:gpt2, ./missing-model]", "detox.targets[1]: no such model folder")],
)  # fmt: skip
def test_misspelt_specs_fail_before_anything_is_written(tmp_path, capsys, command, setting, message):
    from unidetox.cli import run

    runs = tmp_path / "runs"
    argv = [*command, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}", "--set", setting]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not runs.exists()  # no stage, no lock file: nothing was written


def test_hub_ids_and_folders_that_are_models_pass_the_spec_check(tmp_path):
    from unidetox.measure.scorers import check_scorer_spec
    from unidetox.models.folder import check_model_spec
    from unidetox.pipeline.study import check_specs

    check_specs(load_profile("tiny"))
    for spec in ("hf:unitary/toxic-bert", "hf:unitary/toxic-bert#toxic", "detoxify", "detoxify:unbiased", "hatesonar"):
        check_scorer_spec(spec)
    for spec in ("tiny:llama", "packaged:smollm2-135m", "meta-llama/Llama-2-7b-hf", "gpt2"):
        check_model_spec(spec)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')  # a config names its model type (model_folder)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_model_spec(str(tmp_path))
    check_scorer_spec(f"hf:{tmp_path}")
