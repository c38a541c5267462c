"""The ``unidetox`` command: one subcommand per stage, plus ``pipeline`` and ``book``.

    unidetox toxic-model --profile tiny
    unidetox distill     --profile cpu --set distill.num_texts=8 --set distill.max_new_tokens=32
    unidetox detox       --profile tiny
    unidetox detox       --profile cpu --target packaged:smollm2-135m --texts released.csv [--steps N --out DIR]
    unidetox score       --profile cpu --model DIR [--compare OTHER] [--split report] [--json out.json]
    unidetox export-texts --profile cpu --out DIR
    unidetox lm-eval-task --profile cpu [score's --split --k --seeds --scorer --prompts-per-domain]   (prints a folder)
    unidetox evaluate    --profile tiny [--model SPEC] [--split validation|test|report] [--no-mmlu]
    unidetox pipeline    --profile tiny
    unidetox book        --profile tiny
    unidetox verify      --profile tiny
    unidetox clean       --profile cpu [--dry-run] [--what all|weights|dedup]   (free disk: reproducible weights)
    unidetox plan        --profile paper [--gpu H100-80GB] [--gpus 8] [--strategy fsdp]
    unidetox accelerate-config fsdp     (path of a shipped accelerate configuration)
    unidetox settings    [--markdown]   (every configuration key, its default and its meaning)

Every stage prints where its outputs went; a rerun with the same configuration reuses them.
Bad input ends with one line ``error: ...`` naming the problem and the fix, and exit status 2.
A command that writes holds the run store's lock (a second one waits, or with ``--no-wait`` stops);
Ctrl-C and SIGTERM end with one line saying what was kept, and exit status 130 / 143.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from unidetox.config import PROFILES, ConfigError
from unidetox.config.loader import load_profile
from unidetox.errors import UnidetoxError
from unidetox.store.registry import DETOX, DISTILL, EVALUATE, LM_EVAL_TASK, STAGES, TOXIC_MODEL

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=os.environ.get("UNIDETOX_PROFILE", "tiny"),
                   help=f"one of {', '.join(PROFILES)} or a YAML file (default: tiny)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set distill.alpha=0.05 (repeatable); "
                        "`unidetox settings` lists every key, its default and its meaning")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-wait", action="store_true",
                   help="stop at once when another unidetox command is writing this run store (default: wait)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="unidetox", description="UniDetox: detoxify LMs via dataset distillation.")
    sub = ap.add_subparsers(dest="command", required=True)
    parsers = {}
    for stage in (s for s in STAGES.values() if s.command):  # the stages that run alone, in the registry's order
        parsers[stage.name] = sub.add_parser(stage.name, help=stage.command, description=stage.command)
        _common(parsers[stage.name])
    text = "everything the book reads: tune on validation, transfer, baselines, report, diagnostics"
    _common(sub.add_parser("pipeline", help=text, description=text))
    _detox_args(parsers[DETOX.name])
    _score_parser(sub)
    _eval_options(parsers[LM_EVAL_TASK.name])  # score's evaluation options: the task selects and samples the same way
    _export_parser(sub)
    ev = parsers[EVALUATE.name]
    ev.add_argument("--model", help="evaluate only this model (spec or directory) instead of the profile's grid")
    ev.add_argument("--split", choices=["validation", "test", "report"], help="prompt split (default: profile's)")
    ev.add_argument("--no-mmlu", action="store_true", help="skip MMLU")
    bk = sub.add_parser("book", help="execute the notebooks with papermill and build the Jupyter Book")
    _common(bk)
    bk.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                    help="extra notebook parameter (repeatable)")  # fmt: skip
    bk.add_argument("--no-html", action="store_true", help="execute notebooks only")
    bk.add_argument("--force", action="store_true",
                    help="re-execute every notebook (the cache sees notebook, parameters and profile, not the package)")  # fmt: skip
    vf = sub.add_parser("verify", help="check every finished stage of the run store against the sizes and SHA-256 "
                        "its DONE recorded; exit 1 if any is damaged")  # fmt: skip
    _common(vf)
    cl = sub.add_parser("clean", help="remove model weights that are reproducible and no longer needed (the "
                        "evaluations that read them are finished); print each path, its size and the total")  # fmt: skip
    _common(cl)
    cl.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    cl.add_argument("--what", choices=["all", "weights", "dedup"], default="all",
                    help="weights: remove consumed weights; dedup: hard-link step snapshots identical to final/; "
                    "all (default): both")  # fmt: skip
    pl = sub.add_parser("plan", help="offline: each stage's models, parameters, memory per device, FLOPs, time; "
                        "refuses a stage that cannot fit")  # fmt: skip
    _common(pl)
    pl.add_argument("--gpu", help="plan for this GPU (A100-40GB, A100-80GB, H100-80GB, H200-141GB, L4); "
                    "default: the detected one, else the CPU host")  # fmt: skip
    pl.add_argument("--gpus", type=int, default=1, help="number of GPUs (processes) the stages run on (default 1)")
    pl.add_argument("--strategy", choices=["single", "ddp", "fsdp", "zero2", "zero3"],
                    help="how training is spread over the GPUs (default: single for 1 GPU, else ddp)")  # fmt: skip
    pl.add_argument("--markdown", action="store_true", help="print GPU-hours per stage as a Markdown table")
    st = sub.add_parser("settings", help="every configuration key: type, default, value in each profile, meaning")
    st.add_argument("--markdown", action="store_true", help="print the book's page book/settings.md")
    ac = sub.add_parser("accelerate-config", help="print the path of a shipped accelerate configuration")
    ac.add_argument("name", choices=["ddp", "fsdp", "zero2", "zero3"], help="ddp | fsdp | zero2 | zero3")
    return ap


def _verify(profile, args) -> int:
    """Print each damaged stage of the profile's run store and a summary line; 1 if any is damaged, else 0."""
    from unidetox.store.run_store import StoreError, describe_damage, verify_store

    root = Path(profile.runs_dir) / profile.name
    if not root.is_dir():
        raise StoreError(f"no run store at {root}. Fix: give the --profile and --set runs_dir=PATH it was made with")
    report = verify_store(root, stages=STAGES, progress=not args.quiet)
    damaged = {path: problems for path, problems in report.items() if problems}
    for path, problems in damaged.items():
        print(f"damaged: {path}: {describe_damage(problems)}")
    fix = ". Fix: delete each damaged file named above and rerun the command that made it (it recomputes that stage)"
    print(f"verify: {len(report)} finished stages in {root}, {len(damaged)} damaged" + (fix if damaged else ""))
    return 1 if damaged else 0


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that `finally` blocks (locks, temporary files) run."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


