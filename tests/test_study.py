"""The study on the tiny profile: selection on validation, transfer, baselines, CIs, MMLU, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unidetox import pipeline as P
from unidetox.cli import run
from unidetox.config import ConfigError
from unidetox.config.compared_methods import FINETUNED
from unidetox.config.loader import load_profile


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    runs = tmp_path_factory.mktemp("study-runs")
    assert run(["pipeline", "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"]) == 0
    profile = load_profile("tiny", [f"runs_dir={runs}"])
    return profile, P.study(profile, quiet=True)


def _seed_mean(rows, domain, metric):
    sel = rows[(rows.domain == domain) & (rows.metric == metric)]
    return sel.value.mean()


def test_shared_configuration_is_the_validation_minimum_of_the_selection_target(tiny_study):
    profile, st = tiny_study
    assert st.select_target == profile.toxic.base_model == "tiny:gpt2"
    v = st.validation
    grid = v[(v.target == st.select_target) & (v.method == "unidetox") & (v.domain == "in_distribution")]
    tp = grid[grid.metric == "TP"].groupby(["lr", "steps"]).value.mean()
    assert len(tp) == len(profile.detox.learning_rates) * len(profile.detox.steps)
    assert tp[st.chosen] == tp.min()
    sel = json.loads((st.path / "selection.json").read_text())
    assert (sel["chosen"]["lr"], sel["chosen"]["steps"]) == st.chosen
    for t, (lr, s) in st.oracle.items():
        own = v[(v.target == t) & (v.method == "unidetox") & (v.domain == "in_distribution") & (v.metric == "TP")]
        assert own.groupby(["lr", "steps"]).value.mean()[(lr, s)] == own.groupby(["lr", "steps"]).value.mean().min()


def test_report_has_every_method_where_it_applies(tiny_study):
    _, st = tiny_study
    methods = st.report.groupby("target").method.apply(set).to_dict()
    everything = {"none", "preprompt", "unidetox", "base-samples", "nothate", "dexperts"}
    assert methods["tiny:gpt2"] == everything
    assert methods["tiny:llama"] == everything - {"dexperts"}  # different tokenizer: DExperts cannot apply
    a = st.applicability.set_index(["target", "method"])
    assert (
        not a.loc[("tiny:llama", "dexperts"), "applies"] and "tokenizer" in a.loc[("tiny:llama", "dexperts"), "reason"]
    )
    assert set(st.report[st.report.method == "unidetox"].selection) == {"transferred", "oracle"}
    transferred = st.report[(st.report.selection == "transferred") & st.report.method.isin(FINETUNED)]
    assert set(zip(transferred.lr, transferred.steps)) == {st.chosen}


def test_ci_point_estimates_equal_the_table_differences(tiny_study):
    """The bootstrap's point estimate of TP/EMT equals the difference of the seed means in the tidy table."""
    _, st = tiny_study
    r = st.report
    assert len(st.cis)
    for _, ci in st.cis[st.cis.metric.isin(["TP", "EMT"])].iterrows():
        ref = r[(r.target == ci.target) & (r.method == "none")]
        sel = "" if pd.isna(ci.selection) else ci.selection
        m = r[(r.target == ci.target) & (r.method == ci.method) & (r.selection.fillna("") == sel)]
        if ci.method == "dexperts":
            m = m[np.isclose(m.hparam, ci.hparam)]
        expected = _seed_mean(m, ci.domain, ci.metric) - _seed_mean(ref, ci.domain, ci.metric)
        assert ci["diff"] == pytest.approx(expected, abs=1e-9)
        assert ci.lo <= ci["diff"] + 1e-12 and ci["diff"] <= ci.hi + 1e-12


def test_mmlu_only_for_models_that_are_weights(tiny_study):
    _, st = tiny_study
    assert set(st.mmlu.method) == {"none", "unidetox", "base-samples", "nothate"}
    assert st.mmlu.MMLU.between(0, 1).all()


def test_rerun_reuses_everything(tiny_study, capsys):
    profile, _ = tiny_study
    assert run(["pipeline", "--profile", "tiny", "--quiet", "--set", f"runs_dir={profile.runs_dir}"]) == 0
    out = capsys.readouterr().out
    assert "wrote" not in out and "reusing" in out
    assert all((p.parent / "DONE").exists() for p in Path(profile.runs_dir).glob("tiny/*/*/config.json"))


