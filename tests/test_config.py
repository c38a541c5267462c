"""Profiles, YAML loading and --set overrides."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from unidetox.config import PROFILE_DIR, PROFILES, ConfigError, Profile, to_dict
from unidetox.config.loader import from_dict, load_profile

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_load_and_round_trip(name):
    p = load_profile(name)
    assert p.name == name
    assert from_dict(Profile, to_dict(p)) == p


def test_paper_profile_holds_the_papers_settings():
    p = load_profile("paper")
    assert p.toxic.base_model == "gpt2-xl" and len(p.toxic.targets) == 34
    assert (p.toxic.train.learning_rate, p.toxic.train.epochs, p.toxic.train.batch_size) == (1e-5, 3, 4)
    assert (p.distill.alpha, p.distill.num_texts, p.distill.max_new_tokens + 1) == (0.1, 640, 256)
    assert p.detox.learning_rates == (5e-5, 1e-5) and p.detox.train.batch_size == 8
    assert p.detox.steps == tuple(range(1000, 10001, 1000))
    assert p.detox.targets == ("gpt2-xl", "facebook/opt-6.7b", "tiiuae/falcon-7b", "meta-llama/Llama-2-7b-hf")
    e = p.eval
    assert (e.samples_per_prompt, e.max_new_tokens, e.top_p, e.seeds) == (25, 20, 0.9, (42, 43, 44, 45, 46))
    assert e.scorer == "hf:unitary/toxic-bert" and p.data.source == "hub"


def test_overrides_are_typed():
    p = load_profile("tiny", ["distill.alpha=0.25", "detox.steps=[1, 3]", "eval.seeds=7", "detox.learning_rates=1e-4"])
    assert p.distill.alpha == 0.25 and p.detox.steps == (1, 3) and p.eval.seeds == (7,)
    assert (p.detox.train.learning_rate, p.detox.train.max_steps) == (1e-4, 3)  # the grid's first rate, last step


@pytest.mark.parametrize(
    "key, instead",
    [("learning_rate", "detox.learning_rates"), ("max_steps", "detox.steps"), ("epochs", "detox.steps")],
)
def test_detox_train_settings_the_grid_overwrites_are_refused(key, instead, tmp_path):
    """The detox stage sets each run's learning rate and steps from the grid: a value here would change nothing."""
    message = rf"^detox.train.{key} cannot be set: .* Fix: remove detox.train.{key}; set {instead} instead$"
    with pytest.raises(ConfigError, match=message):
        load_profile("tiny", [f"detox.train.{key}=2"])
    mine = tmp_path / "mine.yaml"
    tiny = (PROFILE_DIR / "tiny.yaml").read_text()
    assert tiny.count("seed: 42,") == 1  # detox.train's
    mine.write_text(tiny.replace("seed: 42,", f"seed: 42, {key}: 2,"))
    with pytest.raises(ConfigError, match=message):
        load_profile(str(mine))


def test_a_profile_is_named_after_what_was_asked_for(tmp_path):
    mine = tmp_path / "exp.yaml"
    mine.write_text((PROFILE_DIR / "cpu.yaml").read_text())
    assert load_profile(str(mine)).name == "exp"  # its run store is runs/exp, not runs/cpu
    assert load_profile(str(mine), ["name=other"]).name == "other"
    named = tmp_path / "named.yaml"
    named.write_text("name: cpu\ndistill: {alpha: 0.2}\n")
    with pytest.raises(ConfigError, match=r"^profile .*named.yaml has a 'name:' line: remove it; .*\('named'\)"):
        load_profile(str(named))


