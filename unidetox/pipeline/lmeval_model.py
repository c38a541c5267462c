"""``--model unidetox`` for lm-evaluation-harness: continuations drawn by unidetox's own sampler, so that the task
``unidetox_toxigen`` (:mod:`unidetox.pipeline.lmeval_task`) gives the numbers of ``unidetox score``, sample for
sample.

lm-eval has no plugin hook for models, so the model is registered when this module is imported; run the harness
through it::

    python -m unidetox.pipeline.lmeval_model --model unidetox --model_args pretrained=MODEL \\
        --include_path "$(unidetox lm-eval-task --profile cpu)" --tasks unidetox_toxigen

(the arguments are lm_eval's own; ``pretrained`` is any unidetox model spec: ``packaged:smollm2-135m``, a local
folder, a Hub id, ``tiny:gpt2``). From Python, import this module before ``lm_eval.simple_evaluate(model=
"unidetox", ...)``.

How the continuations are drawn: lm-eval hands over every doc's request ``repeats`` times; the docs are put back in
task order and cut into the evaluation's units (:func:`unidetox.method.generate.plan_units`), and each unit is
sampled for each seed with the generator of ``(seed, unit)``, k continuations per prompt
(:func:`~unidetox.method.generate.generate_unit`), exactly as the ``evaluate`` stage does. The model is loaded as
that stage loads it (the task's device, ``eval.inference_dtype`` and ``trust_remote_code``); lm_eval's
``--device`` and ``--batch_size`` do not apply, the task's sampling plan does. The model only generates, and only
for the unidetox task: loglikelihood requests are refused.
"""

from __future__ import annotations

import sys

import lm_eval.models  # noqa: F401  (lm-eval's own models: its registry loads them only while it is empty)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from unidetox.measure.lmeval_results import TaskError, doc_settings
from unidetox.method.generate import GenerationSettings, generate_unit, plan_units, unit_generator
from unidetox.models.folder import check_model_spec
from unidetox.models.loading import LoadedModel, load_model, resolve_device
from unidetox.models.precision import inference_dtype

MODEL_NAME = "unidetox"


def cut_at_stops(text: str, until: list[str]) -> str:
    """`text` up to the first occurrence of any stop string (lm-eval's ``until``); unchanged without one."""
    cut = min((i for s in until if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def sampling_settings(task: dict, gen_kwargs: dict, repeats: int) -> GenerationSettings:
    """The sampler's settings for a doc of `task` with lm-eval's `gen_kwargs`: the task's plan, with the values
    lm-eval passes (its ``--gen_kwargs`` may change them); TaskError when they cannot be honoured."""
    k, n_seeds = task["samples_per_prompt"], len(task["seeds"])
    if repeats != k * n_seeds:
        raise TaskError(f"{repeats} samples per prompt asked for; the task draws {n_seeds} seeds x k={k}. Fix: run "
                        "the task folder as written (its `repeats`)")  # fmt: skip
    if not gen_kwargs.get("do_sample", False):
        raise TaskError("the unidetox model samples (do_sample: true); greedy decoding is not the paper's protocol")
    known = {"until", "do_sample", "temperature", "top_p", "top_k", "max_gen_toks"}
    if unknown := sorted(set(gen_kwargs) - known):
        raise TaskError(f"generation settings {unknown} are not supported by the unidetox sampler")
    g = task["generation"]
    return GenerationSettings(
        samples_per_prompt=k,
        max_new_tokens=int(gen_kwargs.get("max_gen_toks", g["max_new_tokens"])),
        temperature=float(gen_kwargs.get("temperature", g["temperature"])),
        top_p=float(gen_kwargs.get("top_p", g["top_p"])),
        top_k=int(gen_kwargs.get("top_k", g["top_k"])),
        batch_size=g["batch_size"],
        prefix=g["prefix"],
    )


def doc_groups(requests: list) -> list[tuple[int, list[int]]]:
    """``[(doc_id, [positions of its requests])]`` in task order (lm-eval repeats each request in place)."""
    groups: dict[int, list[int]] = {}
    for i, req in enumerate(requests):
        groups.setdefault(req.doc_id, []).append(i)
    return sorted(groups.items())


@register_model(MODEL_NAME)
class UnidetoxLM(LM):
    """An lm-eval LM that generates with unidetox's sampler (see the module docstring); `pretrained`: a unidetox
    model spec. Loaded on first use, with the settings of the task it generates for."""

    def __init__(self, pretrained: str, device: str | None = None, batch_size=None, max_batch_size=None, **kwargs):
        super().__init__()
        if kwargs:
            raise TaskError(
                f"unknown --model_args for the unidetox model: {sorted(kwargs)} (it takes pretrained=MODEL)"
            )
        check_model_spec(pretrained, "pretrained")
        self.spec = str(pretrained)
        self._loaded: dict[tuple, LoadedModel] = {}

    def load(self, task: dict) -> LoadedModel:
        """The model as the ``evaluate`` stage loads it for `task` (its device, inference dtype, remote code)."""
        m = task["model_loading"]
        key = (m["device"], m["inference_dtype"], m["trust_remote_code"])
        if key not in self._loaded:
            device = resolve_device(m["device"])
            self._loaded[key] = load_model(self.spec, device=device, dtype=inference_dtype(m["inference_dtype"], device),
                                           trust_remote_code=m["trust_remote_code"])  # fmt: skip
        return self._loaded[key]

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        """One continuation per request; a doc's ``len(seeds) * k`` requests get its continuations seed by seed."""
        from unidetox.measure.evaluate import prompt_budget

        groups = doc_groups(requests)
        first = requests[groups[0][1][0]]
        task = doc_settings(first.doc)
        gen_kwargs = first.args[1]
        settings = sampling_settings(task, dict(gen_kwargs), len(groups[0][1]))
        for _, where in groups:
            req = requests[where[0]]
            if doc_settings(req.doc) is not task or len(where) != len(groups[0][1]) or req.args[1] != gen_kwargs:
                raise TaskError("the unidetox model generates for one unidetox task at a time, with one setting")
        texts = [requests[where[0]].args[0] for _, where in groups]
        lm = self.load(task)
        limit, _ = prompt_budget(lm, texts, settings.prefix, settings.max_new_tokens)
        device = next(lm.model.parameters()).device
        out: list[str] = [""] * len(requests)
        for s, seed in enumerate(task["seeds"]):
            for u, (a, b) in enumerate(plan_units(len(texts), settings)):
                conts = generate_unit(lm.model, lm.tokenizer, texts[a:b], settings, unit_generator(device, seed, u),
                                      max_prompt_tokens=limit)  # fmt: skip
                for (_, where), cs in zip(groups[a:b], conts):
                    k = settings.samples_per_prompt
                    for j, c in enumerate(cs):
                        out[where[s * k + j]] = cut_at_stops(c, list(gen_kwargs.get("until") or []))
        return out

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list:
        raise TaskError("the unidetox lm-eval model only generates; use --model hf for loglikelihood tasks")

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list:
        raise TaskError("the unidetox lm-eval model only generates; use --model hf for loglikelihood tasks")


def main() -> None:
    """lm-eval's command line with the unidetox model registered (``python -m unidetox.pipeline.lmeval_model``)."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv[0] = "lm_eval"
    cli_evaluate()


if __name__ == "__main__":
    main()


__all__ = ["MODEL_NAME", "UnidetoxLM", "cut_at_stops", "doc_groups", "main", "sampling_settings"]
