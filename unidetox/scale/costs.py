"""Parameter counts, memory and FLOP estimates for training and decoding causal LMs (no weights loaded).

Formulas (all per device, bytes unless stated):

- parameters: exact count from the architecture's shapes (checked against ``numel`` of real models);
- training state, AdamW with fp32 master weights (as `unidetox.method.train`): weights ``4P``, gradients ``4P``,
  optimizer state ``8P`` (two fp32 moments); ZeRO-2 shards gradients and optimizer state over the
  ``N`` data-parallel devices, ZeRO-3 and FSDP full sharding shard all three (weights, gradients, state / N);
  the peak is at least ``4P``, the full fp32 model each process holds before it is sharded;
- training a LoRA adapter of ``T`` parameters instead (``trainable=T``): the frozen weights in the dtype they were
  loaded in (``weight_bytes * P``: bf16 on CUDA, fp32 on CPU), the fp32 adapter ``4T``, its gradients ``4T`` and
  AdamW state ``8T``; activations and logits as in full fine-tuning (the backward pass still runs through every
  layer); its FLOPs are counted as full fine-tuning's (an upper bound: no weight gradients of frozen layers);
- activations of one micro-batch of ``b`` sequences of ``s`` tokens, per transformer layer, for 16-bit
  activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
  eq. 2): ``s*b*h*(34 + 5*a*s/h)`` with ``a`` heads; the MLP's 19*s*b*h part assumes an intermediate size of
  ``4h`` and is scaled by ``i / 4h`` (x1.5 for gated MLPs, which keep one more ``i``-wide tensor); fp32
  activations take twice as much. With gradient checkpointing only each layer's 16-bit input (``2*s*b*h``)
  is kept, plus one layer's full activations while it is recomputed;
- logits: ``b*s*V`` elements in the activation dtype, plus an fp32 copy and its gradient (the loss is
  computed in fp32): ``b*s*V*(act_bytes + 8)``;
- training FLOPs per token: ``6*P_mm + 6*L*s*h`` where ``P_mm`` is the parameters used in matrix products
  (all but the embedding and position tables, plus the output projection ``V*h`` even when tied) and the
  second term the attention scores (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", table 1);
  gradient checkpointing adds one forward pass (x4/3);
- decoding: each new token of a batch reads every weight once and the KV cache, so a step takes
  ``max(2*P_mm*B / peak FLOP/s, bytes read / memory bandwidth)``.

>>> a = Arch("llama", layers=2, hidden=32, heads=2, kv_heads=1, intermediate=64, vocab=100, positions=512, tied=False)
>>> param_count(a)
24992
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

GIB = 2**30


@dataclass(frozen=True)
class Arch:
    """The shape numbers of a decoder-only transformer that its parameter count and costs depend on.

    family: gpt2 | opt | falcon | llama (others: counted by instantiating the config, see `unidetox.scale.shapes`);
    positions: context length (learned position table rows for gpt2/opt; rotary for falcon/llama).
    """

    family: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    positions: int
    tied: bool = True  # output projection shares the input embedding
    source: str = ""  # where the numbers come from (config.json of a Hub model, a local config)
    params: int = 0  # exact count when known otherwise (instantiated config); 0 = use the formula

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def gated(self) -> bool:
        """SwiGLU-style MLP with three matrices (Llama) instead of two."""
        return self.family == "llama"


def _layer_params(a: Arch) -> int:
    h, i, kv = a.hidden, a.intermediate, a.kv_heads * a.head_dim
    if a.family == "gpt2":  # c_attn (h x 3h + 3h), c_proj, ln_1, ln_2, c_fc, mlp c_proj
        return (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + 2 * h + (h * i + i) + (i * h + h)
    if a.family == "opt":  # q, k, v, o with biases, self_attn_layer_norm, fc1, fc2, final_layer_norm
        return 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    if a.family == "falcon":  # falcon-7b: fused query_key_value (multi-query), dense, one LayerNorm, no biases
        return h * (h + 2 * kv) + h * h + 2 * h + 2 * h * i
    if a.family == "llama":  # q, k, v, o without biases, gate/up/down, two RMSNorms
        return h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h
    raise ValueError(f"no parameter formula for family {a.family!r}")


def param_count(a: Arch) -> int:
    """Number of distinct parameters (tied weights counted once), as ``sum(p.numel() for p in model.parameters())``."""
    if a.params:
        return a.params
    h, v = a.hidden, a.vocab
    emb = v * h
    if a.family == "gpt2":
        emb += a.positions * h
        final_norm = 2 * h
    elif a.family == "opt":
        emb += (a.positions + 2) * h  # OPT's learned positions are offset by 2
        final_norm = 2 * h
    elif a.family == "falcon":
        final_norm = 2 * h
    else:
        final_norm = h
    head = 0 if a.tied else v * h
    return emb + a.layers * _layer_params(a) + final_norm + head


def linear_shapes(a: Arch) -> dict[str, list[tuple[int, int]]]:
    """(in, out) features of every linear layer by its module name (peft matches LoRA targets by it), over all
    layers, for the families with a formula; ``{}`` for the others. GPT-2's two ``c_proj`` share a name."""
    h, i, kv = a.hidden, a.intermediate, a.kv_heads * a.head_dim
    per = {
        "gpt2": {"c_attn": [(h, 3 * h)], "c_proj": [(h, h), (i, h)], "c_fc": [(h, i)]},
        "opt": {"q_proj": [(h, h)], "k_proj": [(h, h)], "v_proj": [(h, h)], "out_proj": [(h, h)], "fc1": [(h, i)],
                "fc2": [(i, h)]},
        "falcon": {"query_key_value": [(h, h + 2 * kv)], "dense": [(h, h)], "dense_h_to_4h": [(h, i)],
                   "dense_4h_to_h": [(i, h)]},
        "llama": {"q_proj": [(h, h)], "k_proj": [(h, kv)], "v_proj": [(h, kv)], "o_proj": [(h, h)],
                  "gate_proj": [(h, i)], "up_proj": [(h, i)], "down_proj": [(i, h)]},
    }.get(a.family, {})  # fmt: skip
    out = {name: shapes * a.layers for name, shapes in per.items()}
    if out:
        out["lm_head"] = [(h, a.vocab)]
    return out


