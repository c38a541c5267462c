"""The study: validation grid, the shared configuration chosen on one model, and the report rows."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from unidetox.config import Profile
from unidetox.config.compared_methods import FINETUNED, FINETUNED_BASELINES, METHODS
from unidetox.data.files import DataError
from unidetox.data.mmlu import check_mmlu_subjects
from unidetox.data.texts import read_released, released_csv
from unidetox.pipeline.candidates import Candidate, dexperts, dexperts_applies, preprompt, toxic_candidate, untouched
from unidetox.pipeline.detox import finetuned
from unidetox.pipeline.distilled import distill, distilled_texts, samples
from unidetox.pipeline.evaluation import candidate_rows, evaluate, mmlu, rescore
from unidetox.pipeline.keys import settings_key
from unidetox.pipeline.loading import EvalModels
from unidetox.pipeline.report_sizes import report_sizes
from unidetox.pipeline.study_tables import DERIVED, mmlu_cis, per_prompt_rows
from unidetox.pipeline.toxic import toxic_model, toxic_texts
from unidetox.store.registry import STUDY, restore
from unidetox.store.run_store import FILES, StageDir, read_json, write_json, write_text


@dataclass
class Study:
    """The comparison of the paper's main table and its hyperparameter-transfer study.

    ``validation``/``report``: tidy metric rows (labels + seed, domain, metric, value) of every candidate on the
    validation / report prompts; ``cis``: candidate minus the untouched target with paired bootstrap CIs over
    prompts (labels + metric, domain, diff, lo, hi); ``mmlu``: labels + accuracy; ``applicability``: which
    method applies to which target and why not; ``chosen``: the shared (lr, steps) picked on `select_target`;
    ``oracle``: each target's own best (lr, steps); ``dexperts_lambda``: each applicable target's best lambda.
    ``selection``: every target's UniDetox grid on validation (target + :data:`unidetox.measure.selection.COLUMNS`:
    in-distribution value of ``study.selection_metric``, paired interval against the best point, share of bootstrap
    wins, the point chosen). ``mmlu_cis``: each report candidate's MMLU accuracy minus its untouched target's on the
    same questions, with the Agresti-Min interval of paired proportions (labels + diff, lo, hi, n_questions).
    ``transfer_cis``: each transferred candidate minus the same method with the target's own best (oracle)
    configuration, paired CIs over prompts (labels of the transferred candidate + metric, domain, diff, lo, hi).
    ``second_scorer``/``report_second``/``cis_second``/``transfer_cis_second``: the spec of ``study.second_scorer``
    and the same tables from the same generations re-scored by it (empty when it is off).
    ``contrast_cis``/``contrast_cis_second``: each transferred UniDetox candidate minus the base-samples baseline
    (the same fine-tuning on the base model's plain samples) of its target, paired CIs over prompts (empty when
    base-samples is not among ``study.baselines``). ``ppl_ratio_cis``: each report candidate's perplexity over
    its untouched target's, with a paired domain-stratified bootstrap interval (labels + ratio, lo, hi, n_prompts;
    :func:`unidetox.measure.compare.ppl_ratio_ci`).
    """

    select_target: str
    chosen: tuple[float, int]
    oracle: dict[str, tuple[float, int]]
    dexperts_lambda: dict[str, float]
    validation: pd.DataFrame
    report: pd.DataFrame
    cis: pd.DataFrame
    mmlu: pd.DataFrame
    applicability: pd.DataFrame
    path: Path
    second_scorer: str = ""
    report_second: pd.DataFrame = field(default_factory=pd.DataFrame)
    cis_second: pd.DataFrame = field(default_factory=pd.DataFrame)
    transfer_cis: pd.DataFrame = field(default_factory=pd.DataFrame)
    transfer_cis_second: pd.DataFrame = field(default_factory=pd.DataFrame)
    contrast_cis: pd.DataFrame = field(default_factory=pd.DataFrame)
    contrast_cis_second: pd.DataFrame = field(default_factory=pd.DataFrame)
    ppl_ratio_cis: pd.DataFrame = field(default_factory=pd.DataFrame)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)
    mmlu_cis: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: (candidate labels, its report evaluate stage's folder, that stage re-scored by the second scorer or None)
    report_runs: list[tuple[dict, Path, Path | None]] = field(default_factory=list)


def check_specs(profile: Profile) -> None:
    """Refuse a profile naming a scorer or a model that cannot exist (wrong spec syntax, unknown tiny or packaged
    model, missing local folder), before any work: ``eval.scorer``, ``study.second_scorer``, ``validity.scorers``,
    ``toxic.base_model``, ``detox.targets``, ``eval.perplexity_model``. Hub ids are only checked when loaded."""
    from unidetox.measure.scorers import check_scorer_spec
    from unidetox.models.folder import check_model_spec

    check_scorer_spec(profile.eval.scorer, "eval.scorer")
    if profile.study.second_scorer:
        check_scorer_spec(profile.study.second_scorer, "study.second_scorer")
    for i, spec in enumerate(profile.validity.scorers):
        check_scorer_spec(spec, f"validity.scorers[{i}]")
    check_model_spec(profile.toxic.base_model, "toxic.base_model")
    for i, t in enumerate(profile.detox.targets):
        check_model_spec(t, f"detox.targets[{i}]")
    check_model_spec(profile.eval.perplexity_model, "eval.perplexity_model")
    if profile.eval.second_perplexity_model:
        check_model_spec(profile.eval.second_perplexity_model, "eval.second_perplexity_model")


def _check_study(profile: Profile) -> str:
    from unidetox.config import ConfigError

    check_specs(profile)
    sel = profile.study.select_target or profile.toxic.base_model
    if sel not in profile.detox.targets:
        raise ConfigError(f"study.select_target {sel!r} is not among detox.targets {list(profile.detox.targets)}; "
                          "add it there or choose one of them")  # fmt: skip
    if profile.study.mmlu:
        check_mmlu_subjects(profile.eval.mmlu_subjects)  # before hours of work, not after
    if "released" in profile.study.baselines:
        read_released(profile.data)  # the file is there and holds texts, before any work
    if profile.study.second_scorer and profile.study.second_scorer == profile.eval.scorer:
        raise ConfigError(f"study.second_scorer is eval.scorer ({profile.eval.scorer!r}): a second opinion needs a "
                          "scorer sharing no model with the first, e.g. hatesonar or toxblock; '' is off")  # fmt: skip
    if profile.study.report_split == profile.eval.prompt_split:
        raise ConfigError(f"study.report_split and eval.prompt_split are both {profile.eval.prompt_split!r}: tuning "
                          "on the prompts you report on inflates the results; use validation to tune and test/report "
                          "to report")  # fmt: skip
    return sel


def study(profile: Profile, *, quiet: bool = False) -> Study:
    """Tune on validation, transfer the shared configuration, evaluate every method on the report prompts.

    Runs (or reuses) every stage it needs; its tables go to ``runs/<profile>/study/<key>/``.
    """
    cfg = profile.study
    sel = _check_study(profile)
    targets = list(profile.detox.targets)
    applies = {t: dexperts_applies(profile, t) for t in targets} if "dexperts" in cfg.baselines else {}

    val = _validation_candidates(profile, applies, quiet)
    models = EvalModels(profile)  # the perplexity model and untouched targets, loaded once for every evaluation
    val_stages = [(c, evaluate(profile, c, split=profile.eval.prompt_split, perplexity=cfg.validation_perplexity,
                               quiet=quiet, models=models)) for c in val]  # fmt: skip
    val_rows = candidate_rows(val_stages)

    selection, oracle, lam = _choose(profile, val_stages, val_rows, applies)
    chosen = oracle[sel]

    rep = _report_candidates(profile, sel, chosen, oracle, lam, quiet)
    sizes = report_sizes(profile, rep, sel)
    rep_stages = [(c, evaluate(profile, c, split=cfg.report_split, quiet=quiet, models=models,
                               n_prompts=sizes[c.key + c.prefix])) for c in rep]  # fmt: skip
    mmlu_stages = _mmlu_stages(profile, rep, quiet) if cfg.mmlu else {}
    second = cfg.second_scorer
    sec_stages = (
        [(c, rescore(profile, c, s, second, quiet=quiet, models=models)) for c, s in rep_stages] if second else []
    )

    keys = sorted({st.key for _, st in val_stages + rep_stages + sec_stages} | {st.key for st in mmlu_stages.values()})
    added_later = ("second_scorer", "budget_steps", "selection_metric", "planning_sd", "half_width_distillation",
                   "half_width_transfer")  # fmt: skip
    st = STUDY.locate(
        profile,
        # the budget curve is its own stage (pipeline/budget.py): its setting stays out of the study's key
        {"study": settings_key(replace(cfg, budget_steps=()), *added_later), "select_target": sel},
        {"stages": ",".join(keys)},
    )
    if not STUDY.reuse(st):
        STUDY.begin(st)
        write_text(st / "validation.csv", val_rows.to_csv(index=False))
        write_text(st / "report.csv", candidate_rows(rep_stages).to_csv(index=False))
        write_text(st / "mmlu.csv", pd.DataFrame(_mmlu_rows(rep, mmlu_stages)).to_csv(index=False))
        write_text(st / "mmlu_cis.csv", mmlu_cis(profile, rep, mmlu_stages).to_csv(index=False))
        write_text(st / "selection.csv", selection.to_csv(index=False))
        write_text(st / "applicability.csv", _applicability(profile, applies).to_csv(index=False))
        if second:
            write_text(st / "report_second.csv", candidate_rows(sec_stages).to_csv(index=False))
        for name, (make, scored) in DERIVED.items():
            if scored == "first" or second:
                table = make(profile, rep_stages if scored == "first" else sec_stages)
                write_text(st / name, table.to_csv(index=False))
        write_json(st / "selection.json", {"select_target": sel, "chosen": {"lr": chosen[0], "steps": chosen[1]},
                                           "oracle": {t: {"lr": lr, "steps": s} for t, (lr, s) in oracle.items()},
                                           "dexperts_lambda": lam, "validation_split": profile.eval.prompt_split,
                                           "report_split": cfg.report_split,
                                           "selection_metric": cfg.selection_metric})  # fmt: skip
        STUDY.finish(st, {"n_validation": len(val), "n_report": len(rep)}, st.path)

    out = _read_study(profile, st.path, sel, chosen, oracle, lam, rep_stages, sec_stages)
    out.selection = selection
    out.mmlu_cis = _read_or(st.path / "mmlu_cis.csv", lambda: mmlu_cis(profile, rep, mmlu_stages))
    return out


def _read_or(path: Path, make) -> pd.DataFrame:
    """The table at `path`, or `make()` when a study finished before that table existed did not write it."""
    if not path.exists():
        return make()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _choose(profile: Profile, val_stages: list, val_rows: pd.DataFrame, applies: dict[str, bool]):
    """From the validation evaluations: the selection table of every target's grid (:func:`_selection`), each
    target's pick by ``study.selection_metric`` ((lr, steps); the selection target's is the shared configuration),
    and DExperts' strength per applicable target (the lowest value of the same metric)."""
    from unidetox.measure.compare import choose_value
    from unidetox.measure.selection import choose_by_interval

    def rows(t: str, method: str) -> pd.DataFrame:
        return val_rows[(val_rows.target == t) & (val_rows.method == method)]

    targets, metric = list(profile.detox.targets), profile.study.selection_metric
    selection = pd.concat([_selection(profile, t, val_stages, rows(t, "unidetox")).assign(target=t) for t in targets],
                          ignore_index=True)  # fmt: skip
    picked = {t: choose_by_interval(selection[selection.target == t]) for t in targets}
    lam = {t: choose_value(rows(t, "dexperts"), "hparam", metric) for t in targets if applies.get(t)}
    return selection, picked, lam


