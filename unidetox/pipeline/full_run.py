"""Everything the book reads, in the order it is made: the study, the budget curve (when on), the scorers' validity
(when on), the toxic-model diagnostics and the text sets (``unidetox pipeline``; the reproducibility notebook calls
it to reuse them)."""

from __future__ import annotations

from unidetox.config import Profile
from unidetox.pipeline.budget import budget_curve, budgets
from unidetox.pipeline.study import Study, study, text_sets, toxic_vs_base
from unidetox.pipeline.validity import scorer_validity


def run_all(profile: Profile, *, quiet: bool = False) -> Study:
    """Everything the book reads: the study, the budget curve (when on), the scorers' validity (when on), the
    toxic-model diagnostics, the text sets."""
    out = study(profile, quiet=quiet)
    if budgets(profile):
        budget_curve(profile, quiet=quiet)
    if profile.validity.enabled:
        scorer_validity(profile, quiet=quiet)
    toxic_vs_base(profile, quiet=quiet)
    text_sets(profile, quiet=quiet)
    return out