def _interrupted(profile, since: float, how: str) -> str:
    """One line: what an interrupted command kept and that rerunning it resumes."""
    kept = ""
    if profile is not None:
        root = Path(profile.runs_dir) / profile.name
        n = sum(1 for done in root.glob("*/*/DONE") if done.stat().st_mtime >= since) if root.is_dir() else 0
        kept = f"; {n} stage(s) finished by this command are kept in {root}"
    return f"{how}{kept}; run the same command again to resume (finished work is reused)"


def _store_lock(profile, args, argv: list[str] | None):
    """The run store's lock for a command that writes (on the main process only under torchrun/accelerate)."""
    from unidetox.store.lock import store_lock

    if args.command in ("verify", "plan") or os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    command = shlex.join(["unidetox", *(sys.argv[1:] if argv is None else argv)])
    return store_lock(profile.runs_dir, profile.name, wait=not args.no_wait, command=command)


def _plan(profile, args) -> None:
    from unidetox.pipeline.plan import check, plan_profile
    from unidetox.report.tables.plan import format_markdown, format_plan
    from unidetox.scale.hardware import hardware

    hw = hardware(args.gpu, args.gpus, args.strategy, profile.device)
    plans = plan_profile(profile, hw)
    print(format_markdown(plans) if args.markdown else format_plan(profile, hw, plans))
    check(plans)


def _detox_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("one model on a text source (defaults: the paper's fine-tuning configuration)")
    g.add_argument("--target", metavar="MODEL",
                   help="model to detoxify: packaged:smollm2-135m, tiny:gpt2, a local model folder or a Hub id")  # fmt: skip
    g.add_argument("--texts", metavar="SOURCE",
                   help="training texts: a CSV (column Text or text, e.g. the paper's released text), a JSONL with "
                        "'text', a Parquet file, or a datasets folder written by save_to_disk")  # fmt: skip
    g.add_argument("--text-column", metavar="NAME", help="the column holding the texts (default: Text, then text)")
    g.add_argument("--learning-rate", type=float, help="peak AdamW learning rate (paper: 5e-5)")
    g.add_argument("--steps", type=int, help="optimizer steps (paper: up to 10000)")
    g.add_argument("--batch-size", type=int, help="texts per optimizer step (paper: 8)")
    g.add_argument("--max-length", type=int, help="tokens per text; longer texts are cut (paper: 256)")
    g.add_argument("--seed", type=int, help="training seed (paper: 1234)")
    g.add_argument("--out", metavar="DIR", help="also copy the model folder here (a new or empty folder)")
    p.add_argument("--adapter", choices=["none", "lora"],
                   help="lora: train a LoRA adapter (peft; settings detox.lora.*) instead of every weight, saved in "
                        "peft's format (detox.adapter; default: the profile's, none)")  # fmt: skip


