"""What every configuration module shares: the profile names, the DGHS target codes, :class:`ConfigError` and
its check, and the conversion of a (nested) configuration dataclass to plain data (what stage keys hash)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unidetox.errors import UnidetoxError

PROFILE_DIR = Path(__file__).parent.parent / "profiles"
PROFILES = ("tiny", "cpu", "paper")

# The 34 DGHS target codes the paper keeps for the toxic model (official code, `wom` = women).
DGHS_TARGETS = (
    "wom", "trans", "gendermin", "bis", "gay", "gay.man", "gay.wom",
    "mixed.race", "ethnic.minority", "indig", "indig.wom", "non.white", "bla", "bla.wom", "bla.man",
    "asi", "asi.wom", "asi.east", "asi.south", "asi.chin", "asi.pak", "arab",
    "eastern.europe", "russian", "pol", "hispanic", "immig", "asylum", "ref", "for",
    "jew", "mus", "mus.wom", "other.religion",
)  # fmt: skip


class ConfigError(UnidetoxError, ValueError):
    """A configuration that cannot be used; the message names the key and how to fix it."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def to_dict(cfg: Any) -> Any:
    """Dataclass (nested) -> plain JSON-able dict/list/scalars."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace that re-runs validation."""
    return dataclasses.replace(cfg, **changes)
