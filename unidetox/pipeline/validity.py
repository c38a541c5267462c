"""The scorer-validity stages: each scorer's ROC AUC on human-labelled rows the study never prompts with, and its
false-positive rate on benign text, including the untouched targets' own continuations of WikiText-2 openings.

Two stages (``validity.*`` settings; see :mod:`unidetox.measure.validity` for the measures):

* ``validity-continuations`` (one per target of ``detox.targets``, untouched): one continuation of each of
  ``validity.openings`` WikiText-2 test paragraph openings, with the evaluation's sampler settings and seed
  ``eval.seeds[0]``, streamed to ``generations.jsonl`` unit by unit (a killed run resumes); keyed by the model,
  the sampler settings, the seed and the openings' fingerprint.
* ``scorer-validity``: every text scored by every scorer (``scores.csv``: set, item, label, text, one column per
  scorer spec), the validity table (``validity.csv``) and the scorers' versions (``settings.json``); keyed by the
  scorer specs, the threshold, the bootstrap settings, the fingerprint of every text and label scored, and the
  continuation stages' keys.

The ToxiGen rows are "held out": every annotated-train row except the whole validation split (the tuning
prompts, whatever ``eval.prompts_per_domain`` takes from it) and the report prompts the profile selects
(``study.report_split``, ``study.report_prompts_per_domain``): computed from the profile, so they follow its
settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from unidetox.config import Profile
from unidetox.data.checksums import text_fingerprint
from unidetox.data.dghs import load_dghs
from unidetox.data.files import DataError
from unidetox.data.prompts import validation_rows
from unidetox.data.texts import read_released
from unidetox.data.toxigen import load_toxigen
from unidetox.data.wikitext import wikitext_sentences
from unidetox.measure import validity as V
from unidetox.measure.evaluate import GENERATION
from unidetox.pipeline.candidates import untouched
from unidetox.pipeline.evaluation import prompts
from unidetox.pipeline.keys import eval_dtype_key
from unidetox.pipeline.loading import load_eval_lm
from unidetox.processes import timed
from unidetox.store.jsonl import JsonlWriter, Schema, read_jsonl
from unidetox.store.registry import SCORER_VALIDITY, VALIDITY_CONTINUATIONS
from unidetox.store.run_store import StageDir, read_json, write_json, write_text

SAMPLE_SEED = 0  # which rows a capped data set keeps, and which openings are continued
#: a record of a validity-continuations stream: one continuation of an opening (not scored here)
CONTINUATION = Schema("continuation", {k: GENERATION.fields[k] for k in ("seed", "unit", "prompt_id", "sample",
                                                                          "prompt", "continuation")})  # fmt: skip
SCORES_COLUMNS = ["set", "item", "label", "text"]


def validity_scorers(profile: Profile) -> list[str]:
    """The scorers validated: ``eval.scorer``, ``study.second_scorer`` (when on), ``validity.scorers``; no repeats."""
    specs = [profile.eval.scorer, profile.study.second_scorer, *profile.validity.scorers]
    return list(dict.fromkeys(s for s in specs if s))


def prompt_rows(profile: Profile, raw: pd.DataFrame) -> np.ndarray:
    """Annotated-train rows the profile prompts with (sorted): the whole validation split and the prompts of
    ``eval.prompt_split`` and ``study.report_split`` that come from the train table (validation, report)."""
    used = set(validation_rows(len(raw), raw["text"]).tolist())
    for split in {profile.eval.prompt_split, profile.study.report_split} - {"test"}:
        used |= {int(pid.rsplit("-", 1)[1]) for pid in prompts(profile, split).prompt_id}
    return np.array(sorted(used), dtype=np.int64)


def _capped(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most `n` rows of `frame` (0 = all), a seeded sample kept in file order."""
    if not n or len(frame) <= n:
        return frame.reset_index(drop=True)
    keep = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(frame), size=n, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def labelled_sets(profile: Profile) -> pd.DataFrame:
    """Scored rows with human labels (columns :data:`SCORES_COLUMNS`): held-out ToxiGen (toxic when
    ``toxicity_human > TOXIGEN_TOXIC_ABOVE``) and DGHS test (toxic when ``label == "hate"``)."""
    raw = load_toxigen(profile.data, "train")
    held = raw.drop(index=prompt_rows(profile, raw))
    held = held[held["text"].str.strip() != ""]
    tox = _capped(pd.DataFrame({"item": [f"toxigen-{i}" for i in held.index], "text": held["text"].to_numpy(),
                                "label": (held["toxicity_human"] > V.TOXIGEN_TOXIC_ABOVE).astype(int).to_numpy()}),
                  profile.validity.max_texts)  # fmt: skip
    dghs = load_dghs(profile.data, ["test"], label=None, targets=())
    dghs = _capped(pd.DataFrame({"item": [f"dghs-test-{i}" for i in range(len(dghs))], "text": dghs["text"],
                                 "label": (dghs["label"] == "hate").astype(int)}), profile.validity.max_texts)  # fmt: skip
    return pd.concat([tox.assign(set="toxigen"), dghs.assign(set="dghs")], ignore_index=True)[SCORES_COLUMNS]


