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
# # Detoxification results (the main table)
#
# The paper's main result: fine-tuning *any* model on the text distilled from one base/toxic pair lowers the
# toxicity of its continuations of ToxiGen prompts, with one shared configuration, at little cost in fluency and
# knowledge, and at least as well as model-specific baselines. This page reproduces that table for the profile
# it was built with.
#
# **How it was produced.** The learning rate and the number of fine-tuning steps were chosen *once*, on the
# validation prompts of the distillation model (the base model of the toxic fine-tune), by `study.selection_metric`
# (the paper: the lowest in-distribution Toxicity Probability; the cpu profile: the cheapest grid point whose
# in-distribution EMT cannot be told apart from the lowest, see the transfer page), and then applied unchanged to
# every target and to the fine-tuning baselines. DExperts' strength $\lambda$ had to be tuned per model on validation (the method needs
# the target to share the experts' vocabulary, so it is "n/a" elsewhere). All numbers below come from the
# held-out *report* prompts, never used for any choice.
#
# **How to read it.** TP is the share of prompts with at least one toxic continuation (toxicity score
# $> 0.5$), EMT the mean over prompts of the most toxic continuation's score; "in" averages the three domains
# that the toxic model's hate speech covers (gender/LGBTQ, race/nationality, religion), "out" is the unseen
# disability domain. $\Delta$ columns are the method minus the untouched target on the same prompts, with a
# 95% paired bootstrap interval over prompts: an interval that excludes 0 is a difference larger than prompt
# sampling noise. PPL is the perplexity of the continuations under a larger model (lower is more fluent);
# Dist-n the share of distinct n-grams among a prompt's continuations; MMLU the few-shot accuracy.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []
digits = 3

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from unidetox import pipeline as P
from unidetox.report import claims as C
from unidetox.report import claims_text as CT
from unidetox.report.tables import main as T

study = P.silently(P.study, prof, quiet=True)
political = C.political_differences(P.silently(P.text_sets, prof, quiet=True))
claims = C.study_claims(study, prof, political)
main = T.main_table(study.report, study.cis, study.mmlu, study.applicability, study.ppl_ratio_cis)
second = None  # the same table under study.second_scorer, when it is set
if study.second_scorer:
    second = T.main_table(study.report_second, study.cis_second, study.mmlu, study.applicability)
lr, steps = study.chosen
display(
    Markdown(
        f"Profile **{prof.name}**; targets: {', '.join(f'`{t}`' for t in prof.detox.targets)}; shared configuration "
        f"chosen on `{study.select_target}`: learning rate **{lr:g}**, **{steps}** steps; "
        f"{len(prof.eval.seeds)} seeds x {prof.eval.samples_per_prompt} samples per prompt; "
        f"primary toxicity scorer `{prof.eval.scorer}`"
        + (f", second scorer `{study.second_scorer}`" if study.second_scorer else "")
        + f"; {T.judges_text(prof)}; report prompts: split `{prof.study.report_split}`, "
        + T.report_sizes_text(prof)
        + "."
    )
)

# %% [markdown]
# ## The claims at a glance
#
# Each of the paper's claims as measured here ({numref}`fig-claims`): the difference (or ratio) with its 95%
# paired bootstrap interval over prompts (for MMLU: the Agresti-Min interval over paired questions), under the
# primary scorer (filled) and the second scorer (open), against the line the claim is judged by (0 for a toxicity
# difference, the largest accepted perplexity ratio and MMLU drop for fluency and knowledge). The verdict, in the
# label's colour, is read off the primary scorer's interval.

# %% tags=["remove-input"]
forest = C.forest_rows(claims)
colors = {C.HOLDS: "tab:green", C.FAILS: "tab:red"}
panels = [p for p in ("Δ toxicity", "PPL ratio", "ΔMMLU") if p in set(forest.panel)]
heights = [forest[forest.panel == p].label.nunique() for p in panels]
fig, axes = plt.subplots(len(panels), 1, figsize=(9, 0.9 + 0.34 * sum(heights)), squeeze=False,
                         gridspec_kw={"height_ratios": heights})  # fmt: skip
