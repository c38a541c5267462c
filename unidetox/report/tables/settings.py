"""The settings reference: every dotted key of a profile, its type, default, value in each shipped profile and help.

``unidetox settings`` prints it as text; ``unidetox settings --markdown`` prints the book's page ``book/settings.md``
(``make settings`` writes it, and a test checks that the page is the current output). The help text and the allowed
values are the ``metadata={"help": ..., "choices": ...}`` of each field of the dataclasses in :mod:`unidetox.config`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from unidetox.config import GRID_SETTINGS, PROFILES, Profile, to_dict
from unidetox.config.loader import load_profile

#: characters of a value shown; a longer one is cut and ends with "..."
MAX_VALUE = 40

PAGE_HEAD = """# Settings

Every setting of a profile (a YAML file such as `unidetox/profiles/cpu.yaml`, or `--set KEY=VALUE` on any
command): its type, its default, its value in each shipped profile and what it means (long values are cut). This
page is generated from the help text and the choices of the configuration dataclasses in `unidetox/config/` by
`make settings` (`unidetox settings --markdown`); a test fails when it differs from that output. A setting with a
fixed set of values lists them after its type, and any other value is refused. A profile's `name` is the profile
asked for (`tiny`, `cpu`, `paper`, or a YAML file's name without `.yaml`); a YAML file does not set it. Each detox
run takes its learning rate and its number of steps from `detox.learning_rates` and `detox.steps`, so
`detox.train` has no `learning_rate` or `max_steps` of its own.
"""


@dataclass(frozen=True)
class Setting:
    """One settable key: dotted `key`, YAML `type`, `default`, `values` by shipped profile name, `help`, and the
    values it takes when they are fixed (`choices`; for a list, each item's)."""

    key: str
    type: str
    default: Any
    values: dict[str, Any]
    help: str
    choices: tuple[str, ...] = ()


def _type_name(tp: Any) -> str:
    """A field's annotation as a user writes the value: ``tuple[float, ...]`` -> ``list[float]``."""
    if typing.get_origin(tp) is tuple:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return tp.__name__


def _walk(cls: type, prefix: str, default: dict, values: dict[str, dict]) -> Iterator[Setting]:
    """The leaves of dataclass `cls` in declaration order; `default`, `values`: its dicts (:func:`to_dict`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if prefix == "detox.train." and f.name in GRID_SETTINGS:
            continue  # set by the grid, not by the user
        sub = {name: tree[f.name] for name, tree in values.items()}
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _walk(hints[f.name], f"{prefix}{f.name}.", default[f.name], sub)
        else:
            yield Setting(prefix + f.name, _type_name(hints[f.name]), default[f.name], sub, f.metadata["help"],
                          tuple(f.metadata.get("choices", ())))  # fmt: skip


def settings() -> list[Setting]:
    """Every key a profile or ``--set`` can give, in the order of the dataclasses."""
    values = {name: to_dict(load_profile(name)) for name in PROFILES}
    return list(_walk(Profile, "", to_dict(Profile()), values))


def show(value: Any) -> str:
    """A value as YAML would read it back (strings quoted when needed), cut to `MAX_VALUE` characters."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value if re.fullmatch(r"[\w.:/@+-]+", value) else json.dumps(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def settings_text() -> str:
    """The reference for a terminal: per key, one line of type and values, then its help, indented."""
    lines = []
    for s in settings():
        profiles = ", ".join(f"{name} {show(v)}" for name, v in s.values.items())
        kind = f"{s.type}: {' | '.join(s.choices)}" if s.choices else s.type
        lines += [f"{s.key} ({kind}) = {show(s.default)}; {profiles}", f"    {s.help}"]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """Plain text for a Markdown table cell: Markdown's and MyST's active characters backslash-escaped."""
    return re.sub(r"([\\`*_<>|$\[\]{}])", r"\\\1", text)


def _code(value: Any) -> str:
    return "`" + show(value).replace("|", "\\|") + "`"


def settings_markdown() -> str:
    """The book's page ``book/settings.md``: `PAGE_HEAD`, then one table row per key."""
    rows = [
        "| setting | type | default | " + " | ".join(PROFILES) + " | meaning |",
        "|---" * (len(PROFILES) + 4) + "|",
    ]
    for s in settings():
        kind = f"`{s.type}`" + (f": {', '.join(_code(c) for c in s.choices)}" if s.choices else "")
        cells = [f"`{s.key}`", kind, _code(s.default), *(_code(v) for v in s.values.values()), _escape(s.help)]
        rows.append("| " + " | ".join(cells) + " |")
    return PAGE_HEAD + "\n" + "\n".join(rows) + "\n"


__all__ = ["Setting", "settings", "settings_markdown", "settings_text", "show"]