def _score_parser(sub) -> None:
    text = "the paper's toxicity and fluency evaluation of one model: a table and a JSON summary"
    p = sub.add_parser("score", help=text, description=text)
    _common(p)
    p.add_argument("--model", required=True, help="model spec, local model folder or Hub id")
    p.add_argument("--compare", metavar="OTHER_MODEL", help="also score OTHER_MODEL; report OTHER - MODEL, paired")
    _eval_options(p)
    p.add_argument("--mmlu", action="store_true", help="also score MMLU (eval.mmlu_* settings)")
    p.add_argument("--json", metavar="FILE", help="write the summary here as JSON")


def _eval_options(p: argparse.ArgumentParser) -> None:
    """The evaluation options of `score`, shared by `lm-eval-task` (which must select and sample the same way)."""
    p.add_argument("--split", choices=["validation", "test", "report"], help="prompt split (default: profile's)")
    p.add_argument("--k", type=int, help="continuations per prompt (eval.samples_per_prompt)")
    p.add_argument("--seeds", help="comma-separated generation seeds (eval.seeds), e.g. 42,43")
    p.add_argument("--scorer", help="toxicity scorer (eval.scorer): toxblock, hatesonar, detoxify, hf:<id>, tiny")
    p.add_argument("--prompts-per-domain", type=int, help="prompts per domain (eval.prompts_per_domain; 0 = all)")
    p.add_argument("--chat-template", choices=["off", "auto"],
                   help="auto: a model whose tokenizer has a chat template is prompted through it, the prompt as the "
                        "user's turn (eval.chat_template; default: the profile's, off)")  # fmt: skip
    p.add_argument("--system-prompt", metavar="TEXT", help="chat mode: the system message (eval.system_prompt)")


def _export_parser(sub) -> None:
    text = "export the distilled text as a datasets dataset (Parquet + dataset card)"
    p = sub.add_parser("export-texts", help=text, description=text)
    _common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument("--which", choices=["distilled", "base-samples"], default="distilled",
                   help="the UniDetox distilled text (default) or the base model's plain samples")  # fmt: skip


def _detox(profile, args) -> None:
    from unidetox import pipeline as P

    if args.adapter is not None:
        profile = dataclasses.replace(profile, detox=dataclasses.replace(profile.detox, adapter=args.adapter))
    if args.target is None and args.texts is None:
        extra = [f for f in ("text_column", "learning_rate", "steps", "batch_size", "max_length", "seed", "out")
                 if getattr(args, f) is not None]  # fmt: skip
        if extra:
            raise ConfigError(f"--{extra[0].replace('_', '-')} applies to detox --target MODEL --texts SOURCE; give "
                              "both, or neither to run the profile's grid")  # fmt: skip
        P.detox_all(profile, quiet=args.quiet)
        return
    if args.target is None or args.texts is None:
        raise ConfigError("detox needs both --target MODEL and --texts SOURCE (or neither, for the profile's grid)")
    from unidetox.pipeline.detox_file import detoxify, paper_train_config

    cfg = paper_train_config(learning_rate=args.learning_rate, steps=args.steps, batch_size=args.batch_size,
                             max_length=args.max_length, seed=args.seed)  # fmt: skip
    out = detoxify(profile, args.target, args.texts, column=args.text_column, train_cfg=cfg, out=args.out,
                   quiet=args.quiet)  # fmt: skip
    print(f"model: {out}")


def _score(profile, args) -> None:
    from unidetox.pipeline.score import eval_overrides, score_models, write_summary
    from unidetox.report.tables.score import format_table

    profile = eval_overrides(profile, k=args.k, seeds=args.seeds, scorer=args.scorer,
                             prompts_per_domain=args.prompts_per_domain, chat_template=args.chat_template,
                             system_prompt=args.system_prompt)  # fmt: skip
    summary = score_models(profile, args.model, compare=args.compare, split=args.split, mmlu=args.mmlu,
                           quiet=args.quiet)  # fmt: skip
    if not summary:  # not the main process of a multi-process run
        return
    print(format_table(summary))
    if args.json:
        write_summary(args.json, summary)
        print(f"summary: {args.json}")


