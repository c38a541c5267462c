"""Safety: no remote code unless asked, safetensors only, the scorer's pickle restricted, Hub tokens never written.

- ``trust_remote_code`` is False in every profile and reaches every Hugging Face load (models, tokenizers, the
  classifier scorer) only through ``--set trust_remote_code=true``; no source file hard-codes it to True.
- A run writes weights and checkpoints as safetensors only, and no pickle at all; pickles offered as weights or
  checkpoints are refused unread (tests/test_bad_inputs.py: pickle-only-model-dir, pickle-checkpoint).
- The tox-block scorer's tokenizer pickle goes through the restricted unpickler: a copy of the package whose
  pickle names any other class (code execution, a harmless stdlib class, one of ours) is refused, end to end
  through ``unidetox evaluate``, and nothing in it runs.
- Hub tokens come from the environment only (no configuration key, no ``token=`` argument in the code), and a
  run made with ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN`` set to a fake token never writes it: not in any file under
  runs/ (configs saved with results included), not in the logs (stdout, stderr), not in an executed notebook.
"""

from __future__ import annotations

import ast
import collections
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
from harness import FAKE_TOKEN, REPO, cli_env, half_written, reference_run, run_cli, visible_files

import unidetox.measure.scorers.toxblock as S
from unidetox.cli import run
from unidetox.config import PROFILES, Profile, to_dict
from unidetox.config.loader import load_profile

SOURCES = sorted((REPO / "unidetox").rglob("*.py"))  # every module, in every folder of the package
TOKEN_SHAPED = re.compile(rb"hf_[A-Za-z0-9]{30,}")  # what a real Hugging Face access token looks like


def files_containing(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and needle in p.read_bytes())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return reference_run(tmp_path_factory)


# ----------------------------------------------------------------------------- trust_remote_code


def test_remote_code_is_off_in_every_profile_unless_the_flag_turns_it_on():
    assert Profile().trust_remote_code is False
    for name in PROFILES:
        assert load_profile(name).trust_remote_code is False, name
    assert load_profile("tiny", ["trust_remote_code=true"]).trust_remote_code is True


class HubRecorder:
    """Stand-ins for transformers' from_pretrained: record the keyword arguments, then fail like an offline Hub."""

    def __init__(self, monkeypatch):
        import transformers

        from unidetox.models.tiny import tiny_tokenizer

        self.calls: list[tuple[str, str, dict]] = []

        def tokenizer(path, *args, **kwargs):
            self.calls.append(("AutoTokenizer", str(path), kwargs))
            return tiny_tokenizer("gpt2")

        def model(kind):
            def load(path, *args, **kwargs):
                self.calls.append((kind, str(path), kwargs))
                raise OSError(f"{path} is not reachable (test stand-in for an offline Hub)")

            return load

        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
        for kind in ("AutoModelForCausalLM", "AutoModelForSequenceClassification"):
            monkeypatch.setattr(getattr(transformers, kind), "from_pretrained", model(kind))


@pytest.mark.parametrize("flag, expected", [([], False), (["--set", "trust_remote_code=true"], True)],
                         ids=["default", "flag"])  # fmt: skip
def test_trust_remote_code_reaches_every_hub_load_only_through_the_flag(flag, expected, monkeypatch, tmp_path,
                                                                         capsys):  # fmt: skip
    rec = HubRecorder(monkeypatch)
    common = ["--profile", "tiny", "--quiet", "--set", f"runs_dir={tmp_path / 'runs'}", *flag]
    assert run(["evaluate", "--model", "some-org/remote-lm", "--no-mmlu", *common]) == 2
    assert run(["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--set", "eval.scorer=hf:some-org/remote-clf",
                *common]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "some-org/remote-lm" in err and "some-org/remote-clf" in err
    kinds = {k for k, _, _ in rec.calls}
    assert kinds == {"AutoTokenizer", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}, rec.calls
    for kind, path, kwargs in rec.calls:
        assert kwargs.get("trust_remote_code", False) is expected, (kind, path, kwargs)
        if kind != "AutoTokenizer":
            assert kwargs.get("use_safetensors") is True, (kind, path, kwargs)
    assert not half_written(tmp_path / "runs")


def _calls(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in names:
                yield node


def test_no_source_hard_codes_remote_code_or_passes_a_token():
    hub_calls = {"from_pretrained", "load_dataset", "hf_hub_download", "snapshot_download", "pipeline"}
    bad = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.keyword) and node.arg == "trust_remote_code"
                    and isinstance(node.value, ast.Constant) and node.value.value is True):  # fmt: skip
                bad.append(f"{path.name}:{node.value.lineno}: trust_remote_code=True")
        for call in _calls(tree, hub_calls):
            for kw in call.keywords:
                if kw.arg in ("token", "use_auth_token"):
                    bad.append(f"{path.name}:{call.lineno}: passes {kw.arg}= (tokens come from the environment)")
    assert not bad, bad
    assert len(SOURCES) > 10


def test_no_configuration_key_holds_a_secret():
    secret = re.compile(r"(^|_)(token|hf_token|api_key|apikey|password|secret|auth)$", re.IGNORECASE)

    def keys(tree, prefix=""):
        for k, v in tree.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from keys(v, f"{prefix}{k}.")

    found = [k for k in keys(to_dict(Profile())) if secret.search(k.rsplit(".", 1)[-1])]
    assert not found, f"configuration keys that would store a secret with the results: {found}"


# ----------------------------------------------------------------------------- safetensors only

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")