def _selection(profile: Profile, target: str, val_stages: list, tidy: pd.DataFrame) -> pd.DataFrame:
    """`target`'s UniDetox grid on validation (:func:`unidetox.measure.selection.selection_table`) under
    ``study.selection_metric``: TP marks the paper's pick (lowest TP, ties by EMT, then fewer steps; from the tidy
    rows, :func:`unidetox.measure.compare.choose_config`), EMT the interval rule's; both with bootstrap stability."""
    from unidetox.measure.compare import choose_config
    from unidetox.measure.selection import selection_table

    cfg = profile.study
    grid = {(c.lr, c.steps): per_prompt_rows(profile, s) for c, s in val_stages
            if c.target == target and c.method == "unidetox"}  # fmt: skip
    paper = choose_config(tidy) if cfg.selection_metric == "TP" else None
    return selection_table(grid, cfg.selection_metric, n_boot=cfg.bootstrap, level=cfg.ci_level, chosen=paper)


def _read_study(profile: Profile, path: Path, sel: str, chosen: tuple[float, int], oracle: dict, lam: dict,
                rep_stages: list, sec_stages: list) -> Study:  # fmt: skip
    """The Study of a finished study stage at `path` (a :data:`DERIVED` table missing there, from a study finished
    before that table existed, is computed here from the stages)."""

    def read(name: str) -> pd.DataFrame:
        if name in DERIVED and not (path / name).exists():  # a study finished before this table existed
            make, scored = DERIVED[name]
            return make(profile, rep_stages if scored == "first" else sec_stages)
        try:
            return pd.read_csv(path / name)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    out = Study(sel, chosen, oracle, lam, read("validation.csv"), read("report.csv"), read("cis.csv"),
                read("mmlu.csv"), read("applicability.csv"), path, transfer_cis=read("transfer_cis.csv"),
                contrast_cis=read("contrast_cis.csv"), ppl_ratio_cis=read("ppl_ratio_cis.csv"))  # fmt: skip
    rescored = [s.path for _, s in sec_stages] or [None] * len(rep_stages)
    out.report_runs = [(c.labels(), s.path, r) for (c, s), r in zip(rep_stages, rescored)]
    if second := profile.study.second_scorer:
        out.second_scorer, out.report_second, out.cis_second = second, read("report_second.csv"), read("cis_second.csv")
        out.transfer_cis_second = read("transfer_cis_second.csv")
        out.contrast_cis_second = read("contrast_cis_second.csv")
    return out