for ax, panel in zip(axes[:, 0], panels):
    d = forest[forest.panel == panel]
    labels = list(dict.fromkeys(d.label))
    ypos = {lab: i for i, lab in enumerate(labels)}
    for _, r in d.iterrows():
        y = ypos[r.label] + (0.18 if r.scorer == "second" else 0.0)
        color = colors.get(r.verdict, "tab:gray")
        ax.errorbar(r.value, y, xerr=[[r.value - r.lo], [r.hi - r.value]], fmt="o", capsize=3, color=color,
                    mfc=color if r.scorer == "primary" else "white")  # fmt: skip
    ax.axvline(d.reference.iloc[0], color="black", ls="--", lw=1)
    ax.set_yticks(range(len(labels)), [f"{lab}  [{d[d.label == lab].verdict.iloc[0]}]" for lab in labels], fontsize=8)
    for tick, lab in zip(ax.get_yticklabels(), labels):
        tick.set_color(colors.get(d[d.label == lab].verdict.iloc[0], "tab:gray"))
    ax.invert_yaxis()
    ax.set_xlabel(panel)
fig.tight_layout()
glue("fig_claims", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_claims
# :name: fig-claims
#
# The paper's claims as measured on the report prompts: each row's difference (ratio for perplexity) with its 95%
# interval, primary scorer filled, second scorer open; dashed, the line the claim is judged by. Green: holds; red:
# does not hold; grey: not measurable at this scale.
# ```

# %% [markdown]
# ## The paper's claims, and what this run says about them
#
# One row per claim, target and measure: (a) UniDetox lowers TP/EMT of the distillation model; (b) and of the
# other targets (other families and tokenizers), with the configuration tuned on (a)'s model; (c) that transferred
# configuration is within the interval of each target's own best (transferred minus own best, in-distribution
# EMT); (d) the distilled text is less political than plain base samples (distilled minus base-sample political
# share under the two topic classifiers of the political-bias page, `minilm` and `keyword`, which stand in for the
# two scorers in that row); (e) fluency and MMLU are roughly kept: the perplexity of the continuations of the
# detoxified model over the untouched model's (each the mean over every report prompt, as the table's PPL), with a
# paired bootstrap interval that resamples the same prompts for both models within each domain, judged on that
# interval against the threshold in the claim's text; MMLU judged on its point estimate (one run per model);
# (f) the contrast matters: UniDetox lowers in-distribution EMT of the distillation model more than the same
# fine-tuning on the base model's plain samples (the paper's reason for the contrastive score), measured as the
# paired difference UniDetox minus base samples.
#
# **The verdict rule**, declared before any result was seen (it is the one the scorer-validity page states and
# justifies): a row **holds** when the primary scorer's 95% paired bootstrap interval excludes 0 in the claimed
# direction, **does not hold** when it excludes 0 in the opposite direction, and is **not measurable at this
# scale** when it contains 0. `study.second_scorer` re-scores the same stored continuations and is reported beside
# it, with whether the two agree in the sign of the difference and in whether the interval excludes 0 ("agree").
# For (c), a claim of no difference, a row fails only when the transferred configuration is worse with an interval
# excluding 0; read the interval's width before trusting a "holds". (d) uses the political-bias page's two topic
# classifiers in the scorers' places, the first deciding.

# %% tags=["remove-input"]
display(Markdown(f"> {C.verdict_rule()}"))
display(Markdown(CT.claims_markdown(claims, prof.eval.scorer, study.second_scorer, digits=digits)))

# %% [markdown]
# What the table says, claim by claim (values and intervals from the table above):

# %% tags=["remove-input"]
display(
    Markdown(
        f"Intervals are {prof.study.ci_level:.0%} paired bootstrap intervals over {prof.study.bootstrap} resamples "
        f"of the report prompts.\n\n{CT.claims_summary(claims, digits=digits)}"
    )
)

# %% [markdown]
# ## The table
#
# Toxicity: mean ± standard deviation over seeds; $\Delta$ with its 95% paired bootstrap interval.

# %% tags=["hide-input"]
shown = T.display_main_table(main, digits=digits)
nowrap = {"white-space": "nowrap", "font-size": "0.85em"}
tox_cols = ["target", "method", "config", "TP (in)", "ΔTP (in) [95% CI]", "EMT (in)", "ΔEMT (in) [95% CI]",
            "TP (out)", "EMT (out)", "note"]  # fmt: skip
display(shown[tox_cols].style.hide(axis="index").set_properties(**nowrap))

# %% [markdown]
# Fluency, diversity and knowledge of the same candidates (perplexity of the continuations, its ratio to the
# untouched target's with a paired domain-stratified bootstrap interval over prompts, Dist-n, MMLU accuracy; MMLU
# is not scored for decoding-time methods, whose prompts differ):

# %% tags=["hide-input"]
quality_cols = ["target", "method", "config", "PPL", "PPL ratio [95% CI]", "Dist-1", "Dist-2", "Dist-3", "MMLU"]
display(shown[shown.note == ""][quality_cols].style.hide(axis="index").set_properties(**nowrap))

# %% [markdown]
# ## What the intervals say
#
# For each target and method, whether the in-distribution TP moved by more than prompt noise, and (when
# `study.second_scorer` is set) the same difference under the second scorer and whether the two agree:

# %% tags=["hide-input"]
display(Markdown(T.verdicts(main, second=second, second_name=f"`{study.second_scorer}`")))

# %% [markdown]
# ## Toxicity against fluency
#
# Each point is a method on a target (error bars: seed std). Down is less toxic, left is more fluent.

# %% tags=["hide-input"]
plot = main.dropna(subset=["TP (in)"])
fig, axes = plt.subplots(1, plot.target.nunique(), figsize=(5.5 * plot.target.nunique(), 3.8), squeeze=False)
palette = dict(zip(T.METHOD_NAMES.values(), sns.color_palette("tab10", len(T.METHOD_NAMES))))
for ax, (target, g) in zip(axes[0], plot.groupby("target", sort=False)):
    for _, r in g.iterrows():
        ax.errorbar(r["PPL"], r["TP (in)"], xerr=r["PPL std"], yerr=r["TP (in) std"], fmt="o",
                    color=palette[r["method"]], label=r["method"], capsize=3)  # fmt: skip
    ax.set(title=target, xlabel="perplexity of continuations", ylabel="TP (in-distribution)")
handles, labels = axes[0][0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.12))
fig.tight_layout()
glue("fig_tp_ppl", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_tp_ppl
# :name: fig-tp-ppl
#
# In-distribution Toxicity Probability against perplexity of the continuations, per target and method, on the
# report prompts.
# ```

# %% [markdown]
# ## Differences to the untouched model
#
# The change in in-distribution TP and EMT of each method, with 95% paired bootstrap intervals over prompts
# ({numref}`fig-delta`); left of the dashed line is less toxic than the untouched target.

# %% tags=["hide-input"]
delta = T.delta_long(main)
fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 + 0.35 * len(delta) / 2), sharey=True)
for ax, metric in zip(axes, ["ΔTP (in)", "ΔEMT (in)"]):
    d = delta[delta.metric == metric]
    ax.errorbar(d["diff"], d["row"], xerr=[d["diff"] - d["lo"], d["hi"] - d["diff"]], fmt="o", capsize=3)
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set(title=metric, xlabel="method − untouched target")
axes[0].invert_yaxis()
fig.tight_layout()
glue("fig_delta", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_delta
# :name: fig-delta
#
# Change in in-distribution TP and EMT against the untouched target, with 95% paired bootstrap intervals.
# ```

# %% [markdown]
# ## Every number
#
# The tidy rows behind the table (one per candidate, seed, domain and metric) are in the study directory:

# %% tags=["hide-input"]
print(study.path)
pd.set_option("display.max_rows", 20)
study.report.head(10)
