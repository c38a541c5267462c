"""Parameter, memory and FLOP formulas of `unidetox.scale.costs` against hand computations and real models' numel."""

from __future__ import annotations

import math

import pytest
import torch

from unidetox.models.loading import load_model
from unidetox.models.tiny import TINY_SPECS
from unidetox.scale import costs as C
from unidetox.scale.shapes import HUB_ARCHS, arch_from_config, arch_of


def numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter


@pytest.mark.parametrize("spec", TINY_SPECS)
def test_param_count_equals_numel_of_the_instantiated_tiny_model(spec):
    lm = load_model(spec)
    arch = arch_from_config(lm.model.config, spec)
    assert arch.params == 0, "the formula, not an instantiation, must count the four paper families"
    assert C.param_count(arch) == numel(lm.model)
    assert C.param_count(arch_of(spec)) == numel(lm.model)  # the plan builds the config alone, no weights


@pytest.mark.parametrize("name", ["gpt2-xl", "facebook/opt-6.7b", "tiiuae/falcon-7b", "meta-llama/Llama-2-7b-hf"])
def test_paper_model_table_matches_the_real_architectures(name):
    """The shipped shape numbers, rebuilt as transformers configs and instantiated on the meta device (no memory)."""
    from transformers import AutoModelForCausalLM, FalconConfig, GPT2Config, LlamaConfig, OPTConfig

    a = HUB_ARCHS[name]
    cfg = {
        "gpt2": lambda: GPT2Config(n_layer=a.layers, n_embd=a.hidden, n_head=a.heads, vocab_size=a.vocab,
                                   n_positions=a.positions),
        "opt": lambda: OPTConfig(num_hidden_layers=a.layers, hidden_size=a.hidden, num_attention_heads=a.heads,
                                 ffn_dim=a.intermediate, vocab_size=a.vocab, max_position_embeddings=a.positions,
                                 word_embed_proj_dim=a.hidden),
        "falcon": lambda: FalconConfig(num_hidden_layers=a.layers, hidden_size=a.hidden, num_attention_heads=a.heads,
                                       vocab_size=a.vocab, multi_query=True, parallel_attn=True, bias=False,
                                       new_decoder_architecture=False, alibi=False),
        "llama": lambda: LlamaConfig(num_hidden_layers=a.layers, hidden_size=a.hidden, num_attention_heads=a.heads,
                                     num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
                                     vocab_size=a.vocab, max_position_embeddings=a.positions, tie_word_embeddings=False),
    }[a.family]()  # fmt: skip
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert C.param_count(a) == numel(model)
    # the published sizes: GPT-2 XL 1.5B, OPT 6.7B, Falcon 7B, LLaMA-2 7B
    expected = {"gpt2-xl": 1_557_611_200, "facebook/opt-6.7b": 6_658_473_984, "tiiuae/falcon-7b": 6_921_720_704,
                "meta-llama/Llama-2-7b-hf": 6_738_415_616}  # fmt: skip
    assert C.param_count(a) == expected[name]


# A GPT-2-shaped toy: L=2, h=4, a=2 heads, i=16, V=10, 8 positions.
TOY = C.Arch("gpt2", layers=2, hidden=4, heads=2, kv_heads=2, intermediate=16, vocab=10, positions=8)
# by hand: wte 10*4 + wpe 8*4 = 72; per layer: c_attn 4*12+12=60, c_proj 16+4=20, ln 8+8, c_fc 64+16=80,
# mlp proj 64+4=68 -> 244; final ln 8; tied head 0  => 72 + 2*244 + 8 = 568
TOY_P = 568


def test_toy_parameter_count_by_hand():
    assert C.param_count(TOY) == TOY_P
    # matmul parameters: everything but the tables (72), plus the output projection 10*4
    assert C.matmul_params(TOY) == TOY_P - 72 + 40


def test_activation_bytes_by_hand():
    # s=3, b=2, h=4, a=2, i=4h: s*b*h*(34 + 5*a*s/h) = 24*34 + 5*2*9*2 = 816 + 180 = 996 bytes in 16 bits
    assert C.layer_activation_bytes(TOY, batch=2, seq=3) == 996
    assert C.layer_activation_bytes(TOY, batch=2, seq=3, act_bytes=4) == 1992
    # a gated MLP of width i=8 (i/4h = 1/2): MLP term 19 * 0.5 * 1.5 = 14.25 instead of 19
    g = C.Arch("llama", layers=1, hidden=4, heads=2, kv_heads=1, intermediate=8, vocab=10, positions=8, tied=False)
    assert C.layer_activation_bytes(g, batch=2, seq=3) == pytest.approx(24 * (15 + 14.25) + 180)


