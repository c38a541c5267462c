"""Run-store integrity (issue 14), one test (or group) per numbered case of the issue.

1. two writers on one store: the run store's lock serialises them (two real ``unidetox pipeline`` processes; the
   final store equals a single run's); ``--no-wait``; a holder killed with SIGKILL leaves no stale lock;
2. verified reuse: DONE records sizes and SHA-256; a torn or deleted ``texts.jsonl``, a truncated
   ``final/model.safetensors`` and a deleted ``steps/<n>`` are seen, said in one line and recomputed to the same
   bytes; ``unidetox verify`` finds them (and a same-size change) and exits 1;
3. divergence: non-finite settings refused by the configuration; a non-finite loss stops training without DONE;
4. lengths and emptiness: long prompts truncated from the left (against a hand-truncated reference), empty
   prompts skipped and counted, generation/training lengths beyond the context refused up front;
5. Ctrl-C and SIGTERM: one line, exit 130 / 143, the lock released, the same command resumes;
6. the smaller gaps: non-UTF-8 profile, model folder without weights, unvalidated settings, suggested fixes that
   parse, outputs that honour the umask.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from harness import (
    REPO,
    ForkServer,
    cli_command,
    cli_env,
    compare_trees,
    half_written,
    reference_run,
    stage_dirs,
    temporary_leftovers,
    tiny_args,
)

import unidetox.pipeline as P
from unidetox.cli import run
from unidetox.config import ConfigError, DistillConfig, EvalConfig, TrainConfig
from unidetox.config.loader import load_profile, parse_override
from unidetox.measure.evaluate import EvaluationError, prompt_budget
from unidetox.method.distill import DistillError, check_length
from unidetox.method.generate import GenerationSettings, fit_left, generate_unit, unit_generator
from unidetox.method.sampling import CausalLMSource, sample_loop, strip_after_eos
from unidetox.method.train import TrainError, train_causal_lm
from unidetox.models.loading import ModelLoadError, load_model, save_model
from unidetox.store.jsonl import read_jsonl
from unidetox.store.lock import HOLDER, LOCK, StoreBusy, holder, store_lock
from unidetox.store.run_store import StageDir, atomic_dir, read_json, write_text


def tiny(runs: Path, *sets: str) -> list[str]:
    """``--profile tiny --quiet --set runs_dir=<runs>`` plus ``--set`` of each of `sets`."""
    out = ["--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"]
    for s in sets:
        out += ["--set", s]
    return out


def error_line(err: str) -> str:
    """The one line a failed command printed (asserts there is exactly one and no traceback)."""
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


# ============================================================================ 1. one writer at a time


def _holder(root: Path, *, release_on_stdin: bool = False) -> subprocess.Popen:
    """A process holding the run store lock of ``<root>/tiny`` (``command="holder-test"``) until killed, or until
    a line arrives on its stdin (then it leaves the lock without writing anything)."""
    code = (
        "import sys\nfrom unidetox.store.lock import store_lock\n"
        "with store_lock(sys.argv[1], 'tiny', command='holder-test'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline() if sys.argv[2] == '1' else __import__('time').sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), "1" if release_on_stdin else "0"],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def _waiter(root: Path) -> subprocess.Popen:
    """A process that waits for the lock of ``<root>/tiny``, then prints 'got' and whether the lock file exists."""
    code = (
        "import sys, os\nfrom unidetox.store.lock import store_lock\n"
        "with store_lock(sys.argv[1], 'tiny', command='waiter') as r:\n"
        "    print('got', os.path.exists(os.path.join(r, '.lock')), flush=True)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(root)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_no_wait_names_the_holder_and_sigkill_leaves_no_stale_lock(tmp_path, capsys):
    runs = tmp_path / "runs"
    h = _holder(runs)
    try:
        assert holder(runs / "tiny") | {"since": None} == {"pid": h.pid, "host": os.uname().nodename,
                                                            "command": "holder-test", "since": None}  # fmt: skip
        assert run(["toxic-model", *tiny(runs), "--no-wait"]) == 2
        line = error_line(capsys.readouterr().err)
        assert f"in use by pid {h.pid}" in line and "(holder-test)" in line and "--no-wait" in line, line
        with pytest.raises(StoreBusy), store_lock(runs, "tiny", wait=False):
            pass
        assert not (runs / "tiny" / "toxic-model").exists()  # nothing was written
    finally:
        h.kill()  # SIGKILL: no cleanup runs in the holder
        h.wait()
    assert (runs / "tiny" / HOLDER).exists()  # the killed holder's record is left behind ...
    with store_lock(runs, "tiny", wait=False, command="after") as root:  # ... but the kernel freed its lock
        assert holder(root)["pid"] == os.getpid() and holder(root)["command"] == "after"
    assert not (runs / "tiny" / HOLDER).exists()


def test_a_waiter_says_who_holds_the_lock_and_goes_on_when_the_holder_dies(tmp_path):
    h = _holder(tmp_path)
    w = _waiter(tmp_path)
    try:
        first = w.stderr.readline()
        assert first.startswith(f"waiting for the run store {tmp_path / 'tiny'}: in use by pid {h.pid} "), first
        assert "(holder-test)" in first
        time.sleep(0.3)
        assert w.poll() is None  # still waiting
    finally:
        h.kill()
        h.wait()
    out, err = w.communicate(timeout=60)
    assert w.returncode == 0 and out.strip() == "got True" and not err.strip(), (out, err)


def test_a_lock_that_wrote_nothing_leaves_no_trace_and_its_waiter_locks_the_new_file(tmp_path):
    with store_lock(tmp_path / "new" / "runs", "tiny"):
        assert (tmp_path / "new" / "runs" / "tiny" / LOCK).exists()
    assert not (tmp_path / "new").exists()  # a configuration error must not touch runs/
    h = _holder(tmp_path / "runs", release_on_stdin=True)  # created runs/tiny: removes it when it leaves
    w = _waiter(tmp_path / "runs")
    assert w.stderr.readline().startswith("waiting for the run store")
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(timeout=60) == 0
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 0 and out.strip() == "got True"  # it locked the file that exists, not the removed one


def test_two_pipelines_on_one_store_equal_a_single_run(tmp_path, tmp_path_factory):
    """The issue's reproduction: two `unidetox pipeline --profile tiny` at once on one runs_dir."""
    reference = reference_run(tmp_path_factory)
    runs = tmp_path / "shared-runs"
    cmd = [*cli_command(), *tiny_args("pipeline", runs)]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=1800) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    waited = [i for i, (_, err) in enumerate(outs) if "waiting for the run store" in err]
    assert len(waited) == 1, [e for _, e in outs]
    second = outs[waited[0]][0]
    assert "wrote" not in second and "reusing" in second, second  # it found everything done
    assert not half_written(runs) and not temporary_leftovers(runs)
    for d in stage_dirs(runs):  # one distill stream of 8 texts, not 16
        if d.parent.name == "distill":
            assert len(read_jsonl(d / "stream.jsonl")) == len(read_jsonl(d / "texts.jsonl")) == 8
    only = [str(d.relative_to(runs)) for d in stage_dirs(runs)]
    assert compare_trees(runs, reference, only=only, skip_content=frozenset({"DONE"})) == []


