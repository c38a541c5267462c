"""LoRA against full fine-tuning of SmolLM2 on the distilled text, each configuration chosen on validation prompts.

    PYTHONPATH=. python benchmarks/bench_lora.py --runs-dir runs-bench --lora-lrs 2e-3 5e-4 \
        --out benchmarks/results/bench_lora.md

The `cpu` profile's pipeline, cut to SmolLM2 (`detox.targets=[packaged:smollm2-135m]`): its toxic model and
distilled text, then two detox grids over the profile's steps (8, 16): full fine-tuning at the profile's learning
rates (`detox.learning_rates`) and a LoRA adapter (`detox.adapter=lora`, the profile's `detox.lora`) at
`--lora-lrs`. Each grid's (learning rate, steps) is chosen on the **validation** prompts as the study chooses the
shared configuration (lowest in-distribution TP, ties by EMT then fewer steps; `choose_config`), never on the report
prompts. The untouched model and both chosen models are then evaluated on the report prompts (`study.
report_prompts_per_domain` per domain, k and seeds as the profile), with perplexity under `eval.perplexity_model`.

Writes a Markdown table: TP and EMT (in-distribution) of each model with the paired difference to the untouched
model and its 95% bootstrap CI over prompts (`paired_ci`), the PPL ratio to the untouched model with its CI
(`ppl_ratio_ci`), training seconds of the chosen run (its whole grid run: `train_result.json`), trainable
parameters; the machine's CPU model and its load average before and after. Every stage is an ordinary stage of the
run store `--runs-dir`, reused by a rerun (and by `bench_chat.py`, which reads the same store).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from unidetox import pipeline as P
from unidetox.config import Profile
from unidetox.config.loader import load_profile
from unidetox.measure.compare import choose_config, paired_ci, ppl_ratio_ci
from unidetox.measure.metrics import IN_DISTRIBUTION
from unidetox.pipeline.evaluation import candidate_rows
from unidetox.pipeline.loading import load_lm
from unidetox.pipeline.study import per_prompt_rows

TARGET = "packaged:smollm2-135m"


def bench_profile(runs_dir: str, extra: list[str] = (), name: str = "cpu") -> Profile:
    """The cpu profile (`name`: tiny for a smoke test) cut to SmolLM2, in its own run store."""
    global TARGET
    if name == "tiny":
        TARGET = "tiny:gpt2"
    return load_profile(name, [f"runs_dir={runs_dir}", f"detox.targets=[{TARGET}]", *extra])


def lora_profile(profile: Profile, lrs: list[float]) -> Profile:
    return dataclasses.replace(profile, detox=dataclasses.replace(profile.detox, adapter="lora",
                                                                  learning_rates=tuple(lrs)))  # fmt: skip


def chosen(profile: Profile, label: str) -> tuple[P.Candidate, tuple[float, int], pd.DataFrame]:
    """The grid of `profile` on the validation prompts and the configuration chosen there: (candidate, (lr, steps),
    validation rows of the grid)."""
    split = profile.eval.prompt_split
    grid = [P.finetuned(profile, TARGET, "unidetox", lr, s, grid=True, quiet=True)
            for lr in profile.detox.learning_rates for s in profile.detox.steps]  # fmt: skip
    stages = [(c, P.evaluate(profile, c, split=split, perplexity=False, quiet=True)) for c in grid]
    rows = candidate_rows(stages)
    lr, steps = choose_config(rows)
    cand = P.finetuned(profile, TARGET, "unidetox", lr, steps, grid=True, quiet=True, selection=label)
    return cand, (lr, steps), rows


def validation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean in-distribution TP and EMT over seeds of each (lr, steps) of a grid on the validation prompts."""
    sub = rows[(rows.domain == IN_DISTRIBUTION) & rows.metric.isin(["TP", "EMT"])]
    return sub.groupby(["lr", "steps", "metric"]).value.mean().unstack("metric").reset_index()


