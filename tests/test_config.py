"""Profiles, YAML loading and --set overrides."""

from __future__ import annotations

import pytest

from unidetox.config import PROFILES, ConfigError, Profile, from_dict, load_profile, to_dict


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
    p = load_profile(
        "tiny", ["distill.alpha=0.25", "detox.steps=[1, 3]", "eval.seeds=7", "detox.train.learning_rate=1e-4"]
    )
    assert p.distill.alpha == 0.25 and p.detox.steps == (1, 3) and p.eval.seeds == (7,)
    assert p.detox.train.learning_rate == 1e-4


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


def test_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'gpu'"):
        load_profile("gpu")
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\ndistill: {alpha: 0.1, colour: red}\n")
    with pytest.raises(ConfigError, match="distill.colour"):
        load_profile(str(bad))


def test_notebook_profile_accepts_papermill_strings():
    from unidetox.config import notebook_profile

    assert notebook_profile("tiny", '["distill.alpha=0.5", "eval.seeds=[1]"]').eval.seeds == (1,)
    assert notebook_profile("tiny", "distill.alpha=0.5").distill.alpha == 0.5
    assert notebook_profile("tiny", "").distill.alpha == load_profile("tiny").distill.alpha
    assert notebook_profile("tiny", ["distill.alpha=0.25"]).distill.alpha == 0.25
    with pytest.raises(ConfigError, match="list of key=value"):
        notebook_profile("tiny", [1, 2])
