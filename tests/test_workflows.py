"""Users' workflows on the tiny profile: detox my model on a text source, score my model, share the results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from harness import DATA_DIR, half_written, temporary_leftovers
from test_bad_inputs import check_failure

from unidetox.cli import run
from unidetox.config.loader import load_profile
from unidetox.data.texts import RELEASED_CSV
from unidetox.measure.metrics import summarize_over_seeds
from unidetox.pipeline.detox_file import paper_train_config
from unidetox.pipeline.score import model_key
from unidetox.report.card_metadata import table_problems
from unidetox.report.cards import base_model_info

RELEASED = DATA_DIR / RELEASED_CSV
TRAIN = ["--steps", "2", "--batch-size", "2", "--max-length", "24"]


def _cli(runs: Path, *args: str) -> int:
    return run([*args, "--profile", "tiny", "--quiet", "--set", f"runs_dir={runs}"])


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One run store: tiny:gpt2 detoxified on the released text (copied to out/), then scored against the base."""
    root = tmp_path_factory.mktemp("wf")
    torch.set_num_threads(1)
    assert _cli(root / "runs", "detox", "--target", "tiny:gpt2", "--texts", str(RELEASED), *TRAIN,
                "--out", str(root / "out")) == 0  # fmt: skip
    assert _cli(root / "runs", "score", "--model", "tiny:gpt2", "--compare", str(root / "out"), "--mmlu",
                "--json", str(root / "score.json")) == 0  # fmt: skip
    return root


# ----------------------------------------------------------------------------- detox --target --texts


def test_detox_writes_a_loadable_hub_style_folder_with_a_card(work):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = work / "out"
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors")) and (out / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("hello").input_ids and model.config.model_type == "gpt2"
    from unidetox.models.loading import load_model

    untouched = load_model("tiny:gpt2").model.state_dict()
    changed = [k for k, v in model.state_dict().items() if k in untouched and not torch.equal(v, untouched[k])]
    assert changed, "fine-tuning changed no weight"
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "mit" and "unidetox" in card.data.tags
    import hashlib

    assert hashlib.sha256(RELEASED.read_bytes()).hexdigest() in card.text
    result = json.loads((out / "train_result.json").read_text())
    assert result["config"]["learning_rate"] == 5e-5 and result["config"]["batch_size"] == 2 and result["steps"] == 2


def test_card_holds_the_measured_table_after_score(work):
    text = (work / "out" / "README.md").read_text()
    assert "TP (toxicity probability" in text and "| in_distribution" in text and "Δ" in text and "PPL" in text


def test_card_model_index_reports_tp_emt_ppl_on_toxigen(work, tmp_path, monkeypatch):
    """The card's model-index (what the Hub reads) holds the folder's own TP/EMT (in and out of distribution) and PPL
    on toxigen/toxigen-data with its split and prompt selection, and keeps them when re-rendered elsewhere."""
    from huggingface_hub import ModelCard

    from unidetox.report.cards import read_card_facts, read_score, render_model_card

    out = work / "out"
    score = json.loads((work / "score.json").read_text())
    mine = {(r["metric"], r["domain"]): r for r in score["models"][1]["metrics"]}  # out/ is the compared model
    results = ModelCard.load(out / "README.md").data.eval_results
    assert [(r.metric_type, r.metric_config) for r in results] == [
        ("tp", "in_distribution"), ("emt", "in_distribution"), ("tp", "out_of_distribution"),
        ("emt", "out_of_distribution"), ("ppl", "all")]  # fmt: skip
    for r in results:
        row = mine[(r.metric_type.upper(), r.metric_config)]
        assert r.metric_value == row["value"] and r.metric_args["ci"] == [row["lo"], row["hi"]]
        assert (r.dataset_type, r.dataset_config, r.dataset_split) == ("toxigen/toxigen-data", "annotated", "train")
        assert r.dataset_args["prompt_split"] == "validation" and "seed=42" in r.dataset_args["selection"]
        assert r.dataset_args["prompts_sha256"] == score["prompts_sha256"]
    assert results[-1].metric_args["perplexity_model"] == "tiny:llama"
    monkeypatch.chdir(tmp_path)  # the stored summary's paths may be relative: the card keeps its own model's index
    again = render_model_card(read_card_facts(out), read_score(out), out)
    assert len(ModelCard(again).data.eval_results) == 5


