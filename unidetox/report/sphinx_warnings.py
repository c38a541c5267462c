"""Sphinx extension of the book: any warning fails the build, however ``jupyter-book build book/`` is called.

Listed in ``_config.yml`` (with ``nitpicky: true``), it makes a plain ``jupyter-book build book/`` behave as
``jupyter-book build book/ -W -n --keep-going``: every warning is reported, and the build then exits non-zero.
"""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> dict[str, Any]:
    """Turn warnings into a failed build at the end (Sphinx's ``-W --keep-going``)."""
    app.keep_going = True  # Sphinx sets statuscode 1 after the build when it counted warnings
    app.warningiserror = False  # with keep_going, Sphinx itself stops raising at the first warning
    return {"parallel_read_safe": True, "parallel_write_safe": True}
