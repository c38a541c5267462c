"""What kind of text each distillation variant produces (issue 18, item 1): English prose, code or markup, ...

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/distill_variants.py --profile cpu --set runs_dir=/tmp/runs \\
        --num-texts 16 --variants released,base,toxic,default,len128,alpha0.2,alpha0.5,para \\
        --out benchmarks/results/distill_variants.csv --contrast-out benchmarks/results/contrast_by_type.csv

Every text set goes through the real stages of :mod:`unidetox.pipeline` (``toxic_model``, ``distill``,
``samples``; cached in the run store, the toxic model shared by every variant with the same base). The ``para``
variants set ``distill.context`` to a paragraph break: both models read BOS + "\\n\\n" before the first sampled
token; the score of every sampled token is unchanged. All variants use the same seed.

One table row per text set: n_texts, mean words, the share of each text type (:mod:`unidetox.analysis.texttype`) and two
example texts (first 100 characters). With ``--contrast-out`` it also measures the hypothesis of the issue: the
mean per-token ``log p_base - log p_toxic`` (:func:`unidetox.measure.contrast.contrast_per_token`) of the shipped labelled
texts of each type and of released texts, for the base/toxic pair of the profile.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import pandas as pd

from unidetox import pipeline as P
from unidetox.analysis.texttype import TEXT_TYPES, labelled_examples, text_type_shares
from unidetox.config.loader import load_profile
from unidetox.data.files import resolve_data_dir
from unidetox.pipeline.loading import load_lm

PARA = 'distill.context="\\n\\n"'  # both models read BOS + a paragraph break before the first sampled token
# name -> (kind, extra --set overrides). kind: contrast | base | toxic | released
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "released": ("released", ()),
    "base": ("base", ()),
    "toxic": ("toxic", ()),
    "default": ("contrast", ()),
    "len128": ("contrast", ("distill.max_new_tokens=128",)),
    "base-len128": ("base", ("distill.max_new_tokens=128",)),
    "alpha0.2": ("contrast", ("distill.alpha=0.2",)),
    "alpha0.5": ("contrast", ("distill.alpha=0.5",)),
    "alpha0.5-len128": ("contrast", ("distill.alpha=0.5", "distill.max_new_tokens=128")),
    "para": ("contrast", (PARA,)),
    "base-para": ("base", (PARA,)),
    "para-alpha0.5": ("contrast", ("distill.alpha=0.5", PARA)),
    "para-len128": ("contrast", ("distill.max_new_tokens=128", PARA)),
    "gemma-para": ("contrast", ("toxic.base_model=packaged:gemma3-270m", PARA)),
    "gemma": ("contrast", ("toxic.base_model=packaged:gemma3-270m",)),
    "gemma-base": ("base", ("toxic.base_model=packaged:gemma3-270m",)),
}


def released_texts(profile) -> list[str]:
    """The authors' released distilled text (GPT-2 XL), column ``Text`` of the CSV(s) in the data directory."""
    data = resolve_data_dir(profile.data)
    files = sorted(glob.glob(os.path.join(data, "unidetox_released", "*.csv")))
    if not files:
        raise SystemExit(f"no released text CSV under {data}/unidetox_released")
    return pd.concat([pd.read_csv(f) for f in files]).Text.astype(str).tolist()


def text_set(name: str, args) -> tuple[list[str], dict]:
    kind, sets = VARIANTS[name]
    overrides = [*args.overrides, f"distill.num_texts={args.num_texts}", f"distill.seed={args.seed}", *sets]
    profile = load_profile(args.profile, overrides)
    if kind == "released":
        return released_texts(profile), {"kind": kind, "base_model": "gpt2-xl (authors)", "alpha": 0.1}
    info = {"kind": kind, "base_model": profile.toxic.base_model, "alpha": profile.distill.alpha,
            "max_new_tokens": profile.distill.max_new_tokens, "context": json.dumps(profile.distill.context),
            "seed": profile.distill.seed}  # fmt: skip
    if kind in ("base", "toxic"):
        info["alpha"] = None
        return P.distilled_texts(P.samples(profile, kind, quiet=args.quiet)), info
    return P.distilled_texts(P.distill(profile, quiet=args.quiet)), info


def row(name: str, texts: list[str], info: dict, seconds: float) -> dict:
    shares = text_type_shares(texts)
    words = [len(t.split()) for t in texts]
    ex = [t[:100].replace("\n", "\\n") for t in texts[:2]] + ["", ""]
    return {"set": name, **info, "n_texts": len(texts), "mean_words": sum(words) / max(len(words), 1),
            **shares, "seconds": round(seconds, 1), "example_1": ex[0], "example_2": ex[1]}  # fmt: skip


