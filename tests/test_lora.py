"""LoRA detox (``detox.adapter=lora``, peft) on the four tiny families: only the adapter trains, it is saved in
peft's format with a card, evaluation through the adapter and after merging agree, and the plan counts it."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from unidetox.cli import run
from unidetox.config import ConfigError, LoraSettings, ScaleConfig, TrainConfig
from unidetox.config.loader import load_profile
from unidetox.measure import evaluate as E
from unidetox.method.generate import GenerationSettings, generate_unit, unit_generator
from unidetox.method.train import train_causal_lm
from unidetox.method.train_state import run_fingerprint
from unidetox.models.adapters import AdapterError, lora_param_count, lora_targets
from unidetox.models.loading import load_model
from unidetox.models.tiny import tiny_config
from unidetox.report.cards import render_model_card
from unidetox.scale import costs as C
from unidetox.scale.shapes import HUB_ARCHS, arch_of, lora_params_of

FAMILIES = ("tiny:gpt2", "tiny:opt", "tiny:falcon", "tiny:llama")
TEXTS = ["The cat sat on the mat.", "Dogs bark", "Hello world, how are you", "Some more words in a row"]
U = 2.0**-24  # unit roundoff of fp32


def lora_run(spec: str, out, steps: int = 2, **kw):
    lm = load_model(spec)
    cfg = TrainConfig(learning_rate=1e-2, max_steps=steps, batch_size=2, max_length=16, log_every=1, **kw)
    res = train_causal_lm(lm, TEXTS, cfg, out, save_at_steps=(1,), progress=False, lora=LoraSettings(r=4),
                          scale=ScaleConfig(mixed_precision="fp32"))  # fmt: skip
    return lm, res


def by_hand(spec: str, r: int) -> int:
    """Independent count from the config: r * (in + out) of each of peft's default layers, per layer."""
    c = tiny_config(spec.split(":")[1])
    h, layers = c.hidden_size, c.num_hidden_layers
    if spec == "tiny:gpt2":  # c_attn: h -> 3h
        return layers * r * (h + 3 * h)
    if spec == "tiny:falcon":  # query_key_value: h -> h + 2 * kv_heads * head_dim (multi-query: one K/V head)
        head = h // c.num_attention_heads
        kv = 1 if c.multi_query else c.num_attention_heads
        return layers * r * (h + h + 2 * kv * head)
    kv = getattr(c, "num_key_value_heads", c.num_attention_heads) * (h // c.num_attention_heads)
    return layers * r * ((h + h) + (h + kv))  # q_proj h -> h, v_proj h -> kv


@pytest.mark.parametrize("spec", FAMILIES)
def test_only_the_adapter_trains_and_is_saved_in_peft_format(spec, tmp_path, one_torch_thread):
    frozen = {k: v.clone() for k, v in load_model(spec).model.state_dict().items()}
    lm, res = lora_run(spec, tmp_path / "run")
    assert len(res.losses) == 2 and all(math.isfinite(x) for x in res.losses)
    now = lm.model.state_dict()
    base_keys = {k for k in now if "lora_" not in k}
    # peft renames each adapted layer's weight to <layer>.base_layer.weight: compare by the original name
    for k in base_keys:
        assert torch.equal(now[k], frozen[k.replace(".base_layer", "")]), f"{k} moved"
    adapter = {k: v for k, v in now.items() if "lora_" in k}
    assert sum(v.numel() for v in adapter.values()) == by_hand(spec, 4)
    assert any(v.abs().max() > 0 for k, v in adapter.items() if "lora_B" in k)  # B left zero: nothing trained
    for folder in (tmp_path / "run" / "final", tmp_path / "run" / "steps" / "1"):
        names = {p.name for p in folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= names and "model.safetensors" not in names
        cfg = json.loads((folder / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == spec and cfg["r"] == 4 and cfg["peft_type"] == "LORA"


@pytest.mark.numerics
@pytest.mark.parametrize("spec", FAMILIES)
def test_adapter_and_merged_model_agree(spec, tmp_path, one_torch_thread):
    """The folder loads on its base through peft (W x + s B A x) and merged (W + s B A) x; both are the trained
    model (lm.model, into which peft injected the adapter)."""
    lm, _ = lora_run(spec, tmp_path / "run")
    final = tmp_path / "run" / "final"
    merged, adapted = load_model(str(final)), load_model(str(final), merge_adapter=False)
    assert type(merged.model).__name__ == type(load_model(spec).model).__name__  # plain transformers model
    ids = lm.tokenizer(["hello there world", "a b c d e f"], padding=True, return_tensors="pt")
    with torch.no_grad():
        trained, a, m = (x.model(**ids).logits for x in (lm, adapted, merged))
        base = load_model(spec).model(**ids).logits
    # Tolerance: merging changes only the order of fp32 operations. Each adapted layer's output then differs by at
    # most 2 * gamma_n * (|W| + s |B||A|) |x|, gamma_n = n u / (1 - n u) for dot products of length n <= 4h (Higham,
    # "Accuracy and Stability of Numerical Algorithms", sec. 3.1); the two-layer, normalised tiny networks carry it
    # to the logits with O(1) gain, so |difference| <= 2 gamma_n * (adapted layers + 1) * 4 * max|logit|: ~1e-4
    # here, against ~1e-7 seen, and any CPU's rounding meets it. The fine-tuning moved the logits far more.
    c = tiny_config(spec.split(":")[1])
    n = 4 * c.hidden_size
    gamma = n * U / (1 - n * U)
    tol = 2 * gamma * (2 * c.num_hidden_layers + 1) * 4 * max(1.0, trained.abs().max().item())
    assert (trained - a).abs().max().item() <= tol and (trained - m).abs().max().item() <= tol
    assert (trained - base).abs().max().item() > 100 * tol
    # evaluation through both: the same continuations, unless a draw falls within the logits' ~1e-7 of a boundary
    # of the sampling distribution (probability ~ draws x 1e-6 ~ 1e-4 per continuation here): at most one differs
    st = GenerationSettings(samples_per_prompt=3, max_new_tokens=6, top_k=0, top_p=1.0)
    prompts = ["Hello", "The cat", "x y", "Dogs"]
    out_a, out_m = (
        generate_unit(x.model, x.tokenizer, prompts, st, unit_generator("cpu", 3, 0)) for x in (adapted, merged)
    )
    differ = sum(a != b for ra, rb in zip(out_a, out_m) for a, b in zip(ra, rb))
    assert differ <= 1


def test_evaluation_stage_scores_an_adapter_folder_merged_and_through_peft(tmp_path, one_torch_thread):
    from unidetox.measure.scorers import load_scorer
    from unidetox.pipeline.evaluation import prompts

    lora_run("tiny:llama", tmp_path / "run")
    final = str(tmp_path / "run" / "final")
    profile = load_profile("tiny", ["eval.prompts_per_domain=2", "eval.samples_per_prompt=2", "eval.seeds=[1]"])
    ps, scorer = prompts(profile), load_scorer("tiny")
    recs = {}
    for merge in (True, False):
        model = load_model(final, merge_adapter=merge)
        recs[merge] = E.generate_and_score(model, ps, profile.eval, scorer, tmp_path / f"g{merge}.jsonl",
                                           progress=False)  # fmt: skip
    assert len(recs[True]) == len(recs[False]) == len(ps) * 2
    same = sum(a["continuation"] == b["continuation"] for a, b in zip(recs[True], recs[False]))
    assert same >= len(recs[True]) - 1  # as above: at most one sampling draw near a boundary


def test_detox_texts_with_adapter_lora_writes_a_peft_folder_with_its_card(tmp_path, capsys, one_torch_thread):
    src = tmp_path / "texts.csv"
    pd.DataFrame({"text": TEXTS * 2}).to_csv(src, index=False)
    out = tmp_path / "adapter"
    args = ["--profile", "tiny", "--quiet", "--set", f"runs_dir={tmp_path / 'runs'}"]
    assert run(["detox", *args, "--target", "tiny:gpt2", "--texts", str(src), "--adapter", "lora", "--steps", "2",
                "--batch-size", "2", "--max-length", "16", "--out", str(out)]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert by_hand("tiny:gpt2", 8) == 2048 and "LoRA: 2.05 k trainable" in said  # the plan line, r = 8
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card and "- lora" in card
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny:gpt2"
    facts = json.loads((out / "unidetox_card.json").read_text())
    assert facts["adapter"] == "lora" and facts["training"]["lora_r"] == 8
    # the folder is a model spec: it scores (merged into its base)
    assert run(["score", *args, "--model", str(out), "--k", "1", "--seeds", "1", "--prompts-per-domain", "1"]) == 0
    # full fine-tuning of the same source is another stage: the adapter is part of the key only when on
    assert run(["detox", *args, "--target", "tiny:gpt2", "--texts", str(src), "--steps", "2", "--batch-size", "2",
                "--max-length", "16"]) == 0  # fmt: skip
    stages = sorted((tmp_path / "runs" / "tiny" / "detox").iterdir())
    configs = [json.loads((s / "config.json").read_text())["config"] for s in stages]
    assert len(stages) == 2 and sorted("adapter" in c for c in configs) == [False, True]


def test_the_default_keeps_detox_keys_and_fingerprints():
    from unidetox.pipeline.detox import adapter_key

    tiny = load_profile("tiny")
    assert tiny.detox.adapter == "none" and tiny.detox.lora_settings is None and adapter_key(tiny) == {}
    lora = load_profile("tiny", ["detox.adapter=lora", "detox.lora.r=4"])
    assert adapter_key(lora) == {"adapter": "lora", "lora": {"r": 4, "alpha": 16, "dropout": 0.05,
                                                            "target_modules": []}}  # fmt: skip
    cfg = TrainConfig(max_steps=2)
    assert (
        run_fingerprint(cfg, TEXTS) == run_fingerprint(cfg, TEXTS, None) != run_fingerprint(cfg, TEXTS, LoraSettings())
    )
    with pytest.raises(ConfigError, match="^detox.adapter must be none or lora, not 'qlora'$"):
        load_profile("tiny", ["detox.adapter=qlora"])
    with pytest.raises(ConfigError, match="lora.r must be > 0"):
        load_profile("tiny", ["detox.lora.r=0"])


def test_a_missing_target_layer_is_refused_clearly(tmp_path):
    lm = load_model("tiny:llama")
    with pytest.raises(AdapterError, match="no linear layer named 'c_attn'"):
        train_causal_lm(lm, TEXTS, TrainConfig(max_steps=1), tmp_path, lora=LoraSettings(target_modules=("c_attn",)),
                        progress=False)  # fmt: skip
    with pytest.raises(AdapterError, match="no default LoRA layers for model type 'nonesuch'"):
        lora_targets("nonesuch")


def test_interrupted_lora_run_resumes_to_the_same_adapter(tmp_path, one_torch_thread):
    lora_run("tiny:llama", tmp_path / "a", steps=4)
    lm2 = load_model("tiny:llama")
    cfg = TrainConfig(learning_rate=1e-2, max_steps=4, batch_size=2, max_length=16, log_every=1, checkpoint_every=2)
    kw = {
        "save_at_steps": (1,),
        "progress": False,
        "lora": LoraSettings(r=4),
        "scale": ScaleConfig(mixed_precision="fp32"),
    }
    assert train_causal_lm(lm2, TEXTS, cfg, tmp_path / "b", stop_after=2, **kw).final_dir is None
    train_causal_lm(load_model("tiny:llama"), TEXTS, cfg, tmp_path / "b", **kw)
    a, b = (load_model(str(tmp_path / d / "final")).model.state_dict() for d in ("a", "b"))
    # the same float operations in the same order on the same machine: identical weights
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("spec", FAMILIES)
def test_the_plan_counts_the_adapter_as_peft_does(spec):
    arch, lora = arch_of(spec), LoraSettings(r=8)
    model = load_model(spec).model
    assert lora_params_of(spec, arch, lora) == by_hand(spec, 8) == lora_param_count(model, 8, lora_targets(arch.family))
    every = LoraSettings(r=2, target_modules=tuple(C.linear_shapes(arch)))  # every linear layer: formula vs modules
    assert lora_params_of(spec, arch, every) == lora_param_count(model, 2, every.target_modules)


def test_llama2_7b_lora_count_and_memory_against_published_and_hand_numbers():
    a = HUB_ARCHS["meta-llama/Llama-2-7b-hf"]
    # peft's print_trainable_parameters for Llama-2-7b with r=8 on q_proj, v_proj: 4,194,304 (32 layers x 8 x 2 x 8192)
    t = lora_params_of("meta-llama/Llama-2-7b-hf", a, LoraSettings(r=8))
    assert t == 32 * 8 * (4096 + 4096) * 2 == 4_194_304
    p = C.param_count(a)
    full = C.train_memory(a, micro_batch=1, seq=256)
    lora = C.train_memory(a, micro_batch=1, seq=256, trainable=t, weight_bytes=2)
    assert (lora.weights, lora.gradients, lora.optimizer) == (2 * p + 4 * t, 4 * t, 8 * t)
    assert lora.activations == full.activations and lora.logits == full.logits
    assert full.total / C.GIB > 100 and lora.total / C.GIB < 20  # 7B: ~111 GiB full, ~13 GiB with LoRA in bf16


def test_plan_of_a_lora_profile_names_the_adapter(capsys):
    assert run(["plan", "--profile", "paper", "--set", "detox.adapter=lora", "--gpu", "H100-80GB"]) == 0
    out = capsys.readouterr().out
    assert "LoRA: 4.19 M trainable" in out


def test_adapter_card_header():
    facts = {"name": "smollm2-135m-unidetox", "target": "packaged:smollm2-135m", "adapter": "lora",
             "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0", "command": "detox",
             "training_data": {"sha256": "0" * 64, "kind": "texts"}, "training": {"learning_rate": 1e-3}}  # fmt: skip
    card = render_model_card(facts)
    assert "library_name: peft" in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "library_name: transformers" in render_model_card({**facts, "adapter": None})
    assert dataclasses.asdict(LoraSettings()) == {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ()}


def test_a_bf16_base_stays_frozen_in_bf16_and_the_adapter_trains_in_fp32(tmp_path, one_torch_thread):
    """The CUDA case (models load in bf16 there), on CPU: no fp32 copy of the base; the adapter is fp32 and saved so."""
    from safetensors.torch import load_file

    lm = load_model("tiny:llama", dtype=torch.bfloat16)
    cfg = TrainConfig(learning_rate=1e-2, max_steps=2, batch_size=2, max_length=16, log_every=1)
    res = train_causal_lm(lm, TEXTS, cfg, tmp_path, progress=False, lora=LoraSettings(r=4),
                          scale=ScaleConfig(mixed_precision="bf16"))  # fmt: skip
    assert all(math.isfinite(x) for x in res.losses)
    dtypes = {("lora_" in n, p.dtype) for n, p in lm.model.named_parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}
    saved = load_file(str(tmp_path / "final" / "adapter_model.safetensors"))
    assert saved and all(v.dtype == torch.float32 for v in saved.values())
