"""The first code cell of every notebook of the book: quiet progress output, then the run's profile.

Each notebook declares ``profile`` and ``overrides`` in its cell tagged ``parameters`` (papermill replaces them
with the profile name and the ``--set key=value`` strings of ``unidetox book``) and then calls::

    from unidetox.report.notebook import setup

    prof = setup(profile, overrides)

>>> setup("tiny", []).name  # doctest: +SKIP
'tiny'
"""

from __future__ import annotations

import warnings
from typing import Any

from unidetox.config import Profile
from unidetox.config.loader import notebook_profile

# tqdm.auto's hint that ipywidgets is missing (it is not needed: the book shows no progress bars)
PROGRESS_WARNING = "IProgress not found"


def quiet_progress() -> None:
    """Hide progress output in the executed notebooks: tqdm's ipywidgets hint and transformers' progress bars
    (e.g. "Loading weights" when a stage has to run inside a notebook)."""
    warnings.filterwarnings("ignore", message=PROGRESS_WARNING)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def setup(profile: str, overrides: Any = ()) -> Profile:
    """Quiet the progress output (:func:`quiet_progress`) and return the Profile the notebook's parameters name.

    `profile`: a profile name (``tiny``, ``cpu``, ``paper``, ...); `overrides`: ``key=value`` strings, as a list
    or the JSON/YAML text papermill's command line passes (see :func:`unidetox.config.loader.notebook_profile`, which
    also points a JupyterLab kernel at the run store of ``make lab``).
    """
    quiet_progress()
    return notebook_profile(profile, overrides)


__all__ = ["PROGRESS_WARNING", "quiet_progress", "setup"]