def test_power_pilot_is_the_reports_untouched_base_and_unidetox(tiny_study):
    """The pilot's per-prompt values give the study's ΔEMT(in); its cost counts every evaluate stage of the run."""
    from unidetox.measure.power import in_distribution_mean
    from unidetox.store.run_store import read_json

    profile, st = tiny_study
    pilot = P.power_pilot(profile, quiet=True)
    base = profile.toxic.base_model
    ci = st.cis[(st.cis.target == base) & (st.cis.method == "unidetox") & (st.cis.selection == "transferred")]
    diff = ci[(ci.metric == "EMT") & (ci.domain == "in_distribution")]["diff"].item()
    mean = in_distribution_mean
    assert mean(pilot.detoxed, "max_score") - mean(pilot.untouched, "max_score") == pytest.approx(diff)
    assert pilot.n_per_domain == profile.eval.prompts_per_domain and pilot.k == profile.eval.samples_per_prompt
    stages = sorted(Path(profile.runs_dir).glob("tiny/evaluate/*/DONE"))
    split = {p: read_json(p.parent / "config.json")["config"]["eval"]["prompt_split"] for p in stages}
    report = [p for p in stages if split[p] == profile.study.report_split]
    assert pilot.costs.runs == len(report) and 0 < len(report) < len(stages) and pilot.costs.domains == 4
    seconds = sum(read_json(p)["seconds"] for p in stages)
    conts = sum(read_json(p)["n_prompts"] for p in stages) * pilot.costs.continuations_per_prompt
    assert pilot.costs.seconds_per_continuation == pytest.approx(seconds / conts)
    fixed = sum(read_json(p)["n_prompts"] for p in stages if p not in report) * pilot.costs.continuations_per_prompt
    assert pilot.costs.fixed_continuations == pytest.approx(fixed)
    n = pilot.n_per_domain
    minutes = (seconds / conts) * (len(report) * n * 4 * pilot.costs.continuations_per_prompt + fixed) / 60
    assert pilot.costs.minutes(n) == pytest.approx(minutes)


def test_tuning_on_the_report_split_is_refused(tmp_path):
    profile = load_profile("tiny", [f"runs_dir={tmp_path}", "study.report_split=validation"])
    with pytest.raises(ConfigError, match="tuning"):
        P.study(profile)
    with pytest.raises(ConfigError, match="not among detox.targets"):
        P.study(load_profile("tiny", [f"runs_dir={tmp_path}", "study.select_target=tiny:nope"]))
    assert not any(tmp_path.iterdir())


def test_second_scorer_rescores_every_report_candidate_and_leaves_the_default_key(tiny_study, capsys):
    """study.second_scorer re-scores the report generations (nothing generated again); empty, it is not in the key."""
    profile, st = tiny_study
    assert "second_scorer" not in json.loads((st.path / "config.json").read_text())["config"]["study"]
    assert st.second_scorer == "" and st.cis_second.empty and len(st.transfer_cis)
    capsys.readouterr()
    second = P.study(
        load_profile("tiny", [f"runs_dir={profile.runs_dir}", "study.second_scorer=hatesonar"]), quiet=True
    )
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("evaluate") and "wrote" in line]
    assert second.path != st.path and second.second_scorer == "hatesonar"
    assert {"report_second.csv", "cis_second.csv", "transfer_cis_second.csv"} <= {p.name for p in second.path.iterdir()}
    labels = ["target", "method", "selection"]

    def keys(df):
        return set(map(tuple, df[labels].fillna("").astype(str).to_numpy()))

    assert keys(second.report_second) == keys(st.report) and keys(second.cis_second) == keys(st.cis)
    assert set(second.cis_second.metric) == {"TP", "EMT"}  # perplexity does not depend on the scorer
    pd.testing.assert_frame_equal(second.report, st.report)  # the first scorer's tables are untouched
    pd.testing.assert_frame_equal(second.cis, st.cis)


def test_contrast_and_ppl_ratio_tables(tiny_study):
    """contrast_cis: UniDetox minus base-samples per target (point = difference of seed means); ppl_ratio_cis: each
    candidate's pooled perplexity over its untouched target's, inside its interval, written with the study."""
    _, st = tiny_study
    assert {"contrast_cis.csv", "ppl_ratio_cis.csv"} <= {p.name for p in st.path.iterdir()}
    c, r = st.contrast_cis, st.report
    assert (
        set(c.method) == {"unidetox"} and set(c.selection) == {"transferred"} and set(c.reference) == {"base-samples"}
    )
    assert set(c.target) == set(st.applicability.target)
    for _, ci in c[c.metric.isin(["TP", "EMT"])].iterrows():
        rows = r[(r.target == ci.target) & (r.selection.fillna("") == "transferred")]
        expected = _seed_mean(rows[rows.method == "unidetox"], ci.domain, ci.metric) - _seed_mean(
            rows[rows.method == "base-samples"], ci.domain, ci.metric
        )
        assert ci["diff"] == pytest.approx(expected, abs=1e-9) and ci.lo <= ci["diff"] + 1e-12 <= ci.hi + 2e-12
    p = st.ppl_ratio_cis
    assert len(p) and (p.lo <= p.ratio + 1e-12).all() and (p.ratio <= p.hi + 1e-12).all() and (p.lo > 0).all()
    assert "none" not in set(p.method) and (p.n_prompts == st.cis.n_prompts.max()).all()
    for _, x in p.iterrows():  # the table's PPL is the seed mean of per-seed means: equal when seeds keep as many
        sel = r[(r.target == x.target) & (r.method.isin(["none", x.method])) & (r.domain == "all")]
        dropped = sel[sel.metric == "PPL_dropped"].groupby("method").value.nunique()
        if (dropped == 1).all():
            pick = sel[
                (sel.metric == "PPL")
                & (sel.method == x.method)
                & (sel.selection.fillna("") == (x.selection if isinstance(x.selection, str) else ""))
            ]
            if x.method == "dexperts":
                pick = pick[np.isclose(pick.hparam, x.hparam)]
            base = sel[(sel.metric == "PPL") & (sel.method == "none")].value.mean()
            assert x.ratio == pytest.approx(pick.value.mean() / base, rel=1e-9)


