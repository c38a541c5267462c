"""The pipeline call that made a fine-tuning stage, found from the stage's directory: how
:func:`unidetox.pipeline.runtime.restore` recomputes a stage whose weights ``unidetox clean`` removed, with the
caller's profile and no record kept in the process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unidetox.config import Profile
from unidetox.config.compared_methods import FINETUNED
from unidetox.pipeline.detox import detox, detox_stage
from unidetox.pipeline.toxic import expert_model, finetune_stage, toxic_model
from unidetox.store.run_store import StageDir, StoreError, read_json

#: the stages whose weights ``unidetox clean`` removes (:data:`unidetox.pipeline.clean.WEIGHT_STAGES`)
BASE_STAGES = {"toxic-model": toxic_model, "expert-model": expert_model}


def stage_call(profile: Profile, stage: Path) -> tuple[StageDir, Callable[[bool], StageDir]]:
    """For the stage directory `stage` (``<runs_dir>/<profile>/<stage>/<key>``): the directory that `profile` maps
    the same pipeline call to (located; nothing is run, nor any stage it reads) and that call, ``run(quiet)``.

    The call is read from the stage's config.json: toxic-model and expert-model take only the profile; a detox
    stage its target, learning rate, method and steps. A detox stage trained on a user's text file
    (``unidetox detox --texts``) cannot be made from a profile: :class:`StoreError`.
    """
    name = stage.parent.name
    try:
        config = read_json(stage / "config.json")["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(f"{stage}: config.json is missing or unreadable; the stage cannot be recomputed") from None
    if name in BASE_STAGES:
        run = BASE_STAGES[name]
        return finetune_stage(profile, name), lambda quiet: run(profile, quiet=quiet)
    if name == "detox" and config.get("method") in FINETUNED:
        args = (profile, config["target"], config["train"]["learning_rate"])
        kwargs = {"method": config["method"], "steps": tuple(config["steps"])}
        return detox_stage(*args, **kwargs), lambda quiet: detox(*args, **kwargs, quiet=quiet)
    raise StoreError(f"{stage}: a {name} stage of method {config.get('method')!r} cannot be recomputed from a profile")
