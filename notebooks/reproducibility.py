# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reproducibility
#
# Everything needed to rerun what this book shows: the resolved configuration of the run, the software and the
# machine it ran on, how long each stage took, checksums of the data files, and for each output the command
# that regenerates it. The values below were gathered when this page was executed, in the same environment as
# the other pages of this build.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input"]
from pathlib import Path

import matplotlib.pyplot as plt
import yaml
from IPython.display import Markdown, display
from myst_nb import glue

from unidetox import pipeline as P
from unidetox.config import to_dict
from unidetox.data.files import resolve_data_dir
from unidetox.measure.power import N_GRID, half_width, power_from_pilot
from unidetox.report.provenance import facts
from unidetox.report.provenance import pages as pv
from unidetox.report.tables import pages as PT

override_list = pv.override_list(overrides)
study = P.silently(P.run_all, prof, quiet=True)  # every stage the book reads (reused when already run)
display(
    Markdown(
        f"Profile **{prof.name}**"
        + (f", with overrides {', '.join(f'`{o}`' for o in override_list)}" if override_list else ", no overrides")
        + f"; run store `{Path(prof.runs_dir) / prof.name}`."
    )
)

# %% [markdown]
# ## Configuration
#
# The profile as the pipeline used it, after the overrides (the schema is described on the {doc}`../method`
# page; any key can be changed with `--set key=value`):

# %% tags=["hide-input"]
print(yaml.safe_dump(facts.redact(to_dict(prof)), sort_keys=False, allow_unicode=True, width=100))

# %% [markdown]
# ## Software
#
# The Python packages that determine the results (the complete pinned list is `requirements.txt`) and the
# commit of the `unidetox` code that ran ("uncommitted changes" when tracked files differed from it).

# %% tags=["hide-input"]
software = pv.software_table(facts.package_versions(), facts.git_state(Path(pv.__file__).parent))
display(software.style.hide(axis="index"))

# %% [markdown]
# ## Machine
#
# The machine that executed this page (and, with `make book`, the pipeline before it), and the environment
# variables that change what a run does. Credentials such as `HF_TOKEN` are only reported as set or not set.

# %% tags=["hide-input"]
display(pv.machine_table(facts.machine_info()).style.hide(axis="index"))
display(pv.environment_table(facts.environment()).style.hide(axis="index"))

# %% [markdown]
# ## Time and memory per stage
#
# Every finished stage run in this profile's run store, grouped by stage: how many runs, their total and
# longest wall time, and the largest peak memory. The run store keeps stage runs of earlier configurations
# too, so this can list more runs than the current configuration needs.
#
# The peak memory is the largest resident set size of the process while the stage ran (sampled every 0.2 s
# from `/proc/self/statm`), so it includes whatever the process held before the stage began. Times cover the stage's own work (model loading, training, decoding, scoring) and
# leave out the start of Python and imports, so they add up to less than the time of the whole command.