def test_a_run_writes_weights_and_checkpoints_as_safetensors_and_no_pickle(reference):
    files = visible_files(reference)
    assert files
    bad = []
    for rel, p in files.items():
        head = p.read_bytes()[:4]
        if rel.endswith(PICKLE_SUFFIXES):
            bad.append(f"{rel}: pickle file name")
        elif (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04":
            bad.append(f"{rel}: pickle or torch.save content")
    weight_dirs = [p for p in reference.rglob("*") if p.is_dir() and (p.name in ("final", "checkpoint")
                   or p.parent.name == "steps")]  # fmt: skip
    assert len(weight_dirs) >= 20
    for d in weight_dirs:
        if not any(d.glob("*.safetensors")):
            bad.append(f"{d.relative_to(reference)}: no safetensors file")
    assert not bad, bad[:20]


# ----------------------------------------------------------------------------- the scorer's pickle


class Pwn:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def toxblock_copy(tmp: Path, pickle_bytes: bytes | None) -> Path:
    """A copy of the installed tox_block package (files symlinked); the tokenizer pickle replaced when given."""
    src = S.toxblock_dir()
    dst = tmp / "tox_block"
    for p in src.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if pickle_bytes is not None and p.name == f"encoder_{S.TOXBLOCK_VERSION}.pkl":
                target.write_bytes(pickle_bytes)
            else:
                target.symlink_to(p)
    return dst


def _payloads(marker: Path) -> dict[str, bytes]:
    return {
        "builtins.exec": pickle.dumps(Pwn(marker)),
        "collections.Counter": pickle.dumps(collections.Counter(a=1)),
        "unidetox.config.profile.Profile": pickle.dumps(Profile()),
    }


def test_untampered_copy_of_the_scorer_loads():
    """Control: the package copy used below is a working scorer when its pickle is left alone."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        scorer = S.load_toxblock(package_dir=toxblock_copy(Path(tmp), None))
        assert scorer.score(["you are wonderful"]).shape == (1,)


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_scorer_tokenizer_pickle_naming_any_other_class_is_refused(name, tmp_path):
    marker = tmp_path / "PWNED"
    pkg = toxblock_copy(tmp_path, _payloads(marker)[name])
    with pytest.raises(S.ScorerError, match=re.escape(name)) as info:
        S.load_toxblock(package_dir=pkg)
    assert "refusing" in str(info.value) and "allow-list" in str(info.value)
    assert not marker.exists()


def test_tampered_scorer_pickle_is_refused_through_the_cli(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    pkg = toxblock_copy(tmp_path, pickle.dumps(Pwn(marker)))
    monkeypatch.setattr(S, "toxblock_dir", lambda: pkg)
    runs = tmp_path / "runs"
    rc = run(["evaluate", "--model", "tiny:gpt2", "--no-mmlu", "--profile", "tiny", "--quiet",
              "--set", "eval.scorer=toxblock", "--set", f"runs_dir={runs}"])  # fmt: skip
    err = capsys.readouterr().err
    assert not marker.exists(), "the pickle's code ran"
    assert rc == 2 and err.startswith("error: refusing the tox-block tokenizer pickle") and "builtins.exec" in err
    assert not half_written(runs)


# ----------------------------------------------------------------------------- Hub tokens


def test_runs_are_made_with_a_fake_token_in_the_environment():
    env = cli_env()
    assert env["HF_TOKEN"] == FAKE_TOKEN and env["HUGGING_FACE_HUB_TOKEN"] == FAKE_TOKEN


def test_hub_token_never_reaches_results_configs_or_logs(reference):
    root = reference.parent  # runs/ plus the stdout and stderr of every command of the run
    logs = sorted(root.glob("*.std*"))
    assert len(logs) >= 2 and any(p.stat().st_size for p in logs)
    assert list(reference.rglob("config.json")), "no configuration saved with the results?"
    for needle in (FAKE_TOKEN.encode(), b"FAKEtoken"):
        assert not files_containing(root, needle)
    shaped = [str(p) for p in root.rglob("*") if p.is_file() and TOKEN_SHAPED.search(p.read_bytes())]
    assert not shaped, shaped


PROBE = """\
# %% tags=["parameters"]
profile = "tiny"
overrides = []

# %%
import os

from unidetox import pipeline as P
from unidetox.config import to_dict
from unidetox.config.loader import notebook_profile

prof = notebook_profile(profile, overrides)
print("token set in this kernel:", os.environ.get("HF_TOKEN", "")[:3] == "hf_")
print(to_dict(prof))
display(P.stage_summaries(prof).head())
try:
    from unidetox.report.provenance import facts as pv
except ImportError:
    pv = None
if pv is not None and hasattr(pv, "environment"):
    print(pv.environment())
"""


@pytest.fixture(scope="module")
def executed_probe(reference, tmp_path_factory):
    """A notebook that prints the profile, the stage summaries and the environment report, executed by
    `unidetox book` with the fake token set, on a (hard-linked) copy of the reference run."""
    root = tmp_path_factory.mktemp("secrets-book")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "probe.py").write_text(PROBE)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: _generated/probe\n")
    runs = root / "runs"
    shutil.copytree(reference, runs, copy_function=os.link)
    proc = run_cli(["book", "--profile", "tiny", "--no-html", "--set", f"runs_dir={runs}"], cwd=root)
    return root, proc


def test_hub_token_never_reaches_executed_notebooks(executed_probe):
    root, proc = executed_probe
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = root / "book" / "_generated" / "probe.ipynb"
    text = nb.read_text()
    assert "token set in this kernel: True" in text  # the kernel did have the token
    assert "'alpha': 0.1" in text  # and printed the configuration
    for needle in (FAKE_TOKEN.encode(), b"FAKEtoken"):
        assert not files_containing(root, needle)
        assert needle.decode() not in proc.stdout + proc.stderr