# ============================================================================ 2. verified reuse


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    fs = ForkServer(tmp_path_factory.mktemp("forkserver-integrity"))
    yield fs
    fs.close()


def _stage(runs: Path, stage: str) -> Path:
    (d,) = [d for d in stage_dirs(runs) if d.parent.name == stage]
    return d


def _damaged_line(out: str, stage: str) -> str:
    lines = [x for x in out.splitlines() if "is damaged" in x]
    assert len(lines) == 1 and lines[0].startswith(f"{stage}: ") and lines[0].endswith("; recomputing it"), out
    return lines[0]


def _verify(server, runs: Path) -> tuple[int, str]:
    res = server.run(["verify", *tiny(runs)], root=runs)
    return res.returncode, res.stdout


def test_damaged_distilled_texts_and_toxic_weights_are_recomputed(server, tmp_path):
    runs = tmp_path / "runs"
    assert server.run(["distill", *tiny(runs)], root=runs).returncode == 0
    dist, tox = _stage(runs, "distill"), _stage(runs, "toxic-model")
    files = read_json(dist / "DONE")["files"]
    texts = (dist / "texts.jsonl").read_bytes()
    assert files["texts.jsonl"]["size"] == len(texts) and len(read_jsonl(dist / "texts.jsonl")) == 8
    good = tmp_path / "good"
    shutil.copytree(runs, good)
    assert _verify(server, runs) == (0, f"verify: 2 finished stages in {runs / 'tiny'}, 0 damaged\n")

    torn = texts[: texts.rstrip(b"\n").rfind(b"\n") + 30]  # the last line cut in the middle
    (dist / "texts.jsonl").write_bytes(torn)
    rc, out = _verify(server, runs)
    assert rc == 1 and f"damaged: {dist}: texts.jsonl {len(torn)} bytes, {len(texts)} recorded" in out, out
    res = server.run(["distill", *tiny(runs)], root=runs)
    assert res.returncode == 0 and "texts.jsonl" in _damaged_line(res.stdout, "distill")
    assert (dist / "texts.jsonl").read_bytes() == texts

    (dist / "texts.jsonl").unlink()
    res = server.run(["distill", *tiny(runs)], root=runs)
    assert res.returncode == 0 and "texts.jsonl missing" in _damaged_line(res.stdout, "distill")
    assert (dist / "texts.jsonl").read_bytes() == texts

    weights = tox / "final" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    res = server.run(["distill", *tiny(runs)], root=runs)
    assert res.returncode == 0, res.stderr
    assert "final/model.safetensors" in _damaged_line(res.stdout, "toxic-model") and "distill: reusing" in res.stdout
    assert compare_trees(runs, good, skip_content=frozenset({"DONE"})) == []  # retrained to the same weights

    csv = dist / "texts.csv"  # a change that keeps the size: reuse (sizes) misses it, verify (sha256) does not
    data = csv.read_bytes()
    csv.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    assert "distill: reusing" in server.run(["distill", *tiny(runs)], root=runs).stdout
    rc, out = _verify(server, runs)
    assert rc == 1 and f"damaged: {dist}: texts.csv contents changed (sha256 differs)" in out, out
    assert out.splitlines()[-1].startswith(f"verify: 2 finished stages in {runs / 'tiny'}, 1 damaged")


