"""The stage registry: every stage of the run store declared once, as lm-evaluation-harness registers its tasks.

A :class:`Stage` names its folder (``runs/<profile>/<name>/<key>/``), the stages whose keys its key reads
(``inputs``), the data and settings it reads besides (``reads``), what it writes (``outputs``, relative paths;
``<n>`` is a number) and whether its weight folders are reproducible, so that ``unidetox clean`` may remove them once
they were read (``weights``). ``command`` is the help of the CLI command that runs it alone ("" if none).

The registry owns a stage run's life: :meth:`Stage.locate` (its directory, from its configuration and its inputs'
keys), :meth:`Stage.reuse` (a finished run whose outputs are intact), :meth:`Stage.begin`, :meth:`Stage.finish` (the
completion marker) and :func:`restore` (weights that ``clean`` removed, recomputed when a reader needs them). The
module that implements a weights stage registers the pipeline call that made a run with :meth:`Stage.recomputed_by`;
this module imports no stage, so loading a model never imports the stages that load models. ``clean``, ``verify``,
``plan``, ``export-texts`` and the CLI read the table: no other module spells a stage's name.

>>> STAGES["distill"].inputs
('toxic-model',)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unidetox.config import Profile
from unidetox.processes import is_main_process, log, process_state, progress_hidden, release_memory
from unidetox.store.run_store import CLEANED, DONE, StageDir, StoreError, describe_damage, read_json

#: ``recompute(profile, config)``: the directory `profile` maps a run with this config.json ``config`` to (located,
#: nothing run) and the call that makes it, ``run(quiet) -> StageDir``
Recompute = Callable[[Profile, dict], tuple[StageDir, Callable[[bool], StageDir]]]


@dataclass(eq=False)
class Stage:
    """One stage of the run store (see the module docstring)."""

    name: str
    inputs: tuple[str, ...] = ()
    reads: str = ""  # Markdown: settings in backticks
    outputs: tuple[str, ...] = ()
    weights: bool = False
    command: str = ""
    recompute: Recompute | None = field(default=None, repr=False)

    def locate(self, profile: Profile, config: Any, inputs: dict[str, str] | None = None) -> StageDir:
        """The run's directory for `config` and its inputs' keys, located but not created: call :meth:`begin` once
        the run's inputs loaded fine."""
        return StageDir.locate(profile.runs_dir, profile.name, self.name, config, inputs)

    def reuse(self, st: StageDir, what: str = "") -> bool:
        """True (and says so) when the run `st` is finished and its outputs have the sizes DONE recorded.

        A finished run whose outputs are damaged (a file missing or cut short) is reopened: one line says what was
        wrong, the damaged outputs and DONE are removed (by the main process), and the caller runs the stage again,
        resuming from whatever intact work remains. `what`: how the messages name the run (default: the stage).
        """
        if not st.done:
            return False
        what = what or self.name
        problems = st.damage()
        if not problems:
            log(f"{what}: reusing {st.path}")
            return True
        if is_main_process():
            log(f"{what}: {st.path} is damaged ({describe_damage(problems)}); recomputing it")
            st.discard(problems)
        return False

    @staticmethod
    def begin(st: StageDir) -> StageDir:
        """Start writing a run: its directory and config.json; the main process clears stale temporary files. The
        memory of the stages before is released first (:func:`unidetox.processes.release_memory`)."""
        release_memory()
        return st.begin(clean=is_main_process())

    def finish(self, st: StageDir, summary: dict, wrote: Path, what: str = "", *, main_only: bool = False,
               silent: bool = False) -> None:  # fmt: skip
        """Mark the run `st` done (DONE, with `summary` and its outputs' sizes and hashes) and say where its outputs
        went (`wrote`; not when `silent`). `main_only`: under several processes only the main one marks it, and all
        wait for it."""
        if main_only:
            state = process_state()
            if state.is_main_process:
                st.mark_done(summary)
            state.wait_for_everyone()
        else:
            st.mark_done(summary)
        if not silent:
            log(f"{what or self.name}: wrote {wrote}")

    def recomputed_by(self, fn: Recompute) -> Recompute:
        """Decorator: `fn` is how :func:`restore` remakes a run of this stage whose weights ``clean`` removed."""
        self.recompute = fn
        return fn