def lora_params(a: Arch, r: int, targets: tuple[str, ...]) -> int:
    """Parameters of a rank-`r` LoRA adapter on the linear layers named `targets`: ``r * (in + out)`` each (A and B).
    Raises KeyError naming a target the family has no linear layer for (or a family without a formula)."""
    shapes = linear_shapes(a)
    total = 0
    for t in targets:
        total += sum(r * (n_in + n_out) for n_in, n_out in shapes[t])
    return total


def matmul_params(a: Arch) -> int:
    """Parameters used in matrix products per token: all but the embedding tables, plus the output projection."""
    tables = a.vocab * a.hidden
    if a.family == "gpt2":
        tables += a.positions * a.hidden
    elif a.family == "opt":
        tables += (a.positions + 2) * a.hidden
    untied_head = 0 if a.tied else a.vocab * a.hidden
    return param_count(a) - tables - untied_head + a.vocab * a.hidden


# ----------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class Sharding:
    """How the training state is spread over `devices` data-parallel devices."""

    strategy: str = "single"  # single | ddp | fsdp | zero2 | zero3
    devices: int = 1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.devices < 1 or (self.strategy == "single" and self.devices != 1):
            raise ValueError(f"strategy {self.strategy!r} cannot run on {self.devices} devices")

    @property
    def weight_shards(self) -> int:
        return self.devices if self.strategy in ("fsdp", "zero3") else 1

    @property
    def grad_shards(self) -> int:
        return self.devices if self.strategy in ("fsdp", "zero2", "zero3") else 1

    @property
    def state_shards(self) -> int:
        return self.grad_shards


STRATEGIES = ("single", "ddp", "fsdp", "zero2", "zero3")