def test_deleted_detox_step_is_restored(server, tmp_path):
    runs = tmp_path / "runs"
    sets = ("detox.targets=[tiny:gpt2]", "detox.learning_rates=[1e-3]")
    assert server.run(["detox", *tiny(runs, *sets)], root=runs).returncode == 0
    det = _stage(runs, "detox")
    good = tmp_path / "good"
    shutil.copytree(det, good)
    shutil.rmtree(det / "steps" / "2")
    res = server.run(["detox", *tiny(runs, *sets)], root=runs)
    assert res.returncode == 0, res.stderr
    line = _damaged_line(res.stdout, "detox unidetox tiny:gpt2 lr=0.001")
    assert "steps/2/model.safetensors missing" in line or "steps/2/config.json missing" in line, line
    assert compare_trees(det, good, skip_content=frozenset({"DONE"})) == []
    assert (det / "DONE").exists() and not StageDir(det, "detox", det.name).damage(hashes=True)
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {f.relative_to(runs): f.stat().st_mode & 0o777 for f in runs.rglob("*") if f.is_file()}
    assert {f: m for f, m in modes.items() if m != 0o666 & ~mask} == {}  # the umask, not 0600 (weights included)


def test_verify_without_a_store(tmp_path, capsys):
    assert run(["verify", *tiny(tmp_path / "nothing")]) == 2
    assert "no run store at" in error_line(capsys.readouterr().err)


