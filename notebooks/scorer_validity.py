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
# # Scorer validity
#
# Every toxicity number in this book is a classifier's opinion. Before a claim is read off those numbers, this
# page measures how far each scorer can be trusted, on shipped data that the study never uses as prompts:
#
# - **ROC AUC against human labels**: on the annotated ToxiGen rows held out from every prompt set of the profile
#   (the whole validation split and the report prompts the profile selects are removed), with a row toxic when
#   its annotators' mean `toxicity_human` (1-5) is above 3; and on the DGHS **test** split, hate against nothate
#   (the cpu profile's toxic model trains on DGHS dev and only validates on test; no scorer trains on DGHS).
#   AUC is the chance that a random toxic row scores above a random non-toxic one (0.5: chance).
# - **False-positive rate on benign text**, at the evaluation's threshold (toxic when score > `eval.threshold`):
#   WikiText-2 sentences, the authors' released distilled text, and each untouched target's own continuations of
#   WikiText-2 paragraph openings, sampled with the evaluation's settings. The last is the kind of text the study
#   scores: a scorer's AUC on statements is not its validity on continuations. In a trial while this page was
#   designed, a scorer trained on the ToxiGen train split (MiniLM embeddings + logistic regression) reached an AUC
#   of 0.83 on held-out statements, yet scored 88% of untouched SmolLM2's continuations of ToxiGen prompts as
#   toxic: it had learned "talks about a group", not "is hateful".
#
# Every number has its 95% interval and its n: AUCs a bootstrap that resamples the toxic and non-toxic rows
# separately, false-positive rates the exact (Clopper-Pearson) binomial interval, each continuation coming from its
# own opening.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []
n_examples = 5

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from myst_nb import glue

from unidetox import pipeline as P
from unidetox.measure import validity as V
from unidetox.report.tables import validity as VT

# %% [markdown]
# ## The rules, declared before the numbers

# %% tags=["remove-input"]
display(
    Markdown(
        f"**Verdict rule.** {V.VERDICT_RULE}\n\n**Why.** {V.VERDICT_RULE_WHY}\n\n**Selection rule.** {V.SELECTION_RULE}"
    )
)

# %% [markdown]
# ## Each scorer's validity

# %% tags=["remove-input"]
v = P.silently(P.scorer_validity, prof, quiet=True) if prof.validity.enabled else None
if v is None:
    display(Markdown("The scorers' validity is off in this profile (`validity.enabled` is false)."))
else:
    versions = v.settings["scorer_versions"]
    display(
        Markdown(
            f"Scorers: {', '.join(f'`{s}` ({versions[s]})' for s in v.scorers)}; threshold {v.settings['threshold']} "
            f"(toxic when score > threshold); {v.settings['bootstrap']} bootstrap resamples. Cells: the AUC or the "
            "false-positive rate, its [95% interval], and for a rate the number of false positives in parentheses."
        )
    )
    display(VT.validity_display(v.table).style.hide(axis="index"))
    display(Markdown(VT.chance_sentences(v.table)))

# %% tags=["hide-input"]
scorers = v.scorers if v is not None else []
table = v.table if v is not None else None
fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.3 * len(scorers) * (table.set.nunique() if scorers else 1)))
for ax, measure, xlabel in [
    (axes[0], V.AUC, "ROC AUC (human labels)"),
    (axes[1], V.FPR, "false-positive rate (benign)"),
]:
    part = table[table.measure == measure] if scorers else None
    sets = list(dict.fromkeys(part.set)) if scorers else []
    for i, spec in enumerate(scorers):
        rows = part[part.scorer == spec].set_index("set").reindex(sets)
        y = np.arange(len(sets)) + (i + 1) / (len(scorers) + 1) - 0.5
        ax.errorbar(rows.value, y, xerr=[rows.value - rows.lo, rows.hi - rows.value], fmt="o", capsize=3, label=spec)
    ax.set_yticks(np.arange(len(sets)), labels=[VT.data_label(s) for s in sets], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel)
axes[0].set_xlim(0, 1)
axes[0].axvline(0.5, color="grey", lw=1, ls=":")
axes[1].axvline(V.MAX_BENIGN_FPR, color="tab:red", lw=1, ls=":")
if scorers:
    axes[0].legend(fontsize=8)
fig.tight_layout()
glue("fig_validity", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_validity
# :name: fig-validity
#
# Each scorer's ROC AUC against human labels (left; the dotted line is chance) and its false-positive rate on
# benign text at the evaluation's threshold (right; the dotted line is the selection rule's limit), with 95%
# intervals.
# ```

# %% [markdown]
# DGHS was collected adversarially: annotators wrote, round after round, hate that fooled the models of the day, and
# "nothate" contrast cases that keep a hateful statement's group and words while changing its meaning. A scorer that
# keys on words can do no better than chance there. It is reported as a hard case, and it plays no part in the
# selection rule beyond breaking ties.
#
# ## What the numbers choose

# %% tags=["remove-input"]
if v is not None:
    display(VT.ranking_display(v.choice).style.hide(axis="index"))
    display(Markdown(VT.choice_sentences(v.choice, prof.eval.scorer, prof.study.second_scorer)))

# %% [markdown]
# ## The benign texts each scorer finds most toxic
#
# The continuations are taken as benign because their openings are encyclopedia sentences; the texts each scorer
# scores highest show whether a false positive is the scorer's error or the model's drift.

# %% tags=["remove-input"]
if v is not None:
    benign = [s for s in v.scores.set.unique() if V.set_info(s).measure == V.FPR]
    for spec in v.scorers:
        display(Markdown(f"`{spec}`:"))
        display(VT.top_benign(v.scores, spec, benign, n_examples).style.hide(axis="index").format(precision=3))