def _validation_candidates(profile: Profile, applies: dict[str, bool], quiet: bool) -> list[Candidate]:
    """Per target: untouched, the UniDetox grid (learning rates x steps), DExperts' strengths where it applies."""
    val: list[Candidate] = []
    for t in profile.detox.targets:
        val.append(untouched(t))
        val += [finetuned(profile, t, "unidetox", lr, s, grid=True, quiet=quiet)
                for lr in profile.detox.learning_rates for s in profile.detox.steps]  # fmt: skip
        if applies.get(t):
            val += [dexperts(profile, t, lam, quiet=quiet) for lam in profile.study.dexperts_lambdas]
    return val


def _report_candidates(profile: Profile, sel: str, chosen: tuple[float, int], oracle: dict, lam: dict,
                       quiet: bool) -> list[Candidate]:  # fmt: skip
    """Per target: untouched, the baselines, UniDetox with the transferred and with its own best configuration;
    the fine-tuning baselines (the registry's, e.g. the released text) with the transferred configuration."""
    cfg = profile.study
    rep: list[Candidate] = []
    for t in profile.detox.targets:
        rep.append(untouched(t))
        if "preprompt" in cfg.baselines:
            rep.append(preprompt(profile, t))
        rep.append(finetuned(profile, t, "unidetox", *chosen, selection="transferred", grid=True, quiet=quiet))
        rep.append(finetuned(profile, t, "unidetox", *oracle[t], selection="oracle", grid=True, quiet=quiet))
        rep += [finetuned(profile, t, m, *chosen, selection="transferred", quiet=quiet)
                for m in FINETUNED_BASELINES if m in cfg.baselines]  # fmt: skip
        if t in lam:
            if sel in lam:
                rep.append(dexperts(profile, t, lam[sel], selection="transferred", quiet=quiet))
            rep.append(dexperts(profile, t, lam[t], selection="oracle", quiet=quiet))
    return rep


