"""The one base of every error unidetox raises for its user to act on.

Each layer keeps its own subclass (``ConfigError``, ``StoreError``, ``TrainError`` ...), which also derives from the
builtin it always was (``ValueError`` for bad values, ``RuntimeError`` for failed runs), so code that caught the
builtin still does. The CLI catches ``UnidetoxError`` and prints it as a single ``error:`` line; anything else
reaching the user is a bug and keeps its traceback.
"""

from __future__ import annotations


class UnidetoxError(Exception):
    """An error whose message tells the user what went wrong and how to fix it (never a traceback)."""


__all__ = ["UnidetoxError"]
