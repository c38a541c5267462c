"""Provenance: checksums against hashlib, versions, git state, no secrets, stage timings, commands."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from unidetox.config import to_dict
from unidetox.config.loader import load_profile
from unidetox.report.provenance import facts
from unidetox.report.provenance import pages as pv

SENTINEL = "hf_SENTINELsecretVALUE123456"


def test_file_checksums_match_hashlib(tmp_path):
    a = tmp_path / "sub" / "a.bin"
    a.parent.mkdir()
    a.write_bytes(bytes(range(256)) * 5000)  # > 1 MiB: crosses sha256_file's chunk boundary
    b = tmp_path / "b.txt"
    b.write_text("héllo\n", encoding="utf-8")
    table = facts.file_checksums([a, b], root=tmp_path)
    assert table["file"].tolist() == ["b.txt", "sub/a.bin"]  # sorted, relative, POSIX
    assert table["bytes"].tolist() == [len("héllo\n".encode()), 256 * 5000]
    assert table["sha256"].tolist() == [
        hashlib.sha256(b.read_bytes()).hexdigest(),
        hashlib.sha256(a.read_bytes()).hexdigest(),
    ]
    with pytest.raises(facts.ProvenanceError, match="no such file"):
        facts.file_checksums([tmp_path / "missing"])
    # sha256sum format: `sha256sum -c` in tmp_path accepts it
    listing = pv.sha256sum_text(table)
    assert listing == f"{table.sha256[0]}  b.txt\n{table.sha256[1]}  sub/a.bin\n"
    if shutil.which("sha256sum"):
        (tmp_path / "SUMS").write_text(listing)
        subprocess.run(["sha256sum", "--quiet", "-c", "SUMS"], cwd=tmp_path, check=True)


def test_data_checksums_of_a_tiny_data_dir(tmp_path):
    root = tmp_path / "data"
    files = {
        "dghs/dghs_v0.2.3_dev.csv": b"text,label\n",
        "toxigen/annotated_train.csv": b"text\n",
        "mmlu/test/anatomy_test.csv": b"q\n",
        "mmlu/dev/anatomy_dev.csv": b"d\n",
        "mmlu/test/virology_test.csv": b"v\n",
        "mmlu/test/college_biology_test.csv": b"c\n",  # subject with an underscore
        "political_compass/statements.json": b"[]",
        "wikitext2/test.txt": b"read by the scorer-validity page",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    prof = load_profile("tiny", [f"data.dir={root}", "eval.mmlu_subjects=[anatomy, college_biology]"])
    table = facts.data_checksums(prof)
    expected = sorted(set(files) - {"mmlu/test/virology_test.csv"})
    assert table["file"].tolist() == expected
    assert table["sha256"].tolist() == [hashlib.sha256(files[n]).hexdigest() for n in expected]
    assert table["data set"].tolist() == [n.split("/")[0] for n in expected]
    assert table["bytes"].tolist() == [len(files[n]) for n in expected]
    no_mmlu = facts.data_checksums(load_profile("tiny", [f"data.dir={root}", "study.mmlu=false"]))
    assert not any(no_mmlu["file"].str.startswith("mmlu/"))
    no_validity = facts.data_checksums(load_profile("tiny", [f"data.dir={root}", "validity.enabled=false"]))
    assert not any(no_validity["file"].str.startswith("wikitext2/"))
    hub = facts.data_checksums(load_profile("tiny", [f"data.dir={root}", "data.source=hub"]))
    assert hub["file"].tolist() == ["political_compass/statements.json"]


def test_package_versions_keys_and_values():
    v = facts.package_versions()
    assert list(v) == ["python", *facts.PACKAGES]
    assert v["numpy"] == np.__version__ and v["pandas"] == pd.__version__
    assert v["python"].count(".") == 2
    assert facts.package_versions(["surely-not-a-package-xyz"])["surely-not-a-package-xyz"] == facts.NOT_INSTALLED


def test_software_table_reports_commit_or_why_not():
    t = pv.software_table({"python": "3.11.0"}, {"commit": "a" * 40, "dirty": True})
    assert t.to_dict("list") == {
        "component": ["python", "unidetox commit"],
        "version": ["3.11.0", "a" * 40 + " + uncommitted changes"],
    }
    assert pv.software_table({}, None)["version"].iloc[0].startswith("unknown")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_state_of_a_temporary_repository(tmp_path):
    assert facts.git_state(tmp_path) is None  # not a repository
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    assert facts.git_state(tmp_path) is None  # no commit yet
    (tmp_path / "f.txt").write_text("one\n")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert facts.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "untracked.txt").write_text("x")  # untracked files do not count
    assert facts.git_state(tmp_path)["dirty"] is False
    (tmp_path / "f.txt").write_text("two\n")
    assert facts.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_cpu_model_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\n")
    assert facts.cpu_model(info) == "Example CPU @ 2.0GHz"
    assert isinstance(facts.cpu_model(tmp_path / "missing"), str)


def test_machine_info_fields():
    m = facts.machine_info()
    assert {"platform", "cpu", "cpu_count", "cpus_usable", "memory_gib", "gpus"} <= set(m)
    assert m["cpu_count"] >= 1 and 1 <= m["cpus_usable"] <= m["cpu_count"]
    assert isinstance(m["gpus"], list)


def test_environment_hides_credentials():
    env = {"UNIDETOX_DATA_DIR": "/data", "HF_TOKEN": SENTINEL, "MY_API_KEY": "k" * 20}
    out = facts.environment(["UNIDETOX_DATA_DIR", "HF_TOKEN", "MY_API_KEY", "OMP_NUM_THREADS"], env)
    assert out == {"UNIDETOX_DATA_DIR": "/data", "HF_TOKEN": facts.HIDDEN, "MY_API_KEY": facts.HIDDEN,
                   "OMP_NUM_THREADS": facts.NOT_SET}  # fmt: skip


def test_redact_keys_and_embedded_values():
    env = {"HF_TOKEN": SENTINEL, "SHORT_TOKEN": "abc", "PATH": "/usr/bin"}
    rec = {"a": f"x{SENTINEL}y", "nested": [{"hf_token": "v"}, "abc", "/usr/bin"], "access_key": "", "n": 3}
    out = facts.redact(rec, env)
    assert out == {"a": "x***y", "nested": [{"hf_token": facts.HIDDEN}, "abc", "/usr/bin"], "access_key": "", "n": 3}


def test_nothing_gathered_contains_a_token_set_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", SENTINEL)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    prof = load_profile("tiny")
    gathered = {
        "versions": facts.package_versions(),
        "git": facts.git_state(Path(pv.__file__).parent),
        "machine": facts.machine_info(),
        "environment": facts.environment(),
        "config": facts.redact(to_dict(prof)),
        "commands": pv.regeneration_commands("tiny", ["eval.seeds=[1]"], ["notebooks/x.py"]).to_dict("list"),
        "differences": pv.profile_differences(prof, load_profile("paper"), name="paper").to_dict("list"),
    }
    text = json.dumps(gathered, default=str)
    assert SENTINEL not in text
    assert gathered["environment"]["HF_TOKEN"] == facts.HIDDEN


def test_stage_time_table_aggregates_by_hand():
    summaries = pd.DataFrame(
        {
            "stage": ["evaluate", "detox", "evaluate", "study", "detox"],
            "key": list("abcde"),
            "seconds": [1.5, 4.0, 2.5, np.nan, 1.0],
            "peak_rss_mb": [700.0, 650.0, 720.0, np.nan, 690.0],
        }
    )
    t = pv.stage_time_table(summaries).set_index("stage")
    assert t.index.tolist() == ["detox", "evaluate", "study"]  # by total seconds, untimed last
    assert t.loc["detox", "runs"] == 2 and t.loc["evaluate", "runs"] == 2 and t.loc["study", "runs"] == 1
    assert t.loc["detox", "seconds_total"] == pytest.approx(5.0)
    assert t.loc["evaluate", "seconds_total"] == pytest.approx(4.0)
    assert t.loc["evaluate", "seconds_max"] == pytest.approx(2.5)
    assert t.loc["evaluate", "peak_rss_mb_max"] == pytest.approx(720.0)
    assert np.isnan(t.loc["study", "seconds_total"])  # not 0: it was not timed
    assert "peak_cuda_mb_max" not in t.columns
    with_cuda = pv.stage_time_table(summaries.assign(peak_cuda_mb=[1.0, 2.0, 3.0, np.nan, 5.0])).set_index("stage")
    assert with_cuda.loc["detox", "peak_cuda_mb_max"] == 5.0
    assert len(pv.stage_time_table(pd.DataFrame())) == 0
    with pytest.raises(facts.ProvenanceError, match="stage"):
        pv.stage_time_table(pd.DataFrame({"seconds": [1.0]}))


def test_training_log_splits_train_and_validation_records(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [
        {"step": 2, "loss": 2.0, "lr": 1e-3, "tokens": 20, "elapsed": 0.2, "grad_norm": 1.0},
        {"step": 1, "loss": 3.0, "lr": 1e-3, "tokens": 10, "elapsed": 0.1, "grad_norm": 1.0},
        {"step": 2, "val_loss": 2.5, "val_tokens": 30, "elapsed": 0.3},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    train, val = facts.training_log(log)
    assert train["step"].tolist() == [1, 2] and train["loss"].tolist() == [3.0, 2.0]
    assert val[["step", "val_loss"]].to_dict("list") == {"step": [2], "val_loss": [2.5]}
    log.write_text(json.dumps(recs[0]) + "\n")
    train, val = facts.training_log(log)
    assert len(train) == 1 and len(val) == 0 and "val_loss" in val.columns
    with pytest.raises(facts.ProvenanceError, match="no training log"):
        facts.training_log(tmp_path / "nope.jsonl")


def test_commands_quote_and_pass_overrides_as_yaml():
    overrides = ["runs_dir=/tmp/a b", "eval.seeds=[1, 2]"]
    cmd = pv.pipeline_command("tiny", overrides)
    assert shlex.split(cmd) == ["unidetox", "pipeline", "--profile", "tiny", "--set", "runs_dir=/tmp/a b",
                                "--set", "eval.seeds=[1, 2]"]  # fmt: skip
    assert shlex.split(pv.book_command("cpu")) == ["unidetox", "book", "--profile", "cpu"]
    nb = shlex.split(pv.notebook_command("notebooks/toxic_model.py", "tiny", overrides))  # its paired .ipynb
    assert nb[:6] == ["papermill", "notebooks/toxic_model.ipynb", "toxic_model.out.ipynb", "-p", "profile", "tiny"]
    assert nb[6] == "-y" and yaml.safe_load(nb[7]) == {"overrides": overrides} and len(nb) == 8
    md = shlex.split(pv.notebook_command("notebooks/page.md", "tiny", overrides))  # MyST: converted first
    assert md[:5] == ["jupytext", "--to", "ipynb", "-o", "/tmp/page.ipynb"]
    papermill = md[md.index("papermill") :]
    assert papermill[:6] == ["papermill", "/tmp/page.ipynb", "page.out.ipynb", "-p", "profile", "tiny"]
    assert papermill[6] == "-y" and yaml.safe_load(papermill[7]) == {"overrides": overrides}


def test_regeneration_commands_rows(tmp_path):
    src = tmp_path / "page.py"
    src.write_text('# %% [markdown]\n# # The page title\n#\n# text\n\n# %% tags=["parameters"]\nprofile = "tiny"\n')
    tables = ["runs/tiny/study/k/report.csv", "runs/tiny/study/k/cis.csv", "runs/tiny/distill/j/texts.jsonl"]
    t = pv.regeneration_commands("tiny", [], [src], tables=tables)
    assert t["output"].tolist() == ["report.csv, cis.csv", "texts.jsonl", "page: The page title", "the whole book"]
    assert t["where"].iloc[:2].tolist() == ["runs/tiny/study/k", "runs/tiny/distill/j"]
    assert t["command"].iloc[0] == t["command"].iloc[1] == "unidetox pipeline --profile tiny"
    t = t.iloc[1:].reset_index(drop=True)
    assert (
        t["command"]
        .iloc[1]
        .startswith(f"unidetox pipeline --profile tiny && papermill {(tmp_path / 'page.ipynb').as_posix()} ")
    )
    assert t["command"].iloc[2] == "unidetox pipeline --profile tiny && unidetox book --profile tiny"
    assert t["where"].iloc[1] == "book/_generated/page.ipynb"
    md = tmp_path / "other.md"
    md.write_text("---\njupytext: {}\n---\n\n## Second-level title\n")
    assert pv.notebook_title(md) == "Second-level title"
    assert pv.notebook_title(tmp_path / "none.py") == "none"


def test_book_notebooks_follow_the_toc(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for name in ("b.py", "a.md", "unlisted.py", "_private.py"):
        (tmp_path / "notebooks" / name).write_text("# %%\n")
    toc = {"format": "jb-book", "root": "intro", "parts": [{"chapters": [
        {"file": "_generated/b"}, {"file": "method"}, {"file": "_generated/a"}, {"file": "_generated/missing"}]}]}  # fmt: skip
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    assert pv.book_notebooks(tmp_path) == [Path("notebooks/b.py"), Path("notebooks/a.md")]
    assert pv.book_notebooks(tmp_path / "notebooks") == []  # no _toc.yml there


def test_flatten_and_profile_differences():
    assert pv.flatten_config({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}
    assert pv.show_value([1e-05, "a"]) == "[1e-05, a]"
    assert pv.show_value(list(range(10))) == "10 items: 0, 1, 2, …"
    tiny = load_profile("tiny")
    other = load_profile("tiny", ["distill.alpha=0.3", "toxic.max_texts=5", "eval.seeds=[7]"])
    d = pv.profile_differences(tiny, other, name="other")
    # eval.* is outside the default sections
    assert d.to_dict("list") == {"setting": ["toxic.max_texts", "distill.alpha"], "tiny": ["32", "0.1"],
                                 "other": ["5", "0.3"]}  # fmt: skip
    same = pv.profile_differences(tiny, tiny, name="tiny")
    assert list(same.columns) == ["setting", "tiny (this run)", "tiny"] and len(same) == 0


def test_code_block_fence_outgrows_backticks():
    assert pv.code_block("echo hi", "bash") == "```bash\necho hi\n```\n"
    block = pv.code_block("a ```` b\n")
    assert block.startswith("`````\n") and block.endswith("\n`````\n") and "a ```` b" in block


def test_override_list_reads_papermill_strings():
    assert pv.override_list(["a=1", "b=2"]) == ["a=1", "b=2"]
    assert pv.override_list(("a=1",)) == ["a=1"]
    assert pv.override_list('["runs_dir=/tmp/x", "eval.seeds=[1]"]') == ["runs_dir=/tmp/x", "eval.seeds=[1]"]
    assert pv.override_list("distill.alpha=0.2") == ["distill.alpha=0.2"]
    assert pv.override_list("  ") == []
    with pytest.raises(facts.ProvenanceError, match="list of key=value"):
        pv.override_list([1, 2])
    with pytest.raises(facts.ProvenanceError, match="not a list"):
        pv.override_list("[unclosed")


def test_commands_markdown_groups_consecutive_rows():
    t = pd.DataFrame({"output": ["a", "b", "c", "d"], "where": ["w1", "w2", "w3", "w4"],
                      "command": ["x", "x", "y", "x"]})  # fmt: skip
    md = pv.commands_markdown(t)
    assert md == (
        "- a (`w1`)\n- b (`w2`)\n\n```bash\nx\n```\n\n- c (`w3`)\n\n```bash\ny\n```\n\n- d (`w4`)\n\n```bash\nx\n```\n"
    )
    assert pv.commands_markdown(t.iloc[:0]) == ""
    two_steps = pd.DataFrame({"output": ["p"], "where": ["w"], "command": ["a --x 1 && b 'q && r'"]})
    assert "```bash\na --x 1 &&\n  b 'q && r'\n```" in pv.commands_markdown(two_steps)


def test_command_steps_split_only_outside_quotes():
    assert pv.command_steps("a") == ["a"]
    assert pv.command_steps("a && b && c d") == ["a", "b", "c d"]
    assert pv.command_steps("a 'x && y' && b") == ["a 'x && y'", "b"]
    assert pv.command_steps('a "x && \\" && y" && b') == ['a "x && \\" && y"', "b"]
    assert pv.command_steps("a \\&& b") == ["a \\&& b"]  # escaped: not an operator
    tricky = ["runs_dir=/tmp/it's && here", 'eval.x="a && b"']
    cmd = pv.regeneration_commands("tiny", tricky, ["notebooks/n.md"])["command"].iloc[0]  # MyST: three steps
    steps = pv.command_steps(cmd)
    assert len(steps) == 3 and " && ".join(steps) == cmd
    assert shlex.split(steps[0]) == [
        "unidetox",
        "pipeline",
        "--profile",
        "tiny",
        "--set",
        tricky[0],
        "--set",
        tricky[1],
    ]


def test_secret_names_are_whole_parts_only():
    for name in ("HF_TOKEN", "hf_token", "HUGGING_FACE_HUB_TOKEN", "MY_API_KEY", "apikey", "AWS_SECRET_ACCESS_KEY",
                 "db.password", "GH-AUTH"):  # fmt: skip
        assert facts.SECRET_NAME.search(name), name
    for name in ("max_new_tokens", "TOKENIZERS_PARALLELISM", "tokens_per_second", "val_tokens", "author", "keyword"):
        assert not facts.SECRET_NAME.search(name), name
    cfg = to_dict(load_profile("tiny"))
    assert facts.redact(cfg, {}) == json.loads(json.dumps(cfg))  # no configuration key looks like a credential
    assert facts.environment(["TOKENIZERS_PARALLELISM"], {"TOKENIZERS_PARALLELISM": "false"}) == {
        "TOKENIZERS_PARALLELISM": "false"
    }


def test_machine_and_environment_tables():
    info = {"platform": "Linux-6", "cpu": "Xeon", "cpu_count": 8, "cpus_usable": 2, "memory_gib": 15.5,
            "torch_threads": 2, "gpus": [], "cuda": "none (CPU build)"}  # fmt: skip
    table = pv.machine_table(info)
    assert table.columns.tolist() == ["property", "value"]
    assert dict(zip(table.property, table.value)) == {
        "platform": "Linux-6",
        "CPU": "Xeon",
        "CPU cores (usable)": "8 (2)",
        "memory (GiB)": "15.5",
        "torch threads": "2",
        "GPUs": "none",
        "CUDA": "none (CPU build)",
    }
    gpu = pv.machine_table({**info, "memory_gib": None, "gpus": ["H200 (139.8 GiB)", "H200 (139.8 GiB)"]})
    assert gpu.value.tolist()[3] == "unknown" and gpu.value.tolist()[5] == "H200 (139.8 GiB), H200 (139.8 GiB)"
    no_torch = {k: v for k, v in info.items() if k not in ("torch_threads", "cuda")}
    assert pv.machine_table(no_torch).value.tolist()[4::2] == ["?", "?"]
    env = pv.environment_table(facts.environment(["A", "HF_TOKEN"], {"A": "1", "HF_TOKEN": SENTINEL}))
    assert env.values.tolist() == [["A", "1"], ["HF_TOKEN", facts.HIDDEN]]


def test_data_summary_counts_files_and_megabytes_per_data_set():
    checks = pd.DataFrame({"data set": ["dghs", "mmlu", "mmlu"], "file": ["d", "m1", "m2"],
                           "bytes": [1_500_000, 10, 20], "sha256": ["x"] * 3})  # fmt: skip
    assert pv.data_summary(checks, "/data") == (
        "Data directory `/data`; dghs: 1 file, 1.50 MB; mmlu: 2 files, 0.00 MB."
    )