def _mmlu_stages(profile: Profile, rep: list[Candidate], quiet: bool) -> dict[str, StageDir]:
    """MMLU of each distinct model among the report candidates that changes weights (or none), by model key."""
    stages: dict[str, StageDir] = {}
    for c in rep:
        if c.method in ("none", *FINETUNED) and c.key not in stages:
            stages[c.key] = mmlu(profile, c, quiet=quiet)
    return stages


def _mmlu_rows(rep: list[Candidate], mmlu_stages: dict[str, StageDir]) -> list[dict]:
    """One row of overall MMLU accuracy per report candidate that has an MMLU stage."""
    return [{**c.labels(), **mmlu_overall(pd.read_csv(mmlu_stages[c.key] / "summary.csv"))}
            for c in rep if c.method in ("none", *FINETUNED) and c.key in mmlu_stages]  # fmt: skip


def _applicability(profile: Profile, applies: dict[str, bool]) -> pd.DataFrame:
    """Which method applies to which target, and why not (DExperts needs the experts' tokenizer)."""
    return pd.DataFrame(
        [{"target": t, "method": m, "applies": m != "dexperts" or bool(applies.get(t)),
          "reason": "" if m != "dexperts" or applies.get(t) else "target's tokenizer differs from the experts'"}
         for t in profile.detox.targets for m in ("none", "unidetox", *profile.study.baselines)]
    )  # fmt: skip