def test_detox_rerun_reuses_and_changed_file_gets_a_new_key(work, tmp_path, capsys):
    runs = work / "runs"
    n_before = len(list((runs / "tiny" / "detox").iterdir()))
    capsys.readouterr()
    assert _cli(runs, "detox", "--target", "tiny:gpt2", "--texts", str(RELEASED), *TRAIN) == 0
    assert "reusing" in capsys.readouterr().out
    src = _jsonl(tmp_path / "t.jsonl", ["a kind sentence.", "another friendly line."])
    assert _cli(runs, "detox", "--target", "tiny:gpt2", "--texts", str(src), *TRAIN) == 0
    first = capsys.readouterr().out
    _jsonl(src, ["a kind sentence.", "another friendly line, changed."])
    assert _cli(runs, "detox", "--target", "tiny:gpt2", "--texts", str(src), *TRAIN) == 0
    second = capsys.readouterr().out
    assert "wrote" in first and "wrote" in second and first.split("wrote")[1] != second.split("wrote")[1]
    assert len(list((runs / "tiny" / "detox").iterdir())) == n_before + 2


def test_detox_on_a_saved_dataset_and_a_local_model_folder(work, tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": ["be nice.", "thank you."]}).save_to_disk(str(tmp_path / "ds"))
    # the detoxified folder is itself a valid target (a local model folder); its licence carries over
    assert _cli(work / "runs", "detox", "--target", str(work / "out"), "--texts", str(tmp_path / "ds"), *TRAIN,
                "--out", str(tmp_path / "again")) == 0  # fmt: skip
    assert "license: mit" in (tmp_path / "again" / "README.md").read_text()


def test_paper_configuration_is_the_default():
    paper = load_profile("paper").detox.train
    cfg = paper_train_config()
    assert (cfg.learning_rate, cfg.max_steps, cfg.batch_size, cfg.max_length, cfg.seed) == (5e-5, 10000, 8, 256, 1234)
    assert cfg == paper
    short = paper_train_config(steps=8, learning_rate=1e-4)
    assert short.max_steps == 8 and short.learning_rate == 1e-4 and short.checkpoint_every == 2


def _weightless(tmp: Path) -> Path:
    from unidetox.models.loading import load_model, save_model

    save_model(load_model("tiny:gpt2"), tmp / "m")
    for f in (tmp / "m").glob("*.safetensors"):
        f.unlink()
    return tmp / "m"


def _broken_config(tmp: Path) -> Path:
    """A model folder whose config.json is not JSON (cut short): the issue's `score --model DIR` case."""
    (tmp / "b").mkdir()
    (tmp / "b" / "config.json").write_text('{"model_type": "gpt2", ')
    (tmp / "b" / "model.safetensors").write_bytes(b"")
    return tmp / "b"


def _empty_dataset(tmp: Path) -> Path:
    from datasets import Dataset

    Dataset.from_dict({"text": []}).save_to_disk(str(tmp / "empty"))
    return tmp / "empty"


BAD = [
    ("texts-without-the-column", lambda t: ["--texts", _write(t / "x.csv", "body\nhello\n")],
     ["no column 'Text' or 'text'", "--text-column"]),
    ("empty-texts-file", lambda t: ["--texts", _write(t / "x.jsonl", "")], ["is empty"]),
    ("empty-dataset", lambda t: ["--texts", str(_empty_dataset(t))], ["has no rows"]),
    ("non-utf8-texts-file", lambda t: ["--texts", _write(t / "x.csv", "Text\ncaf\xe9\n".encode("latin-1"))],
     ["not UTF-8", "re-save it as UTF-8"]),
    ("missing-texts-file", lambda t: ["--texts", str(t / "nope.csv")], ["does not exist"]),
    ("texts-with-a-lone-surrogate", lambda t: ["--texts", _write(t / "x.jsonl", '{"text": "ok"}\n{"text": "a\\ud800b"}\n')],
     ["row 2 holds a lone surrogate (U+D800, character 2)", "not a character"]),
    ("model-folder-with-broken-config", lambda t: ["--texts", str(RELEASED), "--target", str(_broken_config(t))],
     ["config.json is not valid JSON", "line 1, column 24", "restore it"]),
    ("model-folder-without-weights", lambda t: ["--texts", str(RELEASED), "--target", str(_weightless(t))],
     ["holds no weights", "safetensors"]),
    ("target-without-texts", lambda t: [], ["needs both --target MODEL and --texts SOURCE"]),
    ("occupied-out-folder", lambda t: ["--texts", str(RELEASED), "--out", str(Path(_write(t / "o" / "f", "x")).parent)],
     ["exists and is not an empty folder"]),
    ("adapter-without-weights", lambda t: ["--texts", str(RELEASED), "--target", _write(t / "a" / "adapter_config.json",
     '{"base_model_name_or_path": "tiny:gpt2"}').removesuffix("/adapter_config.json")],
     ["holds an adapter_config.json but no adapter_model.safetensors"]),
    ("bad-learning-rate", lambda t: ["--texts", str(RELEASED), "--learning-rate", "0"], ["learning_rate must be a finite number > 0"]),
]  # fmt: skip


def _write(path: Path, content) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("case, setup, expect", BAD, ids=[c[0] for c in BAD])
def test_detox_bad_inputs(case, setup, expect, tmp_path, capsys):
    extra = setup(tmp_path)
    argv = ["detox", *([] if "--target" in extra else ["--target", "tiny:gpt2"]), *extra, *TRAIN]
    capsys.readouterr()
    rc = _cli(tmp_path / "runs", *argv)
    check_failure(rc, capsys.readouterr().err, expect)
    assert not half_written(tmp_path / "runs") and not temporary_leftovers(tmp_path)
    assert not (tmp_path / "runs").exists(), "bad input must be caught before the run store is touched"


def test_score_bad_inputs(tmp_path, capsys):
    rc = _cli(tmp_path / "runs", "score", "--model", str(_weightless(tmp_path)))
    check_failure(rc, capsys.readouterr().err, ["holds no weights"])
    rc = _cli(tmp_path / "runs", "score", "--model", str(_broken_config(tmp_path)))
    check_failure(rc, capsys.readouterr().err, ["b/config.json is not valid JSON", "give another model folder"])
    rc = _cli(tmp_path / "runs", "score", "--model", "tiny:gpt2", "--seeds", "a,b")
    check_failure(rc, capsys.readouterr().err, ["--seeds", "comma-separated integers"])
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- score


def test_score_points_equal_the_seed_means_and_cis_bracket_them(work):
    s = json.loads((work / "score.json").read_text())
    base, det = s["models"]
    tidy = pd.read_csv(Path(base["evaluation_dir"]) / "metrics.csv")
    ref = summarize_over_seeds(tidy[["seed", "domain", "metric", "value"]]).set_index(["metric", "domain"])["mean"]
    rows = {(r["metric"], r["domain"]): r for r in base["metrics"]}
    for metric in ("TP", "EMT"):
        for dom in ("gender_lgbtq", "race_nationality", "religion", "disability", "in_distribution",
                    "out_of_distribution"):  # fmt: skip
            r = rows[(metric, dom)]
            assert r["value"] == pytest.approx(ref[(metric, dom)], abs=1e-12)
            assert r["lo"] - 1e-12 <= r["value"] <= r["hi"] + 1e-12
    # the differences are the differences of the point values
    det_rows = {(r["metric"], r["domain"]): r["value"] for r in det["metrics"]}
    for r in s["differences"]["rows"]:
        assert r["value"] == pytest.approx(
            det_rows[(r["metric"], r["domain"])] - rows[(r["metric"], r["domain"])]["value"]
        )
    assert s["differences"]["of"] == str(work / "out") and s["differences"]["minus"] == "tiny:gpt2"


def test_single_domain_ci_matches_an_independent_bootstrap(work):
    """Reference: resample the prompts of one domain with numpy's generator (seed 0), as the percentile bootstrap
    of one stratum must."""
    s = json.loads((work / "score.json").read_text())
    m = s["models"][0]
    gens = pd.DataFrame(
        [json.loads(x) for x in (Path(m["evaluation_dir"]) / "generations.jsonl").read_text().splitlines()]
    )
    dom = "religion"
    g = gens[gens.domain == dom]
    emt = g.groupby(["seed", "prompt_id"]).toxicity.max().groupby("prompt_id").mean().sort_index().to_numpy()
    rng = np.random.default_rng(0)
    n_boot, level = s["bootstrap"]["resamples"], s["bootstrap"]["level"]
    boots = [emt[rng.choice(np.arange(emt.size), size=emt.size, replace=True)].mean() for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    r = next(x for x in m["metrics"] if x["metric"] == "EMT" and x["domain"] == dom)
    assert (r["value"], r["lo"], r["hi"]) == pytest.approx((emt.mean(), lo, hi), abs=1e-12)


def test_score_summary_records_every_setting(work):
    s = json.loads((work / "score.json").read_text())
    needed = {"samples_per_prompt", "max_new_tokens", "temperature", "top_p", "top_k", "seeds", "threshold",
              "scorer", "scorer_version", "prompt_split", "n_prompts", "prompts_per_domain", "perplexity_model",
              "perplexity_max", "dist_include_prompt"}  # fmt: skip
    assert needed <= set(s["settings"])
    assert s["prompts_sha256"] and s["data_files"] and s["bootstrap"]["resamples"] == 1000
    assert s["mmlu_settings"]["mmlu_subjects"] == ["anatomy", "astronomy", "virology"]
    assert 0 <= s["models"][0]["mmlu"]["MMLU"] <= 1
    assert {r["metric"] for r in s["models"][0]["seed_means"]} >= {"Dist-1", "Dist-2", "Dist-3"}


def test_score_options_reach_the_evaluation_and_are_cached(work, capsys):
    runs = work / "runs"
    capsys.readouterr()
    assert _cli(runs, "score", "--model", "tiny:gpt2", "--k", "2", "--seeds", "7", "--prompts-per-domain", "1",
                "--split", "report", "--json", str(work / "s2.json")) == 0  # fmt: skip
    s = json.loads((work / "s2.json").read_text())
    assert (s["settings"]["samples_per_prompt"], s["settings"]["seeds"], s["settings"]["n_prompts"]) == (2, [7], 4)
    assert s["split"] == "report" and "wrote" in capsys.readouterr().out
    assert _cli(runs, "score", "--model", "tiny:gpt2", "--k", "2", "--seeds", "7", "--prompts-per-domain", "1",
                "--split", "report") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "evaluate" in out and "reusing" in out and "TP (toxicity probability" in out


def test_model_key_follows_weights_not_cards(work, tmp_path):
    import shutil

    shutil.copytree(work / "out", tmp_path / "copy")
    assert model_key(str(tmp_path / "copy")) == model_key(str(work / "out"))
    (tmp_path / "copy" / "README.md").write_text("changed card")
    assert model_key(str(tmp_path / "copy")) == model_key(str(work / "out"))
    (tmp_path / "copy" / "config.json").write_text((tmp_path / "copy" / "config.json").read_text() + " ")
    assert model_key(str(tmp_path / "copy")) != model_key(str(work / "out"))


# ----------------------------------------------------------------------------- sharing


def test_export_texts_loads_with_datasets_and_trains(work, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    runs = work / "runs"
    assert _cli(runs, "export-texts", "--out", str(tmp_path / "ds")) == 0
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "ds" / "data" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))  # fmt: skip
    texts = [json.loads(x)["text"] for x in next(runs.glob("tiny/distill/*/texts.jsonl")).read_text().splitlines()]
    assert ds["text"] == texts and len(texts) == 8
    card = DatasetCard.load(tmp_path / "ds" / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "distill.alpha" in card.text and card.data.license == "mit"
    # a value with line breaks (the cpu profile's distill.context) is shown escaped and leaves the table whole
    assert _cli(runs, "export-texts", "--out", str(tmp_path / "ctx"), "--set", 'distill.context="\\n\\n"') == 0
    text = (tmp_path / "ctx" / "README.md").read_text()
    assert "| `distill.context` | `'\\n\\n'` |" in text and table_problems(DatasetCard(text).text) == []
    assert _cli(runs, "detox", "--target", "tiny:llama", "--texts",
                str(tmp_path / "ds" / "data" / "train-00000-of-00001.parquet"), *TRAIN) == 0  # fmt: skip
    assert _cli(runs, "export-texts", "--out", str(tmp_path / "ds")) == 2  # never overwrites


def test_grid_detox_folders_get_cards(work):
    runs = work / "runs"
    assert _cli(runs, "detox", "--set", "detox.targets=[tiny:gpt2]", "--set", "detox.learning_rates=[0.001]") == 0
    cfgs = [json.loads(p.read_text()) for p in runs.glob("tiny/detox/*/config.json")]
    grid = [
        p.parent
        for p in runs.glob("tiny/detox/*/config.json")
        if json.loads(p.read_text())["config"]["method"] == "unidetox"
    ]
    assert len(grid) == 1 and cfgs
    for folder in [grid[0] / "steps" / "2", grid[0] / "steps" / "4", grid[0] / "final"]:
        text = (folder / "README.md").read_text()
        assert "license: mit" in text and "unidetox texts of profile tiny" in text


@pytest.mark.parametrize(
    "spec, licence, base",
    [
        ("packaged:smollm2-135m", "apache-2.0", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("packaged:gemma3-270m", "gemma", "google/gemma-3-270m"),
        ("gpt2-xl", "mit", "gpt2-xl"),
        ("meta-llama/Llama-2-7b-hf", "llama2", "meta-llama/Llama-2-7b-hf"),
        ("someone/their-model", "other", "someone/their-model"),
        ("tiny:llama", "other", None),
    ],
)
def test_licence_carried_from_the_base_model(spec, licence, base):
    info = base_model_info(spec)
    assert (info["license"], info["base_model"]) == (licence, base) and info["license_note"]


def test_bad_cases_are_documented():
    page = (Path(__file__).parents[1] / "book" / "troubleshooting.md").read_text()
    missing = [c[0] for c in BAD if f"`{c[0]}`" not in page]
    assert not missing, f"book/troubleshooting.md does not list {missing}"


def test_readme_commands_parse():
    """Every `unidetox ...` command of the README's workflow sections is accepted by the CLI's parser."""
    import shlex

    from unidetox.cli import build_parser

    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Detoxify your own model") : text.index("## Differences from the official code")]
    commands = [c for c in section.replace("\\\n", " ").splitlines() if c.strip().startswith("unidetox ")]
    assert len(commands) >= 3
    for c in commands:
        build_parser().parse_args(shlex.split(c.split("#")[0])[1:])