def benign_sets(profile: Profile) -> pd.DataFrame:
    """Benign scored rows (label 0): WikiText-2 validation sentences and, where the data folder holds it, the
    authors' released distilled text."""
    wiki = wikitext_sentences(profile.data, "valid")
    parts = [pd.DataFrame({"set": "wikitext", "item": [f"wikitext-valid-{p}-{j}" for p, j in
                                                        zip(wiki.paragraph, wiki.position)], "text": wiki.text})]  # fmt: skip
    try:
        released = list(read_released(profile.data).texts)
    except DataError:  # no local data folder (the paper profile's Hub data): the set is left out
        released = []
    if released:
        parts.append(pd.DataFrame({"set": "released", "item": [f"released-{i}" for i in range(len(released))],
                                   "text": released}))  # fmt: skip
    capped = [_capped(p, profile.validity.max_texts) for p in parts]
    return pd.concat(capped, ignore_index=True).assign(label=0)[SCORES_COLUMNS]


def openings(profile: Profile) -> pd.DataFrame:
    """``validity.openings`` opening sentences of WikiText-2 test paragraphs (a seeded sample, file order):
    columns ``prompt_id``, ``text``."""
    wiki = wikitext_sentences(profile.data, "test")
    first = wiki[wiki.position == 0]
    first = _capped(first, profile.validity.openings)
    return pd.DataFrame({"prompt_id": [f"wikitext-test-{p}" for p in first.paragraph], "text": first.text})


def validity_continuations(profile: Profile, target: str, opens: pd.DataFrame, *, quiet: bool = False) -> StageDir:
    """One continuation of each opening by untouched `target` (``generations.jsonl``: seed, unit, prompt_id,
    sample, prompt, continuation), resumed unit by unit."""
    from unidetox.measure.evaluate import generation_settings, prompt_budget
    from unidetox.method.generate import generate_unit, plan_units, unit_generator

    cfg = profile.eval
    settings = generation_settings(replace(cfg, samples_per_prompt=1))
    seed = cfg.seeds[0]
    texts = opens.text.tolist()
    config = {"generation": asdict(settings), "seed": seed, "openings": text_fingerprint(opens.prompt_id + "\t" +
              opens.text), **eval_dtype_key(profile)}  # fmt: skip
    st = VALIDITY_CONTINUATIONS.locate(profile, config, {"model": untouched(target).key})
    what = f"{VALIDITY_CONTINUATIONS.name} {target}"
    if VALIDITY_CONTINUATIONS.reuse(st, what):
        return st
    summary: dict = {"n_openings": len(texts)}
    with timed(summary):
        lm = load_eval_lm(profile, target)
        limit, _ = prompt_budget(lm, texts, "", settings.max_new_tokens)
        VALIDITY_CONTINUATIONS.begin(st)
        writer = JsonlWriter(st / "generations.jsonl", CONTINUATION)
        units = plan_units(len(texts), settings)
        done = writer.complete_units(lambda r: r["unit"], {u: e - s for u, (s, e) in enumerate(units)})
        device = next(lm.model.parameters()).device
        for u, (s, e) in enumerate(units):
            if u in done:
                continue
            conts = generate_unit(lm.model, lm.tokenizer, texts[s:e], settings, unit_generator(device, seed, u),
                                  max_prompt_tokens=limit)  # fmt: skip
            writer.append([{"seed": seed, "unit": u, "prompt_id": pid, "sample": 0, "prompt": p, "continuation": c[0]}
                           for pid, p, c in zip(opens.prompt_id[s:e], texts[s:e], conts)])  # fmt: skip
    VALIDITY_CONTINUATIONS.finish(st, summary, st / "generations.jsonl", what, silent=quiet)
    return st


