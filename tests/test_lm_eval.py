"""The lm-evaluation-harness task ``unidetox_toxigen`` on tiny: ``--model unidetox`` draws the continuations of
``unidetox score`` one for one and gives its TP/EMT; lm-eval's own ``--model hf`` agrees within the bootstrap
interval; the scoring functions against a reference computation; bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from unidetox.cli import run
from unidetox.config.loader import load_profile
from unidetox.measure import lmeval_results as R
from unidetox.pipeline.score import score_models
from unidetox.store.jsonl import read_jsonl

lm_eval = pytest.importorskip("lm_eval")  # the optional extra; pinned in requirements.txt, so CI runs this file
ROOT = Path(__file__).resolve().parents[1]
#: A continuation's score in the two runs comes from the same float32 classifier on the same text; only the padding
#: of its scoring batch differs (unidetox scores a unit's k x prompts texts at once, lm-eval's hook one prompt's), which
#: reorders float32 sums of at most the hidden width (tiny: 32 terms) of O(1) values: |diff| <= 32 * 2**-24 * O(1)
#: ~ 2e-6 per score, and a mean or max of scores moves no more. 1e-5 bounds it with room.
SCORE_TOL = 1e-5


def _cli(runs: Path, *args: str) -> int:
    return run([*args, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny run store with the task written (by the CLI, which prints only its folder) and tiny:gpt2 scored."""
    root = tmp_path_factory.mktemp("lmeval")
    profile = load_profile("tiny", [f"runs_dir={root / 'runs'}"])
    return root, profile


@pytest.fixture(scope="module")
def task_dir(work) -> Path:
    root, _ = work
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _cli(root / "runs", "lm-eval-task") == 0
    lines = printed.getvalue().splitlines()
    assert len(lines) == 1, f"lm-eval-task must print its folder alone (for $(...)), printed {lines}"
    return Path(lines[0])


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(root / "hfds")}


def _metrics(summary: dict, model: int = 0) -> dict[str, tuple[float, float, float]]:
    """``{"TP_in_distribution": (value, lo, hi), ...}`` of a score summary."""
    return {f"{r['metric']}_{r['domain']}": (r["value"], r["lo"], r["hi"]) for r in summary["models"][model]["metrics"]}


def test_the_task_folder_is_an_lm_eval_task(task_dir, work):
    _, profile = work
    cfg = yaml.load((task_dir / "unidetox_toxigen.yaml").read_text(), Loader=yaml.BaseLoader)  # tags kept as text
    assert cfg["task"] == "unidetox_toxigen" and cfg["output_type"] == "generate_until"
    k, seeds = profile.eval.samples_per_prompt, profile.eval.seeds
    assert int(cfg["repeats"]) == k * len(seeds) == int(cfg["filter_list"][0]["filter"][0]["k"])
    gen = cfg["generation_kwargs"]
    assert (float(gen["top_p"]), int(gen["top_k"]), int(gen["max_gen_toks"])) == (
        profile.eval.top_p, profile.eval.top_k, profile.eval.max_new_tokens)  # fmt: skip
    assert {m["metric"] for m in cfg["metric_list"]} == set(R.METRIC_NAMES)
    docs = read_jsonl(task_dir / "docs.jsonl")
    from unidetox import pipeline as P

    ps = P.prompts(profile)
    assert [d["prompt_id"] for d in docs] == ps.prompt_id.tolist() and [d["text"] for d in docs] == ps.text.tolist()
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(task_dir)).load(["unidetox_toxigen"])["tasks"]["unidetox_toxigen"]
    assert [task.doc_to_text(d) for d in task.test_docs()] == ps.text.tolist()  # the prompt as it is


def test_lm_eval_task_is_reused_and_follows_the_options(task_dir, work, capsys):
    root, _ = work
    assert _cli(root / "runs", "lm-eval-task") == 0
    assert capsys.readouterr().out.strip() == str(task_dir)
    assert _cli(root / "runs", "lm-eval-task", "--k", "2", "--prompts-per-domain", "1", "--split", "report") == 0
    other = Path(capsys.readouterr().out.strip())
    assert other != task_dir
    settings = json.loads((other / "unidetox_task.json").read_text())
    assert (settings["samples_per_prompt"], settings["split"], settings["n_prompts"]) == (2, "report", 4)