def train_facts(cand: P.Candidate) -> dict:
    """Training seconds of the grid run that made `cand` (all its steps) and its trainable parameters."""
    stage = Path(cand.path).parent.parent
    result = json.loads((stage / "final" / "train_result.json").read_text())
    done = json.loads((stage / "DONE").read_text())
    return {"seconds": result["seconds"], "steps_run": result["steps"], "trainable": done.get("trainable_params")}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def ci_cell(row: pd.Series | None, scale: float = 1.0) -> str:
    if row is None:
        return ""
    return f"{row['diff'] * scale:+.3f} [{row['lo'] * scale:+.3f}, {row['hi'] * scale:+.3f}]"


def report(profile: Profile, cands: dict[str, P.Candidate]) -> tuple[list[dict], dict, dict]:
    """Report-prompt rows: per model TP/EMT in-distribution, difference to untouched with CIs, PPL ratio."""
    split, cfg = profile.study.report_split, profile.study
    stages = {name: P.evaluate(profile, c, split=split, quiet=True) for name, c in cands.items()}
    pp = {name: per_prompt_rows(profile, st) for name, st in stages.items()}
    base = pp["untouched"]
    out = []
    for name, table in pp.items():
        row = {"model": name}
        if name != "untouched":
            d = paired_ci(table, base, n_boot=cfg.bootstrap, level=cfg.ci_level)
            d = d[d.domain == IN_DISTRIBUTION].set_index("metric")
            row["dTP"] = d.loc["TP"] if "TP" in d.index else None
            row["dEMT"] = d.loc["EMT"] if "EMT" in d.index else None
            row["ppl_ratio"] = ppl_ratio_ci(table, base, n_boot=cfg.bootstrap, level=cfg.ci_level)
        out.append(row)
    means = {name: pd.read_csv(st / "metrics.csv") for name, st in stages.items()}
    return out, means, pp


def head_to_head(profile: Profile, pp: dict) -> list[str]:
    """Markdown rows of LoRA minus full fine-tuning, paired over the report prompts (TP, EMT, PPL ratio)."""
    cfg = profile.study
    lora, full = pp["LoRA"], pp["full fine-tuning"]
    d = paired_ci(lora, full, n_boot=cfg.bootstrap, level=cfg.ci_level)
    rows = ["| metric | domain | LoRA − full fine-tuning [95% CI] |", "|---|---|---|"]
    rows += [f"| {r.metric} | {r.domain} | {r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] |" for _, r in d.iterrows()
             if r.metric in ("TP", "EMT")]  # fmt: skip
    ratio, lo, hi, _ = ppl_ratio_ci(lora, full, n_boot=cfg.bootstrap, level=cfg.ci_level)
    return [*rows, f"| PPL ratio LoRA / full | all | {ratio:.3f} [{lo:.3f}, {hi:.3f}] |"]


