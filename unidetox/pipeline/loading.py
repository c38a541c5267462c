"""The models a stage reads, loaded on the profile's device: weights that ``unidetox clean`` removed are recomputed
first (:func:`unidetox.store.registry.restore`); evaluation loads in its own dtype and keeps the shared models and
scorers."""

from __future__ import annotations

from unidetox.config import Profile
from unidetox.models.loading import load_model, resolve_device
from unidetox.pipeline.keys import eval_dtype
from unidetox.store.registry import restore


def load_lm(profile: Profile, spec: str):
    """`spec` (a model spec or a stage's weights folder) for training and distillation: fp32."""
    spec = restore(profile, spec)
    return load_model(spec, device=resolve_device(profile.device), trust_remote_code=profile.trust_remote_code)


def load_eval_lm(profile: Profile, spec: str):
    """:func:`load_lm` in the evaluation dtype (generation, perplexity, MMLU); training and distillation use fp32."""
    spec = restore(profile, spec)
    return load_model(spec, device=resolve_device(profile.device), dtype=eval_dtype(profile),
                      trust_remote_code=profile.trust_remote_code)  # fmt: skip


class EvalModels:
    """The models every evaluation of a study reads again, loaded once: the perplexity judges and the untouched
    targets (``eval.perplexity_model``, ``eval.second_perplexity_model``, ``detox.targets``), and the scorers. Any
    other spec (a fine-tuned model's folder) is loaded afresh by each call, so at most those few models stay in
    memory. Evaluation only reads a model, so sharing one object between stages changes no output."""

    def __init__(self, profile: Profile):
        self.profile = profile
        judges = (profile.eval.perplexity_model, profile.eval.second_perplexity_model)
        self.shared = {*(j for j in judges if j), *profile.detox.targets}
        self._kept: dict = {}

    def load(self, spec: str):
        """:func:`load_eval_lm` of `spec`, from memory when it is one of the shared models."""
        if spec not in self.shared:
            return load_eval_lm(self.profile, spec)
        if spec not in self._kept:
            self._kept[spec] = load_eval_lm(self.profile, spec)
        return self._kept[spec]

    def scorer(self, spec: str):
        """The toxicity scorer `spec` on the profile's device, loaded once (a scorer only reads its weights)."""
        key = ("scorer", spec)
        if key not in self._kept:
            self._kept[key] = load_profile_scorer(self.profile, spec)
        return self._kept[key]


def load_profile_scorer(profile: Profile, spec: str):
    """The toxicity scorer `spec` with the profile's device, scorer batch size and remote-code setting."""
    from unidetox.measure.scorers import load_scorer

    return load_scorer(spec, device=str(resolve_device(profile.device)), batch_size=profile.eval.scorer_batch_size,
                       trust_remote_code=profile.trust_remote_code)  # fmt: skip
