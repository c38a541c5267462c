"""The paper's four architectures (GPT-2, OPT, Falcon, Llama) as tiny random models: their BOS/EOS/padding
conventions, the distiller's start token, and detoxification and evaluation end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import perturbed

from unidetox.cli import run
from unidetox.config import DistillConfig
from unidetox.method import distill as Dist
from unidetox.method.train_setup import tokenize_texts
from unidetox.models.loading import LoadedModel, load_model, load_tokenizer

FAMILIES = ("tiny:gpt2", "tiny:opt", "tiny:falcon", "tiny:llama")


def test_each_family_keeps_its_special_token_conventions():
    gpt2, opt, falcon, llama = (load_tokenizer(s) for s in FAMILIES)
    # GPT-2: <|endoftext|> is BOS, EOS and (for batching) pad; nothing is prepended
    assert gpt2.bos_token == gpt2.eos_token == gpt2.pad_token == "<|endoftext|>"
    assert gpt2("hi").input_ids[0] != gpt2.bos_token_id
    # OPT: </s> is BOS and EOS and is prepended to every text; <pad> pads
    assert opt.bos_token == opt.eos_token == "</s>" and opt.pad_token == "<pad>"
    assert opt("hi").input_ids[0] == opt.eos_token_id == 2 and opt.pad_token_id == 1
    # Falcon: no BOS at all, nothing prepended, EOS pads
    assert falcon.bos_token is None and falcon.eos_token == falcon.pad_token == "<|endoftext|>"
    assert falcon("hi").input_ids == falcon("hi", add_special_tokens=False).input_ids
    # Llama: <s> prepended, </s> ends, <pad> pads
    assert llama("hi").input_ids[0] == llama.bos_token_id and llama.bos_token == "<s>" and llama.pad_token == "<pad>"
    # training sequences: the family's prefix (if any), the text, one EOS
    for tok in (gpt2, opt, falcon, llama):
        (ids,) = tokenize_texts(tok, ["hi"], 16)
        assert ids[-1] == tok.eos_token_id and ids[:-1] == tok("hi").input_ids


def test_the_distiller_states_its_start_token_for_each_family():
    says = {s: Dist.start_description(load_model(s)) for s in FAMILIES}
    assert says["tiny:gpt2"] == "'<|endoftext|>' (id 50256, BOS = EOS)"
    assert says["tiny:opt"] == "'</s>' (id 2, BOS = EOS)"
    assert says["tiny:falcon"] == "'<|endoftext|>' (id 0, EOS: no BOS token)"
    assert says["tiny:llama"] == "'<s>' (id 1, BOS)"


def test_a_model_without_bos_or_eos_is_refused_clearly():
    lm = load_model("tiny:falcon")
    tok = load_tokenizer("tiny:falcon")
    tok.eos_token = None
    tok.pad_token = None
    bare = LoadedModel("bare-model", lm.model, tok)
    with pytest.raises(Dist.DistillError, match="bare-model has neither a BOS nor an EOS token.*Fix"):
        Dist.start_description(bare)
    with pytest.raises(Dist.DistillError, match="neither a BOS nor an EOS"):
        Dist.decode_batch(bare, None, DistillConfig(num_texts=1, max_new_tokens=2, batch_size=1), 0, 1)


@pytest.mark.parametrize("spec", FAMILIES)
def test_contrastive_decoding_runs_from_each_family_start_token(spec, tmp_path, one_torch_thread):
    base = load_model(spec)
    cfg = DistillConfig(num_texts=3, max_new_tokens=6, batch_size=2, seed=5)
    res = Dist.contrastive_texts(base, perturbed(base), cfg, tmp_path / "s.jsonl", progress=False)
    assert len(res.texts) == 3 and res.tokens_generated > 0


def test_every_family_goes_through_detox_and_evaluation(tmp_path, capsys, one_torch_thread):
    """One tiny study with the four families as targets (one learning rate, 2 steps), Falcon as distillation model."""
    args = ["--profile", "tiny", "--quiet", "--set", f"runs_dir={tmp_path}",
            "--set", f"detox.targets=[{','.join(FAMILIES)}]", "--set", "detox.learning_rates=[1.0e-3]",
            "--set", "detox.steps=[2]", "--set", "toxic.base_model=tiny:falcon",
            "--set", "toxic.train.max_steps=2", "--set", "distill.num_texts=4"]  # fmt: skip
    assert run(["evaluate", *args, "--no-mmlu"]) == 0
    out = capsys.readouterr().out
    assert "distill: texts start from '<|endoftext|>' (id 0, EOS: no BOS token) of tiny:falcon" in out
    assert out.count("plan: train ") == 1 + len(FAMILIES)  # the toxic model, then each target
    table = pd.read_csv(Path(tmp_path) / "tiny" / "results-validation.csv")
    for spec in FAMILIES:
        rows = table[table.target == spec]
        assert set(rows.method) == {"none", "unidetox"}, spec
        for metric in ("TP", "EMT", "PPL", "Dist-1"):
            assert rows[rows.metric == metric].value.notna().all(), (spec, metric)
