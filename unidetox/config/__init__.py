"""Typed configuration: one frozen dataclass per stage, grouped in a :class:`Profile`.

Each field's ``metadata["help"]`` says what it means, and ``metadata["choices"]`` the values it takes where they are
fixed (``unidetox settings`` prints them all, with the value in each shipped profile). Reading a profile (YAML +
``--set`` overrides) is :mod:`unidetox.config.loader`. One module per part: ``base`` (profile names, DGHS target
codes, :class:`ConfigError`, the :class:`Settings` base that checks the choices, :func:`to_dict`), ``data``,
``train`` (the fine-tuning loop), ``stages`` (toxic model, distillation, detoxification grid), ``evaluation``,
``scale``, ``study``, ``validity`` and ``profile``; import the names from here. ``compared_methods`` is the registry
of the methods the study compares.

>>> from unidetox.config.loader import load_profile
>>> load_profile("tiny", ["distill.alpha=0.2"]).distill.alpha
0.2
"""

from __future__ import annotations

from unidetox.config.base import DGHS_TARGETS, PROFILES, ConfigError, to_dict
from unidetox.config.base import PROFILE_DIR as PROFILE_DIR
from unidetox.config.base import _check as _check
from unidetox.config.base import replace as replace
from unidetox.config.data import DataConfig
from unidetox.config.evaluation import EvalConfig
from unidetox.config.profile import Profile
from unidetox.config.scale import ScaleConfig
from unidetox.config.stages import GRID_SETTINGS, DetoxConfig, DistillConfig, ToxicModelConfig
from unidetox.config.study import SAFETY_PREPROMPT as SAFETY_PREPROMPT
from unidetox.config.study import StudyConfig
from unidetox.config.train import ADAPTERS, LoraSettings, TrainConfig
from unidetox.config.validity import ValidityConfig

__all__ = [
    "ADAPTERS",
    "DGHS_TARGETS",
    "GRID_SETTINGS",
    "PROFILES",
    "ConfigError",
    "DataConfig",
    "DetoxConfig",
    "DistillConfig",
    "EvalConfig",
    "LoraSettings",
    "Profile",
    "ScaleConfig",
    "StudyConfig",
    "ToxicModelConfig",
    "TrainConfig",
    "ValidityConfig",
    "to_dict",
]
