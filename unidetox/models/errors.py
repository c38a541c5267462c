"""The model family's error: :class:`ModelLoadError` (read by the loader and by the tiny test models)."""

from __future__ import annotations

from unidetox.errors import UnidetoxError


class ModelLoadError(UnidetoxError, RuntimeError):
    """A model that cannot be loaded; the message says what to install or where to put files."""
