"""Test harness for the reliability tests: the CLI as a killable subprocess, run trees compared, streams read.

Two ways to run ``unidetox`` as a subprocess:

- :func:`run_cli`: a plain ``unidetox ...`` process (what a user runs), for uninterrupted reference runs;
- :class:`ForkServer`: ``python tests/harness.py serve`` imports torch, transformers and unidetox once and
  forks one child per command (about 0.3 s instead of 5 s of imports). Each child is its own process group,
  runs ``unidetox.cli.run(argv)`` and can be killed with SIGKILL at a deterministic point, described by a
  :class:`KillPoint`: right after the n-th append to a JSONL stream, in the middle of one (a torn write), or
  just before / just after the n-th ``os.replace`` onto a path (inside an atomic file or checkpoint write).
  The hooks live only in the forked child; no library file has a hook. Every child also writes a *trace*
  (one JSON line per stream append and per ``os.replace`` under the run's root), written with ``os.write``
  before any kill, so a test can tell which units of work a run did.

Everything else here reads a run's directory: :func:`snapshot` (what is finished), :func:`compare_trees`
(byte-identical files, JSON without timing fields, weights within tolerance) and :func:`half_written`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("UNIDETOX_DATA_DIR", REPO.parent / "shared" / "data"))
FAKE_TOKEN = "hf_FAKEtoken123456789"
#: JSON fields that measure time or memory of one process, not results (left out of comparisons).
#: ``files`` (DONE's size and sha256 of each output) follows from the outputs, compared themselves; it differs
#: with any timing field inside them (log.jsonl) and with weights equal only within tolerance.
VOLATILE_KEYS = frozenset({"seconds", "elapsed", "peak_rss_mb", "peak_cuda_mb", "tokens_per_second", "finished_at",
                           "files"})  # fmt: skip
#: Files whose content describes the process that wrote them (counts of work done in that session).
RUN_METADATA = frozenset({"DONE"})
STREAMS = ("stream.jsonl", "generations.jsonl", "perplexity.jsonl", "log.jsonl")


# ============================================================================ environment and plain runs


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every CLI subprocess: local data, one thread, Hub offline, a fake Hub token set."""
    env = dict(os.environ)
    env.update(
        UNIDETOX_DATA_DIR=str(DATA_DIR),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_TOKEN=FAKE_TOKEN,
        HUGGING_FACE_HUB_TOKEN=FAKE_TOKEN,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def cli_command() -> list[str]:
    """The ``unidetox`` console script of this interpreter's environment (``python -m unidetox.cli`` if absent)."""
    script = Path(sys.executable).parent / "unidetox"
    return [str(script)] if script.exists() else [sys.executable, "-m", "unidetox.cli"]


def tiny_args(command: str, runs_dir: str | Path, *extra: str) -> list[str]:
    """``<command> --profile tiny --quiet --set runs_dir=<runs_dir> <extra>``."""
    return [command, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs_dir}", *extra]


def run_cli(argv: list[str], *, cwd: str | Path = REPO, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:  # fmt: skip
    """One plain ``unidetox <argv>`` process; returns the completed process (stdout/stderr as text)."""
    return subprocess.run([*cli_command(), *argv], cwd=cwd, env=cli_env(env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


REFERENCE_COMMANDS = (("pipeline",), ("evaluate",))


def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted tiny run, made once per pytest session and shared by the modules that need it.

    ``unidetox pipeline`` then ``unidetox evaluate`` (which adds the results table and MMLU of every grid
    candidate), as plain processes with a fake Hub token set. Returns the runs_dir; the processes' stdout and
    stderr are kept beside it as ``<command>.stdout`` / ``.stderr``. Cached on disk under pytest's basetemp.
    """
    root = tmp_path_factory.getbasetemp() / "reference-run"
    runs = root / "runs"
    if (root / "COMPLETE").exists():
        return runs
    root.mkdir(exist_ok=True)
    for cmd in REFERENCE_COMMANDS:
        proc = run_cli(tiny_args(cmd[0], runs, *cmd[1:]))
        (root / f"{cmd[0]}.stdout").write_text(proc.stdout)
        (root / f"{cmd[0]}.stderr").write_text(proc.stderr)
        assert proc.returncode == 0, f"reference `unidetox {cmd[0]}` failed:\n{proc.stderr[-3000:]}"
    (root / "COMPLETE").write_text("")
    return runs


# ============================================================================ the fork server


@dataclass(frozen=True)
class KillPoint:
    """Where a forked CLI child kills itself (and its process group) with SIGKILL.

    event: ``append`` (after the n-th append to a matching stream is written), ``torn`` (the n-th append writes
    only its first `keep` records whole and half of the next line, then dies), ``before-replace`` / ``after-replace``
    (the n-th ``os.replace`` onto a matching path: the temporary file or directory is complete but not yet in
    place / just put in place). pattern: fnmatch pattern on the path relative to the run's root.
    """

    event: str
    pattern: str
    nth: int = 1
    keep: int = 0

    def __post_init__(self):
        assert self.event in ("append", "torn", "before-replace", "after-replace"), self.event
        assert self.nth >= 1 and self.keep >= 0

    def describe(self) -> str:
        extra = f", keeping {self.keep} whole records" if self.event == "torn" else ""
        return f"{self.event} #{self.nth} of {self.pattern}{extra}"


@dataclass
class ChildResult:
    """What a forked CLI run did: exit code (negative: killed by that signal), output, trace events."""

    returncode: int
    stdout: str
    stderr: str
    trace: list[dict] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.trace if e["event"] == kind]


class ForkServer:
    """A pre-imported Python process that forks one CLI child per request (see the module docstring)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._stderr = open(self.workdir / "server.stderr", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve"],
            cwd=REPO,
            env=cli_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        ready = self._read()
        assert ready == {"ready": True}, ready
        self.pid: int | None = None

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = (self.workdir / "server.stderr").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the fork server died:\n{err}")
        return json.loads(line)

    def start(self, argv: list[str], *, root: str | Path, cwd: str | Path = REPO, kill: KillPoint | None = None,
              env: dict[str, str] | None = None) -> int:  # fmt: skip
        """Fork a child running ``unidetox <argv>``; returns its pid (also its process group id)."""
        assert self.pid is None, "one child at a time"
        self._n += 1
        base = self.workdir / f"run{self._n:03d}"
        self._files = {k: Path(f"{base}.{k}") for k in ("stdout", "stderr", "trace")}
        req = {
            "argv": list(argv),
            "cwd": str(cwd),
            "root": str(Path(root).resolve()),
            "kill": None if kill is None else kill.__dict__,
            "env": env or {},
            **{k: str(v) for k, v in self._files.items()},
        }
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        self.pid = self._read()["pid"]
        return self.pid

    def wait(self) -> ChildResult:
        """Wait for the running child; its result with the trace it wrote."""
        rc = self._read()["rc"]
        self.pid = None
        f = self._files
        trace = [json.loads(x) for x in f["trace"].read_text().splitlines() if x.strip()] if f["trace"].exists() else []
        return ChildResult(rc, f["stdout"].read_text(errors="replace"), f["stderr"].read_text(errors="replace"), trace)

    def run(self, argv: list[str], *, root: str | Path, cwd: str | Path = REPO, kill: KillPoint | None = None,
            env: dict[str, str] | None = None) -> ChildResult:  # fmt: skip
        self.start(argv, root=root, cwd=cwd, kill=kill, env=env)
        return self.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# ---------------------------------------------------------------------------- server side (in the subprocess)


def _unit_of(rec: dict) -> Any:
    """The unit of work a stream record belongs to: distill batch, (seed, unit) of an evaluation, training step."""
    if "batch" in rec:
        return rec["batch"]
    if "seed" in rec and "unit" in rec:
        return [rec["seed"], rec["unit"]]
    if "val_loss" in rec:
        return "val"
    return rec.get("step")


def _install_hooks(kill: dict | None, trace_path: str, root: str) -> None:
    """Patch JsonlWriter.append and os.replace in this (forked) process: trace them, die at the kill point."""
    from fnmatch import fnmatch

    import unidetox.store.jsonl as S

    root_path = Path(root)
    tfd = os.open(trace_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    hits = {"n": 0}

    def rel(p: Any) -> str | None:
        try:
            return str(Path(os.path.abspath(os.fspath(p))).relative_to(root_path))
        except ValueError:
            return None

    def trace(ev: dict) -> None:
        os.write(tfd, (json.dumps(ev) + "\n").encode())

    def hit(event: str, path: str | None) -> bool:
        if kill is None or kill["event"] != event or path is None or not fnmatch(path, kill["pattern"]):
            return False
        hits["n"] += 1
        return hits["n"] == kill["nth"]

    def die(where: str) -> None:
        trace({"event": "killed", "path": where})
        os.killpg(0, signal.SIGKILL)

    original_append = S.JsonlWriter.append

    def append(self, records):
        path = rel(self.path)
        if records and hit("torn", path):
            lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records]
            keep = min(kill["keep"], len(lines) - 1)
            torn = "".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2]
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(torn)
            die(path)
        original_append(self, records)
        if records and path is not None:
            trace({"event": "append", "path": path, "units": [_unit_of(r) for r in records]})
        if records and hit("append", path):
            die(path)

    S.JsonlWriter.append = append
    original_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        path = rel(dst)
        if hit("before-replace", path):
            die(path)
        original_replace(src, dst, *args, **kwargs)
        if path is not None:
            trace({"event": "replace", "path": path})
        if hit("after-replace", path):
            die(path)

    os.replace = replace


def _child(req: dict) -> None:
    """Body of a forked child: own process group, output to files, hooks, the CLI; never returns."""
    rc = 1
    try:
        os.setpgid(0, 0)
        for fd, key in ((1, "stdout"), (2, "stderr")):
            out = os.open(req[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, fd)
            os.close(out)
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        _install_hooks(req["kill"], req["trace"], req["root"])
        from unidetox.cli import run

        rc = run(req["argv"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child reports anything as exit status 1 with its traceback
        import traceback

        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def serve() -> None:
    """Read JSON requests from stdin, fork a child for each, answer ``{"pid"}`` then ``{"rc"}`` on stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints of the imports below must not corrupt the protocol
    import accelerate  # noqa: F401
    import pandas  # noqa: F401
    import papermill  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import (  # noqa: F401  (resolve transformers' lazy modules before forking)
        AutoModelForCausalLM,
        AutoTokenizer,
        GPT2LMHeadModel,
        GPT2TokenizerFast,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        proto.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        try:  # whatever the child left in its process group (it was killed, or a stray helper) goes too
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proto.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")


# ============================================================================ reading a run directory


def stage_dirs(runs: Path) -> list[Path]:
    """Every ``<runs>/<profile>/<stage>/<key>`` directory (hidden names excluded)."""
    return sorted(
        p for p in Path(runs).glob("*/*/*") if p.is_dir() and not any(s.startswith(".") for s in p.parts[-3:])
    )


def temporary_leftovers(root: Path) -> list[str]:
    """Paths under `root` that an atomic write leaves only when interrupted (``.<name>.*.tmp``, ``.<name>.old``)."""
    out = []
    for p in Path(root).rglob("*"):
        name = p.name
        if name.startswith(".") and (".tmp" in name or name.endswith((".old", ".partial"))):
            out.append(str(p.relative_to(root)))
    return sorted(out)


def half_written(runs: Path) -> list[str]:
    """Problems that a failed command must not leave: stage dirs without DONE, temporary files."""
    runs = Path(runs)
    if not runs.exists():
        return []
    bad = [f"{d.relative_to(runs)} has no DONE" for d in stage_dirs(runs) if not (d / "DONE").exists()]
    bad += [f"{p} is a temporary leftover" for p in temporary_leftovers(runs)]
    bad += [str(p.relative_to(runs)) for p in runs.rglob("*.tmp")]
    return sorted(set(bad))


def complete_records(path: Path) -> list[dict]:
    """The complete lines of a JSONL file (a torn last line is ignored, as the library does); nothing repaired."""
    raw = Path(path).read_bytes()
    end = raw.rfind(b"\n") + 1
    return [json.loads(x) for x in raw[:end].decode("utf-8").splitlines() if x.strip()]


def _checkpoint_step(train_dir: Path) -> int:
    """The step a training run resumes from: its checkpoint, else the `.checkpoint.old` kept by an interrupted swap."""
    for name in ("checkpoint", ".checkpoint.old"):
        state = train_dir / name / "trainer_state.json"
        if state.is_file():
            return int(json.loads(state.read_text())["step"])
    return 0


@dataclass
class Snapshot:
    """What is finished in a runs_dir: stage DONE markers, stream units, training checkpoints and outputs."""

    done: dict[str, bytes]  # stage dir -> DONE bytes
    units: dict[str, list]  # stream file -> units with at least one complete record
    checkpoint_step: dict[str, int]  # training dir -> step it resumes from
    finals: set[str]  # training dirs with a complete final/
    step_dirs: set[str]  # <training dir>/steps/<n>


def snapshot(runs: Path) -> Snapshot:
    runs = Path(runs)
    done, units, ckpt, finals, steps = {}, {}, {}, set(), set()
    for d in stage_dirs(runs):
        rel = str(d.relative_to(runs))
        if (d / "DONE").exists():
            done[rel] = (d / "DONE").read_bytes()
        for name in STREAMS:
            if (d / name).exists():
                units[f"{rel}/{name}"] = [_unit_of(r) for r in complete_records(d / name)]
        if (d / "log.jsonl").exists() or (d / "checkpoint").exists() or (d / ".checkpoint.old").exists():
            ckpt[rel] = _checkpoint_step(d)
        if (d / "final" / "train_result.json").exists():
            finals.add(rel)
        steps |= {f"{rel}/steps/{p.name}" for p in (d / "steps").glob("*") if not p.name.startswith(".")}
    return Snapshot(done, units, ckpt, finals, steps)


def redone_work(before: Snapshot, result: ChildResult) -> list[str]:
    """Units of work that `result`'s run did although they were finished in `before` (should be empty).

    A training step beyond the last checkpoint may be redone; nothing else: no stream unit already complete,
    no write into a stage directory that had DONE, no training of a run whose final/ existed, no ``steps/<n>``
    saved again at or below the checkpoint step.
    """
    problems = []
    for ev in result.events("append"):
        path = ev["path"]
        stage_dir, name = path.rsplit("/", 1)
        if name == "log.jsonl":
            if stage_dir in before.finals:
                problems.append(f"{stage_dir}: finished training trained again (steps {ev['units']})")
            start = before.checkpoint_step.get(stage_dir, 0)
            again = [u for u in ev["units"] if isinstance(u, int) and u <= start]
            if again:
                problems.append(f"{stage_dir}: steps {again} redone although checkpointed at step {start}")
        else:
            old = {json.dumps(u) for u in before.units.get(path, [])}
            again = [u for u in ev["units"] if json.dumps(u) in old]
            if again:
                problems.append(f"{path}: units {sorted({json.dumps(u) for u in again})} computed again")
    for ev in result.events("replace"):
        path = ev["path"]
        for d in before.done:
            if path.startswith(d + "/"):
                problems.append(f"{path} rewritten although {d} was DONE")
        parts = path.split("/")
        if "steps" in parts[:-1] and parts[-2] == "steps" and path in before.step_dirs:
            train_dir = "/".join(parts[:-2])
            if int(parts[-1]) <= before.checkpoint_step.get(train_dir, 0):
                problems.append(f"{path} saved again although the checkpoint is at step {parts[-1]} or later")
    return problems


# ---------------------------------------------------------------------------- comparing two run trees


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _content(path: Path) -> Any:
    """Comparable content: JSON without timing fields; other files as bytes."""
    if path.name == "DONE" or path.suffix == ".json":
        return _strip(json.loads(path.read_text(encoding="utf-8")))
    if path.suffix == ".jsonl":
        return [_strip(json.loads(x)) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return path.read_bytes()


def _weights_close(a: Path, b: Path, atol: float) -> str | None:
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    if set(ta) != set(tb):
        return f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}"
    for k in ta:
        x, y = ta[k], tb[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"{k}: {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}"
        if x.is_floating_point():
            diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
            if not diff <= atol:
                return f"{k}: max abs difference {diff:.3g} > {atol}"
        elif not bool((x == y).all()):
            return f"{k}: integer tensors differ"
    return None


def _frames_equal(a: Path, b: Path) -> str | None:
    import pandas as pd

    fa, fb = pd.read_parquet(a), pd.read_parquet(b)
    try:
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    except AssertionError as e:
        return str(e)[:300]
    return None


def visible_files(root: Path) -> dict[str, Path]:
    """Files under `root` by relative path, without temporary leftovers (hidden names)."""
    root = Path(root)
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = p
    return out


def compare_trees(a: Path, b: Path, *, only: list[str] | None = None, skip_content: frozenset[str] = frozenset(),
                  atol: float = 1e-6) -> list[str]:  # fmt: skip
    """Differences between run trees `a` and `b` (empty: identical).

    Files are compared byte for byte, except JSON/JSONL (compared without VOLATILE_KEYS), safetensors (equal
    bytes, else every tensor within `atol`), parquet (equal frames). `only`: relative paths (files or
    directories) to compare, else everything; `skip_content`: file names compared by existence only.
    """
    fa, fb = visible_files(a), visible_files(b)
    if only is not None:

        def keep(rel: str) -> bool:
            return any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in only)

        fa = {k: v for k, v in fa.items() if keep(k)}
        fb = {k: v for k, v in fb.items() if keep(k)}
    diffs = [f"only in {a}: {k}" for k in sorted(set(fa) - set(fb))]
    diffs += [f"only in {b}: {k}" for k in sorted(set(fb) - set(fa))]
    for rel in sorted(set(fa) & set(fb)):
        pa, pb = fa[rel], fb[rel]
        if pa.name in skip_content:
            continue
        if pa.suffix == ".safetensors":
            if pa.read_bytes() != pb.read_bytes() and (why := _weights_close(pa, pb, atol)):
                diffs.append(f"{rel}: {why}")
        elif pa.suffix == ".parquet":
            if pa.read_bytes() != pb.read_bytes() and (why := _frames_equal(pa, pb)):
                diffs.append(f"{rel}: {why}")
        elif _content(pa) != _content(pb):
            diffs.append(f"{rel}: contents differ")
    return diffs


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every visible file's comparable content (JSON without timing fields), by relative path."""
    out = {}
    for rel, p in sorted(visible_files(root).items()):
        c = _content(p)
        data = c if isinstance(c, bytes) else json.dumps(c, sort_keys=True).encode()
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def wait_until(cond, timeout: float = 60.0, interval: float = 0.01) -> bool:
    """Poll `cond()` until true (returns True) or `timeout` seconds pass (returns False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def matches(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