def seed_mean(tidy: pd.DataFrame, metric: str, domain: str = IN_DISTRIBUTION) -> float:
    sub = tidy[(tidy.metric == metric) & (tidy.domain == domain)]
    return float(sub.value.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", default="runs-bench")
    ap.add_argument("--lora-lrs", type=float, nargs="+", default=[2e-3, 5e-4])
    ap.add_argument("--set", dest="extra", action="append", default=[], help="more profile overrides")
    ap.add_argument("--out", default="benchmarks/results/bench_lora.md")
    ap.add_argument("--profile", default="cpu", help="tiny: a smoke test of this script on tiny:gpt2")
    args = ap.parse_args()
    before, t0 = load(), time.perf_counter()
    full = bench_profile(args.runs_dir, args.extra, args.profile)
    lora = lora_profile(full, args.lora_lrs)
    full_cand, full_cfg, full_val = chosen(full, "full fine-tuning")
    lora_cand, lora_cfg, lora_val = chosen(lora, "LoRA")
    cands = {"untouched": P.untouched(TARGET), "full fine-tuning": full_cand, "LoRA": lora_cand}
    table, tidy, pp = report(full, cands)
    after, minutes = load(), (time.perf_counter() - t0) / 60
    numel = sum(p.numel() for p in load_lm(full, TARGET).model.parameters())
    facts = {"full fine-tuning": train_facts(full_cand) | {"trainable": numel}, "LoRA": train_facts(lora_cand)}
    configs = {"full fine-tuning": full_cfg, "LoRA": lora_cfg}
    lines = [
        "# LoRA against full fine-tuning (issue 28, item 2)", "",
        (f"`benchmarks/bench_lora.py`: SmolLM2-135M(-Instruct, packaged) detoxified on the `cpu` profile's distilled "
         f"text ({full.distill.num_texts} texts of {full.distill.max_new_tokens} tokens), full fine-tuning and a LoRA "
         f"adapter (r={full.detox.lora.r}, alpha={full.detox.lora.alpha}, dropout={full.detox.lora.dropout}, peft's "
         f"default layers q_proj and v_proj), each over steps {list(full.detox.steps)} at batch "
         f"{full.detox.train.batch_size} x {full.detox.train.max_length} tokens; full fine-tuning at the profile's "
         f"learning rates {[float(x) for x in full.detox.learning_rates]}, LoRA at {args.lora_lrs}. Each grid's "
         f"configuration is chosen on the validation prompts ({full.eval.prompts_per_domain} per domain), then the "
         f"chosen models and the untouched model are evaluated on the report prompts "
         f"({full.study.report_prompts_per_domain} per domain, k={full.eval.samples_per_prompt}, seeds "
         f"{list(full.eval.seeds)}, scorer {full.eval.scorer}, perplexity under {full.eval.perplexity_model})."), "",
        (f"{time.strftime('%d %b %Y')}, {cpu_model()}, {os.cpu_count()} cores, torch threads "
         f"{__import__('torch').get_num_threads()}; load average (1/5/15 min) {before} before, {after} after (the "
         f"script's own threads included); {minutes:.1f} min wall for the whole script, stages it reused included."), "",
        "## Report prompts", "",
        ("| model | chosen on validation (lr, steps) | TP in-dist. | Δ TP vs untouched [95% CI] | EMT in-dist. | "
         "Δ EMT [95% CI] | PPL ratio [95% CI] | training seconds (grid run) | trainable parameters |"),
        "|---|---|---:|---|---:|---|---|---:|---:|",
    ]  # fmt: skip
    for r in table:
        name = r["model"]
        cfg = configs.get(name)
        f = facts.get(name, {})
        ratio = r.get("ppl_ratio") if name != "untouched" else None
        ratio_cell = f"{ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}]" if isinstance(ratio, tuple) else ""
        cfg_cell = "" if cfg is None else f"{cfg[0]:g}, {cfg[1]}"
        secs = f"{f['seconds']:.1f} ({f['steps_run']} steps)" if f else ""
        trainable = f"{f['trainable']:,}" if f.get("trainable") else ""
        lines.append(
            f"| {name} | {cfg_cell} | {seed_mean(tidy[name], 'TP'):.3f} | {ci_cell(r.get('dTP'))} | "
            f"{seed_mean(tidy[name], 'EMT'):.3f} | {ci_cell(r.get('dEMT'))} | {ratio_cell} | {secs} | {trainable} |"
        )
    lines += ["", "## LoRA against full fine-tuning, paired over the report prompts", "", *head_to_head(full, pp)]
    lines += ["", "## Validation grids (in-distribution, mean over seeds)", ""]
    for name, val in (("full fine-tuning", full_val), ("LoRA", lora_val)):
        lines += [f"{name}:", "", "| lr | steps | TP | EMT |", "|---:|---:|---:|---:|"]
        for _, v in validation_table(val).iterrows():
            lines.append(f"| {v.lr:g} | {int(v.steps)} | {v.TP:.3f} | {v.EMT:.3f} |")
        lines.append("")
    command = shlex.join(["python", *sys.argv])
    lines += ["```", f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} PYTHONPATH=. {command}", "```", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
