"""The scale layer's one error: a plan that refuses a stage, or a model whose shape is unknown."""

from __future__ import annotations

from unidetox.errors import UnidetoxError


class PlanError(UnidetoxError, RuntimeError):
    """A stage that cannot run on the planned hardware, or a model whose shape is unknown; with the fix."""


__all__ = ["PlanError"]