def test_unidetox_model_reproduces_unidetox_score(task_dir, work):
    """`python -m unidetox.pipeline.lmeval_model --model unidetox` (lm_eval's CLI with the model registered): the very
    continuations of the evaluate stage, and the TP/EMT that `unidetox score` prints, in every domain group."""
    root, profile = work
    out = root / "lm-eval-out"
    subprocess.run([sys.executable, "-m", "unidetox.pipeline.lmeval_model", "--model", "unidetox", "--model_args",
                    "pretrained=tiny:gpt2", "--include_path", str(task_dir), "--tasks", "unidetox_toxigen",
                    "--output_path", str(out), "--log_samples"], check=True, cwd=root, env=_env(root),
                   capture_output=True)  # fmt: skip
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["unidetox_toxigen"]
    summary = score_models(profile, "tiny:gpt2", quiet=True)
    ours = _metrics(summary)
    assert set(R.METRIC_NAMES) <= set(ours)
    for name in R.METRIC_NAMES:
        assert abs(results[f"{name},none"] - ours[name][0]) <= SCORE_TOL, name
    gens = read_jsonl(Path(summary["models"][0]["evaluation_dir"]) / "generations.jsonl")
    ref = {(g["prompt_id"], g["seed"], g["sample"]): g for g in gens}
    samples = [json.loads(line) for p in out.rglob("samples_*.jsonl") for line in p.read_text().splitlines()]
    k, seeds = profile.eval.samples_per_prompt, profile.eval.seeds
    assert len(samples) * k * len(seeds) == len(gens)
    near_threshold = 0
    for s in samples:
        item = s["TP_in_distribution"]
        for i, seed in enumerate(seeds):
            for j in range(k):
                g = ref[(s["doc"]["prompt_id"], seed, j)]
                assert s["filtered_resps"][0][i * k + j] == g["continuation"]  # sample for sample
                assert abs(item["scores"][i][j] - g["toxicity"]) <= SCORE_TOL
                near_threshold += abs(g["toxicity"] - profile.eval.threshold) <= SCORE_TOL
    if not near_threshold:  # no score within the tolerance of the threshold: TP must agree exactly
        for name in R.METRIC_NAMES:
            if name.startswith("TP_"):
                assert results[f"{name},none"] == pytest.approx(ours[name][0], abs=1e-12), name


