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
# # Hyperparameter transfer
#
# UniDetox's second claim is practical: one fine-tuning configuration, chosen once on the distillation model,
# works for every other model, whereas decoding-time methods such as DExperts must be re-tuned for each model
# (and cannot be applied at all across vocabularies). The paper tunes the learning rate in {5e-5, 1e-5} and the
# number of steps from 1,000 to 10,000 on GPT-2 XL's validation Toxicity Probability and reuses the winner for
# OPT-6.7B, Falcon-7B and LLaMA-2-7B.
#
# Here the grid runs over the profile's learning rates and steps on the **validation** prompts for every target.
# The configuration that `study.selection_metric` picks on the distillation model is the *transferred* one; each
# target's own pick by the same rule is its *oracle*. Both are then evaluated on the held-out report prompts: the gap
# between them is what transferring costs. The paper's rule (`TP`) takes the lowest in-distribution Toxicity
# Probability. On a few dozen validation prompts TP moves in steps of one prompt, so the pick can change with the
# machine or the seed; the rule `EMT` reads the continuous Expected Maximum Toxicity instead, and takes the cheapest
# grid point (fewest steps, then the smaller learning rate) whose paired interval against the lowest EMT contains 0: the cheapest configuration that
# prompt noise cannot tell apart from the best, the rule the budget curve below uses too.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from unidetox import pipeline as P
from unidetox.report.tables import main as T
from unidetox.report.tables import pages as PT

study = P.silently(P.study, prof, quiet=True)
lr, steps = study.chosen
display(
    Markdown(
        f"Grid: learning rates {', '.join(f'{x:g}' for x in prof.detox.learning_rates)} × steps "
        f"{', '.join(map(str, prof.detox.steps))}; selection target `{study.select_target}`; "
        f"transferred configuration: learning rate **{lr:g}**, **{steps}** steps. "
        + "Oracles: "
        + "; ".join(f"`{t}`: lr {o[0]:g}, {o[1]} steps" for t, o in study.oracle.items())
        + "."
        + (
            " DExperts λ per target: " + "; ".join(f"`{t}`: {v:g}" for t, v in study.dexperts_lambda.items()) + "."
            if study.dexperts_lambda
            else ""
        )
    )
)

# %% [markdown]
# ## The validation grid
#
# Validation TP (in-distribution) and perplexity along the fine-tuning steps, one line per learning rate and
# target; step 0 is the untouched target ({numref}`fig-grid`).

# %% tags=["hide-input"]
curves = T.grid_curves(study.validation)
curves["learning rate"] = curves.lr.map(lambda x: f"{x:g}")
# the validation perplexity is optional (study.validation_perplexity): without it, the second panel shows EMT
second = "PPL" if "PPL" in curves else "EMT (in)"
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, col in zip(axes, ["TP (in)", second]):
    sns.lineplot(data=curves, x="steps", y=col, hue="target", style="learning rate", markers=True, ax=ax)
    ax.set(xlabel="fine-tuning steps", ylabel=f"validation {col}")
    if ax is axes[0]:
        ax.legend(fontsize=7)
    else:
        ax.get_legend().remove()
fig.tight_layout()
glue("fig_grid", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_grid
# :name: fig-grid
#
# Validation in-distribution TP and perplexity (EMT where the profile skips perplexity on validation) of each
# target along the fine-tuning steps, per learning rate.
# ```

# %% tags=["hide-input"]
grid = curves.pivot_table(index=["target", "learning rate"], columns="steps", values="TP (in)")
display(Markdown("Validation TP (in-distribution), targets × learning rate × steps:"))
grid.round(3)

# %% [markdown]
# ## How stable the choice is
#
# The selection table of each target's grid under `study.selection_metric`: the in-distribution value on the
# validation prompts, the paired difference from the best point with its 95% interval, and the share of 1,000
# bootstrap resamples of the validation prompts (within domains) in which the point has the lowest value
# ({numref}`fig-stability`). A point that wins in nearly every resample is a choice the prompts support; shares
# spread over several points mean that prompt noise, not the method, decides which of them has the lowest value,
# and the interval rule then takes the cheapest of those it cannot tell apart.

# %% tags=["hide-input"]
sel = study.selection.copy()
sel["point"] = [f"lr {lr:g}, {int(s)} steps" for lr, s in zip(sel.lr, sel.steps)]
fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * len(sel)))
sns.barplot(data=sel, y="point", x="wins", hue="target", ax=ax)
ax.set(xlabel=f"share of bootstrap resamples with the lowest validation {prof.study.selection_metric} (in)",
       ylabel="", xlim=(0, 1))  # fmt: skip