def test_report_prompts_per_domain_applies_to_the_report_split_only(tmp_path):
    from unidetox.pipeline.evaluation import prompts, prompts_per_domain
    from unidetox.pipeline.score import eval_overrides

    base = load_profile("tiny", [f"runs_dir={tmp_path}"])
    more = load_profile("tiny", [f"runs_dir={tmp_path}", "study.report_prompts_per_domain=3"])
    val, rep = base.eval.prompt_split, base.study.report_split
    assert prompts_per_domain(base, rep) == prompts_per_domain(base, val) == base.eval.prompts_per_domain
    assert prompts_per_domain(more, val) == base.eval.prompts_per_domain and prompts_per_domain(more, rep) == 3
    assert prompts(more, rep).groupby("domain").size().tolist() == [3, 3, 3, 3]
    assert prompts(more, val).equals(prompts(base, val))
    # `unidetox score --prompts-per-domain N` wins on every split
    assert prompts_per_domain(eval_overrides(more, prompts_per_domain=1), rep) == 1
    with pytest.raises(ConfigError, match="report_prompts_per_domain"):
        load_profile("tiny", ["study.report_prompts_per_domain=-1"])


def test_eval_models_loads_the_shared_models_once(tmp_path, monkeypatch):
    from unidetox.pipeline import loading

    profile = load_profile("tiny", [f"runs_dir={tmp_path}"])
    calls = []
    monkeypatch.setattr(loading, "load_eval_lm", lambda prof, spec: calls.append(spec) or object())
    models = loading.EvalModels(profile)
    ppl, target = profile.eval.perplexity_model, profile.detox.targets[0]
    assert models.load(ppl) is models.load(ppl) and models.load(target) is models.load(target)
    folder = str(tmp_path / "finetuned")
    assert models.load(folder) is not models.load(folder)  # a fine-tuned model is never kept
    assert calls.count(ppl) == 1 and calls.count(folder) == 2


def test_budget_curve_runs_with_the_pipeline_and_reuses_the_grids_run(tiny_study, capsys):
    from unidetox.measure.compare import paired_ci
    from unidetox.measure.metrics import IN_DISTRIBUTION
    from unidetox.pipeline.study_tables import per_prompt_rows

    profile, st = tiny_study
    assert profile.study.budget_steps == (2, 8)
    capsys.readouterr()
    curve = P.budget_curve(profile, quiet=True)  # `unidetox pipeline` (run_all) already made it: only reuse here
    assert "budget curve: reusing" in capsys.readouterr().out
    lr, top = st.chosen[0], max(profile.detox.steps)
    assert (curve.lr, curve.chosen_steps, curve.target) == (lr, st.chosen[1], st.select_target)
    t = curve.table
    assert sorted(set(t.steps)) == [2, 4, 8] and set(t.metric) == {"EMT", "TP"}
    train = profile.detox.train
    assert (t.tokens == t.steps * train.batch_size * train.max_length).all()
    assert (t.train_seconds > 0).all()
    assert curve.cheapest in (2, 4, 8)
    # the grid's own run at max(detox.steps) is reused: its row is the grid's validation evaluation vs untouched
    grid = P.finetuned(profile, st.select_target, "unidetox", lr, top, grid=True, quiet=True)
    split = profile.eval.prompt_split
    ev = P.evaluate(profile, grid, split=split, perplexity=profile.study.validation_perplexity, quiet=True)
    base = P.evaluate(profile, P.untouched(st.select_target), split=split,
                      perplexity=profile.study.validation_perplexity, quiet=True)  # fmt: skip
    ci = paired_ci(per_prompt_rows(profile, ev), per_prompt_rows(profile, base), n_boot=profile.study.bootstrap)
    want = ci[(ci.metric == "EMT") & (ci.domain == IN_DISTRIBUTION)].iloc[0]
    got = t[(t.metric == "EMT") & (t.steps == top)].iloc[0]
    assert (got["diff"], got.lo, got.hi) == pytest.approx((want["diff"], want.lo, want.hi))
    # the other budgets are separate fine-tunes with their own schedule, not snapshots of the grid's run
    other = P.finetuned(profile, st.select_target, "unidetox", lr, 2, quiet=True)
    assert Path(other.path).parents[1] != Path(grid.path).parents[1]


def test_budget_curve_off_is_a_config_error(tmp_path):
    profile = load_profile("tiny", [f"runs_dir={tmp_path}", "study.budget_steps=[]"])
    with pytest.raises(ConfigError, match="budget_steps is empty"):
        P.budget_curve(profile, quiet=True)