TOXIC_MODEL = Stage(
    "toxic-model",
    reads="`toxic.base_model`; DGHS hate rows of `toxic.targets`",
    outputs=("final/", "log.jsonl"),
    weights=True,
    command="fine-tune the base model on DGHS hate speech",
)
EXPERT_MODEL = Stage(
    "expert-model",
    reads="`toxic.base_model`; as many DGHS nothate rows (DExperts' expert)",
    outputs=("final/", "log.jsonl"),
    weights=True,
)
DISTILL = Stage(
    "distill",
    inputs=(TOXIC_MODEL.name,),
    reads="`toxic.base_model`; `distill.*`",
    outputs=("texts.jsonl", "texts.csv", "stream.jsonl"),
    command="contrastive decoding of the detoxifying text (runs toxic-model if needed)",
)
SAMPLES = Stage(
    "samples",
    inputs=(TOXIC_MODEL.name,),
    reads="`toxic.base_model` (base samples) or the toxic model (toxic samples); `distill.*`",
    outputs=("texts.jsonl", "texts.csv", "stream.jsonl"),
)
DETOX = Stage(
    "detox",
    inputs=(DISTILL.name, SAMPLES.name),
    reads="a target; `detox.train`; or a text set: the released text, DGHS nothate rows, a user's file",
    outputs=("steps/<n>/", "final/", "log.jsonl"),
    weights=True,
    command=(
        "fine-tune every target on the distilled text over the lr x steps grid; with --target and --texts, "
        "fine-tune one model on a text file or dataset"
    ),
)
EVALUATE = Stage(
    "evaluate",
    inputs=(DETOX.name, TOXIC_MODEL.name, EXPERT_MODEL.name),
    reads="the model (a target as it is, or fine-tuned); ToxiGen prompts; `eval.*`",
    outputs=("generations.jsonl", "perplexity.jsonl", "metrics.csv", "settings.json"),
    command="ToxiGen toxicity, perplexity, Dist-n and MMLU of the candidates",
)
RESCORE = Stage(
    "rescore",
    inputs=(EVALUATE.name,),
    reads="`study.second_scorer`",
    outputs=("generations.jsonl", "metrics.csv", "settings.json"),
)
MMLU = Stage(
    "mmlu",
    inputs=(DETOX.name,),
    reads="the model; MMLU questions; `eval.mmlu_*`",
    outputs=("mmlu.csv", "summary.csv"),
)
STUDY = Stage(
    "study",
    inputs=(EVALUATE.name, RESCORE.name, MMLU.name),
    reads="`study.*`",
    outputs=(
        "validation.csv",
        "report.csv",
        "report_second.csv",
        "mmlu.csv",
        "applicability.csv",
        "selection.csv",
        "*cis*.csv",
        "selection.json",
    ),
)
BUDGET = Stage(
    "budget",
    inputs=(EVALUATE.name,),
    reads="`study.budget_steps`; the study's shared learning rate",
    outputs=("curve.csv", "choice.json"),
)
VALIDITY_CONTINUATIONS = Stage(
    "validity-continuations",
    reads="an untouched target; WikiText-2 test openings (`validity.openings`); `eval.*` sampler, `eval.seeds[0]`",
    outputs=("generations.jsonl",),
)
SCORER_VALIDITY = Stage(
    "scorer-validity",
    inputs=(VALIDITY_CONTINUATIONS.name,),
    reads="`validity.*`; held-out ToxiGen, DGHS test and benign rows; `eval.threshold`; `study.bootstrap`",
    outputs=("scores.csv", "validity.csv", "settings.json"),
)

LM_EVAL_TASK = Stage(
    "lm-eval-task",
    reads="ToxiGen prompts (as `evaluate` selects them); `eval.*` sampler and scorer settings",
    outputs=("docs.jsonl", "unidetox_task.json", "unidetox_toxigen.yaml"),
    command=(
        "write the lm-evaluation-harness task unidetox_toxigen (the evaluation of `unidetox score`, with the same "
        "options) and print its folder, for lm_eval --include_path FOLDER --tasks unidetox_toxigen"
    ),
)

_ORDER = (TOXIC_MODEL, EXPERT_MODEL, DISTILL, SAMPLES, DETOX, EVALUATE, RESCORE, MMLU, STUDY, BUDGET,
          VALIDITY_CONTINUATIONS, SCORER_VALIDITY, LM_EVAL_TASK)  # fmt: skip