def test_stage_discard_removes_what_must_be_redone(tmp_path):
    st = StageDir.create(tmp_path, "tiny", "detox", {"x": 1})
    for rel in ("steps/2/model.safetensors", "steps/4/model.safetensors", "final/model.safetensors", "log.jsonl"):
        (st / rel).parent.mkdir(parents=True, exist_ok=True)
        (st / rel).write_text(rel)
    st.mark_done({"seconds": 1.0})
    assert st.summary() == {"seconds": 1.0} and st.damage() == {}
    (st / "steps/2/model.safetensors").unlink()
    assert st.damage() == {"steps/2/model.safetensors": "missing"}
    st.discard(st.damage())
    assert not st.done and not (st / "final").exists() and not (st / "steps/2").exists()
    assert (st / "steps/4/model.safetensors").exists() and (st / "log.jsonl").exists()
    (st / "DONE").write_text("{not json")
    assert st.damage() == {"DONE": "unreadable"}


# ============================================================================ 3. divergence


@pytest.mark.parametrize("setting", ["toxic.train.learning_rate=inf", "toxic.train.learning_rate=.nan",
                                     "detox.learning_rates=[1e-3, .inf]", "distill.temperature=.inf",
                                     "eval.threshold=.nan", "study.ci_level=-.inf"])  # fmt: skip
def test_non_finite_settings_are_refused(setting):
    with pytest.raises(ConfigError, match="must be a finite number|must be a number"):
        load_profile("tiny", [setting])
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(learning_rate=float("inf"), max_steps=1)


