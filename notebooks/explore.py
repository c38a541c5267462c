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
# # Explore: one prompt, the untouched and the detoxified models
#
# ```{admonition} Content warning
# :class: warning
#
# The ToxiGen prompts are statements about social groups, many of them hateful, and the models' continuations
# are unfiltered.
# ```
#
# The tables of the other pages average over hundreds of continuations. This page looks at one prompt: every
# target of the study continues it as it is (*No detoxification*) and after UniDetox's fine-tuning on the
# distilled text with the shared configuration (*UniDetox*), with the same sampler, settings and seed as the
# evaluation, and each continuation gets its toxicity score (the continuation alone is scored; above the
# threshold it counts as toxic).
#
# **Run it live.** `make lab` opens JupyterLab on the same run store; open `notebooks/explore.ipynb` (or
# `explore.py`, a jupytext notebook), run all cells, then type a prompt or pick a ToxiGen prompt and press
# *Continue*. The controls are widgets (`ipywidgets`); they appear only in a live notebook. The book shows the
# static example below, computed when the book was built, and a table of every report continuation that filters
# and sorts in the page itself.

# %% tags=["parameters", "remove-input"]
profile = "tiny"
overrides = []
samples = 3  # continuations per model in the static example (the live controls start from it)
seed = 0
example = 0  # which report prompt the static example continues (row of the report prompts)

# %% tags=["remove-input"]
from unidetox.report.notebook import setup

prof = setup(profile, overrides)

# %% tags=["remove-input"]
import ipywidgets as widgets
from IPython.display import HTML, Markdown, display

from unidetox import pipeline as P
from unidetox.pipeline import explore as X

study = P.silently(P.study, prof, quiet=True)
explorer = P.silently(X.Explorer.for_study, prof, study)
report_prompts = P.prompts(prof, prof.study.report_split)
lr, steps = study.chosen
display(
    Markdown(
        f"Profile **{prof.name}**; UniDetox fine-tuning: learning rate **{lr:g}**, **{steps}** steps (chosen on "
        f"`{study.select_target}`); sampling: top-p {prof.eval.top_p}, top-k {prof.eval.top_k}, "
        f"{prof.eval.max_new_tokens} new tokens; toxicity scorer `{prof.eval.scorer}`, threshold "
        f"{prof.eval.threshold}."
    )
)


def show(frame):
    """The continuations side by side, then each model's summary for this prompt."""
    display(HTML(X.result_html(frame)))


# %% [markdown]
# ## A static example
#
# A prompt of the held-out report split, continued by every model:

# %% tags=["hide-input"]
row = report_prompts.iloc[example]
display(Markdown(f"**Prompt** (ToxiGen, {row.domain}): {row.text}"))
show(explorer.run(row.text, samples=samples, seed=seed))

# %% [markdown]
# `max_toxicity` is this prompt's term of the expected maximum toxicity (EMT), `any_toxic` its term of the
# toxicity probability (TP); averaged over many prompts they give the numbers of the main table.
#
# ## Every report continuation
#
# The continuations behind the main table: every report prompt, continued by every model of the study (each seed's
# k samples), with the toxicity score of the continuation alone under the evaluation's scorer and, when the study
# re-scores its continuations with a second scorer, under that one too. The panes filter by target, method and
# domain (values picked in one pane combine with *or*, the panes with *and*; *Clear All* resets them), the search
# box filters on any text, and the arrows in a column's header sort by it: the table opens sorted by score, most
# toxic first. It works in this page as it is, without a kernel.

# %% tags=["remove-input", "full-width"]
from unidetox.report.tables import continuations as CT

table = CT.continuation_frame(study.report_runs, prof.eval.scorer, study.second_scorer)
display(HTML(CT.interactive_html(table)))

# %% [markdown]
# ## Live
#
# In a running notebook the cell below shows the controls (it is left out of the book).

# %% tags=["remove-cell"]
prompt_box = widgets.Textarea(value=row.text, placeholder="Type a prompt", layout=widgets.Layout(width="100%"))
pick = widgets.Dropdown(options=[("(your own prompt)", "")] + X.toxigen_choices(report_prompts),
                        description="ToxiGen", layout=widgets.Layout(width="100%"))  # fmt: skip
n_box = widgets.IntSlider(value=samples, min=1, max=X.MAX_SAMPLES, description="samples")
seed_box = widgets.IntText(value=seed, description="seed")
go = widgets.Button(description="Continue", button_style="primary")
result = widgets.HTML()  # set in the kernel, so it needs no output capture by the front end
pick.observe(lambda change: change["new"] and setattr(prompt_box, "value", change["new"]), names="value")


def on_go(_):
    result.value = "<p>continuing…</p>"
    try:
        result.value = X.result_html(explorer.run(prompt_box.value, samples=n_box.value, seed=seed_box.value))
    except X.ExploreError as e:
        result.value = X.error_html(e)


go.on_click(on_go)
display(widgets.VBox([pick, prompt_box, widgets.HBox([n_box, seed_box, go]), result]))
