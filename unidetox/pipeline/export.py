"""Export distilled text as a Hugging Face ``datasets`` dataset: ``unidetox export-texts --profile P --out DIR``.

The folder holds ``data/train-00000-of-00001.parquet`` (columns ``text``, ``index``, ``n_tokens``) and a dataset
card ``README.md`` whose YAML header declares the Parquet file as the ``train`` split (the layout the Hub's
dataset viewer and ``datasets.load_dataset`` read) and whose body lists every generation setting. It loads with
``datasets.load_dataset("parquet", data_files="DIR/data/*.parquet")`` or, once uploaded, by repo id. The texts
come from the profile's cached ``distill`` (or base ``samples``) stage, which is run first when missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unidetox.config import Profile, to_dict
from unidetox.method.distill import TEXT_RECORD
from unidetox.pipeline.detox_file import check_out
from unidetox.processes import log
from unidetox.report.cards import base_model_info, write_dataset_card
from unidetox.store.jsonl import read_jsonl
from unidetox.store.registry import TOXIC_MODEL
from unidetox.store.run_store import atomic_dir, read_json

PARQUET = "data/train-00000-of-00001.parquet"
WHICH = {"distilled": "distilled by UniDetox's contrastive decoding (base minus toxic model)",
         "base-samples": "sampled from the base model alone (the 'w/o contrast' ablation)"}  # fmt: skip


def export_texts(profile: Profile, out: str | Path, *, which: str = "distilled", quiet: bool = False) -> Path:
    """Write the profile's distilled text (or base samples) as Parquet + dataset card into `out` (new or empty)."""
    from unidetox import pipeline as P
    from unidetox.data.checksums import text_fingerprint

    if which not in WHICH:
        raise ValueError(f"which must be one of {list(WHICH)}, not {which!r}")
    out_dir = check_out(out)
    st = P.distill(profile, quiet=quiet) if which == "distilled" else P.samples(profile, "base", quiet=quiet)
    recs = read_jsonl(st / "texts.jsonl", schema=TEXT_RECORD)
    table = pd.DataFrame({"text": [r["text"] for r in recs], "index": [int(r["index"]) for r in recs],
                          "n_tokens": [int(r.get("n_tokens", -1)) for r in recs]})  # fmt: skip
    base = profile.toxic.base_model
    info = base_model_info(base)
    generation = {"base_model": base, **{f"distill.{k}": v for k, v in to_dict(profile.distill).items()}}
    if which == "distilled":
        tox = _toxic_key(st)
        generation["toxic_model"] = f"{base} fine-tuned on DGHS hate rows ({TOXIC_MODEL.name} stage {tox})"
        generation.update({f"toxic.train.{k}": v for k, v in to_dict(profile.toxic.train).items()
                           if k not in ("checkpoint_every", "log_every")})  # fmt: skip
        generation["toxic.train_splits"] = ", ".join(profile.toxic.train_splits)
    generation["stage_key"] = st.key
    facts = {"name": f"unidetox-{which}-{profile.name}", "what": WHICH[which], "profile": profile.name,
             "n_texts": len(table), "generation": generation, "texts_sha256": text_fingerprint(table.text.tolist()),
             "license": info["license"], "license_note": info["license_note"]}  # fmt: skip
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked); atomic_dir renames the finished folder into its place
    with atomic_dir(out_dir) as tmp:
        (tmp / PARQUET).parent.mkdir(parents=True)
        table.to_parquet(tmp / PARQUET, index=False)
        write_dataset_card(tmp / "README.md", facts)
    log(f"export-texts: wrote {len(table)} texts of {st.path} to {out_dir}")
    return out_dir


def _toxic_key(st) -> str:
    """The key of the toxic-model stage a distill stage read."""
    return read_json(st / "config.json").get("inputs", {}).get(TOXIC_MODEL.name, "?")


__all__ = ["PARQUET", "export_texts"]
