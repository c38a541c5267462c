"""The models the study compares: untouched, toxic, pre-prompted and DExperts candidates."""

from __future__ import annotations

from dataclasses import dataclass

from unidetox.config import Profile
from unidetox.pipeline.toxic import expert_model, toxic_model
from unidetox.store.registry import TOXIC_MODEL


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: a target as it is, one of its fine-tuned checkpoints, or a decoding-time method."""

    target: str
    method: str  # "none" | "unidetox" | "toxic" | a baseline's name
    lr: float | None
    steps: int | None
    path: str  # spec or directory to load
    key: str  # identity used in stage keys
    prefix: str = ""  # prepended to every prompt at generation time (safety pre-prompt)
    expert: str = ""  # DExperts: expert and anti-expert model paths
    antiexpert: str = ""
    hparam: float | None = None  # DExperts' lambda
    selection: str = ""  # "transferred" | "oracle" | "" (how its configuration was chosen)

    def labels(self) -> dict:
        return {"target": self.target, "method": self.method, "lr": self.lr, "steps": self.steps,
                "hparam": self.hparam, "selection": self.selection}  # fmt: skip


def untouched(target: str) -> Candidate:
    return Candidate(target, "none", None, None, target, target)


def toxic_candidate(profile: Profile, *, quiet: bool = False) -> Candidate:
    """The toxic model as a candidate (diagnostics: is it more toxic than the base?)."""
    st = toxic_model(profile, quiet=quiet)
    return Candidate(
        profile.toxic.base_model, "toxic", None, None, str(st.path / "final"), f"{TOXIC_MODEL.name}/{st.key}"
    )


def preprompt(profile: Profile, target: str) -> Candidate:
    """The safety pre-prompt baseline: `target` untouched, ``study.preprompt`` before every prompt."""
    return Candidate(target, "preprompt", None, None, target, target, prefix=profile.study.preprompt)


def dexperts(profile: Profile, target: str, strength: float, *, selection: str = "", quiet: bool = False) -> Candidate:
    """DExperts on `target`: expert = base fine-tuned on nothate rows, anti-expert = the toxic model."""
    exp, tox = expert_model(profile, quiet=quiet), toxic_model(profile, quiet=quiet)
    key = f"dexperts/{target}/{exp.key}/{tox.key}/{strength!r}"
    return Candidate(target, "dexperts", None, None, target, key, expert=str(exp.path / "final"),
                     antiexpert=str(tox.path / "final"), hparam=strength, selection=selection)  # fmt: skip


def dexperts_applies(profile: Profile, target: str) -> bool:
    """DExperts needs the target to share the base model's tokenizer (its experts are fine-tuned from the base)."""
    from unidetox.models.loading import load_tokenizer, same_tokenizer

    return same_tokenizer(load_tokenizer(target), load_tokenizer(profile.toxic.base_model))