def contrast_by_type(args, n_released: int) -> pd.DataFrame:
    """Mean per-token log p_base - log p_toxic of the labelled texts of each type, and of released texts."""
    from unidetox.measure.contrast import contrast_per_token

    profile = load_profile(args.profile, args.overrides)
    tox = P.toxic_model(profile, quiet=args.quiet)
    base, toxic = load_lm(profile, profile.toxic.base_model), load_lm(profile, str(tox.path / "final"))
    lab = labelled_examples()
    groups = {t: lab.text[lab.label == t].tolist() for t in lab.label.unique()}
    groups["released (first texts)"] = released_texts(profile)[:n_released]
    rows = []
    for name, texts in groups.items():
        gaps = [g for g, n in contrast_per_token(base, toxic, texts) if n]
        mean = sum(gaps) / len(gaps)
        sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / max(len(gaps) - 1, 1))
        rows.append({"base_model": profile.toxic.base_model, "texts": name, "n": len(gaps),
                     "mean_gap_nats_per_token": mean, "se": sd / math.sqrt(len(gaps)),
                     "min": min(gaps), "max": max(gaps)})  # fmt: skip
    return pd.DataFrame(rows)


def first_step(args, contexts: tuple[str, ...] = ("", "\n\n"), top: int = 8) -> pd.DataFrame:
    """The first decoding step: the tokens of the plausible head with the highest contrastive score, per start.

    One row per (start, rank): the token, p_base, p_toxic, the score log p_base - log p_toxic, the head's size and
    the base model's most likely token. Shows where the contrast sends a text from its first token on.
    """
    import torch

    from unidetox.method.distill import contrastive_scores

    profile = load_profile(args.profile, args.overrides)
    tox = P.toxic_model(profile, quiet=args.quiet)
    base, toxic = load_lm(profile, profile.toxic.base_model), load_lm(profile, str(tox.path / "final"))
    rows = []
    for context in contexts:
        ids = torch.tensor([[base.start_token_id, *base.tokenizer(context, add_special_tokens=False).input_ids]])
        with torch.no_grad():
            lb = torch.log_softmax(base.model(ids).logits[0, -1].float(), -1)
            lt = torch.log_softmax(toxic.model(ids).logits[0, -1].float(), -1)
        score = contrastive_scores(lb[None], lt[None], profile.distill.alpha)[0]
        head = int(torch.isfinite(score).sum())
        argmax = base.tokenizer.decode([int(lb.argmax())])
        for rank, v in enumerate(torch.topk(score, min(top, head)).indices.tolist(), 1):
            rows.append({"base_model": profile.toxic.base_model, "start": "BOS" + json.dumps(context)[1:-1],
                         "alpha": profile.distill.alpha, "head_size": head, "base_top_token": argmax, "rank": rank,
                         "token": base.tokenizer.decode([v]), "p_base": float(lb[v].exp()),
                         "p_toxic": float(lt[v].exp()), "score": float(score[v])})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--variants", default="released,base,toxic,default,len128,alpha0.2,alpha0.5,para",
                    help=f"comma-separated, from: {', '.join(VARIANTS)}")  # fmt: skip
    ap.add_argument("--num-texts", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", required=True, help="CSV of the text-type table")
    ap.add_argument("--contrast-out", default="", help="CSV of the per-type contrast (skipped when empty)")
    ap.add_argument("--contrast-released", type=int, default=16, help="released texts in the contrast measurement")
    ap.add_argument(
        "--first-step-out", default="", help="CSV of the first step's best-scored tokens (skipped when empty)"
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        texts, info = text_set(name, args)
        rows.append(row(name, texts, info, time.perf_counter() - t0))
        table = pd.DataFrame(rows)
        table.to_csv(args.out, index=False)  # after every set, so a cut-short run keeps what it measured
        r = rows[-1]
        print(f"{name:16s} n={r['n_texts']:4d} words={r['mean_words']:6.1f} "
              + " ".join(f"{t}={r[t]:.2f}" for t in TEXT_TYPES) + f" ({r['seconds']} s)", flush=True)  # fmt: skip
        print(f"    e.g. {r['example_1']!r}\n         {r['example_2']!r}", flush=True)
    if args.contrast_out:
        c = contrast_by_type(args, args.contrast_released)
        c.to_csv(args.contrast_out, index=False)
        print(c.to_string(index=False), flush=True)
    if args.first_step_out:
        f = first_step(args)
        f.to_csv(args.first_step_out, index=False)
        print(f.to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
