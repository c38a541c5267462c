"""How a stage runs: its directory in the run store, reuse of finished work, timing, and process roles."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from unidetox.config import Profile, to_dict
from unidetox.models.loading import load_model, resolve_device
from unidetox.models.precision import default_dtype, inference_dtype
from unidetox.store.run_store import (
    CLEANED,
    DONE,
    StageDir,
    StoreError,
    describe_damage,
)


def process_state():
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 under torchrun / accelerate launch."""
    return process_state().is_main_process


def _rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


@contextmanager
def timed(summary: dict, interval: float = 0.2) -> Iterator[dict]:
    """Wall seconds and peak resident memory of the block (sampled every `interval` s), into `summary`."""
    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    peak = [_rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield summary
    finally:
        stop.set()
        sampler.join()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["peak_rss_mb"] = round(max(peak[0], _rss_mb()), 1)
    if torch.cuda.is_available():
        summary["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _cleaned_stage(path: Path) -> StageDir | None:
    """The finished stage whose folder ``unidetox clean`` removed and `path` lies in; None if there is none."""
    for d in path.parents:
        if (d / CLEANED).is_file() and (d / DONE).is_file():
            st = StageDir(path=d, stage=d.parent.name, key=d.name)
            rel = path.relative_to(d).as_posix()
            return st if any(rel == c or rel.startswith(f"{c}/") for c in st.cleaned) else None
    return None


def _progress_hidden() -> bool:
    """True where the run hides progress bars (``--quiet``, :func:`silently`)."""
    from transformers.utils import logging as hf_logging

    return not hf_logging.is_progress_bar_enabled()


def restore(profile: Profile, spec: str) -> str:
    """`spec`, after recomputing the stage it lies in when it is a folder ``unidetox clean`` removed: call before
    loading weights from a stage's folder.

    The stage is rerun by the pipeline call that made it (:func:`unidetox.pipeline.rebuild.stage_call`) with
    `profile`: same profile, same key, same seed, so the same weights. When `profile` maps that call to another
    directory (another profile or other settings made the stage), :class:`StoreError` says so before anything
    is removed.
    """
    path = Path(spec).resolve()
    st = None if path.exists() else _cleaned_stage(path)
    if st is None:
        return spec
    from unidetox.pipeline.rebuild import stage_call

    located, run = stage_call(profile, st.path)
    if located.path.resolve() != st.path:
        raise StoreError(f"{spec} was removed by `unidetox clean`, and profile {profile.name!r} (with its --set "
                         f"values) differs from the one that made it: it maps the stage to {located.path}. Fix: "
                         f"rerun with the profile and settings that made {st.path}")  # fmt: skip
    log(f"{st.stage}: {spec} was removed by `unidetox clean` and is needed: recomputing {st.path}")
    if is_main_process():
        (st.path / DONE).unlink(missing_ok=True)  # first: a kill from here on leaves an unfinished stage
        for rel in [*st.cleaned, "final"]:  # final/ too, or training would return at once
            shutil.rmtree(st.path / rel, ignore_errors=True)
        (st.path / CLEANED).unlink(missing_ok=True)
    process_state().wait_for_everyone()  # no process finds the stage finished and skips the training
    rebuilt = run(_progress_hidden())
    if rebuilt.path.resolve() != st.path or not path.exists():
        raise StoreError(f"recomputing {st.path} did not write {spec}. Fix: delete {st.path} and rerun")
    return spec


def load_lm(profile: Profile, spec: str):
    spec = restore(profile, spec)
    return load_model(spec, device=resolve_device(profile.device), trust_remote_code=profile.trust_remote_code)


def eval_dtype(profile: Profile) -> torch.dtype:
    """The weights' dtype of the evaluate and mmlu stages' models (``eval.inference_dtype`` on the profile's device)."""
    return inference_dtype(profile.eval.inference_dtype, resolve_device(profile.device))


def load_eval_lm(profile: Profile, spec: str):
    """:func:`load_lm` in the evaluation dtype (generation, perplexity, MMLU); training and distillation use fp32."""
    spec = restore(profile, spec)
    return load_model(spec, device=resolve_device(profile.device), dtype=eval_dtype(profile),
                      trust_remote_code=profile.trust_remote_code)  # fmt: skip


class EvalModels:
    """The models every evaluation of a study reads again, loaded once: the perplexity judges and the untouched
    targets (``eval.perplexity_model``, ``eval.second_perplexity_model``, ``detox.targets``), and the scorers. Any other spec (a fine-tuned model's folder) is loaded
    afresh by each call, so at most those few models stay in memory. Evaluation only reads a model, so sharing one
    object between stages changes no output."""

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


def train_precision_key(profile: Profile) -> dict:
    """The training precision's part of the training stages' keys (toxic, expert, detox): ``{}`` when it is what
    those stages used before CPUs with native bf16 trained in bf16 (fp32 on CPU, bf16 on CUDA), so those runs keep
    their keys; else ``{"mixed_precision": "bf16" | "fp32"}``."""
    from unidetox.method.train_setup import mixed_precision

    device = resolve_device(profile.device)
    precision = mixed_precision(profile.scale, device)
    if precision == ("bf16" if device.type == "cuda" else "no"):
        return {}
    return {"mixed_precision": "bf16" if precision == "bf16" else "fp32"}


def eval_dtype_key(profile: Profile) -> dict:
    """The evaluation dtype's part of the evaluate/mmlu stage keys: ``{}`` when it is the dtype those stages used
    before the setting existed (fp32 on CPU, bf16 on CUDA), so those runs keep their keys; else
    ``{"inference_dtype": "bf16" | "fp32"}``."""
    dtype = eval_dtype(profile)
    if dtype == default_dtype(resolve_device(profile.device)):
        return {}
    return {"inference_dtype": "bf16" if dtype == torch.bfloat16 else "fp32"}


def settings_key(cfg, *added_later: str) -> dict:
    """A settings dataclass as stage config, without the fields in `added_later` while they hold their declared
    default: a setting added after stages were run keeps those stages' keys until someone sets it."""
    import dataclasses

    out = to_dict(cfg)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for name in added_later:
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if not out[name] or out[name] == to_dict(default):
            del out[name]
    return out


def stage_dir(profile: Profile, stage: str, config: dict, inputs: dict | None = None) -> StageDir:
    """The stage's directory, located but not created: call ``.begin()`` once its inputs loaded fine."""
    return StageDir.locate(profile.runs_dir, profile.name, stage, config, inputs)


def release_memory() -> None:
    """Hand the memory of finished work back to the system: collect garbage, then, under glibc, trim the heaps
    (``malloc_trim``), whose freed blocks otherwise stay in the process, so that each stage of a long run starts at the
    run's baseline rather than at the last stage's high-water mark (a cold cpu book held 10 GB without it)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def begin(st: StageDir) -> StageDir:
    """Start writing a stage: its directory and config.json; the main process clears stale temporary files. The
    memory of the stages before is released first (:func:`release_memory`)."""
    release_memory()
    return st.begin(clean=is_main_process())


def log(msg: str) -> None:
    """Where a stage's outputs went (printed also with --quiet, which only hides progress bars)."""
    print(msg, flush=True)


def reuse(st: StageDir, what: str) -> bool:
    """True (and says so) when the stage is finished and its outputs have the sizes DONE recorded.

    A finished stage whose outputs are damaged (a file missing or cut short) is reopened: one line says what was
    wrong, the damaged outputs and DONE are removed (by the main process), and the caller runs the stage again,
    resuming from whatever intact work remains.
    """
    if not st.done:
        return False
    problems = st.damage()
    if not problems:
        log(f"{what}: reusing {st.path}")
        return True
    if is_main_process():
        log(f"{what}: {st.path} is damaged ({describe_damage(problems)}); recomputing it")
        st.discard(problems)
    return False


def silently(func, *args, **kwargs):
    """Call ``func`` with its stage messages ("reusing ...", "wrote ...") and model-loading bars hidden: for notebooks."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return func(*args, **kwargs)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
