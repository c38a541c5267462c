"""Reading a profile: a YAML file (or a shipped name) plus ``--set key=value`` overrides into a typed
:class:`~unidetox.config.Profile`. This is the one parser: the CLI, the book and the notebooks all call
:func:`load_profile` (or :func:`notebook_profile`, which reads papermill's parameters and then calls it).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from unidetox.config import (
    GRID_SETTINGS,
    PROFILE_DIR,
    PROFILES,
    ConfigError,
    Profile,
    TrainConfig,
    _check,  # fmt: skip
)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        _check(isinstance(value, (list, tuple)), f"{key} must be a list, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, dict), f"{key} must be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        _check(isinstance(value, bool), f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML reads "1e-5" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool), f"{key} must be a number, got {value!r}"
        )
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        _check(math.isfinite(number), f"{key} must be a finite number, got {_short(value)}")
        return number
    if tp is str:
        _check(isinstance(value, str), f"{key} must be a string, got {_short(value)}")
        _check("\x00" not in value, f"{key} must not hold a NUL character, got {_short(value)}")
        bad = next((c for c in value if "\ud800" <= c <= "\udfff"), None)
        _check(bad is None, f"{key} must be UTF-8 text: it holds the lone surrogate U+{ord(bad or ' '):04X} (bytes that "
                            f"are not UTF-8, e.g. in a path), got {_short(value)}")  # fmt: skip
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _short(value: Any, most: int = 80) -> str:
    """`value` as a message shows it: its repr, cut to `most` characters."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def _unknown_key(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return ConfigError(f"unknown configuration key {key!r}{hint}")


#: how YAML 1.1 spells its booleans: a setting whose choices hold one of these gets it back as that word
YAML_WORDS = {False: ("off", "false", "no"), True: ("on", "true", "yes")}


def _as_choice(value: Any, field: dataclasses.Field) -> Any:
    """YAML reads ``off`` as false: for a setting with ``choices`` (e.g. ``eval.chat_template: off|auto``) a boolean
    becomes the one choice YAML would have read as it."""
    choices = field.metadata.get("choices", ())
    if isinstance(value, bool):
        words = [c for c in choices if str(c).lower() in YAML_WORDS[value]]
        if len(words) == 1:
            return words[0]
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(prefix + key, names)
        kwargs[key] = _coerce(_as_choice(value, fields[key]), hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ConfigError as e:  # name the section of a nested check: "toxic.train.max_steps ...", "toxic.train: set ..."
        section, text = prefix.rstrip("."), str(e)
        if section and not text.startswith(section):
            field_first = text.split(" ", 1)[0] in names
            raise ConfigError(f"{section}.{text}" if field_first else f"{section}: {text}") from None
        raise


def _set_path(tree: dict, dotted: str, value: Any, cls: type) -> None:
    parts = dotted.split(".")
    node, tp = tree, cls
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []
        if part not in names:
            raise _unknown_key(".".join(parts[: i + 1]), names)
        sub_tp = typing.get_type_hints(tp)[part]
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            tp = sub_tp
            _check(isinstance(node, dict), f"{'.'.join(parts[: i + 1])} must be a mapping, got {node!r} (from an "
                                           f"earlier override), so {dotted} cannot be set")  # fmt: skip


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=value' -> ('a.b', YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. distill.alpha=0.1")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: cannot parse the value ({e})") from None
    return key.strip(), value


def profile_path(name: str) -> Path:
    """A profile name (tiny|cpu|paper) or a path to a YAML file."""
    if name in PROFILES:
        return PROFILE_DIR / f"{name}.yaml"
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise ConfigError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)} or a path to a YAML file")


RUNS_DIR_ENV = "UNIDETOX_RUNS_DIR"  # the run store of notebooks opened in JupyterLab (see notebook_profile)


