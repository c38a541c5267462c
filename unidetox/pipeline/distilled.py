"""Text sets sampled from BOS: the contrastive distilled texts (stage 2) and plain base-model samples."""

from __future__ import annotations

import pandas as pd

from unidetox.config import Profile
from unidetox.pipeline.keys import settings_key
from unidetox.pipeline.loading import load_lm
from unidetox.pipeline.toxic import toxic_model
from unidetox.processes import log, process_state, timed
from unidetox.store.jsonl import read_jsonl, write_jsonl
from unidetox.store.registry import DISTILL, SAMPLES, TOXIC_MODEL, Stage
from unidetox.store.run_store import StageDir, check_opened, write_text


def _decode_stage(profile: Profile, stage: Stage, st: StageDir, model: str, toxic: str | None,
                  quiet: bool) -> StageDir:  # fmt: skip
    """Sample ``distill.num_texts`` texts from BOS (contrastive when `toxic` is given) into ``<st>/texts.jsonl``."""
    from unidetox.method import distill as Dist

    state = process_state()
    summary: dict = {}
    with timed(summary):
        base = load_lm(profile, model)
        tox = load_lm(profile, toxic) if toxic is not None else None
        for lm in (base, tox) if tox is not None else (base,):
            Dist.check_length(lm, profile.distill)
        if tox is not None:
            Dist.check_pair(base, tox)
        if state.is_main_process:
            log(f"{st.stage}: texts start from {Dist.start_description(base)} of {model}")
        prefix = base.tokenizer(profile.distill.context, add_special_tokens=False).input_ids
        if profile.distill.context and not prefix:
            raise Dist.DistillError(f"distill.context {profile.distill.context!r} has no tokens in {model}")
        stage.begin(st)
        res = Dist.contrastive_texts(base, tox, profile.distill, st / "stream.jsonl", rank=state.process_index,
                                     world_size=state.num_processes, progress=not quiet and state.is_main_process,
                                     prefix=prefix)  # fmt: skip
        summary.update(tokens=res.tokens_generated, tokens_per_second=res.tokens_generated / max(res.seconds, 1e-9))
    state.wait_for_everyone()
    if state.is_main_process:
        recs = Dist.merge_streams(st / "stream.jsonl", state.num_processes)
        write_jsonl(st / "texts.jsonl", recs)
        write_text(st / "texts.csv", pd.DataFrame({"Text": [r["text"] for r in recs]}).to_csv(index=False))
        summary["n_texts"] = len(recs)
    stage.finish(st, summary, st / "texts.jsonl", main_only=True)
    return st


def distill_stage(profile: Profile, toxic_key: str) -> StageDir:
    """The distill stage's directory for the toxic model of key `toxic_key`, located but not run."""
    config = {"distill": settings_key(profile.distill, "context"), "base_model": profile.toxic.base_model}
    return DISTILL.locate(profile, config, {TOXIC_MODEL.name: toxic_key})


def distill(profile: Profile, *, quiet: bool = False) -> StageDir:
    """Contrastive decoding with the base and toxic models; texts in ``<stage>/texts.jsonl``."""
    tox = toxic_model(profile, quiet=quiet)
    st = distill_stage(profile, tox.key)
    if DISTILL.reuse(st):
        return st
    return _decode_stage(profile, DISTILL, st, profile.toxic.base_model, str(tox.path / "final"), quiet)


def samples_stage(profile: Profile, which: str, toxic_key: str | None = None) -> StageDir:
    """The samples stage's directory (`toxic_key`: the toxic model's key when ``which="toxic"``), located only."""
    if which not in ("base", "toxic"):
        raise ValueError(f"which must be 'base' or 'toxic', not {which!r}")
    config = {
        "distill": settings_key(profile.distill, "context"),
        "base_model": profile.toxic.base_model,
        "which": which,
    }
    return SAMPLES.locate(profile, config, {TOXIC_MODEL.name: toxic_key} if which == "toxic" else None)


def samples(profile: Profile, which: str, *, quiet: bool = False) -> StageDir:
    """Plain samples from BOS of the base (``which="base"``) or toxic model, as many and as long as the distilled text.

    The base samples are the "w/o contrast" ablation's training text; both feed the diagnostics.
    """
    if which not in ("base", "toxic"):
        raise ValueError(f"which must be 'base' or 'toxic', not {which!r}")
    tox = toxic_model(profile, quiet=quiet) if which == "toxic" else None
    st = samples_stage(profile, which, tox.key if tox else None)
    if SAMPLES.reuse(st, f"{SAMPLES.name} {which}"):
        return st
    return _decode_stage(profile, SAMPLES, st, str(tox.path / "final") if tox else profile.toxic.base_model, None,
                         quiet)  # fmt: skip


def distilled_texts(st: StageDir) -> list[str]:
    """The texts of a finished distill/samples stage, checked against the SHA-256 its DONE recorded."""
    from unidetox.method.distill import TEXT_RECORD

    check_opened(st / "texts.jsonl")
    return [r["text"] for r in read_jsonl(st / "texts.jsonl", schema=TEXT_RECORD)]
