"""The lm-evaluation-harness task ``unidetox_toxigen``: ``unidetox lm-eval-task --profile P`` writes it and prints
its folder, for ``lm_eval --include_path <folder> --tasks unidetox_toxigen``.

lm-eval's own ``toxigen`` task classifies statements; this one is the paper's generative protocol, exactly as
``unidetox score`` runs it (same options: ``--split --k --seeds --scorer --prompts-per-domain``):

* docs: the ToxiGen prompts that the ``evaluate`` stage reads (:func:`unidetox.pipeline.evaluation.prompts`: same
  split, per-domain subsample and seed, from the profile's data settings), in the same order, as ``docs.jsonl``;
* ``repeats`` = ``len(eval.seeds) * k`` continuations per prompt, sampled with the profile's temperature, top-p,
  top-k and ``max_new_tokens``, nothing stripped or stopped but at the end-of-text token;
* scoring and aggregation by :mod:`unidetox.measure.lmeval_results`: ``eval.scorer``, then TP and EMT by domain
  group (in- and out-of-distribution and each domain), seed means, as ``unidetox score`` prints them.

``--model unidetox`` (:mod:`unidetox.pipeline.lmeval_model`) samples through unidetox's own sampler with the
evaluation's per-unit seeding, so it draws the very continuations of ``unidetox score``; lm-eval's ``--model hf``
samples with its own random stream, so it agrees statistically (within the bootstrap interval) only.

The folder is a stage of the run store (:data:`unidetox.store.registry.LM_EVAL_TASK`, keyed by the settings and
the prompts), written atomically. Its YAML names the docs by absolute path: write the task again rather than moving it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

from unidetox.config import Profile
from unidetox.data.checksums import data_files, text_fingerprint
from unidetox.measure.lmeval_results import (
    GROUPS,
    TASK_FILE,
    TASK_VERSION,
    aggregation_function,
    metric_name,
)
from unidetox.measure.metrics import TOXICITY_METRICS
from unidetox.models.loading import resolve_device
from unidetox.pipeline.evaluation import prompts, prompts_per_domain
from unidetox.store.jsonl import write_jsonl
from unidetox.store.registry import LM_EVAL_TASK
from unidetox.store.run_store import write_json, write_text

TASK_NAME = "unidetox_toxigen"
YAML_FILE = f"{TASK_NAME}.yaml"
DOCS_FILE = "docs.jsonl"
PROCESS_RESULTS = "unidetox.measure.lmeval_results.process_results"


def task_settings(profile: Profile, split: str, n_prompts: int, prompts_sha256: str) -> dict:
    """What ``unidetox_task.json`` records: the sampling plan (read by the unidetox lm-eval model), the scoring
    (read by the task's functions) and the settings that move the numbers (as ``unidetox score`` records them)."""
    from unidetox.measure.evaluate import generation_settings

    cfg = dataclasses.replace(profile.eval, prompt_split=split, prompts_per_domain=prompts_per_domain(profile, split))
    loading = {"device": profile.device, "inference_dtype": cfg.inference_dtype,
               "trust_remote_code": profile.trust_remote_code}  # fmt: skip
    scoring = {"scorer": cfg.scorer, "threshold": cfg.threshold, "threshold_rule": "score > threshold",
               "device": str(resolve_device(profile.device)), "batch_size": cfg.scorer_batch_size,
               "trust_remote_code": profile.trust_remote_code}  # fmt: skip
    return {
        "version": TASK_VERSION,
        "task": TASK_NAME,
        "profile": profile.name,
        "split": split,
        "prompts_per_domain": cfg.prompts_per_domain,
        "n_prompts": n_prompts,
        "prompts_sha256": prompts_sha256,
        "seeds": list(cfg.seeds),
        "samples_per_prompt": cfg.samples_per_prompt,
        "generation": asdict(generation_settings(cfg)),
        "model_loading": loading,
        "scoring": scoring,
        "data_files": data_files(profile.data, ("toxigen",)),
    }


def task_yaml(settings: dict, docs: Path) -> str:
    """The lm-eval task configuration (YAML; JSON scalars are YAML scalars) for a folder with these settings."""
    g, n = settings["generation"], len(settings["seeds"]) * settings["samples_per_prompt"]
    metrics = []
    for m in TOXICITY_METRICS:
        for group in GROUPS:
            metrics += [f"  - metric: {metric_name(m, group)}", f"    aggregation: !function {aggregation_function(m, group)}",
                        "    higher_is_better: false"]  # fmt: skip
    meta = {k: settings[k] for k in ("profile", "split", "prompts_per_domain", "n_prompts", "prompts_sha256", "seeds",
                                     "samples_per_prompt")}  # fmt: skip
    meta["scorer"] = settings["scoring"]["scorer"]
    lines = [
        f"# Written by `unidetox lm-eval-task --profile {settings['profile']}`: ToxiGen prompts continued and scored",
        "# for toxicity as `unidetox score` does (TP and EMT by domain). Settings: unidetox_task.json beside this file.",
        f"task: {TASK_NAME}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(docs))}",
        "test_split: test",
        "output_type: generate_until",
        "doc_to_text: text",  # a column name: the prompt exactly as it is, nothing added or stripped
        'doc_to_target: ""',
        'target_delimiter: ""',
        f"repeats: {n}  # len(seeds) x k: {len(settings['seeds'])} x {settings['samples_per_prompt']}",
        "generation_kwargs:",
        "  until: []  # stop at the end-of-text token only, as unidetox's sampler",
        "  do_sample: true",
        f"  temperature: {json.dumps(float(g['temperature']))}",
        f"  top_p: {json.dumps(float(g['top_p']))}",
        f"  top_k: {json.dumps(int(g['top_k']))}",
        f"  max_gen_toks: {json.dumps(int(g['max_new_tokens']))}",
        "filter_list:  # keep every continuation (lm-eval's default filter keeps the first only)",
        "  - name: none",
        "    filter:",
        "      - function: take_first_k",
        f"        k: {n}",
        f"process_results: !function {PROCESS_RESULTS}",
        "metric_list:",
        *metrics,
        "metadata:",
        "  version: 1.0",
        f"  unidetox: {json.dumps(meta)}",
        "",
    ]
    return "\n".join(lines)


def write_lm_eval_task(profile: Profile, *, split: str | None = None) -> Path:
    """The folder of the ``unidetox_toxigen`` task for `profile` (and `split`, default ``eval.prompt_split``):
    written once per settings and prompts, reused afterwards."""
    split = split or profile.eval.prompt_split
    ps = prompts(profile, split)
    fingerprint = text_fingerprint(ps.prompt_id + "\t" + ps.text)
    settings = task_settings(profile, split, len(ps), fingerprint)
    st = LM_EVAL_TASK.locate(profile, {k: v for k, v in settings.items() if k != "data_files"})
    if LM_EVAL_TASK.reuse(st):
        return st.path.resolve()
    LM_EVAL_TASK.begin(st)
    folder = st.path.resolve()
    docs = [{"prompt_id": r.prompt_id, "text": r.text, "domain": r.domain, "target_group": r.target_group,
             "unidetox_task": str(folder / TASK_FILE)} for r in ps.itertuples()]  # fmt: skip
    write_jsonl(folder / DOCS_FILE, docs)
    write_json(folder / TASK_FILE, settings)
    write_text(folder / YAML_FILE, task_yaml(settings, folder / DOCS_FILE))
    LM_EVAL_TASK.finish(st, {"n_prompts": len(ps)}, folder)
    return folder


__all__ = ["DOCS_FILE", "TASK_NAME", "YAML_FILE", "task_settings", "task_yaml", "write_lm_eval_task"]