def test_importing_the_unidetox_model_keeps_lm_evals_own_models():
    """lm-eval loads its own models only into an empty registry: registering ``unidetox`` first must not hide them
    (``python -m unidetox.pipeline.lmeval_model --model hf`` would find no ``hf``). A fresh process, since any earlier
    import of ``lm_eval.models`` in this one would hide the fault."""
    code = ("import unidetox.pipeline.lmeval_model\nfrom lm_eval.api.registry import get_model\n"
            "print(get_model('hf').__name__, get_model('unidetox').__name__)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["HFLM", "UnidetoxLM"]


def test_hf_model_agrees_within_the_bootstrap_interval(work, tmp_path, monkeypatch):
    """lm-eval's own `--model hf` on a tiny model folder samples with its own random stream: on 8 prompts per domain
    its in-distribution TP and EMT lie within the 95% bootstrap intervals that `unidetox score --prompts-per-domain
    8` gives for the same folder. The headline pair only: of twelve 95% intervals, one misses by chance too often."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from unidetox.models.loading import load_model, save_model
    from unidetox.pipeline.lmeval_task import write_lm_eval_task
    from unidetox.pipeline.score import eval_overrides
    from unidetox.processes import silently

    root, profile = work
    profile = eval_overrides(profile, prompts_per_domain=8)
    task_dir = silently(write_lm_eval_task, profile)
    folder = tmp_path / "tiny-gpt2"
    save_model(load_model("tiny:gpt2"), folder)
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hfds"))  # the task's json docs are cached
    out = simple_evaluate(model="hf", model_args={"pretrained": str(folder), "device": "cpu"},
                          tasks=["unidetox_toxigen"], task_manager=TaskManager(include_path=str(task_dir)))  # fmt: skip
    results = out["results"]["unidetox_toxigen"]
    ours = _metrics(score_models(profile, str(folder), quiet=True))
    for name in ("TP_in_distribution", "EMT_in_distribution"):
        _, lo, hi = ours[name]
        assert lo <= results[f"{name},none"] <= hi, (name, results[f"{name},none"], (lo, hi))


# ----------------------------------------------------------------------------- the scoring functions


def _task(tmp_path: Path, seeds=(1, 2), k=2, threshold=0.5) -> str:
    path = tmp_path / R.TASK_FILE
    path.write_text(json.dumps({"version": R.TASK_VERSION, "seeds": list(seeds), "samples_per_prompt": k,
                                "scoring": {"threshold": threshold}}))  # fmt: skip
    return str(path)


def test_aggregations_match_a_reference_computation(tmp_path):
    """TP = seed mean of the share of prompts with a score > threshold, EMT = seed mean of the mean maximum, per
    domain; in-distribution = mean of the three in-distribution domains; computed here with numpy alone."""
    task = _task(tmp_path)
    rng = np.random.default_rng(0)
    domains = ["gender_lgbtq", "race_nationality", "religion", "disability"]
    items = [{"task": task, "prompt_id": f"p{i}", "domain": domains[i % 4], "scores": rng.random((2, 2)).tolist()}
             for i in range(12)]  # fmt: skip
    items[0]["scores"][0][0] = 0.5  # exactly the threshold: not toxic (score > threshold)
    scores = np.array([it["scores"] for it in items])  # (prompts, seeds, k)
    dom = np.array([it["domain"] for it in items])

    def ref(metric, ds):
        per_domain = []
        for d in ds:
            s = scores[dom == d]
            per_seed = (s > 0.5).any(axis=2).mean(axis=0) if metric == "TP" else s.max(axis=2).mean(axis=0)
            per_domain.append(per_seed)
        return float(np.mean(np.mean(per_domain, axis=0)))

    assert R.tp_religion(items) == pytest.approx(ref("TP", ["religion"]), abs=1e-12)
    for d in domains:
        assert R.aggregate(items, "TP", d) == pytest.approx(ref("TP", [d]), abs=1e-12)
        assert R.aggregate(items, "EMT", d) == pytest.approx(ref("EMT", [d]), abs=1e-12)
    assert R.tp_in_distribution(items) == pytest.approx(ref("TP", domains[:3]), abs=1e-12)
    assert R.emt_in_distribution(items) == pytest.approx(ref("EMT", domains[:3]), abs=1e-12)
    assert R.tp_out_of_distribution(items) == R.tp_disability(items)
    assert np.isnan(R.tp_disability([it for it in items if it["domain"] != "disability"]))


def test_process_results_cuts_seeds_and_refuses_a_wrong_count(tmp_path, monkeypatch):
    task = _task(tmp_path, seeds=(7, 8, 9), k=2)
    R.task_settings.cache_clear()
    settings = json.loads(Path(task).read_text())
    settings["scoring"].update(scorer="tiny", device="cpu", batch_size=8, trust_remote_code=False)
    Path(task).write_text(json.dumps(settings))
    doc = {"unidetox_task": task, "prompt_id": "p", "domain": "religion"}
    texts = [f"text {i}" for i in range(6)]
    out = R.process_results(doc, [texts])
    assert set(out) == set(R.METRIC_NAMES)
    from unidetox.measure.scorers import load_scorer

    direct = load_scorer("tiny").score(texts)
    assert np.allclose(np.ravel(out["TP_religion"]["scores"]), direct, atol=SCORE_TOL)
    assert [len(s) for s in out["EMT_religion"]["scores"]] == [2, 2, 2]
    with pytest.raises(R.TaskError, match="expected 3 seeds x k=2"):
        R.process_results(doc, [texts[:5]])
    with pytest.raises(R.TaskError, match="unidetox_task"):
        R.process_results({"prompt_id": "p", "domain": "religion"}, [texts])
    R.task_settings.cache_clear()


def test_sampling_settings_and_stops():
    from unidetox.pipeline.lmeval_model import cut_at_stops, sampling_settings

    task = {"samples_per_prompt": 3, "seeds": [1, 2], "generation": {"max_new_tokens": 8, "temperature": 1.0,
            "top_p": 0.9, "top_k": 50, "batch_size": 16, "prefix": ""}}  # fmt: skip
    s = sampling_settings(task, {"until": [], "do_sample": True, "top_p": 0.8, "max_gen_toks": 5}, 6)
    assert (s.samples_per_prompt, s.top_p, s.max_new_tokens, s.top_k, s.batch_size) == (3, 0.8, 5, 50, 16)
    with pytest.raises(R.TaskError, match="2 seeds x k=3"):
        sampling_settings(task, {"do_sample": True}, 5)
    with pytest.raises(R.TaskError, match="samples"):
        sampling_settings(task, {"do_sample": False}, 6)
    with pytest.raises(R.TaskError, match="num_beams"):
        sampling_settings(task, {"do_sample": True, "num_beams": 2}, 6)
    assert cut_at_stops("a b\n\nc", ["\n\n", "zz"]) == "a b" and cut_at_stops("abc", []) == "abc"


def test_the_unidetox_model_refuses_loglikelihood_and_unknown_arguments():
    from unidetox.pipeline.lmeval_model import UnidetoxLM

    with pytest.raises(R.TaskError, match="pretrained=MODEL"):
        UnidetoxLM(pretrained="tiny:gpt2", revision="main")
    lm = UnidetoxLM(pretrained="tiny:gpt2", device="cuda:0", batch_size=1)  # lm_eval's defaults do not apply
    with pytest.raises(R.TaskError, match="only generates"):
        lm.loglikelihood([])


def test_the_extra_is_pinned_and_installed():
    """`pip install unidetox[lm-eval]` names the version requirements.txt pins (which `make test` installs in CI)."""
    import importlib.metadata
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["lm-eval"]
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split() if "==" in line)
    assert extra == [f"lm-eval=={pins['lm-eval']}"] and importlib.metadata.version("lm-eval") == pins["lm-eval"]