def mmlu_overall(summary: pd.DataFrame) -> dict:
    """``{"MMLU": micro accuracy, "MMLU_macro": macro accuracy, "MMLU_n": questions}`` from an MMLU summary."""
    by = summary.set_index("subject")
    micro = by.loc["micro_average"]
    return {
        "MMLU": float(micro.accuracy),
        "MMLU_macro": float(by.loc["macro_average"].accuracy),
        "MMLU_n": int(micro.n),
    }


def text_sets(profile: Profile, *, quiet: bool = False) -> dict[str, list[str]]:
    """Equal-sized text sets for the analyses: distilled text, base and toxic samples, DGHS hate rows."""
    n = profile.distill.num_texts
    hate = pd.Series(toxic_texts(profile)[0])
    return {
        "UniDetox distilled": distilled_texts(distill(profile, quiet=quiet)),
        "Base samples": distilled_texts(samples(profile, "base", quiet=quiet)),
        "Toxic-model samples": distilled_texts(samples(profile, "toxic", quiet=quiet)),
        "DGHS hate": hate.sample(n=min(n, len(hate)), random_state=profile.distill.seed).tolist(),
    }


def text_type_sets(profile: Profile, *, quiet: bool = False) -> dict[str, list[str]]:
    """:func:`text_sets` and, where the data directory holds it, the authors' released distilled text (all of it:
    the training set of the method ``released``)."""
    sets = text_sets(profile, quiet=quiet)
    try:
        path = released_csv(profile.data)
    except DataError:  # no local data directory (e.g. the paper profile's Hub data)
        return sets
    if path.is_file():
        sets[METHODS["released"].label] = list(read_released(profile.data).texts)
    return sets


def compass_models(profile: Profile, *, quiet: bool = False) -> list[tuple[str, str]]:
    """(label, model path or spec) of the models the political-bias analysis probes (each path on disk)."""
    from unidetox.report.tables.cells import short_name

    st = study(profile, quiet=quiet)
    base = profile.toxic.base_model
    out = [
        (f"{short_name(base)} (base)", base),
        (f"{short_name(base)} (toxic)", str(toxic_model(profile).path / "final")),
    ]
    for t in profile.detox.targets:
        out.append((f"{short_name(t)} + UniDetox", finetuned(profile, t, "unidetox", *st.chosen, grid=True).path))
    if "base-samples" in profile.study.baselines:
        out.append((f"{short_name(st.select_target)} + base samples",
                    finetuned(profile, st.select_target, "base-samples", *st.chosen).path))  # fmt: skip
    return [(label, restore(profile, path)) for label, path in out]  # weights `unidetox clean` removed are recomputed


def toxic_vs_base(profile: Profile, *, quiet: bool = False) -> pd.DataFrame:
    """Validation metric rows of the untouched base model and of the toxic model (is the toxic model toxic?)."""
    split = profile.eval.prompt_split
    cands = [untouched(profile.toxic.base_model), toxic_candidate(profile, quiet=quiet)]
    ppl = profile.study.validation_perplexity
    return candidate_rows([(c, evaluate(profile, c, split=split, perplexity=ppl, quiet=quiet)) for c in cands])


def stage_summaries(profile: Profile) -> pd.DataFrame:
    """Wall time and peak memory of every finished stage run of this profile (for the reproducibility page)."""
    rows = []
    for done in sorted((Path(profile.runs_dir) / profile.name).glob("*/*/DONE")):
        summary = {k: v for k, v in read_json(done).items() if k != FILES}
        rows.append({"stage": done.parent.parent.name, "key": done.parent.name, **summary})
    return pd.DataFrame(rows)