@dataclass(frozen=True)
class TrainMemory:
    """Estimated peak bytes per device of a training step, by part."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    setup: float = (
        0.0  # the whole fp32 model on each device before it is sharded (unidetox.method.train moves it there)
    )

    @property
    def total(self) -> float:
        """Peak: the training step, or the set-up before sharding when that is larger (FSDP/ZeRO-3 on many GPUs)."""
        return max(self.weights + self.gradients + self.optimizer + self.activations + self.logits, self.setup)


def layer_activation_bytes(a: Arch, batch: int, seq: int, act_bytes: int = 2) -> float:
    """Activations one layer keeps for backward (Korthikanti et al. 2022 eq. 2, MLP scaled to `a.intermediate`)."""
    s, b, h = seq, batch, a.hidden
    mlp = 19 * a.intermediate / (4 * h) * (1.5 if a.gated else 1.0)
    per = s * b * h * (15 + mlp) + 5 * a.heads * s * s * b
    return per * act_bytes / 2


def train_memory(
    a: Arch,
    *,
    micro_batch: int,
    seq: int,
    act_bytes: int = 2,
    gradient_checkpointing: bool = False,
    sharding: Sharding = Sharding(),
    trainable: int | None = None,
    weight_bytes: int = 4,
) -> TrainMemory:
    """Peak training memory per device: fp32 weights, gradients and AdamW moments (sharded as `sharding`), the
    activations of one micro-batch of `micro_batch` sequences of `seq` tokens, and the logits. `trainable`: a LoRA
    adapter's parameter count (the base frozen in `weight_bytes` per parameter; not sharded)."""
    p = param_count(a)
    full = layer_activation_bytes(a, micro_batch, seq, act_bytes)
    if gradient_checkpointing:
        act = a.layers * 2 * seq * micro_batch * a.hidden * act_bytes / 2 + full
    else:
        act = a.layers * full
    logits = micro_batch * seq * a.vocab * (act_bytes + 8)
    if trainable is not None:
        t = trainable
        return TrainMemory(weights=weight_bytes * p + 4 * t, gradients=4 * t, optimizer=8 * t, activations=act,
                           logits=logits, setup=weight_bytes * p + 4 * t)  # fmt: skip
    return TrainMemory(
        weights=4 * p / sharding.weight_shards,
        gradients=4 * p / sharding.grad_shards,
        optimizer=8 * p / sharding.state_shards,
        activations=act,
        logits=logits,
        setup=4 * p,
    )


#: resident bytes of a CPU training process besides its weights before training starts, for an offline plan: the
#: interpreter, torch, transformers and the tokenizer (`unidetox detox` on Gemma-3-270M: 0.2 GiB; a pipeline process
#: holds more, which the runtime check reads from the process itself)
CPU_PROCESS_BYTES = 0.5 * GIB


def cpu_training_extra(a: Arch, *, micro_batch: int, seq: int, act_bytes: int, trainable: int | None = None) -> float:
    """Bytes a training step on a CPU holds beyond :func:`train_memory`'s parts (with AdamW fused, which keeps no
    temporaries; benchmarks/bench_train_memory.py measures the whole):

    - under bf16 autocast (`act_bytes` 2), the bf16 copy of every matrix weight, cached for backward (2 bytes each);
    - in a full fine-tune of a tied model, the output projection's own fp32 gradient while it is added into the
      embedding's (4 x vocab x hidden);
    - the loss's logits beyond the (act_bytes + 8) bytes per element :func:`train_memory` counts: under autocast the
      bf16 logits, their fp32 copy, the log-softmax, its fp32 gradient and the bf16 one, 16 bytes in all (+6); in
      fp32, 12 (+0)."""
    copies = 2 * matmul_params(a) if act_bytes == 2 else 0
    head = 4 * a.vocab * a.hidden if a.tied and trainable is None else 0
    logits = micro_batch * seq * a.vocab * (6 if act_bytes == 2 else 0)
    return float(copies + head + logits)


def kv_cache_bytes(a: Arch, batch: int, seq: int, dtype_bytes: int = 2) -> float:
    """Keys and values of `batch` sequences of `seq` tokens over all layers."""
    return 2 * a.layers * batch * seq * a.kv_heads * a.head_dim * dtype_bytes


def decode_memory(a: Arch, *, batch: int, seq: int, dtype_bytes: int = 2) -> float:
    """Inference memory of one model: weights, KV cache and one step's fp32 logits."""
    return param_count(a) * dtype_bytes + kv_cache_bytes(a, batch, seq, dtype_bytes) + batch * a.vocab * 4


# ----------------------------------------------------------------------------- FLOPs and time


def train_flops_per_token(a: Arch, seq: int, *, gradient_checkpointing: bool = False) -> float:
    """Forward + backward FLOPs per trained token (x4/3 with gradient checkpointing: one more forward)."""
    f = 6 * matmul_params(a) + 6 * a.layers * seq * a.hidden
    return f * 4 / 3 if gradient_checkpointing else f