ax.legend(fontsize=7)
fig.tight_layout()
glue("fig_stability", fig, display=False)
plt.close(fig)
display(Markdown(PT.selection_markdown(study.selection, prof.study.selection_metric)))

# %% [markdown]
# ```{glue:figure} fig_stability
# :name: fig-stability
#
# How often each grid point has the lowest in-distribution validation value of the selection metric, over 1,000
# bootstrap resamples of the validation prompts, per target.
# ```

# %% [markdown]
# ## How much training the detox needs
#
# The paper fine-tunes for thousands of steps of 8 × 256 tokens; a CPU book affords a few dozen steps of a few
# short texts. The budget curve measures what the budget buys on the distillation model: UniDetox at the shared
# learning rate, one full fine-tune (its own learning-rate schedule) per budget, each evaluated on the
# **validation** prompts as the grid is, and compared with the untouched model by paired bootstrap intervals over
# prompts ({numref}`fig-budget`). The budget to pick is the cheapest one whose EMT(in) cannot be told apart from
# the best budget's (the interval of their paired difference contains 0); the report prompts play no part in it.

# %% tags=["hide-input"]
if prof.study.budget_steps:
    budget = P.silently(P.budget_curve, prof, quiet=True)
    bt = budget.table
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
    for ax, metric in zip(axes, ["EMT", "TP"]):
        sub = bt[bt.metric == metric].sort_values("tokens")
        ax.errorbar(sub.tokens, sub["diff"], yerr=[sub["diff"] - sub.lo, sub.hi - sub["diff"]], marker="o", capsize=3)
        ax.axhline(0, color="grey", lw=1)
        chosen_tokens = budget.chosen_steps * sub.tokens.iloc[0] / sub.steps.iloc[0]
        ax.axvline(chosen_tokens, color="tab:red", ls=":", lw=1, label=f"study: {budget.chosen_steps} steps")
        ax.set(xscale="log", xlabel="fine-tuning tokens (at most)", ylabel=f"Δ{metric} (in), validation")
        ax.set_xticks(sub.tokens, labels=[f"{t:,}\n{s} steps" for t, s in zip(sub.tokens, sub.steps)])
        ax.minorticks_off()
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    glue("fig_budget", fig, display=False)
    plt.close(fig)
    display(Markdown(PT.budget_sentences(bt, budget.chosen_steps, budget.cheapest, prof.eval.prompts_per_domain)))
    display(PT.budget_display(bt).style.hide(axis="index"))
else:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, "budget curve off (study.budget_steps)", ha="center", va="center")
    glue("fig_budget", fig, display=False)
    plt.close(fig)
    display(Markdown("The budget curve is off in this profile (`study.budget_steps` is empty)."))

# %% [markdown]
# ```{glue:figure} fig_budget
# :name: fig-budget
#
# UniDetox's in-distribution EMT and TP on the distillation model minus the untouched model's, on the validation
# prompts, against the fine-tuning budget (tokens: steps × batch × maximum length), with 95% paired bootstrap
# intervals; the dotted line is the study's budget.
# ```

# %% [markdown]
# ## Transferred against oracle, on the report prompts
#
# A gap near zero means the configuration chosen on the distillation model is as good for that target as the
# target's own best; a positive TP gap is what transferring costs. For DExperts the transferred λ exists only for
# targets that share the experts' vocabulary.

# %% tags=["hide-input"]
transfer = T.transfer_table(study.report)
display(transfer.style.hide(axis="index").format(precision=3))  # a Styler shows 6 decimals unless told

# %% tags=["hide-input"]
long = PT.transfer_gaps(transfer)
fig, ax = plt.subplots(figsize=(6, 0.8 + 0.45 * long.row.nunique()))
sns.barplot(data=long, x="value", y="row", hue="gap", ax=ax)
ax.axvline(0, color="grey", lw=1)
ax.set(xlabel="transferred − oracle (report prompts)", ylabel="")
fig.tight_layout()
glue("fig_gap", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_gap
# :name: fig-gap
#
# The transfer gap per target and method: TP and EMT (in-distribution) of the transferred configuration minus
# those of the target's own best configuration, on the report prompts.
# ```