def _read_tree(path: Path) -> dict:
    """The mapping of a YAML profile; a ``name:`` key is refused (a profile is named after its file)."""
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"profile {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"profile {path} is not valid YAML: {e}") from None
    _check(isinstance(tree, dict), f"profile {path} must be a mapping")
    _check(
        "name" not in tree,
        f"profile {path} has a 'name:' line: remove it; a profile is named after its file ({path.stem!r}), "
        "which names its run store under runs_dir",
    )
    return tree


def _build(tree: dict, path: Path) -> Profile:
    """The Profile of a tree. detox.train's learning_rate and max_steps are the grid's first rate and last step: the
    detox stage sets them for each run, so a value given for them would be ignored and is refused instead."""
    detox = tree.get("detox")
    train = detox.pop("train", {}) if isinstance(detox, dict) else {}
    _check(isinstance(train, dict), f"detox.train must be a mapping, got {train!r}")
    dead = [k for k in GRID_SETTINGS if k in train]
    names = " and ".join(f"detox.train.{k}" for k in dead)
    _check(
        not dead,
        f"{names} cannot be set: each detox run takes its learning rate from detox.learning_rates and its steps "
        f"from detox.steps. Fix: remove {names}; set {' and '.join(GRID_SETTINGS[k] for k in dead)} instead",
    )
    try:
        profile = from_dict(Profile, tree)
    except TypeError as e:  # a missing required field
        raise ConfigError(f"profile {path}: {e}") from None
    grid = {"learning_rate": profile.detox.learning_rates[0], "max_steps": profile.detox.steps[-1]}
    train_cfg = _coerce({**train, **grid}, TrainConfig, "detox.train")
    return dataclasses.replace(profile, detox=dataclasses.replace(profile.detox, train=train_cfg))


def load_profile(name: str = "tiny", overrides: list[str] | tuple[str, ...] = ()) -> Profile:
    """Load a profile by name or YAML path and apply `key=value` overrides: the one parser of profiles.

    The profile is named after what was asked for: tiny, cpu or paper, or the YAML file's stem; its run store is
    ``<runs_dir>/<name>``.
    """
    path = profile_path(name)
    tree = {"name": name if name in PROFILES else path.stem, **_read_tree(path)}
    for text in overrides:
        key, value = parse_override(text)
        _set_path(tree, key, value, Profile)
    return _build(tree, path)


def parse_overrides(overrides: Any) -> list[str]:
    """A notebook's ``overrides`` parameter as a list of ``key=value`` strings.

    `overrides` may be a list, or a string as ``papermill -p`` passes it: a YAML/JSON list
    (``'["eval.seeds=[1]"]'``), one ``key=value``, or '' for none.
    """
    if isinstance(overrides, str):
        text = overrides.strip()
        if not text:
            return []
        if not text.startswith("["):
            return [text]
        try:
            overrides = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"notebook parameter overrides={text!r} is not a list: {e}") from None
    if not isinstance(overrides, (list, tuple)) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"notebook parameter overrides must be a list of key=value strings, got {overrides!r}")
    return list(overrides)


def notebook_profile(profile: str, overrides: Any = (), environ: Mapping[str, str] | None = None) -> Profile:
    """The profile a notebook's ``profile``/``overrides`` parameters name (see :func:`parse_overrides`).

    A kernel started by JupyterLab runs in ``notebooks/``, not in the repository root where the relative
    ``runs_dir`` lives: ``$UNIDETOX_RUNS_DIR`` (which ``make lab`` sets to the repository's ``runs/``) then
    names the run store, unless the overrides set ``runs_dir`` themselves. `environ`: default ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    items = parse_overrides(overrides)
    if environ.get(RUNS_DIR_ENV):
        items = [f"runs_dir={json.dumps(environ[RUNS_DIR_ENV])}", *items]
    return load_profile(profile, items)


__all__ = [
    "RUNS_DIR_ENV",
    "from_dict",
    "load_profile",
    "notebook_profile",
    "parse_override",
    "parse_overrides",
    "profile_path",
]
