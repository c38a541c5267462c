"""One writer per run store: an OS-level file lock on ``<runs_dir>/<profile>/.lock`` (the `filelock` library).

Every ``unidetox`` command that writes a profile's run store holds the lock while it runs; a second one waits,
saying which process holds it (pid, host and command, kept beside the lock in ``.lock.holder``), or with
``--no-wait`` stops at once. The lock is an ``flock`` on an open file, so the kernel releases it when its holder
dies, even by SIGKILL: a stale ``.lock.holder`` left by a killed process is only overwritten, never trusted.
A command that stops before it writes anything (a configuration error) leaves no trace: it removes the lock
file and the folders it created for it (a waiter then finds its lock file gone and locks the new one).

>>> import tempfile
>>> with store_lock(tempfile.mkdtemp(), "tiny", command="doctest") as root:
...     holder(root)["command"]
'doctest'
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from unidetox.store.run_store import DISK_FIX, StoreError, write_json

LOCK = ".lock"
HOLDER = ".lock.holder"


class StoreBusy(StoreError):
    """Another process is writing the run store (raised when waiting was not asked for)."""


def holder(root: str | Path) -> dict:
    """What ``.lock.holder`` says about the lock's (last) holder: pid, host, command, since; {} if unreadable."""
    try:
        rec = json.loads((Path(root) / HOLDER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def describe_holder(root: str | Path) -> str:
    """``"pid 123 on host (unidetox pipeline --profile tiny) since 2026-01-01T10:00:00Z"``, or a plain phrase."""
    rec = holder(root)
    if not rec:
        return "another process (it has not recorded itself yet)"
    return f"pid {rec.get('pid')} on {rec.get('host')} ({rec.get('command')}) since {rec.get('since')}"


def _missing_parents(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


@contextlib.contextmanager
def store_lock(runs_dir: str | Path, profile: str, *, wait: bool = True, command: str = "") -> Iterator[Path]:
    """Hold the lock of ``<runs_dir>/<profile>`` for the block; yields that directory.

    When another process holds it: with `wait`, one line on stderr names the holder and the call blocks until
    the lock is free; without, :class:`StoreBusy` is raised at once. (One function of about 60 lines: taking and
    releasing the lock files must stay in one try/finally.)
    """
    root = Path(runs_dir) / profile
    created = _missing_parents(root.absolute())
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {root}: {e.strerror}. {DISK_FIX}") from None
    fds: list[int] = []
    # an OS-level lock only (no fallback to a lock file's mere existence, which a killed holder would leave behind)
    lock = FileLock(root / LOCK, thread_local=False, on_acquired=fds.append, fallback_to_soft=False)
    told = False
    while True:
        try:
            root.mkdir(parents=True, exist_ok=True)  # again: a holder that wrote nothing removes what it created
            try:
                lock.acquire(timeout=0)
            except Timeout:
                who = describe_holder(root)
                if not wait:
                    raise StoreBusy(
                        f"the run store {root} is in use by {who}. Fix: wait for that command to finish (leave out "
                        "--no-wait to wait for it), or use another run store (--set runs_dir=PATH)"
                    ) from None
                if not told:
                    print(f"waiting for the run store {root}: in use by {who}", file=sys.stderr, flush=True)
                    told = True
                lock.acquire()
        except FileNotFoundError:
            continue
        except OSError as e:
            if isinstance(e, FileExistsError) and not root.exists():  # a holder that wrote nothing removed the
                continue  # folder while mkdir was creating it: create it again
            raise StoreError(f"cannot lock {root / LOCK}: {e.strerror or e}. {DISK_FIX}") from None
        try:  # the file we locked may have been removed by a holder that wrote nothing: lock the current one
            if os.path.samestat(os.fstat(fds[-1]), os.stat(root / LOCK)):
                break
        except OSError:
            pass
        lock.release()
    try:
        since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_json(root / HOLDER, {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                   "since": since})  # fmt: skip
        yield root
    finally:
        with contextlib.suppress(OSError):
            (root / HOLDER).unlink()
        try:
            untouched = bool(created) and {p.name for p in root.iterdir()} == {LOCK}
        except OSError:
            untouched = False
        if untouched:
            with contextlib.suppress(OSError):
                (root / LOCK).unlink()  # while locked, so no one can lock this file afterwards
        lock.release()
        if untouched:
            for d in created:
                with contextlib.suppress(OSError):
                    d.rmdir()
