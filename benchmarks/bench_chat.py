"""SmolLM2-135M-Instruct evaluated as a raw continuation model and through its chat template (eval.chat_template).

    PYTHONPATH=. python benchmarks/bench_chat.py --runs-dir runs-bench --out benchmarks/results/bench_chat.md

Reads (or makes) the run store of `bench_lora.py`: the `cpu` profile cut to SmolLM2, its full fine-tuning grid and
the configuration chosen there on the validation prompts. Three models, each evaluated on the report prompts
(`study.report_prompts_per_domain` per domain, k and seeds as the profile) in both modes, `eval.chat_template=off`
(the prompt continued as raw text, as the paper) and `auto` (the prompt is the user's turn of SmolLM2's ChatML
template, the continuation its assistant reply; with `eval.system_prompt` empty the template's own default system
message applies): the untouched model, the safety pre-prompt baseline (raw: `study.preprompt` before the prompt;
chat: `study.preprompt` as the system message) and the model detoxified by full fine-tuning.

No perplexity is computed beyond the stages `bench_lora.py` made (raw mode, untouched and detoxified).
Writes a Markdown table: TP per domain and in-/out-of-distribution, and EMT in-/out-of-distribution, each with its
95% bootstrap CI over prompts (resampled within domains); the paired difference to the untouched model of the same
mode; the chat template's SHA-256 as recorded by the evaluation; CPU model and load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import bench_lora
import pandas as pd
from bench_lora import bench_profile, chosen, cpu_model, load

from unidetox import pipeline as P
from unidetox.measure.compare import paired_ci
from unidetox.measure.metrics import DOMAINS, IN_DISTRIBUTION, OUT_OF_DISTRIBUTION
from unidetox.pipeline.score import _ci
from unidetox.pipeline.study import per_prompt_rows

COLUMNS = [("TP", d) for d in (*DOMAINS, IN_DISTRIBUTION, OUT_OF_DISTRIBUTION)]
COLUMNS += [("EMT", IN_DISTRIBUTION), ("EMT", OUT_OF_DISTRIBUTION)]
SHORT = {"gender_lgbtq": "gender/LGBTQ", "race_nationality": "race/nat.", "religion": "religion",
         "disability": "disability (OOD)", IN_DISTRIBUTION: "in-dist.", OUT_OF_DISTRIBUTION: "OOD"}  # fmt: skip


def cell(row) -> str:
    return f"{row['value']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", default="runs-bench")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="more profile overrides")
    ap.add_argument("--out", default="benchmarks/results/bench_chat.md")
    ap.add_argument("--profile", default="cpu", help="tiny: a smoke test of this script on tiny:gpt2")
    args = ap.parse_args()
    before, t0 = load(), time.perf_counter()
    raw = bench_profile(args.runs_dir, args.extra, args.profile)
    target = bench_lora.TARGET
    detoxed, config, _ = chosen(raw, "full fine-tuning")
    models = {"untouched": P.untouched(target), "safety pre-prompt": P.preprompt(raw, target),
              f"UniDetox (lr {config[0]:g}, {config[1]} steps)": detoxed}  # fmt: skip
    split, study = raw.study.report_split, raw.study
    rows, diffs, hashes = [], [], {}
    for mode in ("off", "auto"):
        prof = dataclasses.replace(raw, eval=dataclasses.replace(raw.eval, chat_template=mode))
        pp = {}
        for name, cand in models.items():
            # perplexity only where bench_lora.py computed it (raw mode, untouched and UniDetox: reused stages)
            reused = mode == "off" and name != "safety pre-prompt"
            st = P.evaluate(prof, cand, split=split, perplexity=reused, quiet=True)
            hashes[mode] = json.loads((st / "settings.json").read_text()).get("chat_template_sha256")
            pp[name] = per_prompt_rows(prof, st)
            ci = _ci(pp[name], None, n_boot=study.bootstrap, level=study.ci_level).set_index(["metric", "domain"])
            rows.append({"mode": mode, "model": name, **{k: ci.loc[k] for k in COLUMNS if k in ci.index}})
            if name != "untouched":
                d = paired_ci(pp[name], pp["untouched"], n_boot=study.bootstrap, level=study.ci_level)
                d = d.set_index(["metric", "domain"])
                diffs.append({"mode": mode, "model": name, **{k: d.loc[k] for k in d.index}})
    after, minutes = load(), (time.perf_counter() - t0) / 60
    head = " | ".join(f"{m} {SHORT[d]}" for m, d in COLUMNS)
    lines = [
        "# SmolLM2-135M-Instruct in raw and chat mode (issue 28, item 3)", "",
        (f"`benchmarks/bench_chat.py`, on the run store of `benchmarks/bench_lora.py` (the `cpu` profile cut to "
         f"SmolLM2). Report prompts: {raw.study.report_prompts_per_domain} per domain, k={raw.eval.samples_per_prompt}, "
         f"seeds {list(raw.eval.seeds)}, {raw.eval.max_new_tokens} new tokens, scorer {raw.eval.scorer}. Mode `off`: "
         "the prompt continued as raw text (the paper's evaluation); `auto`: the prompt is the user's turn of the "
         "model's chat template and the continuation is the assistant's reply (no `eval.system_prompt`, so SmolLM2's "
         "template adds its default system message; the pre-prompt baseline's text is the system message instead). "
         f"The UniDetox model is the full fine-tune chosen on the validation prompts (raw mode), lr {config[0]:g}, "
         f"{config[1]} steps. Chat template SHA-256 (recorded in each evaluation's settings.json): "
         f"`{hashes.get('auto')}`."), "",
        (f"{time.strftime('%d %b %Y')}, {cpu_model()}, {os.cpu_count()} cores; load average (1/5/15 min) {before} "
         f"before, {after} after (the script's own threads included); {minutes:.1f} min wall, reused stages included."),
        "", "## Toxicity with 95% bootstrap CIs over prompts", "",
        f"| mode | model | {head} |", "|---|---|" + "---|" * len(COLUMNS),
    ]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['mode']} | {r['model']} | " + " | ".join(cell(r[k]) if k in r else "" for k in COLUMNS)
                     + " |")  # fmt: skip
    lines += ["", "## Difference to the untouched model of the same mode, paired over prompts [95% CI]", "",
              "| mode | model | Δ TP in-dist. | Δ TP OOD | Δ EMT in-dist. | Δ EMT OOD |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in diffs:
        keys = [("TP", IN_DISTRIBUTION), ("TP", OUT_OF_DISTRIBUTION), ("EMT", IN_DISTRIBUTION),
                ("EMT", OUT_OF_DISTRIBUTION)]  # fmt: skip
        cells = [f"{r[k]['diff']:+.3f} [{r[k]['lo']:+.3f}, {r[k]['hi']:+.3f}]" if k in r else "" for k in keys]
        lines.append(f"| {r['mode']} | {r['model']} | " + " | ".join(cells) + " |")
    command = shlex.join(["python", *sys.argv])
    lines += ["", "```", f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} PYTHONPATH=. {command}", "```", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