#: every stage by name, in the order a pipeline makes them (a stage's inputs come before it)
STAGES: dict[str, Stage] = {s.name: s for s in _ORDER}
#: the stages whose weight folders ``unidetox clean`` may remove
WEIGHT_STAGES = tuple(name for name, s in STAGES.items() if s.weights)


def recompute_call(profile: Profile, stage: Path) -> tuple[StageDir, Callable[[bool], StageDir]]:
    """For the run directory `stage` (``<runs_dir>/<profile>/<stage>/<key>``): the directory `profile` maps the same
    pipeline call to (located; nothing is run) and that call, ``run(quiet)``, read from the run's config.json by the
    call its stage registered (:meth:`Stage.recomputed_by`). :class:`StoreError` when there is none."""
    name = stage.parent.name
    try:
        config = read_json(stage / "config.json")["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(f"{stage}: config.json is missing or unreadable; the stage cannot be recomputed") from None
    declared = STAGES.get(name)
    if declared is None or declared.recompute is None:
        raise StoreError(f"{stage}: a {name} stage cannot be recomputed from a profile")
    try:
        return declared.recompute(profile, config)
    except StoreError as e:  # the run's own reason (e.g. trained on a user's file), with the run named
        raise StoreError(f"{stage}: {e}") from None


def _cleaned_run(path: Path) -> StageDir | None:
    """The finished run whose folder ``unidetox clean`` removed and `path` lies in; None if there is none."""
    for d in path.parents:
        if (d / CLEANED).is_file() and (d / DONE).is_file():
            st = StageDir(path=d, stage=d.parent.name, key=d.name)
            rel = path.relative_to(d).as_posix()
            return st if any(rel == c or rel.startswith(f"{c}/") for c in st.cleaned) else None
    return None


def restore(profile: Profile, spec: str) -> str:
    """`spec`, after recomputing the run it lies in when it is a folder ``unidetox clean`` removed: call before
    loading weights from a run's folder.

    The run is remade by the pipeline call that made it (:func:`recompute_call`) with `profile`: same profile, same
    key, same seed, so the same weights. When `profile` maps that call to another directory (another profile or other
    settings made the run), :class:`StoreError` says so before anything is removed.
    """
    path = Path(spec).resolve()
    st = None if path.exists() else _cleaned_run(path)
    if st is None:
        return spec
    located, run = recompute_call(profile, st.path)
    if located.path.resolve() != st.path:
        raise StoreError(f"{spec} was removed by `unidetox clean`, and profile {profile.name!r} (with its --set "
                         f"values) differs from the one that made it: it maps the stage to {located.path}. Fix: "
                         f"rerun with the profile and settings that made {st.path}")  # fmt: skip
    log(f"{st.stage}: {spec} was removed by `unidetox clean` and is needed: recomputing {st.path}")
    if is_main_process():
        (st.path / DONE).unlink(missing_ok=True)  # first: a kill from here on leaves an unfinished stage
        for rel in [*st.cleaned, "final"]:  # final/ too, or training would return at once
            shutil.rmtree(st.path / rel, ignore_errors=True)
        (st.path / CLEANED).unlink(missing_ok=True)
    process_state().wait_for_everyone()  # no process finds the stage finished and skips the training
    rebuilt = run(progress_hidden())
    if rebuilt.path.resolve() != st.path or not path.exists():
        raise StoreError(f"recomputing {st.path} did not write {spec}. Fix: delete {st.path} and rerun")
    return spec


def stages_markdown() -> str:
    """The registry as a Markdown table: stage, inputs (stages; then what else it reads), outputs, weights."""
    rows = ["| stage | inputs | outputs | reproducible weights (`clean` may remove) |", "|---|---|---|---|"]
    for s in STAGES.values():
        inputs = "; ".join(filter(None, (", ".join(f"`{i}`" for i in s.inputs), s.reads)))
        outputs = ", ".join(f"`{o}`" for o in s.outputs)
        rows.append(f"| `{s.name}` | {inputs} | {outputs} | {'yes' if s.weights else 'no'} |")
    return "\n".join(rows) + "\n"


__all__ = ["STAGES", "WEIGHT_STAGES", "Stage", "recompute_call", "restore", "stages_markdown"]