def _fields(cls: type, prefix: str = ""):
    """(dotted key, field) of every field of dataclass `cls` and of the dataclasses nested in it."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield prefix + f.name, f
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")


def test_every_setting_has_one_line_of_help():
    keys = dict(_fields(Profile))
    assert {"distill.alpha", "detox.train.batch_size", "toxic.train.learning_rate", "scale.memory_check"} <= set(keys)
    missing = [k for k, f in keys.items() if not f.metadata.get("help")]
    assert not missing, f"fields without metadata help: {missing}"
    assert all("\n" not in f.metadata["help"] and len(f.metadata["help"]) <= 110 for f in keys.values())


def test_settings_page_is_the_generated_output():
    from unidetox.report.tables.settings import settings_markdown

    page = (REPO / "book" / "settings.md").read_text(encoding="utf-8")
    assert page == settings_markdown(), "book/settings.md is stale: run `make settings`"
    assert "| `distill.alpha` | `float` | `0.1` | `0.1` | `0.1` | `0.1` | keep token v only if" in page
    assert "`detox.train.learning_rate`" not in page and "`detox.train.batch_size`" in page


@pytest.mark.parametrize(
    "override, message",
    [
        ("distill.alpah=0.1", "did you mean 'alpha'"),
        ("distil.alpha=0.1", "did you mean 'distill'"),
        ("distill.alpha=abc", "must be a number"),
        ("distill.num_texts=2.5", "must be an integer"),
        ("distill.alpha=0", r"alpha must be in \(0, 1\]"),
        ("distill.alpha=1.5", r"alpha must be in \(0, 1\]"),
        ("detox.steps=[0, 2]", "must all be > 0"),
        ("detox.steps=[-5]", "must all be > 0"),
        ("toxic.train.max_steps=-1", ">= 0"),
        ("trust_remote_code=yes please", "true or false"),
        ("distill.alpha", "key=value"),
    ],
)
def test_bad_overrides_are_refused_clearly(override, message):
    with pytest.raises(ConfigError, match=message):
        load_profile("tiny", [override])


CHOICES = {  # every setting with a fixed set of values (a new one is added here, with its values)
    "device": ("auto", "cpu", "cuda"),
    "data.source": ("local", "hub"),
    "toxic.train.scheduler": ("linear", "constant"),
    "detox.train.scheduler": ("linear", "constant"),
    "eval.prompt_split": ("validation", "test", "report"),
    "detox.adapter": ("none", "lora"),
    "eval.inference_dtype": ("auto", "bf16", "fp32"),
    "eval.chat_template": ("off", "auto"),
    "study.report_split": ("validation", "test", "report"),
    "study.baselines": ("preprompt", "released", "base-samples", "nothate", "dexperts"),
    "study.selection_metric": ("TP", "EMT"),
    "scale.mixed_precision": ("auto", "bf16", "fp32"),
}


def test_choices_are_declared_beside_the_help_and_printed_by_settings():
    from unidetox.report.tables.settings import settings, settings_text

    declared = {s.key: s.choices for s in settings() if s.choices}
    assert declared == CHOICES
    text = settings_text()
    assert "\neval.prompt_split (str: validation | test | report) = validation;" in text
    assert "\nstudy.baselines (list[str]: preprompt | released | base-samples | nothate | dexperts) = " in text


@pytest.mark.parametrize("key", list(CHOICES))
def test_a_value_outside_the_choices_is_refused_in_one_line_naming_the_key(key):
    is_list = key == "study.baselines"
    values = ", ".join(CHOICES[key][:-1]) + f" or {CHOICES[key][-1]}"
    with pytest.raises(ConfigError) as e:
        load_profile("tiny", [f"{key}=[nope]" if is_list else f"{key}=nope"])
    assert str(e.value) == f"{key} must {'each ' if is_list else ''}be {values}, not 'nope'"
    for value in CHOICES[key]:  # and every declared value is taken
        load_profile("tiny", [f"{key}=[{value}]" if is_list else f"{key}={value}"])


def test_no_settings_class_checks_its_choices_by_hand():
    """Membership in a literal tuple (``x in ("a", "b")``) is what ``choices`` declares: it is not written again."""
    import ast

    for path in sorted((REPO / "unidetox" / "config").glob("*.py")):
        classes = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)]
        for node in (n for c in classes for n in ast.walk(c)):
            if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In):
                assert not isinstance(node.comparators[0], (ast.Tuple, ast.List)), f"{path.name}:{node.lineno}"


def test_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'gpu'"):
        load_profile("gpu")
    bad = tmp_path / "p.yaml"
    bad.write_text("distill: {alpha: 0.1, colour: red}\n")
    with pytest.raises(ConfigError, match="distill.colour"):
        load_profile(str(bad))


def test_notebook_profile_accepts_papermill_strings():
    from unidetox.config.loader import notebook_profile

    assert notebook_profile("tiny", '["distill.alpha=0.5", "eval.seeds=[1]"]').eval.seeds == (1,)
    assert notebook_profile("tiny", "distill.alpha=0.5").distill.alpha == 0.5
    assert notebook_profile("tiny", "").distill.alpha == load_profile("tiny").distill.alpha
    assert notebook_profile("tiny", ["distill.alpha=0.25"]).distill.alpha == 0.25
    with pytest.raises(ConfigError, match="list of key=value"):
        notebook_profile("tiny", [1, 2])