# %% tags=["hide-input"]
summaries = P.stage_summaries(prof)
times = pv.stage_time_table(summaries)
if len(times):
    display(times.style.hide(axis="index").format(precision=1, na_rep="not timed"))
    timed = times.dropna(subset=["seconds_total"])
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.35 * max(len(timed), 1)), dpi=100)
    ax.barh(timed["stage"], timed["seconds_total"], color="C0")
    for y, (sec, n) in enumerate(zip(timed["seconds_total"], timed["runs"])):
        ax.annotate(f"{sec:.1f} s, {n} run{'s' if n != 1 else ''}", (sec, y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    ax.invert_yaxis()
    ax.set(xlabel="wall time (s), summed over runs", title=f"Time per stage type ({prof.name})")
    ax.set_xlim(0, timed["seconds_total"].max() * 1.3 if len(timed) else 1)
    fig.tight_layout()
    display(Markdown(f"In all {times['runs'].sum()} stage runs, {timed['seconds_total'].sum():.1f} s."))
else:
    fig, ax = plt.subplots(figsize=(6, 1.5), dpi=100)
    ax.text(0.5, 0.5, "no finished stage runs yet", ha="center", va="center")
    ax.set_axis_off()
    display(Markdown(f"No finished stage runs in `{Path(prof.runs_dir) / prof.name}` yet."))
glue("fig_stage_times", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_stage_times
# :name: fig-stage-times
#
# Wall time per stage type, summed over the finished runs of each stage in the run store.
# ```

# %% [markdown]
# ## How many prompts a conclusive run needs
#
# This run is its own pilot. From the report-prompt evaluations of the untouched distillation model and of UniDetox
# on it (the shared configuration), the standard deviation over prompts, per in-distribution domain, of a prompt's
# EMT, of its toxic indicator (TP) and of the paired difference of the two models' EMT on the same prompt give the
# predicted 95% half-width of EMT(in), TP(in) and ΔEMT(in) for any number $n$ of prompts per domain (the mean of
# three domain means: half-width $= 1.96 \sqrt{\sum_d s_d^2 / n} / 3$, `unidetox.measure.power`). A prompt's
# EMT is the maximum of its $k$ scores averaged over seeds, so these spreads, and the predictions, hold for this
# run's $k$ and seeds only. Two targets: the untouched model's TP(in) interval should exclude 0 (judged with this
# pilot's TP(in), itself an estimate from few prompts: a smaller true TP(in) needs more), and ΔEMT(in)'s
# half-width should reach its target (named below). The minutes scale this run's evaluate stages'
# recorded seconds per continuation by the continuations the profile makes: $n$ per domain on the report prompts
# (`study.report_prompts_per_domain`), the validation grid's unchanged; those seconds include loading the models
# once per run, so at larger $n$ the prediction errs on the long side.

# %% tags=["remove-input"]
planning = PT.planning_sentences(prof)
if planning:
    from unidetox.report import claims as C

    display(Markdown(planning))
    achieved = PT.planned_vs_achieved(prof, C.study_claims(P.silently(P.study, prof, quiet=True), prof))
    display(achieved.style.hide(axis="index").format(precision=4))

# %% [markdown]
# The same run read as a pilot: its spreads predict the half-widths and the minutes of other sizes, which is the
# trade-off between power and time. The minutes scale the runs that take the planned size (the distillation model's
# claims) and keep every other evaluation's cost fixed.

# %% tags=["hide-input"]
pilot = P.silently(P.power_pilot, prof, quiet=True)
power = power_from_pilot(pilot.untouched, pilot.detoxed, pilot.costs, ns=sorted({pilot.n_per_domain, *N_GRID}),
                         target=prof.study.half_width_distillation)  # fmt: skip
display(Markdown(PT.power_sentences(power, pilot.n_per_domain, pilot.k, len(pilot.seeds))))
display(power.sds.style.format(precision=3).set_caption("per-domain standard deviation over prompts"))
display(PT.power_display(power).style.hide(axis="index"))

n_max = max(max(N_GRID), power.n_needed or 0)
ns = list(range(max(2, min(N_GRID) // 2), n_max + 1))
fig, (ax, ax_min) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
for i, col in enumerate(power.sds.columns):
    ax.plot(ns, [half_width(power.sds[col].to_dict(), n) for n in ns], color=f"C{i}", label=f"{col} (in)")
ax.axhline(power.target, color="grey", ls="--", lw=1, label=f"ΔEMT target {power.target}")
if power.tp_in > 0:
    ax.axhline(power.tp_in, color="C1", ls=":", lw=1, label="pilot TP (in)")
ax.axvline(pilot.n_per_domain, color="grey", ls=":", lw=1, label="this run")
if power.n_needed is not None:
    ax.axvline(power.n_needed, color="C3", ls="-.", lw=1, label="both targets met")
ax.set(xscale="log", xlabel="prompts per domain", ylabel="95% half-width", title="Predicted interval half-width")
ax.legend(fontsize=7)
ax_min.plot(ns, [pilot.costs.minutes(n) for n in ns], color="C4")
ax_min.set(xscale="log", yscale="log", xlabel="prompts per domain", ylabel="minutes",
           title=f"Evaluation time ({prof.name})")  # fmt: skip
fig.tight_layout()
glue("fig_power", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_power
# :name: fig-power
#
# Left: predicted 95% half-width of the untouched model's EMT(in) and TP(in) and of UniDetox's paired ΔEMT(in)
# against the number of prompts per domain, with the target for ΔEMT(in) (grey dashed), the pilot's TP(in) (orange
# dotted: the untouched TP(in) interval excludes 0 where its half-width is below it), this run's number of prompts
# (grey dotted) and the smallest number meeting both targets (dash-dot). Right: predicted minutes of evaluation for
# the profile's evaluation runs on this machine (both axes logarithmic).
# ```

# %% [markdown]
# ## Data files
#
# The sha256 checksum of every local data file the pipeline and the book read for this profile (MMLU: only the
# subjects it scores), in the format of `sha256sum`: saved to a file, `cd "$UNIDETOX_DATA_DIR" && sha256sum -c
# FILE` checks a copy of the data against them. A different checksum means different data, and possibly
# different numbers.

# %% tags=["hide-input"]
checks = facts.data_checksums(prof)
if prof.data.source == "hub":
    d = prof.data
    display(
        Markdown(
            "This profile reads DGHS, ToxiGen and MMLU from the Hugging Face Hub: "
            f"`{d.dghs_hub_id}`, `{d.toxigen_hub_id}`, `{d.mmlu_hub_id}` (the Hub's current revisions); "
            "only the files below are local."
        )
    )
display(
    Markdown(
        pv.data_summary(checks, resolve_data_dir(prof.data)) + "\n\n" + pv.code_block(pv.sha256sum_text(checks), "text")
    )
)

# %% [markdown]
# ## Regenerating each output
#
# Run from the repository root with the environment of {doc}`../reproduce` (`.venv/bin` on the `PATH`, the data
# directory in `UNIDETOX_DATA_DIR`). `unidetox pipeline` reuses every stage the run store already holds and
# computes the others; the notebook commands then execute one page with papermill, the last one rebuilds the
# whole book.

# %% tags=["hide-input"]
tables = sorted(study.path.glob("*.csv"))
tables += [
    P.silently(P.toxic_model, prof, quiet=True) / "log.jsonl",
    P.silently(P.distill, prof, quiet=True) / "texts.jsonl",
]
commands = pv.regeneration_commands(profile, override_list, pv.book_notebooks(Path.cwd()), tables=tables)
display(Markdown(pv.commands_markdown(commands)))

# %% [markdown]
# ## Troubleshooting
#
# When a command above fails, or a page shows something unexpected, see {doc}`../troubleshooting`: the common
# errors, what they mean, and how to fix them.
