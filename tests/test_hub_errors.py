"""The Hugging Face Hub as users meet it, with the Hub unreachable: a gated model with and without HF_TOKEN, a model
id that does not exist, a data set offline. One clear `error:` line each (exit 2), through real transformers and
datasets code; only the Hub's answer is simulated (or the Hub is switched off with HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import errors as E

from unidetox.cli import run

REPO = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_FAKEfakeFAKEfake0123456789"


def hub_answers(monkeypatch, error: type[Exception], status: int) -> None:
    """Every download transformers asks the Hub for fails as the Hub would answer (403 gated, 404 missing)."""
    import transformers.utils.hub as H

    def answer(repo_id=None, *args, **kwargs):
        req = httpx2.Request("GET", f"https://huggingface.co/{repo_id}/resolve/main/config.json")
        raise error(f"{status} Client Error for url {req.url}", response=httpx2.Response(status, request=req))

    monkeypatch.setattr(H, "hf_hub_download", answer)
    monkeypatch.setattr(H, "snapshot_download", answer)


def _evaluate(model: str, tmp_path, capsys) -> tuple[int, str]:
    code = run(["evaluate", "--profile", "tiny", "--quiet", "--no-mmlu", "--model", model,
                "--set", f"runs_dir={tmp_path}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    return code, err


def test_gated_model_without_token(monkeypatch, tmp_path, capsys):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    hub_answers(monkeypatch, E.GatedRepoError, 403)
    code, err = _evaluate("meta-llama/Llama-2-7b-hf", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: cannot load 'meta-llama/Llama-2-7b-hf'")
    assert "is gated on the Hugging Face Hub and no token is set" in err
    assert "accept its licence at https://huggingface.co/meta-llama/Llama-2-7b-hf" in err and "HF_TOKEN" in err
    assert not list(Path(tmp_path).glob("tiny/evaluate/*/metrics.csv"))  # nothing half-written


def test_gated_model_with_a_token_that_has_no_access(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub_answers(monkeypatch, E.GatedRepoError, 403)
    code, err = _evaluate("meta-llama/Llama-2-7b-hf", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 0
    assert "the token in HF_TOKEN has no access to it" in err and "with the account that owns the token" in err
    assert FAKE_TOKEN not in err and FAKE_TOKEN[3:12] not in err


def test_model_id_that_does_not_exist(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    hub_answers(monkeypatch, E.RepositoryNotFoundError, 404)
    code, err = _evaluate("some-org/not-a-model-xyz", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 0
    assert "'some-org/not-a-model-xyz' does not exist on the Hugging Face Hub (or is private: set HF_TOKEN)" in err
    assert "check the id's spelling" in err


def test_hub_problem_classifies_wrapped_errors():
    from unidetox.models.hub import hub_problem

    req = httpx2.Request("GET", "https://huggingface.co/x")
    gated = E.GatedRepoError("gated", response=httpx2.Response(403, request=req))
    assert issubclass(E.GatedRepoError, E.RepositoryNotFoundError)  # why 'gated' is checked first
    for inner, kind in [(gated, "gated"), (E.RepositoryNotFoundError("x", response=httpx2.Response(404, request=req)),
                                           "missing"), (E.LocalEntryNotFoundError("not cached"), "offline"),
                        (ValueError("something else"), "other")]:  # fmt: skip
        try:
            try:
                raise inner
            except Exception as e:
                raise OSError("wrapped by transformers") from e
        except OSError as outer:
            assert hub_problem(outer) == kind


def test_offline_model_and_dataset_with_the_hub_switched_off(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 (read at import) and an empty cache: the real offline errors."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("HF_TOKEN", None)
    base = [sys.executable, "-m", "unidetox.cli", "evaluate", "--profile", "tiny", "--quiet", "--no-mmlu",
            "--set", f"runs_dir={tmp_path / 'runs'}"]  # fmt: skip
    model = subprocess.run([*base, "--model", "meta-llama/Llama-2-7b-hf"], env=env, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    err = model.stderr.strip().splitlines()[-1]
    assert model.returncode == 2 and err.startswith("error: cannot load 'meta-llama/Llama-2-7b-hf'"), model.stderr
    assert "not in the local Hugging Face cache and the Hub is switched off (HF_HUB_OFFLINE=1)" in err
    assert "hf download meta-llama/Llama-2-7b-hf" in err and "packaged model" in err
    data = subprocess.run([*base, "--model", "tiny:gpt2", "--set", "data.source=hub", "--split", "test"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    err = data.stderr.strip().splitlines()[-1]
    assert data.returncode == 2 and err.startswith("error: cannot load skg/toxigen-data"), data.stderr
    assert "dataset 'skg/toxigen-data' is not in the local Hugging Face cache and the Hub is switched off" in err
    assert "hf download skg/toxigen-data --repo-type dataset" in err and "data.source=local" in err


def test_classifier_hub_id_that_does_not_exist(monkeypatch):
    from unidetox.measure.scorers import ScorerError, load_scorer

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    hub_answers(monkeypatch, E.RepositoryNotFoundError, 404)
    with pytest.raises(ScorerError) as caught:
        load_scorer("hf:unitary/toxic-bertt")
    msg = str(caught.value)
    assert "classifier 'unitary/toxic-bertt'" in msg and "does not exist on the Hugging Face Hub" in msg
    assert "'toxblock'" in msg