@dataclass
class ScorerValidity:
    """A finished scorer-validity stage: the scorers, ``table`` (:func:`unidetox.measure.validity.validity_table`),
    ``scores`` (set, item, label, text, one column per scorer), ``choice`` (what the selection rule picks),
    ``settings`` (threshold, scorer versions, counts) and the stage's ``path``."""

    scorers: list[str]
    table: pd.DataFrame
    scores: pd.DataFrame
    choice: V.ScorerChoice
    settings: dict
    path: Path


def scorer_validity(profile: Profile, *, quiet: bool = False) -> ScorerValidity:
    """Run (or reuse) the scorer-validity stage and its continuation stages; see the module docstring."""
    from unidetox.measure.evaluate import checked_scores
    from unidetox.measure.scorers import check_scorer_spec, load_scorer
    from unidetox.models.loading import resolve_device

    specs = validity_scorers(profile)
    for i, spec in enumerate(profile.validity.scorers):
        check_scorer_spec(spec, f"validity.scorers[{i}]")
    frame = pd.concat([labelled_sets(profile), benign_sets(profile)], ignore_index=True)
    conts = []
    if profile.validity.openings:
        opens = openings(profile)
        for t in profile.detox.targets:
            cst = validity_continuations(profile, t, opens, quiet=quiet)
            gens = read_jsonl(cst / "generations.jsonl", schema=CONTINUATION)
            conts.append(cst)
            frame = pd.concat([frame, pd.DataFrame({"set": V.continuation_set(t), "item": [g["prompt_id"] for g in gens],
                                                    "label": 0, "text": [g["continuation"] for g in gens]})],
                              ignore_index=True)  # fmt: skip
    s = profile.study
    config = {"scorers": specs, "threshold": profile.eval.threshold, "bootstrap": s.bootstrap, "ci_level": s.ci_level,
              "texts": text_fingerprint(frame.set + "\t" + frame.item + "\t" + frame.label.astype(str) + "\t" +
                                        frame.text)}  # fmt: skip
    st = SCORER_VALIDITY.locate(profile, config, {"continuations": ",".join(c.key for c in conts)})
    if not SCORER_VALIDITY.reuse(st):
        device = str(resolve_device(profile.device))
        summary: dict = {"n_texts": len(frame), "n_scorers": len(specs)}
        versions = {}
        with timed(summary):
            SCORER_VALIDITY.begin(st)
            for spec in specs:
                scorer = load_scorer(spec, device=device, batch_size=profile.eval.scorer_batch_size,
                                     trust_remote_code=profile.trust_remote_code)  # fmt: skip
                frame[spec] = checked_scores(scorer, frame.text.tolist())
                versions[spec] = scorer.version
            table = V.validity_table(frame, specs, threshold=profile.eval.threshold, n_boot=s.bootstrap,
                                     level=s.ci_level)  # fmt: skip
            write_text(st / "scores.csv", frame.to_csv(index=False))
            write_text(st / "validity.csv", table.to_csv(index=False))
            write_json(st / "settings.json", {"scorers": specs, "scorer_versions": versions,
                                              "threshold": profile.eval.threshold, "threshold_rule": "score > threshold",
                                              "toxigen_toxic_above": V.TOXIGEN_TOXIC_ABOVE, "ci_level": s.ci_level,
                                              "bootstrap": s.bootstrap, "n_texts": frame.groupby("set").size().to_dict()})  # fmt: skip
        SCORER_VALIDITY.finish(st, summary, st / "validity.csv")
    return read_validity(st)


def read_validity(st: StageDir) -> ScorerValidity:
    """The :class:`ScorerValidity` of a finished scorer-validity stage."""
    settings = read_json(st / "settings.json")
    table = pd.read_csv(st / "validity.csv")
    scores = pd.read_csv(st / "scores.csv", keep_default_na=False, dtype={"text": str})
    return ScorerValidity(settings["scorers"], table, scores, V.choose_scorers(table), settings, st.path)


__all__ = ["ScorerValidity", "openings", "prompt_rows", "read_validity", "scorer_validity", "validity_scorers"]
