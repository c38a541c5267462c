"""What every configuration module shares: the profile names, the DGHS target codes, :class:`ConfigError` and
its check, :class:`Settings` (the base of every settings dataclass: each field's ``choices`` checked once, here),
and the conversion of a (nested) configuration dataclass to plain data (what stage keys hash)."""

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


def one_of(choices: tuple[str, ...]) -> str:
    """``"a, b or c"``: a field's choices as a message reads them."""
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def check_choices(cfg: Any) -> None:
    """Refuse a field of the dataclass `cfg` whose value (each item, for a list) is not among the ``choices`` of
    its metadata: one line naming the field, the values it takes and the value given."""
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        if choices is None:
            continue
        value = getattr(cfg, f.name)
        several = isinstance(value, (list, tuple))
        bad = [v for v in (value if several else (value,)) if v not in choices]
        if bad:
            raise ConfigError(f"{f.name} must {'each ' if several else ''}be {one_of(choices)}, not {bad[0]!r}")


class Settings:
    """The base of every settings dataclass: once a value is built (or replaced), each field's ``choices`` are
    checked (:func:`check_choices`), then the class's own :meth:`check` (ranges, relations between fields)."""

    def __post_init__(self) -> None:
        check_choices(self)
        self.check()

    def check(self) -> None:
        """The class's own checks beyond the choices (none here)."""


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