def test_a_non_finite_loss_stops_training_without_done(tmp_path, monkeypatch, capsys):
    import unidetox.method.train as T

    calls, real = [], T.token_nll

    def nan_from_step_2(logits, ids, mask):
        calls.append(1)
        s, n = real(logits, ids, mask)
        return (s * float("nan"), n) if len(calls) >= 2 else (s, n)

    monkeypatch.setattr(T, "token_nll", nan_from_step_2)
    runs = tmp_path / "runs"
    assert run(["toxic-model", *tiny(runs)]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: training diverged: the loss is nan at step 2 of 6") and "lower the learning" in line
    st = _stage(runs, "toxic-model")
    assert not (st / "DONE").exists() and not (st / "final").exists()


# ============================================================================ 4. lengths and emptiness


def test_long_prompts_are_truncated_from_the_left(tiny_gpt2):
    tok = tiny_gpt2.tokenizer
    long_prompt = "They said that " * 400 + "and then"  # 6,000 characters
    prompts = [long_prompt, "A short prompt"]
    settings = GenerationSettings(samples_per_prompt=2, max_new_tokens=8, top_k=0, top_p=1.0)
    limit, n_long = prompt_budget(tiny_gpt2, prompts, "", settings.max_new_tokens)
    assert (limit, n_long) == (512 - 8, 1)
    got = generate_unit(tiny_gpt2.model, tok, prompts, settings, unit_generator("cpu", 42, 0),
                        max_prompt_tokens=limit)  # fmt: skip
    # reference: the last `limit` token ids of each prompt, left-padded by hand
    ids = [tok(p).input_ids[-limit:] for p in prompts]
    width = max(map(len, ids))
    inp = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    new = sample_loop(CausalLMSource(tiny_gpt2.model), inp, mask, repeats=2, max_new_tokens=8,
                      params=settings.params, generator=unit_generator("cpu", 42, 0),
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    rows = [tok.decode(r, skip_special_tokens=True) for r in strip_after_eos(new, tok.eos_token_id)]
    assert got == [rows[0:2], rows[2:4]]
    with pytest.raises((IndexError, RuntimeError)):  # what happened before: positions beyond the model's 512
        generate_unit(tiny_gpt2.model, tok, prompts, settings, unit_generator("cpu", 42, 0))


def test_truncation_keeps_the_start_token_and_the_prefix(tiny_llama):
    """With a prefix (the safety pre-prompt) and a tokenizer that adds a start token, only the prompt is cut."""
    tok, prefix = tiny_llama.tokenizer, "Be respectful.\n"
    prompts = ["x" * 5000, "short one"]
    settings = GenerationSettings(samples_per_prompt=1, max_new_tokens=12, prefix=prefix)
    limit, n_long = prompt_budget(tiny_llama, prompts, prefix, 12)
    assert (limit, n_long) == (500, 1)
    ids, mask = fit_left(tok, prefix, prompts, limit)
    head = tok(prefix).input_ids
    assert tok("").input_ids and head[: len(tok("").input_ids)] == tok("").input_ids  # a start token is added
    long_row = ids[0][mask[0].bool()].tolist()
    assert len(long_row) == limit and long_row[: len(head)] == head
    assert long_row[len(head) :] == tok(prefix + prompts[0]).input_ids[-(limit - len(head)) :]
    assert ids[1][mask[1].bool()].tolist() == tok(prefix + prompts[1]).input_ids
    assert tok.decode(long_row, skip_special_tokens=True).startswith(prefix + "xxx")
    got = generate_unit(tiny_llama.model, tok, prompts, settings, unit_generator("cpu", 1, 0), max_prompt_tokens=limit)
    new = sample_loop(CausalLMSource(tiny_llama.model), ids, mask, repeats=1, max_new_tokens=12,
                      params=settings.params, generator=unit_generator("cpu", 1, 0),
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    assert got == [[tok.decode(r, skip_special_tokens=True)] for r in strip_after_eos(new, tok.eos_token_id)]


def test_generation_and_training_lengths_beyond_the_context_are_refused(tiny_gpt2, tmp_path):
    with pytest.raises(EvaluationError, match=r"eval.max_new_tokens 512 leaves no room.*context of 512 tokens.*=511"):
        prompt_budget(tiny_gpt2, ["x"], "", 512)
    check_length(tiny_gpt2, DistillConfig(max_new_tokens=511))
    with pytest.raises(DistillError, match=r"distill.max_new_tokens 512 is beyond tiny:gpt2's context of 512"):
        check_length(tiny_gpt2, DistillConfig(max_new_tokens=512))
    with pytest.raises(TrainError, match=r"max_length 600 is beyond tiny:gpt2's context of 512 tokens"):
        train_causal_lm(tiny_gpt2, ["a text"], TrainConfig(max_steps=1, max_length=600), tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_distill_length_refused_before_any_stage_is_written(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run(["distill", *tiny(runs, "distill.max_new_tokens=600", "toxic.train.max_steps=1")]) == 2
    line = error_line(capsys.readouterr().err)
    assert "distill.max_new_tokens 600 is beyond tiny:gpt2's context of 512 tokens" in line, line
    assert [d.parent.name for d in stage_dirs(runs)] == ["toxic-model"] and not half_written(runs)


def test_empty_and_long_prompts_in_an_evaluation(tmp_path, capsys):
    from test_data import toxigen_dir

    from unidetox.config import DataConfig
    from unidetox.data.prompts import load_toxigen_prompts

    rows = [[f"b'text {i} about women'", "women", "opinion", "1", "2", "neutral"] for i in range(20)]
    rows[11][0] = "b''"  # empty prompts: skipped and counted
    rows[12][0] = "b'   '"
    rows[13][0] = "b'" + "word " * 1000 + "'"  # 5,000 characters: truncated from the left
    toxigen_dir(tmp_path / "data", rows)
    ps = load_toxigen_prompts(DataConfig(dir=str(tmp_path / "data")), "report")
    assert ps.attrs["empty_prompts_skipped"] == 2 and (ps.text.str.strip() != "").all() and len(ps) == 16
    runs = tmp_path / "runs"
    argv = ["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--split", "report",
            *tiny(runs, f"data.dir={tmp_path / 'data'}", "eval.prompts_per_domain=0")]  # fmt: skip
    assert run(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "2 empty report prompts skipped" in out and "1 of 16 prompts are longer than 504 tokens" in out, out
    st = _stage(runs, "evaluate")
    assert StageDir(st, "evaluate", st.name).summary() | {"seconds": 0, "peak_rss_mb": 0} == {
        "n_prompts": 16, "empty_prompts_skipped": 2, "prompts_truncated": 1, "seconds": 0, "peak_rss_mb": 0}  # fmt: skip
    assert len(read_jsonl(st / "generations.jsonl")) == 16 * 3 * 2


# ============================================================================ 5. interrupts


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_ends_with_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys, how):
    runs = tmp_path / "runs"
    real_distill = P.distill

    def interrupted(profile, *, quiet=False):
        P.toxic_model(profile, quiet=quiet)  # one stage finishes, then the user interrupts
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(P, "distill", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    assert run(["distill", *tiny(runs)]) == (130 if how == "ctrl-c" else 143)
    line = error_line(capsys.readouterr().err)
    what = "interrupted (Ctrl-C)" if how == "ctrl-c" else "terminated (SIGTERM)"
    assert line == f"{what}; 1 stage(s) finished by this command are kept in {runs / 'tiny'}; run the same " \
        "command again to resume (finished work is reused)"  # fmt: skip
    assert signal.getsignal(signal.SIGTERM) == before  # the command's handler is gone again
    monkeypatch.setattr(P, "distill", real_distill)
    with store_lock(runs, "tiny", wait=False):  # the lock was released
        pass
    assert run(["distill", *tiny(runs)]) == 0
    out = capsys.readouterr().out
    assert "toxic-model: reusing" in out and "distill: wrote" in out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_to_a_real_process(tmp_path, sig, code):
    """A real `unidetox` process, interrupted while it waits for the store (a point every command passes)."""
    h = _holder(tmp_path / "runs")
    try:
        # SIGINT's default disposition, as in a terminal: a shell starts background jobs (and so this test run,
        # when backgrounded) with SIGINT ignored, which children inherit and Python then leaves ignored
        default_sigint = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
        )
        p = subprocess.Popen([sys.executable, "-c", default_sigint, *cli_command(), "toxic-model",
                              *tiny(tmp_path / "runs")], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert p.stderr.readline().startswith("waiting for the run store")
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        h.kill()
        h.wait()
    assert p.returncode == code, err
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.strip()]) == 1, err
    assert err.strip().endswith("run the same command again to resume (finished work is reused)")


# ============================================================================ 6. smaller gaps


def test_profile_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    data = "name: tiny\n# caf\xe9 au lait\n".encode("latin-1")
    bad.write_bytes(data)
    assert run(["toxic-model", "--profile", str(bad)]) == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: profile {bad} is not UTF-8 text (byte 0xe9 at offset {data.index(0xE9)}); save it as UTF-8"
    )


def test_model_folder_without_weights(tmp_path, tiny_gpt2):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"holds no model weights \(\*\.safetensors\)"):
        load_model(str(empty))
    stage = tmp_path / "stage"
    save_model(tiny_gpt2, stage / "final")
    with pytest.raises(
        ModelLoadError, match=rf"is a stage directory, not a model: .*{re.escape(str(stage / 'final'))}$"
    ):
        load_model(str(stage))
    assert load_model(str(stage / "final")).model.config.n_positions == 512


@pytest.mark.parametrize(("setting", "message"), [
    ("eval.perplexity_max=.nan", "must be a finite number"),
    ("eval.perplexity_max=-1", r"eval.perplexity_max must be a number > 0"),
    ("eval.perplexity_max=0", r"eval.perplexity_max must be a number > 0"),
    ("eval.seeds=[42, 43, 42]", r"eval.seeds must not repeat a seed.*\[42, 43, 42\]"),
    ("name=../escape", r"profile name '../escape' must be letters"),
    ("name=a/b", r"profile name 'a/b'"),
    ("name=..", r"profile name '..'"),
    ("name=", r"profile name ''"),
    ("runs_dir=", r"runs_dir must not be empty"),
    ("runs_dir='  '", r"runs_dir must not be empty"),
])  # fmt: skip
def test_unvalidated_settings_are_refused(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_profile("tiny", [setting])


def test_eval_config_checks_directly():
    with pytest.raises(ConfigError, match="perplexity_max"):
        EvalConfig(perplexity_max=float("nan"))
    with pytest.raises(ConfigError, match="repeat"):
        EvalConfig(seeds=(1, 1))


def _suggested_sets() -> list[tuple[str, str]]:
    """Every ``--set key=value`` the package's messages and the troubleshooting page suggest (not placeholders)."""
    found = []
    for path in [*sorted((REPO / "unidetox").rglob("*.py")), REPO / "book" / "troubleshooting.md", REPO / "README.md"]:
        for m in re.finditer(r"--set (\S+?=[^\s`'\")]+)", path.read_text(encoding="utf-8")):
            text = m.group(1).rstrip(".,;")
            if "{" in text or text.split("=")[0] in ("key", "KEY") or text.endswith("="):
                continue  # an f-string's placeholder, the generic form, or "=..." (any value)
            found.append((path.name, text))
    return found


def test_every_suggested_fix_parses():
    sets = _suggested_sets()
    assert ("dghs.py", "toxic.val_splits=[test]") in sets  # the fix that once did not parse (two in one --set)
    for where, text in sets:
        key, value = parse_override(text)
        try:
            load_profile("tiny", [text])
        except ConfigError as e:
            pytest.fail(f"{where}: --set {text} does not work: {e}")
        assert key and value is not None


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_honour_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            os.close(os.open(tmp / "f", os.O_CREAT | os.O_WRONLY, 0o600))  # as save_pretrained writes its weights
            (tmp / "sub").mkdir(mode=0o700)
        st = StageDir.create(tmp_path / "runs", "tiny", "x", {"a": 1})
        st.mark_done()
    finally:
        os.umask(old)
    for f in (tmp_path / "a.txt", st / "DONE", st / "config.json"):
        assert f.stat().st_mode & 0o777 == file_mode, f
    for f in (tmp_path / "d" / "f",):
        assert f.stat().st_mode & 0o777 == file_mode, f
    assert (tmp_path / "d").stat().st_mode & 0o777 == (tmp_path / "d" / "sub").stat().st_mode & 0o777 == dir_mode


def test_sigterm_handler_is_restored_after_run(tmp_path, capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert run(["verify", *tiny(tmp_path)]) == 2
    assert signal.getsignal(signal.SIGTERM) == before
    assert threading.current_thread() is threading.main_thread()


def test_a_later_stage_checks_the_sha256_of_what_it_opens(tmp_path, tiny_gpt2):
    """A same-size change that size checks miss is caught when a later stage opens the weights or the texts."""
    from unidetox.models.loading import load_model, save_model
    from unidetox.pipeline import distilled_texts
    from unidetox.store.run_store import StoreError, check_opened, write_text

    st = StageDir.create(tmp_path, "tiny", "toxic-model", {"x": 1})
    save_model(tiny_gpt2, st / "final")
    write_text(st / "texts.jsonl", '{"index": 0, "text": "hello"}\n')
    st.mark_done({})
    load_model(str(st / "final"))  # intact: loads
    assert distilled_texts(st) == ["hello"]
    check_opened(tmp_path)  # outside any stage: nothing to check

    weights = st / "final" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 1  # one bit of the last tensor: same size
    weights.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"final/model.safetensors contents changed .*Fix: delete .*DONE"):
        load_model(str(st / "final"))
    (st / "texts.jsonl").write_text('{"index": 0, "text": "hellO"}\n')
    with pytest.raises(StoreError, match="texts.jsonl contents changed"):
        distilled_texts(st)