def _lm_eval_task(profile, args) -> None:
    from unidetox.pipeline.lmeval_task import write_lm_eval_task
    from unidetox.pipeline.score import eval_overrides
    from unidetox.processes import silently

    profile = eval_overrides(profile, k=args.k, seeds=args.seeds, scorer=args.scorer,
                             prompts_per_domain=args.prompts_per_domain)  # fmt: skip
    print(silently(write_lm_eval_task, profile, split=args.split))  # the folder alone: $(unidetox lm-eval-task ...)


def _export(profile, args) -> None:
    from unidetox.pipeline.export import export_texts

    print(f"dataset: {export_texts(profile, args.out, which=args.which, quiet=args.quiet)}")


def _evaluate(profile, args) -> None:
    from unidetox import pipeline as P
    from unidetox.data.mmlu import check_mmlu_subjects

    if not args.no_mmlu:
        check_mmlu_subjects(profile.eval.mmlu_subjects)  # before the evaluations, not after
    if args.model:
        cands = [P.Candidate(args.model, "none", None, None, args.model, args.model)]
    else:
        cands = P.detox_all(profile, quiet=args.quiet)
    done = [(c, P.evaluate(profile, c, split=args.split, quiet=args.quiet)) for c in cands]
    if not P.is_main_process():  # under torchrun/accelerate the main process merges and scores MMLU
        return
    out = P.collect(profile, done, name=f"results-{args.split or profile.eval.prompt_split}")
    print(f"results: {out} and {out.with_suffix('.parquet')}")
    if not args.no_mmlu:
        for c in cands:
            P.mmlu(profile, c, quiet=args.quiet)


def _one_line(err: BaseException) -> str:
    """The error's message on one line (embedded library messages often span several); a failing notebook keeps
    its multi-line report (the cell and the traceback)."""
    from unidetox.report.notebook_runner import NotebookError

    return str(err) if isinstance(err, NotebookError) else " ".join(str(err).split())


def _dispatch(profile, args) -> None:
    """Run the command `args.command` (a command that writes, under the run store's lock)."""
    from unidetox import pipeline as P

    if args.command == TOXIC_MODEL.name:
        P.toxic_model(profile, quiet=args.quiet)
    elif args.command == DISTILL.name:
        P.distill(profile, quiet=args.quiet)
    elif args.command == DETOX.name:
        _detox(profile, args)
    elif args.command == "score":
        _score(profile, args)
    elif args.command == LM_EVAL_TASK.name:
        _lm_eval_task(profile, args)
    elif args.command == "export-texts":
        _export(profile, args)
    elif args.command == EVALUATE.name:
        _evaluate(profile, args)
    elif args.command == "pipeline":
        st = P.run_all(profile, quiet=args.quiet)
        lr, steps = st.chosen
        print(f"study: {st.path} (shared configuration chosen on {st.select_target}: lr={lr:g}, steps={steps})")
    elif args.command == "plan":
        _plan(profile, args)
    elif args.command == "clean":
        from unidetox.pipeline.clean import clean_store

        clean_store(profile, what=args.what, dry_run=args.dry_run, quiet=args.quiet)
    elif args.command == "book":
        from unidetox.report.book import build_book

        out = build_book(args.profile, overrides=tuple(args.overrides), params=tuple(args.params),
                         html=not args.no_html, force=args.force)  # fmt: skip
        print(f"book: {out}")


def run(argv: list[str] | None = None) -> int:
    """The CLI: parse `argv`, run the command; 0 on success, 2 on a user error (one `error:` line), 130/143 when
    interrupted."""
    args = build_parser().parse_args(argv)
    if args.command == "accelerate-config":
        from unidetox.scale.accelerate_configs import accelerate_config

        print(accelerate_config(args.name))
        return 0
    if args.command == "settings":
        from unidetox.report.tables.settings import settings_markdown, settings_text

        print(settings_markdown() if args.markdown else settings_text(), end="")
        return 0
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    since, profile, held = time.time(), None, contextlib.ExitStack()
    try:
        profile = load_profile(args.profile, args.overrides)
        if args.command != "verify":
            from unidetox.pipeline.study import check_specs

            check_specs(profile)  # a misspelt scorer or model fails here, before any stage (or the lock) writes
        held.enter_context(_store_lock(profile, args, argv))
        if args.command == "verify":
            return _verify(profile, args)
        _dispatch(profile, args)
    except UnidetoxError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{_interrupted(profile, since, 'interrupted (Ctrl-C)')}", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"\n{_interrupted(profile, since, 'terminated (SIGTERM)')}", file=sys.stderr)
        return 143
    finally:
        held.close()  # the run store's lock
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
