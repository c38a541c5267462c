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
# # Political bias of the detoxifying text
#
# **What the paper claims.** UniDetox (Lu et al., ICLR 2025) reports that its analysis of the distilled
# detoxifying text "reveals a reduction in politically biased content", and suggests that this is one of the
# attributes that make the text detoxify: the hate speech the toxic model is trained on (DGHS) is full of
# political topics (immigration, religion, gender), and text that avoids them moves models away from it.
#
# **What this notebook measures.** Three things, all computed by `unidetox.analysis.politics` (the notebook only
# calls, tabulates and plots; the methods are documented in that module):
#
# 1. *Political share of each text set*: the fraction of texts whose topic is politics, with a 95%
#    percentile-bootstrap interval over texts. The text sets have the same number of texts: the
#    UniDetox distilled text, plain samples from the base model and from the toxic model (the same number of
#    tokens as the distilled text), and DGHS hate rows. Two classifiers label the texts: a zero-shot topic
#    classifier on all-MiniLM-L6-v2 sentence embeddings (`minilm`, the main one) and a transparent keyword
#    lexicon (`keyword`, a robustness check). Their accuracy on short hand-labelled texts is reported first.
# 2. *Political leaning of models*: each model's answers to the 62 Political Compass statements, scored as
#    log p(" agree") - log p(" disagree") after a fixed prompt, aggregated into an (economic, social) point in
#    [-1, 1]^2 (left < 0 < right; libertarian < 0 < authoritarian), after removing each model's overall
#    tendency to agree.
# 3. *Distinctive words* of each text set against the others (log-odds ratio with an informative Dirichlet
#    prior, Monroe et al. 2008).
#
# **How to read it.** The paper's claim is supported when the distilled text's political share is below the
# base-model samples' and the toxic-model samples', with a bootstrap interval of the difference that excludes
# zero, and when the UniDetox-detoxified models sit closer to their base model on the compass than the toxic
# model does. On the `tiny` profile the models are random and the texts are noise: the numbers there only show
# that the analysis runs.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []
extra_texts_csv = ""  # optional CSV with a `text` column (e.g. the authors' released distilled text)
n_words = 15

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input", "hide-output"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from myst_nb import glue

from unidetox import pipeline as P
from unidetox.analysis.politics.compass import compass_statements
from unidetox.analysis.politics.report import political_report
from unidetox.analysis.politics.text import read_texts_csv
from unidetox.data.political_compass import load_political_compass
from unidetox.report.tables import pages as PT

# runs (or reuses) the pipeline stages these inputs come from; their log lines are hidden in the book
text_sets = P.silently(P.text_sets, prof, quiet=True)
if extra_texts_csv:
    text_sets["Extra texts (CSV)"] = read_texts_csv(extra_texts_csv)
models = P.silently(P.compass_models, prof, quiet=True)
statements = compass_statements(load_political_compass(prof.data))
report = political_report(text_sets, models, statements=statements, n_words=n_words, device=prof.device)

# %% tags=["hide-input"]
display(Markdown(f"Profile **{prof.name}**: {', '.join(f'{k} ({len(v)} texts)' for k, v in text_sets.items())}."))

# %% [markdown]
# ## How good are the classifiers?
#
# Accuracy of each classifier on the labelled texts shipped with the package (`dev`: 40 texts used while
# designing the classifiers; `holdout`: 24 texts written afterwards, the fairer number, though `minilm`'s
# similarity floor was added after its first holdout evaluation: 23/24 before, see `unidetox.analysis.politics`).
# These are short, clean sentences; generated text and social-media posts are harder, so read the accuracy
# as an upper bound.

# %% tags=["hide-input"]
display(report.validation.round(3))

# %% [markdown]
# ## Political share of each text set

# %% tags=["hide-input"]
display(report.shares.round(3))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 3.5))
clfs = list(dict.fromkeys(report.shares["classifier"]))
names = list(dict.fromkeys(report.shares["set"]))
width = 0.8 / len(clfs)
for k, clf in enumerate(clfs):
    s = report.shares[report.shares["classifier"] == clf].set_index("set").loc[names]
    x = np.arange(len(names)) + (k - (len(clfs) - 1) / 2) * width
    err = np.vstack([s["share"] - s["ci_low"], s["ci_high"] - s["share"]])
    ax.bar(x, s["share"], width, yerr=err, capsize=3, label=clf)
ax.set_xticks(np.arange(len(names)), names, rotation=15, ha="right")
ax.set_ylabel("share of political texts")
ax.set_ylim(0, 1)
ax.legend(title="classifier")
fig.tight_layout()
glue("fig_political_share", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_political_share
# :name: fig-political-share
#
# Share of texts classified as political in each text set, per classifier; error bars are 95%
# percentile-bootstrap intervals over texts. A set with no political text (or only political texts) gets an
# interval of zero width, since every resample is the same; read it as "at most about 3/n" (the rule of
# three) rather than as certainty.
# ```
#
# The difference between the distilled text and each other set, with its own bootstrap interval (the two
# sets resampled independently):

# %% tags=["hide-input"]
display(report.differences.round(3))
display(Markdown("\n\n".join(report.verdict().splitlines())))

# %% [markdown]
# ## Where the models sit on the Political Compass
#
# `acquiescence` is the model's mean agreement score over all statements (nats; positive = it prefers
# " agree" in general); it is subtracted before the statements are aggregated, so that a model that agrees
# with everything is not placed in the authoritarian half just because most social statements are
# authoritarian when agreed with.

# %% tags=["hide-input"]
display(report.compass.round(3))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 5))
ax.axhline(0, color="grey", lw=0.8)
ax.axvline(0, color="grey", lw=0.8)
markers = "osD^vP*Xph"
for i, r in enumerate(report.compass.itertuples(index=False)):
    ax.scatter(r.economic, r.social, s=50, marker=markers[i % len(markers)], label=r.label, alpha=0.8)
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
lim = max(0.1, float(np.nanmax(np.abs(report.compass[["economic", "social"]].to_numpy()))) * 1.3)
ax.set_xlim(-lim, lim)
ax.set_ylim(-lim, lim)
ax.set_xlabel("economic: left  <->  right")
ax.set_ylabel("social: libertarian  <->  authoritarian")
ax.set_aspect("equal")
fig.tight_layout()
glue("fig_compass", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_compass
# :name: fig-compass
#
# Each model's (economic, social) position: the mean over the statements of each axis of
# direction × tanh(centred agreement score / 2); the full square is [-1, 1]², the plot zooms on the points.
# ```

# %% [markdown]
# ## Distinctive words
#
# The words most over-represented in each text set relative to all the others (ranked by the z-score of the
# log-odds ratio with an informative Dirichlet prior; stopwords removed). Political vocabulary in a column
# is the qualitative counterpart of a high political share.

# %% tags=["hide-input"]
if report.words.empty:
    display(Markdown("No distinctive words (fewer than two text sets)."))
else:
    display(PT.words_side_by_side(report.words))

# %% [markdown]
# ## Does it agree with the paper?
#
# Read the verdict lines above with the `holdout` accuracy of each classifier in mind: a difference smaller
# than the classifier's error rate is not evidence either way. On the `tiny` profile the distilled text comes
# from random models and the verdict is meaningless; on the `cpu` and `paper` profiles it is the replication
# of the paper's claim on this repository's models.