def forward_flops_per_token(a: Arch, seq: int) -> float:
    return 2 * matmul_params(a) + 2 * a.layers * seq * a.hidden


@dataclass(frozen=True)
class GPU:
    """A GPU model: dense bf16 tensor-core peak, memory and memory bandwidth (vendor datasheets)."""

    name: str
    bf16_tflops: float  # dense (without 2:4 sparsity)
    memory_gib: float
    bandwidth_tbs: float  # TB/s
    source: str


GPUS = {
    g.name: g
    for g in (
        GPU("A100-40GB", 312, 40, 1.555, "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB)"),
        GPU("A100-80GB", 312, 80, 2.039, "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB)"),
        GPU("H100-80GB", 989, 80, 3.35, "NVIDIA H100 Tensor Core GPU datasheet (SXM5; 1,979 with sparsity)"),
        GPU("H200-141GB", 989, 141, 4.8, "NVIDIA H200 Tensor Core GPU datasheet (SXM; 1,979 with sparsity)"),
        GPU("L4", 121, 24, 0.3, "NVIDIA L4 Tensor Core GPU datasheet (242 with sparsity)"),
    )
}
MFU = 0.4  # assumed fraction of the peak FLOP/s a fine-tuning step reaches (typical for 1-8 GPU HF training)
USABLE = 0.9  # fraction of a device's memory a run can count on (CUDA context, allocator fragmentation)


def train_seconds(flops: float, gpu: GPU, devices: int = 1, mfu: float = MFU) -> float:
    """Wall seconds for `flops` spread over `devices` GPUs at `mfu` of their bf16 peak."""
    return flops / (gpu.bf16_tflops * 1e12 * mfu * devices)


def decode_step_seconds(a: Arch, batch: int, context: int, gpu: GPU, dtype_bytes: int = 2) -> float:
    """One decoding step of `batch` sequences with `context` cached tokens: compute- or bandwidth-bound."""
    compute = forward_flops_per_token(a, context) * batch / (gpu.bf16_tflops * 1e12 * MFU)
    read = param_count(a) * dtype_bytes + kv_cache_bytes(a, batch, context, dtype_bytes)
    return max(compute, read / (gpu.bandwidth_tbs * 1e12))


def gpu_from_name(name: str) -> GPU:
    """A GPU of the table by its name (case and punctuation ignored), or from a CUDA device name such as
    'NVIDIA A100-SXM4-80GB' plus its memory (done by :func:`detect_gpu`)."""
    norm = "".join(ch for ch in name.upper() if ch.isalnum())
    for g in GPUS.values():
        if "".join(ch for ch in g.name.upper() if ch.isalnum()) == norm:
            return g
    raise KeyError(name)


def match_device(device_name: str, total_bytes: int) -> GPU | None:
    """The table's GPU for a CUDA device name and memory size, else None."""
    up = device_name.upper()
    gib = total_bytes / GIB
    for key, names in (("H200", ["H200-141GB"]), ("H100", ["H100-80GB"]), ("A100", ["A100-40GB", "A100-80GB"]),
                       ("L4", ["L4"])):  # fmt: skip
        if key in up:
            return min((GPUS[n] for n in names), key=lambda g: abs(g.memory_gib - gib))
    return None


def detected_gpu(device_name: str, total_bytes: int) -> GPU:
    """The GPU to plan for from a detected device: the table's entry with the device's own memory size, or an
    entry without FLOP/s figures (times then unknown)."""
    g = match_device(device_name, total_bytes)
    mem = total_bytes / GIB
    if g is None:
        return GPU(device_name, math.nan, mem, math.nan, "detected (not in the table: times unknown)")
    return replace(g, memory_gib=mem, source=g.source + "; memory as detected")


__all__ = [
    "CPU_PROCESS_BYTES",
    "GPU",
    "GPUS",
    "MFU",
    "STRATEGIES",
    "USABLE",
    "Arch",
    "Sharding",
    "TrainMemory",
    "cpu_training_extra",
    "decode_memory",
    "decode_step_seconds",
    "forward_flops_per_token",
    "gpu_from_name",
    "kv_cache_bytes",
    "layer_activation_bytes",
    "linear_shapes",
    "lora_params",
    "matmul_params",
    "param_count",
    "train_flops_per_token",
    "train_memory",
    "train_seconds",
]
