"""How a running stage behaves: which process writes (torchrun / accelerate launch roles), what it prints, its wall
time and peak memory (recorded in each stage's DONE), and the memory it hands back before it starts."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def process_state():
    """accelerate's view of this process (index, number of processes, main or not, barrier)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 under torchrun / accelerate launch."""
    return process_state().is_main_process


def own_rss() -> float:
    """Resident bytes of this process now (Linux /proc; 0 where /proc does not say)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


@contextmanager
def timed(summary: dict, interval: float = 0.2) -> Iterator[dict]:
    """Wall seconds and peak resident memory of the block (sampled every `interval` s), into `summary`."""
    import torch

    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    peak = [own_rss() / 2**20]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], own_rss() / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield summary
    finally:
        stop.set()
        sampler.join()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["peak_rss_mb"] = round(max(peak[0], own_rss() / 2**20), 1)
    if torch.cuda.is_available():
        summary["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)


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


def log(msg: str) -> None:
    """Where a stage's outputs went (printed also with --quiet, which only hides progress bars)."""
    print(msg, flush=True)


def progress_hidden() -> bool:
    """True where the run hides progress bars (``--quiet``, :func:`silently`)."""
    from transformers.utils import logging as hf_logging

    return not hf_logging.is_progress_bar_enabled()


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