def test_training_memory_by_hand_for_each_sharding():
    kw = {"micro_batch": 2, "seq": 3}
    logits = 2 * 3 * 10 * (2 + 8)
    m = C.train_memory(TOY, **kw)
    assert (m.weights, m.gradients, m.optimizer) == (4 * TOY_P, 4 * TOY_P, 8 * TOY_P)
    assert m.activations == 2 * 996 and m.logits == logits
    assert m.total == 16 * TOY_P + 2 * 996 + logits
    ddp = C.train_memory(TOY, sharding=C.Sharding("ddp", 4), **kw)
    assert (ddp.weights, ddp.gradients, ddp.optimizer) == (4 * TOY_P, 4 * TOY_P, 8 * TOY_P)  # replicated
    z2 = C.train_memory(TOY, sharding=C.Sharding("zero2", 4), **kw)
    assert (z2.weights, z2.gradients, z2.optimizer) == (4 * TOY_P, TOY_P, 2 * TOY_P)
    for s in ("zero3", "fsdp"):
        f = C.train_memory(TOY, sharding=C.Sharding(s, 4), **kw)
        assert (f.weights, f.gradients, f.optimizer) == (TOY_P, TOY_P, 2 * TOY_P)


def test_cpu_training_extras_by_hand():
    # TOY: vocab 10, hidden 4, tied; matmul params TOY_P - 72 + 40 = 536; micro-batch 2 x 3 tokens
    kw = {"micro_batch": 2, "seq": 3}
    bf16 = C.cpu_training_extra(TOY, act_bytes=2, **kw)
    # bf16 copies of the matrix weights 2 x 536, the head's fp32 gradient 4 x 10 x 4, logits 6 more bytes x 60
    assert bf16 == 2 * 536 + 4 * 40 + 6 * 60
    # fp32: no autocast copies and the loss's 12 bytes per logit are train_memory's (4 + 8) already
    assert C.cpu_training_extra(TOY, act_bytes=4, **kw) == 4 * 40
    # LoRA: the frozen head gets no gradient; untied: the head is its own parameter, with its own gradient counted
    assert C.cpu_training_extra(TOY, act_bytes=2, trainable=100, **kw) == 2 * 536 + 6 * 60
    untied = C.Arch("llama", layers=1, hidden=4, heads=2, kv_heads=1, intermediate=8, vocab=10, positions=8, tied=False)
    assert C.cpu_training_extra(untied, act_bytes=4, **kw) == 0


def test_gradient_checkpointing_keeps_layer_inputs_and_one_layer():
    m = C.train_memory(TOY, micro_batch=2, seq=3, gradient_checkpointing=True)
    assert m.activations == 2 * (2 * 3 * 2 * 4) + 996  # L layers x 2 bytes x s*b*h, plus one layer recomputed
    seven_b = HUB_ARCHS["meta-llama/Llama-2-7b-hf"]
    full = C.train_memory(seven_b, micro_batch=8, seq=256)
    ckpt = C.train_memory(seven_b, micro_batch=8, seq=256, gradient_checkpointing=True)
    assert ckpt.activations < full.activations / 10


def test_sharding_settings_are_checked():
    with pytest.raises(ValueError, match="strategy"):
        C.Sharding("zero1", 2)
    with pytest.raises(ValueError, match="cannot run on 4 devices"):
        C.Sharding("single", 4)


def test_flops_by_hand():
    # per token: 6 * matmul params + 6 * L * s * h (attention scores); checkpointing adds a forward (x 4/3)
    per = 6 * (TOY_P - 72 + 40) + 6 * 2 * 3 * 4
    assert C.train_flops_per_token(TOY, 3) == per
    assert C.train_flops_per_token(TOY, 3, gradient_checkpointing=True) == pytest.approx(per * 4 / 3)
    assert C.forward_flops_per_token(TOY, 3) == per / 3
    h100 = C.GPUS["H100-80GB"]
    assert C.train_seconds(1e15, h100, devices=2) == pytest.approx(1e15 / (989e12 * 0.4 * 2))


def test_decoding_is_bandwidth_bound_for_7b_and_compute_bound_for_huge_batches():
    a = HUB_ARCHS["meta-llama/Llama-2-7b-hf"]
    g = C.GPUS["A100-80GB"]
    one = C.decode_step_seconds(a, 1, 100, g)
    read = C.param_count(a) * 2 + C.kv_cache_bytes(a, 1, 100)
    assert one == pytest.approx(read / 2.039e12)
    # KV cache by hand: 2 (k, v) x 32 layers x 1 x 100 tokens x 4096 x 2 bytes
    assert C.kv_cache_bytes(a, 1, 100) == 2 * 32 * 100 * 4096 * 2
    big = C.decode_step_seconds(a, 4096, 100, g)
    assert big == pytest.approx(C.forward_flops_per_token(a, 100) * 4096 / (312e12 * 0.4))


def test_gpu_table_and_detection():
    assert C.gpu_from_name("h100-80gb").name == "H100-80GB"
    with pytest.raises(KeyError):
        C.gpu_from_name("V100")
    gib = C.GIB
    assert C.match_device("NVIDIA A100-SXM4-40GB", 40 * gib).name == "A100-40GB"
    assert C.match_device("NVIDIA A100-SXM4-80GB", 80 * gib).name == "A100-80GB"
    assert C.match_device("NVIDIA H200", 140 * gib).name == "H200-141GB"
    assert C.match_device("NVIDIA L4", 23 * gib).name == "L4"
    assert C.match_device("Tesla T4", 15 * gib) is None
    unknown = C.detected_gpu("Tesla T4", 15 * gib)
    assert math.isnan(unknown.bf16_tflops) and unknown.memory_gib == 15
